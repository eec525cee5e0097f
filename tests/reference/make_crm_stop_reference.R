# Reference values for the CRM safety stop: Pr(p_1 > target | data), the posterior probability that
# the lowest dose's DLT rate exceeds the target, by R's integrate() (QUADPACK) on the posterior.
#
#   Rscript tests/reference/make_crm_stop_reference.R   # writes crm_stop_reference.csv beside this script
#
# Model (dfcrm's empiric model, as src/stroketrial/dosing/escalation/crm.py): p_j(b) = skeleton_j ^ exp(b),
# prior b ~ Normal(0, 1.34). Posterior density of b: likelihood(b) x dnorm(b, 0, sqrt(1.34)), normalised by its
# integral over the whole line. p_1(b) > target exactly when b < cut = log(log(target) / log(skeleton_1)), so
#   Pr(p_1 > target | data) = integral(-Inf, cut) / (integral(-Inf, cut) + integral(cut, Inf)).
# Also the posterior mean of b, integral(b x density) / integral(density), over the whole line.
# Base R only (stats::integrate): no package is needed.

here <- tryCatch(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))),
                 error = function(e) ".")
prior_var <- 1.34
sk4 <- c(0.05, 0.12, 0.25, 0.40)
# dfcrm::getprior(0.06, 0.20, 3, 5) and getprior(0.05, 0.25, 1, 4), rounded to 4 decimals as crm.py's
# calibrated_skeleton rounds them (the probability is computed for the rounded skeleton in both languages)
sk_t20 <- c(0.0324, 0.0955, 0.2, 0.332, 0.4698)
sk_t25_nu1 <- c(0.25, 0.3545, 0.4603, 0.5597)
sk5 <- c(0.05, 0.12, 0.30, 0.45, 0.60)
cases <- list(
  list(id = "one_of_three", target = 0.25, sk = sk4, n = c(3, 0, 0, 0), y = c(1, 0, 0, 0)),
  list(id = "two_of_three", target = 0.25, sk = sk4, n = c(3, 0, 0, 0), y = c(2, 0, 0, 0)),
  list(id = "three_of_three", target = 0.25, sk = sk4, n = c(3, 0, 0, 0), y = c(3, 0, 0, 0)),
  list(id = "two_of_six", target = 0.25, sk = sk4, n = c(6, 0, 0, 0), y = c(2, 0, 0, 0)),
  list(id = "three_of_six", target = 0.25, sk = sk4, n = c(6, 0, 0, 0), y = c(3, 0, 0, 0)),
  list(id = "escalated_then_toxic", target = 0.25, sk = sk4, n = c(3, 3, 6, 0), y = c(0, 0, 2, 0)),
  list(id = "level_two_toxic", target = 0.25, sk = sk4, n = c(3, 3, 0, 0), y = c(1, 2, 0, 0)),
  list(id = "none_in_thirty", target = 0.25, sk = sk4, n = c(3, 6, 12, 9), y = c(0, 0, 0, 0)),
  list(id = "thirty_patients", target = 0.25, sk = sk4, n = c(3, 6, 12, 9), y = c(0, 1, 3, 4)),
  list(id = "target_037", target = 0.37, sk = sk4, n = c(6, 0, 0, 0), y = c(3, 0, 0, 0)),
  list(id = "target_030_five_levels", target = 0.30, sk = sk5, n = c(3, 3, 6, 3, 0), y = c(0, 1, 2, 2, 0)),
  # grid sum 0.896 (continue), the integral above 0.90 (stop): the decision the correction changes
  list(id = "t20_two_of_three", target = 0.20, sk = sk_t20, n = c(3, 0, 0, 0, 0), y = c(2, 0, 0, 0, 0)),
  list(id = "t25_nu1_three_of_six", target = 0.25, sk = sk_t25_nu1, n = c(6, 0, 0, 0), y = c(3, 0, 0, 0))
)

log_post <- function(b, sk, n, y) {
  # log likelihood + log prior at one b; terms with no patients (or no DLTs) are left out, so 0 x log(0) never
  # makes a NaN far out in the tails
  lp <- exp(b) * log(sk)              # log p_j(b)
  lq <- log(-expm1(lp))               # log (1 - p_j(b))
  ll <- sum(ifelse(y > 0, y * lp, 0)) + sum(ifelse(n - y > 0, (n - y) * lq, 0))
  ll + dnorm(b, 0, sqrt(prior_var), log = TRUE)
}

rows <- list()
for (s in cases) {
  shift <- max(sapply(seq(-10, 10, by = 0.01), log_post, sk = s$sk, n = s$n, y = s$y))
  dens <- function(b) sapply(b, function(v) exp(log_post(v, s$sk, s$n, s$y) - shift))
  cut <- log(log(s$target) / log(s$sk[1]))
  q <- function(f, lo, hi) integrate(f, lo, hi, rel.tol = 1e-12, abs.tol = 0, subdivisions = 2000L)$value
  below <- q(dens, -Inf, cut)
  above <- q(dens, cut, Inf)
  z <- below + above
  mean_b <- q(function(b) b * dens(b), -Inf, Inf) / z
  rows[[length(rows) + 1]] <- data.frame(
    id = s$id, target = s$target, prior_variance = prior_var, skeleton = paste(s$sk, collapse = ";"),
    n = paste(s$n, collapse = ";"), y = paste(s$y, collapse = ";"), cut = sprintf("%.15g", cut),
    p_first_too_toxic = sprintf("%.15g", below / z), posterior_mean = sprintf("%.15g", mean_b))
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "crm_stop_reference.csv"), row.names = FALSE, quote = FALSE)
print(out[, c("id", "p_first_too_toxic", "posterior_mean")])
cat(sprintf("%s\n", R.version.string))
