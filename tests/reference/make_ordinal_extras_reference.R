# Reference values for tests/test_ordinal_extras.py (issue 16: the ordinal analyses' additions), from R:
#   apt-get install r-base-core r-cran-mass r-cran-ordinal
#   Rscript tests/reference/make_ordinal_extras_reference.R   (run from the repository root)
# It reads the committed amass2_trial.csv (treatment albumin, control control; the mRS at 90 days, lower is
# better) and writes
#   ordinal_weighted_data.csv: two derived datasets for frequency weights, identified by `dataset`:
#     "counts": the trial collapsed to one row per arm and mRS with the number of patients in `weight`;
#     "noninteger": each patient with a non-integer weight 0.5, 0.75, 1.25 or 2 (by row, cycling);
#   ordinal_extras_reference.csv: name,value with 12 significant digits.
# make test never runs R.
#
# The generalized odds ratio (Agresti A, Generalized odds ratios for ordinal data, Biometrics 1980;36:59-67):
# GenOR = Pc / Pd, the concordant over the discordant pairs of the 2 x K table (response by group), tied pairs
# left out; its standard error on the log scale is Agresti's delta-method one, written as the R package genodds
# computes it (H Johns, github.com/HannahJohns/genodds, version 1.1.1.9000, R/genodds.R, genodds_strata with
# ties = "drop"), with p the cell proportions of the whole table, N its total, Rs and Rd the proportions of the
# table concordant and discordant with each cell (genodds computes those in C++, get_Rs and get_Rd; here they
# are written from Agresti's definitions):
#   SE(odds) = 2 / Pd * sqrt(sum(p * (odds * Rd - Rs)^2) / N),   SE(log odds) = SE(odds) / odds,
#   95% CI exp(log(odds) -+ qnorm(0.975) SE(log odds)),   p = 2 pnorm(-|log(odds)| / SE(log odds)).
# genodds is not in Debian and CRAN is unreachable here, so the formula is written out below in base R. The
# script checks it against the same delta method written per patient for two independent samples.
#
# The stratified win odds: within each stratum theta = P(treatment better) + P(tie)/2 (from wilcox.test's W),
# its Brunner-Munzel variance (Brunner E, Munzel U, Biom J 2000;42:17-25: placements from the pooled and
# within-arm ranks, var(theta) = S1^2 / (n1 n2^2) + S2^2 / (n2 n1^2)), the log win odds log(theta / (1 - theta))
# with variance var(theta) / (theta (1 - theta))^2; the strata combined with inverse-variance weights.
suppressPackageStartupMessages({library(MASS); library(ordinal)})
d <- read.csv("tests/reference/amass2_trial.csv")
d$treated <- as.numeric(d$arm == "albumin")
m <- d[!is.na(d$mrs_90d), ]
m$mrs <- factor(m$mrs_90d, ordered = TRUE)
out <- list()
put <- function(name, value) out[[name]] <<- signif(value, 12)
# polr's defaults (optim's reltol 1e-8, and its Hessian by differences of the gradient with steps of 1e-3) leave
# the adjusted fits' standard errors off in the 4th significant digit; refitted with a tight tolerance and small
# steps they agree with ordinal::clm's analytic Hessian to 8 digits.
tight <- function(fit) update(fit, control = list(reltol = 1e-15, maxit = 10000,
                                                 ndeps = rep(1e-6, length(coef(fit)) + length(fit$zeta))))

# --- proportional odds, every coefficient and cut-point (MASS::polr), unadjusted and adjusted
put_polr <- function(prefix, fit) {
  se <- sqrt(diag(vcov(fit)))
  for (b in names(coef(fit))) { put(paste0(prefix, "_coef_", b), coef(fit)[[b]]); put(paste0(prefix, "_se_", b), se[[b]]) }
  for (z in names(fit$zeta)) { put(paste0(prefix, "_zeta_", z), fit$zeta[[z]]); put(paste0(prefix, "_zeta_se_", z), se[[z]]) }
  put(paste0(prefix, "_loglik"), as.numeric(logLik(fit)))
}
put_polr("polr", tight(polr(mrs ~ treated, data = m, method = "logistic", Hess = TRUE)))
put_polr("polr_adj", tight(polr(mrs ~ treated + age + nihss + aspects, data = m, method = "logistic", Hess = TRUE)))

