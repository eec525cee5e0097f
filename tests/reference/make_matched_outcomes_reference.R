# Reference values for tests/test_matched_outcomes.py (outcome analyses in a propensity-matched sample, and the
# inverse-probability-weighted sensitivity analysis), from R:
#   apt-get install r-base-core r-cran-matchit r-cran-sandwich r-cran-ordinal
#   Rscript tests/reference/make_matched_outcomes_reference.R   (run from the repository root)
# make test never runs R.
#
# 1. It simulates (seeded) an AMASS-1-like dataset: 40 treated patients from a single-arm pilot of intra-arterial
#    albumin after thrombectomy, 400 thrombectomy-registry controls, baseline covariates that differ between the
#    two sources, and the outcomes infarct_volume_24h_ml (0.1 mL, some 0), mrs_90d, death_90d, sich, each with a
#    few missing values.
# 2. The propensity score is a logistic regression of treated on the covariates (`propensity`, every row). MatchIt
#    (nearest-neighbour matching on the logit of that score, without replacement, caliper 0.2 SD) makes two
#    matched samples: 1:1 (`subclass`, `weights`) and 1:2 (`subclass_1to2`, `weights_1to2`; the caliper leaves
#    some treated patients with one control only, so the control weights differ). Unmatched rows have subclass NA
#    and weight 0. All of it is written to matched_outcomes_data.csv.
# 3. It runs the analyses and writes matched_outcomes_reference.csv: design, outcome, measure, estimate, se,
#    ci_low, ci_high, p_value, n, note (15 significant digits). Wald intervals are estimate +- qnorm(0.975) SE
#    (on the log scale for ratios), as marginaleffects uses with vcov = ~subclass in MatchIt's "Estimating
#    Effects" vignette; p is the two-sided Wald z test.
#    - 1:1 pairs: log(volume + 1) by t.test(paired = TRUE); the Hodges-Lehmann shift by
#      wilcox.test(paired = TRUE, conf.int = TRUE) with R's own choice of exact or normal approximation (with
#      continuity correction), on the volume as recorded and rounded to whole mL (ties: the normal approximation).
#    - 1:2: lm(log(volume + 1) ~ treated, weights) with sandwich::vcovCL(cluster = ~subclass) (type "HC1", the
#      default for lm, and cadjust = TRUE: G/(G - 1) (n - 1)/(n - k)); the two-sample wilcox.test(conf.int = TRUE)
#      of treated against matched controls (unweighted).
#    - both matchings: the mRS by ordinal::clm(weights) with vcovCL(cluster = ~subclass) (type "HC0", vcovCL's
#      default for any model but lm, cadjust = TRUE); the binary outcomes by glm(quasibinomial(logit | identity),
#      weights) with vcovCL(cluster = ~subclass) (type "HC0", cadjust = TRUE).
#    - IPW (ATT weights: treated 1, controls ps / (1 - ps), every row): the same models with
#      sandwich::vcovHC(type = "HC0") for lm and glm, and sandwich::sandwich() (HC0) for clm.
#    - sICH with the treated patients' events set to 0: the risk difference with Newcombe's hybrid score interval
#      (Wilson limits per group from prop.test(correct = FALSE) on the weighted counts where they are whole
#      numbers, else Wilson's formula on the Kish effective sample size).
#    - cross-checks, not used by the tests for their numbers: MASS::polr + vcovCL. sandwich 3.0-2's bread.polr is
#      vcov(fit) * fit$n and polr's n is sum(weights), while sandwich() divides by the number of rows, so vcovCL
#      on a weighted polr is off by (sum(weights) / rows)^2: nothing for MatchIt's weights (they sum to the
#      number of matched rows), a large error for IPW weights. The script prints both.
# Tolerances: glm with epsilon 1e-14; clm with gradTol 1e-12; wilcox.test with tol.root 1e-12 (R's default
# 1e-4 leaves the normal-approximation limits up to 1e-4 from the Walsh average they stand for).
suppressPackageStartupMessages({library(MatchIt); library(sandwich); library(ordinal); library(MASS)})
set.seed(20261208)  # a seed whose 1:1 within-pair volume differences have no ties or zeros (wilcox.test exact)

