# Reference values for tests/test_analysis.py, from R packages in Debian's repositories:
#   apt-get install r-base-core r-cran-mass r-cran-ordinal r-cran-lme4
#   Rscript tests/reference/make_reference.R   (run from the repository root)
# It reads the committed datasets amass2_trial.csv and amass2_nihss_long.csv (made once by
# stroketrial.analysis.simulated_trial.simulate_trial(amass-2, seed=11, common_or=1.5)) and writes
# tests/reference/r_reference.csv: name,value with 10 significant digits. make test never runs R.
suppressPackageStartupMessages({library(MASS); library(ordinal); library(lme4)})
d <- read.csv("tests/reference/amass2_trial.csv")
d$treated <- as.numeric(d$arm == "albumin")
m <- d[!is.na(d$mrs_90d), ]
m$mrs <- factor(m$mrs_90d, ordered = TRUE)
out <- list()
put <- function(name, value) out[[name]] <<- signif(value, 10)

# proportional odds, unadjusted and adjusted: MASS::polr (profile CI from MASS's confint)
fit <- polr(mrs ~ treated, data = m, method = "logistic", Hess = TRUE)
put("polr_beta", coef(fit)[["treated"]])
put("polr_se", sqrt(vcov(fit)["treated", "treated"]))
ci <- suppressMessages(confint(fit))
put("polr_profile_beta_low", ci[1]); put("polr_profile_beta_high", ci[2])
put("polr_loglik", as.numeric(logLik(fit)))
fit_adj <- polr(mrs ~ treated + age + nihss + aspects, data = m, method = "logistic", Hess = TRUE)
put("polr_adj_beta", coef(fit_adj)[["treated"]])
put("polr_adj_se", sqrt(vcov(fit_adj)["treated", "treated"]))
ci <- suppressMessages(confint(fit_adj, "treated"))
put("polr_adj_profile_beta_low", ci[1]); put("polr_adj_profile_beta_high", ci[2])

# the same with ordinal::clm, and its likelihood-ratio test of proportional odds for the arm
clm_fit <- clm(mrs ~ treated, data = m, link = "logit")
put("clm_beta", coef(clm_fit)[["treated"]])
nt <- nominal_test(clm_fit)
put("clm_nominal_lr", nt["treated", "LRT"]); put("clm_nominal_df", nt["treated", "Df"])
put("clm_nominal_p", nt["treated", "Pr(>Chi)"])

# Wilcoxon-Mann-Whitney with continuity correction (normal approximation, ties)
w <- wilcox.test(mrs_90d ~ factor(arm, levels = c("albumin", "control")), data = m, correct = TRUE, exact = FALSE)
put("wilcox_p", w$p.value)

# mRS 0-2: Fisher's exact test and the conditional MLE odds ratio with its exact interval
good <- as.numeric(m$mrs_90d <= 2)
tab <- table(factor(m$arm, levels = c("albumin", "control")), factor(good, levels = c(1, 0)))
f <- fisher.test(tab)
put("fisher_p", f$p.value); put("fisher_or", f$estimate[[1]])
put("fisher_or_low", f$conf.int[1]); put("fisher_or_high", f$conf.int[2])
g <- glm(good ~ treated + age + nihss, data = m, family = binomial)
put("glm_beta", coef(g)[["treated"]]); put("glm_se", sqrt(vcov(g)["treated", "treated"]))

# infarct volume: log(volume + 1) ANCOVA
v <- lm(log(infarct_volume_ml + 1) ~ treated + nihss + aspects, data = d)
put("lm_beta", coef(v)[["treated"]]); put("lm_se", sqrt(vcov(v)["treated", "treated"]))

# repeated NIHSS: linear mixed model with a random intercept, REML (lme4)
l <- read.csv("tests/reference/amass2_nihss_long.csv")
l$treated <- as.numeric(l$arm == "albumin")
l$visit <- factor(l$visit, levels = c("baseline", "24 h", "7 days"))
mm <- lmer(nihss ~ visit * treated + (1 | patient_id), data = l, REML = TRUE)
b <- fixef(mm); V <- as.matrix(vcov(mm))
for (v_ in levels(l$visit)) {
  w_ <- setNames(rep(0, length(b)), names(b)); w_["treated"] <- 1
  if (v_ != "baseline") w_[paste0("visit", v_, ":treated")] <- 1
  put(paste0("lmer_effect_", gsub(" ", "_", v_)), sum(w_ * b))
  put(paste0("lmer_se_", gsub(" ", "_", v_)), sqrt(as.numeric(t(w_) %*% V %*% w_)))
}
write.csv(data.frame(name = names(out), value = unlist(out)), "tests/reference/r_reference.csv", row.names = FALSE)
cat("wrote tests/reference/r_reference.csv\n")