# --- frequency weights: MASS::polr(..., weights =)
counts <- aggregate(list(weight = rep(1, nrow(m))), list(arm = m$arm, mrs_90d = m$mrs_90d), sum)
counts$treated <- as.numeric(counts$arm == "albumin")
counts$mrs <- factor(counts$mrs_90d, ordered = TRUE)
fit_counts <- tight(polr(mrs ~ treated, data = counts, weights = weight, method = "logistic", Hess = TRUE))
put("counts_beta", coef(fit_counts)[["treated"]]); put("counts_se", sqrt(vcov(fit_counts)["treated", "treated"]))
ci <- suppressMessages(confint(fit_counts)); put("counts_profile_beta_low", ci[1]); put("counts_profile_beta_high", ci[2])
put("counts_loglik", as.numeric(logLik(fit_counts)))
nonint <- m[, c("arm", "mrs_90d", "age", "nihss", "aspects", "treated", "mrs")]
nonint$weight <- c(0.5, 0.75, 1.25, 2)[(seq_len(nrow(nonint)) - 1) %% 4 + 1]
# polr starts from a binomial glm, which warns that the weighted counts are not whole numbers: harmless here
fit_w <- suppressWarnings(tight(polr(mrs ~ treated + age + nihss, data = nonint, weights = weight,
                                     method = "logistic", Hess = TRUE)))
put_polr("weighted", fit_w)
ci <- suppressMessages(confint(fit_w, "treated"))
put("weighted_profile_beta_low", ci[1]); put("weighted_profile_beta_high", ci[2])
write.csv(rbind(data.frame(dataset = "counts", counts[, c("arm", "mrs_90d", "weight")], age = NA, nihss = NA),
                data.frame(dataset = "noninteger", nonint[, c("arm", "mrs_90d", "weight", "age", "nihss")])),
          "tests/reference/ordinal_weighted_data.csv", row.names = FALSE)

# --- the proportional-odds test adjusted as the primary model: ordinal::clm with the arm nominal
po_adj <- clm(mrs ~ treated + age + nihss + aspects, data = m, link = "logit")
nt <- nominal_test(po_adj)
put("nominal_adj_lr", nt["treated", "LRT"]); put("nominal_adj_df", nt["treated", "Df"])
put("nominal_adj_p", nt["treated", "Pr(>Chi)"])
relaxed <- clm(mrs ~ age + nihss + aspects, nominal = ~ treated, data = m, link = "logit")
put("relaxed_adj_loglik", as.numeric(logLik(relaxed))); put("po_adj_loglik", as.numeric(logLik(po_adj)))
al <- relaxed$alpha  # "0|1.(Intercept)", "0|1.treated", ...
for (z in levels(m$mrs)[-1]) {
  cut <- paste0(levels(m$mrs)[match(z, levels(m$mrs)) - 1], "|", z)
  put(paste0("relaxed_adj_cut_control_", cut), al[[paste0(cut, ".(Intercept)")]])
  put(paste0("relaxed_adj_cut_treatment_", cut), al[[paste0(cut, ".(Intercept)")]] + al[[paste0(cut, ".treated")]])
}
for (b in c("age", "nihss", "aspects")) put(paste0("relaxed_adj_coef_", b), relaxed$beta[[b]])
# weighted (the non-integer weights), unadjusted and adjusted for age and nihss
po_w <- clm(mrs ~ treated + age + nihss, data = nonint, weights = weight, link = "logit")
relaxed_w <- clm(mrs ~ age + nihss, nominal = ~ treated, data = nonint, weights = weight, link = "logit")
put("nominal_weighted_lr", 2 * (as.numeric(logLik(relaxed_w)) - as.numeric(logLik(po_w))))