# --- 1. the dataset ---------------------------------------------------------------------------------------
simulate_patients <- function(n, treated) {
  shift <- if (treated) 1 else 0
  age <- round(pmin(pmax(rnorm(n, 70 - 9 * shift, 12), 25), 95))
  nihss <- round(pmin(pmax(rgamma(n, shape = 6, rate = 6 / (15 - 3 * shift)), 2), 36))
  aspects <- pmin(10, pmax(5, round(rnorm(n, 8 + 0.8 * shift, 1.3))))
  onset_to_puncture_min <- round(exp(rnorm(n, log(230 - 20 * shift), 0.5)))
  etici_3 <- rbinom(n, 1, 0.45 + 0.25 * shift)
  data.frame(treated = as.integer(treated), age, nihss, aspects, onset_to_puncture_min, etici_3)
}
d <- rbind(simulate_patients(40, TRUE), simulate_patients(400, FALSE))
n <- nrow(d)
severity <- 0.035 * (d$age - 70) + 0.11 * (d$nihss - 15) - 0.35 * (d$aspects - 8) +
  0.45 * log(d$onset_to_puncture_min / 230) - 0.6 * d$etici_3
effect <- -0.35 * d$treated
volume <- exp(3.0 + 0.8 * (severity + effect) + rnorm(n, 0, 0.9))
volume <- 500 * volume / (500 + volume)  # no more than a hemisphere
volume[runif(n) < 0.06] <- 0
d$infarct_volume_24h_ml <- round(volume, 1)
latent <- severity + effect + 0.5 + rlogis(n)
d$mrs_90d <- as.integer(cut(latent, c(-Inf, -2.6, -1.5, -0.6, 0.3, 1.3, 2.3, Inf))) - 1L
d$death_90d <- as.integer(d$mrs_90d == 6)
d$sich <- rbinom(n, 1, plogis(-2.7 + 0.5 * severity))
# missing outcomes: no 24-hour imaging, lost to follow-up at 90 days (death known for some), sICH unknown
d$infarct_volume_24h_ml[sample(n, 6)] <- NA
lost <- sample(n, 5)
d$mrs_90d[lost] <- NA
d$death_90d[lost[1:3]] <- NA
d$sich[sample(n, 2)] <- NA

# --- 2. propensity score and matching ----------------------------------------------------------------------
ps_model <- glm(treated ~ age + nihss + aspects + log(onset_to_puncture_min) + etici_3, family = binomial, data = d)
d$propensity <- fitted(ps_model)
logit_ps <- qlogis(d$propensity)
match_on <- function(ratio) {
  m <- matchit(treated ~ age + nihss + aspects + log(onset_to_puncture_min) + etici_3, data = d,
               method = "nearest", distance = logit_ps, ratio = ratio, replace = FALSE, caliper = 0.2)
  list(subclass = as.integer(as.character(m$subclass)), weights = m$weights)
}
one <- match_on(1)
two <- match_on(2)
d$subclass <- one$subclass
d$weights <- one$weights
d$subclass_1to2 <- two$subclass
d$weights_1to2 <- two$weights
d$patient_id <- sprintf("P%03d", seq_len(n))
d <- d[, c("patient_id", "treated", "age", "nihss", "aspects", "onset_to_puncture_min", "etici_3", "propensity",
           "subclass", "weights", "subclass_1to2", "weights_1to2", "infarct_volume_24h_ml", "mrs_90d",
           "death_90d", "sich")]
d$propensity <- signif(d$propensity, 15)
d$weights_1to2 <- signif(d$weights_1to2, 15)
write.csv(d, "tests/reference/matched_outcomes_data.csv", row.names = FALSE, na = "")
d <- read.csv("tests/reference/matched_outcomes_data.csv")  # the analyses use the values as written
d$mrs_0_2 <- as.integer(d$mrs_90d <= 2)
d$log_volume <- log(d$infarct_volume_24h_ml + 1)

# --- 3. the analyses ---------------------------------------------------------------------------------------
z <- qnorm(0.975)
rows <- list()
put <- function(design, outcome, measure, estimate, se = NA, ci_low = NA, ci_high = NA, p_value = NA, n = NA,
                note = "") {
  rows[[length(rows) + 1]] <<- data.frame(design, outcome, measure, estimate = signif(estimate, 15),
                                          se = signif(se, 15), ci_low = signif(ci_low, 15),
                                          ci_high = signif(ci_high, 15), p_value = signif(p_value, 15), n, note)
}
wald <- function(design, outcome, measure, beta, se, n, exponentiate, note = "") {
  ci <- beta + c(-1, 1) * z * se
  p <- 2 * pnorm(-abs(beta / se))
  if (exponentiate) put(design, outcome, measure, exp(beta), se, exp(ci[1]), exp(ci[2]), p, n, note)
  else put(design, outcome, measure, beta, se, ci[1], ci[2], p, n, note)
}
matched <- function(subclass, weights) {
  m <- d[!is.na(d[[subclass]]), ]
  m$w <- m[[weights]]
  m$cl <- m[[subclass]]
  m
}
samples <- list("1to1" = matched("subclass", "weights"), "1to2" = matched("subclass_1to2", "weights_1to2"))
ipw <- d
ipw$w <- ifelse(d$treated == 1, 1, d$propensity / (1 - d$propensity))
ipw$cl <- seq_len(n)
vc <- function(fit, design) {
  if (design == "ipw") {
    if (inherits(fit, "clm")) sandwich(fit) else vcovHC(fit, type = "HC0")
  } else vcovCL(fit, cluster = ~cl)
}
tight_glm <- glm.control(epsilon = 1e-14, maxit = 100)

