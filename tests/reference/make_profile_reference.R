# Reference values for tests/test_proportional_odds_fit.py (issue 23): the profile-likelihood 95% limits of the
# arm's coefficient found exactly, without MASS::confint's spline through a grid of profile points (which is
# good to about 1e-5). From R:
#   apt-get install r-base-core r-cran-mass
#   Rscript tests/reference/make_profile_reference.R   (run from the repository root)
# Each limit is where 2 (logLik(fit) - logLik(refit with the arm's coefficient fixed through an offset)) is the
# chi-square(1) 95% point, by uniroot with tol 1e-12; every polr fit with optim's reltol 1e-15. It reads the
# committed amass2_trial.csv and ordinal_weighted_data.csv and writes profile_reference.csv: name,value with 12
# significant digits. make test never runs R.
suppressPackageStartupMessages(library(MASS))
d <- read.csv("tests/reference/amass2_trial.csv")
d$treated <- as.numeric(d$arm == "albumin")
m <- d[!is.na(d$mrs_90d), ]
m$mrs <- factor(m$mrs_90d, ordered = TRUE)
w <- read.csv("tests/reference/ordinal_weighted_data.csv")
w$treated <- as.numeric(w$arm == "albumin")
w$mrs <- factor(w$mrs_90d, ordered = TRUE)
out <- list()
put <- function(name, value) out[[name]] <<- signif(value, 12)
tight <- list(reltol = 1e-15, maxit = 10000)
limits <- function(prefix, covariates, data) {
  data$wt <- if (is.null(data$weight)) 1 else data$weight
  full <- polr(as.formula(paste("mrs ~ treated", covariates)), data = data, weights = wt, method = "logistic",
               Hess = TRUE, control = tight)
  beta <- coef(full)[["treated"]]; se <- sqrt(vcov(full)["treated", "treated"])
  gap <- function(b) {
    data$fixed <- b * data$treated
    refit <- polr(as.formula(paste("mrs ~ offset(fixed)", covariates)), data = data, weights = wt,
                  method = "logistic", control = tight, start = c(coef(full)[-1], full$zeta))
    2 * (as.numeric(logLik(full)) - as.numeric(logLik(refit))) - qchisq(0.95, 1)
  }
  put(paste0(prefix, "_profile_low"), uniroot(gap, c(beta - 4 * se, beta), tol = 1e-12)$root)
  put(paste0(prefix, "_profile_high"), uniroot(gap, c(beta, beta + 4 * se), tol = 1e-12)$root)
}
limits("unadjusted", "", m)
limits("adjusted", "+ age + nihss + aspects", m)
limits("counts", "", w[w$dataset == "counts", ])
# polr starts from a binomial glm, which warns that the weighted counts are not whole numbers: harmless here
suppressWarnings(limits("weighted", "+ age + nihss", w[w$dataset == "noninteger", ]))
write.csv(data.frame(name = names(out), value = unlist(out)), "tests/reference/profile_reference.csv",
          row.names = FALSE)
cat("wrote tests/reference/profile_reference.csv;", R.version.string, "; MASS", as.character(packageVersion("MASS")), "\n")
