# Reference values for the analyses the protocol's analysis plan adds (issue 16): the exact single-arm
# proportion, Welch's difference in means, and the Poisson rate ratio with a robust (HC0 sandwich)
# interval. Base R only (stats); the sandwich is written out as (X'WX)^-1 X' diag(e^2) X (X'WX)^-1,
# which is sandwich::vcovHC(type = "HC0") for a Poisson GLM (sandwich is not installed here).
# Run from the repository root: Rscript tests/reference/make_plan_reference.R
out <- data.frame(name = character(), value = numeric())
add <- function(name, value) out[nrow(out) + 1, ] <<- list(name, value)

# ISIS-HERMES feasibility as the paper reports it: 12 of 15 MSC-allocated patients treated (80%)
ci <- binom.test(12, 15)$conf.int
add("clopper_pearson_12_15_low", ci[1]); add("clopper_pearson_12_15_high", ci[2])

a <- c(12.1, 15.3, 9.8, 20.4, 17.2, 11.9, 14.4)
b <- c(10.2, 8.7, 13.1, 9.9, 7.5, 11.0)
t <- t.test(a, b, var.equal = FALSE)
add("welch_difference", mean(a) - mean(b)); add("welch_low", t$conf.int[1]); add("welch_high", t$conf.int[2])
add("welch_p", t$p.value)

# adverse events per patient (ISIS-HERMES-like: 2:1, overdispersed)
treated <- c(rep(1, 16), rep(0, 8))
events <- c(0, 1, 0, 2, 1, 0, 0, 3, 1, 0, 0, 1, 4, 0, 1, 2, 1, 3, 0, 2, 5, 1, 2, 4)
fit <- glm(events ~ treated, family = poisson)
X <- model.matrix(fit); mu <- fitted(fit); e <- events - mu
bread <- solve(t(X) %*% (X * mu))
meat <- t(X) %*% (X * e^2)
V <- bread %*% meat %*% bread
se <- sqrt(V[2, 2]); b1 <- coef(fit)[2]
add("rate_ratio", exp(b1)); add("rate_ratio_low", exp(b1 - qnorm(0.975) * se))
add("rate_ratio_high", exp(b1 + qnorm(0.975) * se)); add("rate_ratio_p", 2 * pnorm(-abs(b1 / se)))

write.csv(out, "tests/reference/plan_reference.csv", row.names = FALSE)
cat(R.version.string, "\n")