# infarct volume, log scale
pairs <- function(m, column) {
  t1 <- m[m$treated == 1, c("cl", column)]
  t0 <- m[m$treated == 0, c("cl", column)]
  merged <- merge(t1, t0, by = "cl", suffixes = c("_t", "_c"))
  list(t = merged[[paste0(column, "_t")]], c = merged[[paste0(column, "_c")]])
}
p <- pairs(samples[["1to1"]], "log_volume")
tt <- t.test(p$t, p$c, paired = TRUE)
put("1to1", "infarct_volume_24h_ml", "ratio_of_geometric_means", exp(tt$estimate[[1]]), tt$stderr,
    exp(tt$conf.int[1]), exp(tt$conf.int[2]), tt$p.value, 2 * sum(complete.cases(p$t, p$c)), "paired t")
for (design in c("1to2", "ipw")) {
  m <- if (design == "ipw") ipw else samples[[design]]
  m <- m[!is.na(m$log_volume), ]
  fit <- lm(log_volume ~ treated, data = m, weights = w)
  wald(design, "infarct_volume_24h_ml", "ratio_of_geometric_means", coef(fit)[["treated"]],
       sqrt(vc(fit, design)["treated", "treated"]), nrow(m), TRUE)
}

# infarct volume, Hodges-Lehmann
put_wilcox <- function(design, outcome, w, n, walsh_median) {
  put(design, outcome, "hodges_lehmann", w$estimate[[1]], NA, w$conf.int[1], w$conf.int[2], w$p.value, n,
      if (grepl("exact", w$method)) "exact" else "normal approximation")
  put(design, outcome, "hodges_lehmann_median", walsh_median, n = n)
}
walsh_median <- function(x) { x <- x[x != 0]; s <- outer(x, x, "+"); median(s[!lower.tri(s)] / 2) }
p <- pairs(samples[["1to1"]], "infarct_volume_24h_ml")
ok <- complete.cases(p$t, p$c)
put_wilcox("1to1", "infarct_volume_24h_ml",
           wilcox.test(p$t, p$c, paired = TRUE, conf.int = TRUE, tol.root = 1e-12), 2 * sum(ok),
           walsh_median(p$t[ok] - p$c[ok]))
rounded_t <- round(p$t); rounded_c <- round(p$c)
put_wilcox("1to1", "infarct_volume_24h_ml_rounded",
           suppressWarnings(wilcox.test(rounded_t, rounded_c, paired = TRUE, conf.int = TRUE, tol.root = 1e-12)),
           2 * sum(ok), walsh_median(rounded_t[ok] - rounded_c[ok]))
m <- samples[["1to2"]]
x <- na.omit(m$infarct_volume_24h_ml[m$treated == 1]); y <- na.omit(m$infarct_volume_24h_ml[m$treated == 0])
put_wilcox("1to2", "infarct_volume_24h_ml",
           suppressWarnings(wilcox.test(x, y, conf.int = TRUE, tol.root = 1e-12)), length(x) + length(y),
           median(outer(x, y, "-")))

