# Reference operating characteristics for the CRM from dfcrm (Cheung YK; CRAN package dfcrm),
# the reference implementation of the continual reassessment method.
#
#   Rscript tests/reference/make_crm_reference.R   # writes crm_dfcrm_reference.csv beside this script
#
# Design (dfcrm's crmsim defaults): empiric (power) model p_j = skeleton_j ^ exp(beta),
# beta ~ Normal(0, 1.34), beta estimated by its posterior mean, next dose the one with
# plug-in toxicity closest to the target, restrict = TRUE (no skipping upwards from the
# last dose, no escalation right after a cohort whose DLT rate reached the target),
# cohorts of 3 (mcohort = 3), 30 patients, start at level 1, no early stopping.
# Skeletons by getprior (Lee & Cheung 2009 indifference-interval calibration).
suppressPackageStartupMessages(library(dfcrm))

here <- tryCatch(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))),
                 error = function(e) ".")
nsim <- 20000
scenarios <- list(
  list(id = "S1", target = 0.25, halfwidth = 0.05, nu = 2, tox = c(0.05, 0.10, 0.20, 0.35)),
  list(id = "S2", target = 0.25, halfwidth = 0.05, nu = 2, tox = c(0.25, 0.40, 0.50, 0.60)),
  list(id = "S3", target = 0.25, halfwidth = 0.05, nu = 2, tox = c(0.02, 0.05, 0.10, 0.25)),
  list(id = "S4", target = 0.25, halfwidth = 0.05, nu = 3, tox = c(0.10, 0.25, 0.40, 0.55)),
  list(id = "S5", target = 0.30, halfwidth = 0.06, nu = 3, tox = c(0.05, 0.12, 0.30, 0.45, 0.60))
)
rows <- list()
for (s in scenarios) {
  k <- length(s$tox)
  skeleton <- getprior(s$halfwidth, s$target, s$nu, k)
  sim <- crmsim(s$tox, skeleton, s$target, n = 30, x0 = 1, nsim = nsim, mcohort = 3, restrict = TRUE,
                count = FALSE, seed = 2026)
  for (j in 1:k) {
    rows[[length(rows) + 1]] <- data.frame(
      scenario = s$id, target = s$target, halfwidth = s$halfwidth, nu = s$nu, level = j, tox = s$tox[j],
      skeleton = sprintf("%.10f", skeleton[j]), nsim = nsim, p_select = sim$MTD[j],
      mean_n = sim$level[j], mean_dlt = sim$tox[j])
  }
  cat(s$id, "done\n")
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "crm_dfcrm_reference.csv"), row.names = FALSE, quote = FALSE)
cat(sprintf("dfcrm %s, R %s\n", as.character(packageVersion("dfcrm")), R.version.string))