# --- the generalized odds ratio, genodds' formula in base R
concordance <- function(p) {  # Rs, Rd of every cell of the response x group table of proportions
  K <- nrow(p); G <- ncol(p); Rs <- Rd <- matrix(0, K, G)
  for (i in seq_len(K)) for (j in seq_len(G)) {
    for (k in seq_len(K)) for (l in seq_len(G)) {
      if ((k > i && l > j) || (k < i && l < j)) Rs[i, j] <- Rs[i, j] + p[k, l]
      if ((k > i && l < j) || (k < i && l > j)) Rd[i, j] <- Rd[i, j] + p[k, l]
    }
  }
  list(Rs = Rs, Rd = Rd)
}
genodds_drop <- function(response, group) {
  # group levels c(treatment, control): the odds that control has the higher (worse) response are the odds
  # that treatment has the better one
  crosstab <- as.matrix(table(response, group)); N <- sum(crosstab); p <- crosstab / N
  R <- concordance(p); Pc <- sum(p * R$Rs); Pd <- sum(p * R$Rd); odds <- Pc / Pd
  se_odds <- 2 / Pd * sqrt(sum(p * (odds * R$Rd - R$Rs)^2) / N)
  list(odds = odds, se_log = se_odds / odds)
}
per_patient <- function(x, y) {  # x treatment, y control, higher is better: the two-sample delta method
  w_x <- sapply(x, function(v) mean(v > y)); l_x <- sapply(x, function(v) mean(v < y))
  w_y <- sapply(y, function(v) mean(x > v)); l_y <- sapply(y, function(v) mean(x < v))
  Pw <- mean(w_x); Pl <- mean(l_x)
  list(odds = Pw / Pl, se_log = sqrt(sum((w_x / Pw - l_x / Pl)^2) / length(x)^2 + sum((w_y / Pw - l_y / Pl)^2) / length(y)^2))
}
put_gor <- function(prefix, column) {
  s <- d[!is.na(d[[column]]), ]
  g <- genodds_drop(s[[column]], factor(s$arm, levels = c("albumin", "control")))
  check <- per_patient(-s[[column]][s$arm == "albumin"], -s[[column]][s$arm == "control"])
  stopifnot(isTRUE(all.equal(g$odds, check$odds, tolerance = 1e-12)),
            isTRUE(all.equal(g$se_log, check$se_log, tolerance = 1e-12)))
  put(paste0(prefix, "_gor"), g$odds); put(paste0(prefix, "_se_log"), g$se_log)
  put(paste0(prefix, "_low"), exp(log(g$odds) - qnorm(0.975) * g$se_log))
  put(paste0(prefix, "_high"), exp(log(g$odds) + qnorm(0.975) * g$se_log))
  put(paste0(prefix, "_p"), 2 * pnorm(-abs(log(g$odds)) / g$se_log))
}
put_gor("gor_mrs", "mrs_90d")
put_gor("gor_nihss24", "nihss_24h")

# --- stratified win odds, by site, inverse-variance weights
bm <- function(x, y) {  # higher is better; theta from wilcox.test's W, the Brunner-Munzel variance
  n1 <- length(x); n2 <- length(y)
  theta <- suppressWarnings(wilcox.test(x, y, exact = FALSE))$statistic[[1]] / (n1 * n2)
  r <- rank(c(x, y)); r1 <- r[seq_len(n1)]; r2 <- r[n1 + seq_len(n2)]
  s1 <- var(r1 - rank(x)) / n2^2; s2 <- var(r2 - rank(y)) / n1^2
  c(theta = theta, var = s1 / n1 + s2 / n2)
}
log_wo <- c(); var_log <- c()
for (s in sort(unique(m$site))) {
  part <- m[m$site == s, ]
  e <- bm(-part$mrs_90d[part$arm == "albumin"], -part$mrs_90d[part$arm == "control"])
  log_wo[s] <- log(e[["theta"]] / (1 - e[["theta"]]))
  var_log[s] <- e[["var"]] / (e[["theta"]] * (1 - e[["theta"]]))^2
  put(paste0("strat_log_wo_", s), log_wo[s])
}
w <- 1 / var_log
pooled <- sum(w * log_wo) / sum(w); se <- sqrt(1 / sum(w))
put("strat_wo", exp(pooled)); put("strat_se_log", se)
put("strat_low", exp(pooled - qnorm(0.975) * se)); put("strat_high", exp(pooled + qnorm(0.975) * se))
put("strat_p", 2 * pnorm(-abs(pooled) / se)); put("strat_q", sum(w * (log_wo - pooled)^2))
e <- bm(-m$mrs_90d[m$arm == "albumin"], -m$mrs_90d[m$arm == "control"])  # one stratum: the plain win odds
put("unstrat_wo", e[["theta"]] / (1 - e[["theta"]]))

write.csv(data.frame(name = names(out), value = unlist(out)), "tests/reference/ordinal_extras_reference.csv",
          row.names = FALSE)
cat("wrote tests/reference/ordinal_extras_reference.csv and ordinal_weighted_data.csv;", R.version.string,
    "; MASS", as.character(packageVersion("MASS")), "; ordinal", as.character(packageVersion("ordinal")), "\n")