# 90-day mRS: proportional odds, common odds ratio for a better outcome = exp(-coefficient of treated)
for (design in c("1to1", "1to2", "ipw")) {
  m <- if (design == "ipw") ipw else samples[[design]]
  m <- m[!is.na(m$mrs_90d), ]
  m$mrs <- factor(m$mrs_90d, ordered = TRUE)
  fit <- clm(mrs ~ treated, data = m, weights = w, link = "logit", control = clm.control(gradTol = 1e-12))
  wald(design, "mrs_90d", "common_odds_ratio", -coef(fit)[["treated"]], sqrt(vc(fit, design)["treated", "treated"]),
       nrow(m), TRUE)
  fit_polr <- suppressWarnings(polr(mrs ~ treated, data = m, weights = w, Hess = TRUE,
                                    control = list(reltol = 1e-15, maxit = 10000, ndeps = rep(1e-6, 7))))
  se_polr <- sqrt(vcovCL(fit_polr, cluster = ~cl, type = "HC0", cadjust = design != "ipw")["treated", "treated"])
  cat(sprintf("%s mRS: clm log OR %.10f SE %.10f | polr + vcovCL SE %.10f, rescaled by rows / sum(w): %.10f\n",
              design, -coef(fit)[["treated"]], sqrt(vc(fit, design)["treated", "treated"]), se_polr,
              se_polr * nrow(m) / sum(m$w)))
}

# binary outcomes: risk difference (identity link) and odds ratio (logit link)
for (outcome in c("mrs_0_2", "death_90d", "sich")) {
  for (design in c("1to1", "1to2", "ipw")) {
    m <- if (design == "ipw") ipw else samples[[design]]
    m <- m[!is.na(m[[outcome]]), ]
    m$y <- m[[outcome]]
    risk <- tapply(m$w * m$y, m$treated, sum) / tapply(m$w, m$treated, sum)
    fit_rd <- glm(y ~ treated, data = m, weights = w, family = quasibinomial(link = "identity"),
                  start = c(risk[["0"]], risk[["1"]] - risk[["0"]]), control = tight_glm)
    wald(design, outcome, "risk_difference", coef(fit_rd)[["treated"]],
         sqrt(vc(fit_rd, design)["treated", "treated"]), nrow(m), FALSE)
    fit_or <- glm(y ~ treated, data = m, weights = w, family = quasibinomial(link = "logit"), control = tight_glm)
    wald(design, outcome, "odds_ratio", coef(fit_or)[["treated"]], sqrt(vc(fit_or, design)["treated", "treated"]),
         nrow(m), TRUE)
  }
}

# sICH with no treated events: Newcombe's hybrid score interval (method 10) on the weighted counts
wilson <- function(events, size) {
  if (abs(events - round(events)) < 1e-9 && abs(size - round(size)) < 1e-9) {
    return(as.numeric(prop.test(round(events), round(size), correct = FALSE)$conf.int))
  }
  p <- events / size
  centre <- (p + z^2 / (2 * size)) / (1 + z^2 / size)
  half <- z * sqrt(p * (1 - p) / size + z^2 / (4 * size^2)) / (1 + z^2 / size)
  c(centre - half, centre + half)
}
for (design in c("1to1", "1to2", "ipw")) {
  m <- if (design == "ipw") ipw else samples[[design]]
  m <- m[!is.na(m$sich), ]
  m$sich[m$treated == 1] <- 0
  part <- function(g) {
    w <- m$w[m$treated == g]; y <- m$sich[m$treated == g]
    size <- sum(w)^2 / sum(w^2)  # Kish's effective sample size
    p <- sum(w * y) / sum(w)
    list(p = p, ci = wilson(p * size, size))
  }
  a <- part(1); b <- part(0)
  rd <- a$p - b$p
  put(design, "sich_no_treated_events", "risk_difference", rd, NA,
      rd - sqrt((a$p - a$ci[1])^2 + (b$ci[2] - b$p)^2), rd + sqrt((a$ci[2] - a$p)^2 + (b$p - b$ci[1])^2), NA,
      nrow(m), "Newcombe hybrid score")
}

out <- do.call(rbind, rows)
write.csv(out, "tests/reference/matched_outcomes_reference.csv", row.names = FALSE, na = "")
cat(sprintf("1:1: %d treated, %d controls matched; 1:2: %d treated, %d controls, control weights %s\n",
            sum(samples[["1to1"]]$treated), sum(1 - samples[["1to1"]]$treated), sum(samples[["1to2"]]$treated),
            sum(1 - samples[["1to2"]]$treated),
            paste(sort(unique(round(samples[["1to2"]]$w[samples[["1to2"]]$treated == 0], 4))), collapse = ", ")))
cat("wrote tests/reference/matched_outcomes_data.csv and matched_outcomes_reference.csv;", R.version.string,
    "; MatchIt", as.character(packageVersion("MatchIt")), "; sandwich", as.character(packageVersion("sandwich")),
    "; ordinal", as.character(packageVersion("ordinal")), "; MASS", as.character(packageVersion("MASS")), "\n")
