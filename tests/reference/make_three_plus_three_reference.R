# Exact operating characteristics of the 3+3 design, by enumerating every trial path, for
# tests/test_escalation.py (src/stroketrial/dosing/escalation/three_plus_three.py computes them in
# closed form; this script follows the rules cohort by cohort and adds up the probability of each path).
#
#   Rscript tests/reference/make_three_plus_three_reference.R   # writes three_plus_three_reference.csv here
#
# Two variants, cohorts of 3, start at level 1, levels 1..k:
#
# classic: the traditional 3+3 in which the MTD must have six patients (Storer, Biometrics 1989;45:925-37;
#   the 3+3 with dose de-escalation of Lin & Shih, Biostatistics 2001;2:203-15: the MTD is the highest level
#   at which at most 1 of 6 patients had a DLT).
#   - escalation: 0/3 escalate; 1/3 treat 3 more; at most 1/6 escalate; 2 or more (of 3 or 6) stop escalating;
#   - then the level below is the candidate: 6 patients there (1/3, then 0/3): the MTD; 3 patients (0/3):
#     treat 3 more, and at most 1/6 makes it the MTD while 2 or more of 6 pass the candidacy down a level;
#   - the top level tolerated (0/3, or at most 1/6) is the candidate the same way: 3 patients are expanded
#     to 6 before it is declared; no candidate left: no MTD.
# expansion: as AMASS-1 ran it: the same escalation, no expansion: the level below the stopping level is the
#   MTD (none at level 1); the top level tolerated is the MTD.
#
# Base R only (dbinom). The expected DLTs are the DLTs counted on each path, not p x patients.

here <- tryCatch(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))),
                 error = function(e) ".")

# The next step from the DLTs (y) and patients (n) per level: list(treat = level) or list(mtd = level, 0 = none).
next_step <- function(n, y, k, variant) {
  if (all(n == 0)) return(list(treat = 1))
  h <- max(which(n > 0))                          # escalation is at (or stopped at) the highest level treated
  if (y[h] <= 1) {                                # 0/3, 1/3 or at most 1/6 at the highest level
    if (n[h] == 3 && y[h] == 1) return(list(treat = h))
    if (h < k) return(list(treat = h + 1))
    if (variant == "expansion") return(list(mtd = k))
    if (n[h] == 3) return(list(treat = h))        # classic: expand the top level to 6
    return(list(mtd = k))
  }
  # 2 or more DLTs at h: escalation stops
  if (variant == "expansion") return(list(mtd = h - 1))
  j <- h - 1
  while (j >= 1) {
    if (n[j] == 3) return(list(treat = j))        # the candidate had 0/3: 3 more
    if (y[j] <= 1) return(list(mtd = j))          # 6 patients, at most 1 DLT
    j <- j - 1                                    # 2 or more of 6: the next level down
  }
  list(mtd = 0)
}

enumerate <- function(tox, variant) {
  k <- length(tox)
  acc <- new.env()
  acc$select <- numeric(k + 1)                    # [1]: no MTD, [j + 1]: level j
  acc$n <- numeric(k)
  acc$dlt <- numeric(k)
  walk <- function(n, y, prob) {
    if (prob == 0) return(invisible())
    s <- next_step(n, y, k, variant)
    if (!is.null(s$mtd)) {
      acc$select[s$mtd + 1] <- acc$select[s$mtd + 1] + prob
      acc$n <- acc$n + prob * n
      acc$dlt <- acc$dlt + prob * y
      return(invisible())
    }
    j <- s$treat
    stopifnot(n[j] + 3 <= 6)
    for (x in 0:3) {
      n2 <- n; y2 <- y
      n2[j] <- n2[j] + 3; y2[j] <- y2[j] + x
      walk(n2, y2, prob * dbinom(x, 3, tox[j]))
    }
  }
  walk(numeric(k), numeric(k), 1)
  list(p_none = acc$select[1], p_select = acc$select[-1], expected_n = acc$n, expected_dlt = acc$dlt)
}

scenarios <- list(
  list(id = "S1", tox = c(0.05, 0.10, 0.20, 0.35)),
  list(id = "S2", tox = c(0.05, 0.10, 0.20, 0.35, 0.50)),
  list(id = "S3", tox = c(0.02, 0.05, 0.08, 0.12, 0.18, 0.25, 0.35)),   # seven levels, as AMASS-1 has
  list(id = "S4", tox = c(0.30, 0.45, 0.60)),                           # toxic from the start
  list(id = "S5", tox = c(0.01, 0.02, 0.03, 0.04)),                     # all safe: the top level decides
  list(id = "S6", tox = c(0.20)),                                       # one level
  list(id = "S7", tox = c(0.10, 0.33, 0.33, 0.50, 0.70, 0.90)),
  list(id = "S8", tox = c(0, 0.15, 1))                                  # certain outcomes at the ends
)
rows <- list()
for (s in scenarios) {
  for (variant in c("classic", "expansion")) {
    r <- enumerate(s$tox, variant)
    stopifnot(abs(sum(r$p_select) + r$p_none - 1) < 1e-12)
    for (j in seq_along(s$tox)) {
      rows[[length(rows) + 1]] <- data.frame(
        scenario = s$id, variant = variant, level = j, tox = s$tox[j],
        p_select = sprintf("%.17g", r$p_select[j]), p_none = sprintf("%.17g", r$p_none),
        expected_n = sprintf("%.17g", r$expected_n[j]), expected_dlt = sprintf("%.17g", r$expected_dlt[j]))
    }
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "three_plus_three_reference.csv"), row.names = FALSE, quote = FALSE)
cat(sprintf("%d rows; %s\n", nrow(out), R.version.string))
