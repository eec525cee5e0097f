# Reference values for tests/test_design.py from R packages in Debian's repositories:
#   apt-get install r-base-core r-cran-hmisc r-cran-rpact
#   Rscript tests/reference/make_design_reference.R   (run from the repository root)
# Writes tests/reference/design_reference.csv (name,value with 10 significant digits) and
# tests/reference/rpact_rates_grid.csv. make test never runs R.
#
# Whitehead's formula for an ordinal shift (Stat Med 1993;12:2257-71) as Hmisc implements it:
# pomodm() shifts a distribution by an odds ratio on P(Y >= j), so OR 1/x there is x on P(Y <= j), the
# "OR > 1 favours a lower mRS" convention of stroketrial; posamsize() and popower() take the average of
# the two arms' distributions. The two-proportion figures are rpact's getSampleSizeRates.
suppressPackageStartupMessages({library(Hmisc); library(rpact)})
out <- list()
put <- function(name, value) out[[name]] <<- signif(value, 10)
whitehead_n <- function(control, or, power = 0.8) {
  treated <- pomodm(p = control, odds.ratio = 1 / or)
  posamsize(p = (control + treated) / 2, odds.ratio = or, fraction = 0.5, alpha = 0.05, power = power)$n
}

# the control mRS distribution of stroketrial's CLI example, common OR 1.5, 80% power, two-sided 0.05
example <- c(0.05, 0.10, 0.15, 0.20, 0.20, 0.10, 0.20)
treated <- pomodm(p = example, odds.ratio = 1 / 1.5)
for (k in 1:7) put(paste0("whitehead_example_treated_", k - 1), treated[k])
put("whitehead_example_n", whitehead_n(example, 1.5))
put("whitehead_example_n_power90", whitehead_n(example, 1.5, power = 0.9))
put("whitehead_example_power_at_590", popower(p = (example + treated) / 2, odds.ratio = 1.5, n = 590)$power)

# IMPACT-LVO: 1010 evaluable patients (registry NCT07141303, seed 002); the common OR they detect for a
# HERMES-like control distribution (stroketrial.design.power.CONTROL_MRS, a labelled assumption)
hermes <- c(0.10, 0.14, 0.16, 0.17, 0.15, 0.08, 0.20)
for (pw in c(0.8, 0.9)) {
  root <- uniroot(function(or) whitehead_n(hermes, or, pw) - 1010, c(1.01, 5), tol = 1e-12)$root
  put(paste0("impact_lvo_or_power_", pw * 100), root)
}

# AMASS-2 (306, seed 001) and ANGEL-RESCUE (312, seed 004): the treatment-arm mRS 0-2 detectable with
# 10% dropout for the labelled control rates 0.40 and 0.25, two-sided 0.05 (rpact, normal approximation)
for (trial in list(list("amass_2", 306, 0.40), list("angel_rescue", 312, 0.25))) {
  for (pw in c(0.8, 0.9)) {
    f <- function(p1) getSampleSizeRates(pi1 = p1, pi2 = trial[[3]], alpha = 0.05, beta = 1 - pw,
                                         sided = 2)$nFixed - trial[[2]] * 0.9
    put(paste0(trial[[1]], "_p_treatment_power_", pw * 100),
        uniroot(f, c(trial[[3]] + 0.01, 0.99), tol = 1e-12)$root)
  }
}
write.csv(data.frame(name = names(out), value = unlist(out)), "tests/reference/design_reference.csv",
          row.names = FALSE)

# two proportions over a grid of designs (pi1 the treatment arm, allocation ratio n1 / n2): rpact's unrounded
# sample sizes per arm, written to tests/reference/rpact_rates_grid.csv
grid <- data.frame(pi1 = c(0.45, 0.568, 0.20, 0.60, 0.35, 0.15, 0.30),
                   pi2 = c(0.30, 0.40, 0.10, 0.45, 0.25, 0.05, 0.45),
                   alpha = c(0.05, 0.05, 0.05, 0.025, 0.05, 0.01, 0.05),
                   power = c(0.8, 0.8, 0.9, 0.8, 0.8, 0.9, 0.85),
                   sided = c(2, 2, 2, 1, 2, 2, 2),
                   ratio = c(1, 1, 1, 1, 0.5, 3, 2))
grid$n1 <- grid$n2 <- NA
for (i in seq_len(nrow(grid))) {
  s <- getSampleSizeRates(pi1 = grid$pi1[i], pi2 = grid$pi2[i], alpha = grid$alpha[i], beta = 1 - grid$power[i],
                          sided = grid$sided[i], allocationRatioPlanned = grid$ratio[i])
  grid$n1[i] <- signif(s$nFixed1, 10); grid$n2[i] <- signif(s$nFixed2, 10)
}
write.csv(grid, "tests/reference/rpact_rates_grid.csv", row.names = FALSE)
cat("wrote tests/reference/design_reference.csv and rpact_rates_grid.csv\n")
