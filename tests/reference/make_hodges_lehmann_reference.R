# Reference values for the Hodges-Lehmann shift and its Moses interval (tests/test_analysis.py), from base R:
#   Rscript tests/reference/make_hodges_lehmann_reference.R   (run from the repository root)
# It makes small fixed datasets (lognormal "infarct volumes", some rounded to whole mL so that they tie) and
# writes them to hodges_lehmann_data.csv (dataset, arm, value), then runs
#   wilcox.test(treatment, control, conf.int = TRUE, tol.root = 1e-12)
# with R's defaults otherwise (exact = NULL: the exact distribution when both arms have fewer than 50 values
# and no ties, else the normal approximation with continuity correction, correct = TRUE) and writes
# hodges_lehmann_reference.csv: dataset, n_treatment, n_control, exact (1 if R used the exact distribution),
# estimate, ci_low, ci_high, p_value, median_difference (median of the pairwise differences), with 15
# significant digits. tol.root = 1e-12 (default 1e-4) puts the normal-approximation limits, which uniroot finds
# on a step function, on the pairwise difference itself. make test never runs R.
set.seed(20261201)
volumes <- function(n, meanlog) signif(rlnorm(n, meanlog, 1.1), 6)
sets <- list(
  twelve_vs_ten = list(treatment = volumes(12, 3.0), control = volumes(10, 3.4)),
  five_vs_five = list(treatment = volumes(5, 3.0), control = volumes(5, 3.2)),
  seven_vs_thirty = list(treatment = volumes(7, 3.0), control = volumes(30, 3.3)),
  thirty_vs_twentyfive = list(treatment = volumes(30, 3.1), control = volumes(25, 3.3)),
  fortynine_vs_fortynine = list(treatment = volumes(49, 3.1), control = volumes(49, 3.2)),
  fifty_vs_fortyfive = list(treatment = volumes(50, 3.1), control = volumes(45, 3.3)),
  ties_twenty_vs_eighteen = list(treatment = round(volumes(20, 2.0)), control = round(volumes(18, 2.4))),
  ties_sixty_vs_seventy = list(treatment = round(volumes(60, 1.5)), control = round(volumes(70, 1.8))),
  # small whole numbers with many ties, where the tie correction of the variance moves the lower limit (-2, not -3)
  ties_sixteen_vs_fourteen = list(treatment = c(1, 4, 1, 1, 8, 1, 3, 3, 1, 1, 0, 1, 3, 1, 5, 1),
                                  control = c(43, 2, 7, 4, 3, 2, 1, 1, 2, 0, 7, 1, 4, 2))
)
data <- do.call(rbind, lapply(names(sets), function(name) {
  s <- sets[[name]]
  data.frame(dataset = name, arm = rep(c("treatment", "control"), c(length(s$treatment), length(s$control))),
             value = c(s$treatment, s$control))
}))
write.csv(data, "tests/reference/hodges_lehmann_data.csv", row.names = FALSE)
rows <- lapply(names(sets), function(name) {
  x <- data$value[data$dataset == name & data$arm == "treatment"]
  y <- data$value[data$dataset == name & data$arm == "control"]
  w <- suppressWarnings(wilcox.test(x, y, conf.int = TRUE, tol.root = 1e-12))
  data.frame(dataset = name, n_treatment = length(x), n_control = length(y),
             exact = as.integer(grepl("exact", w$method)), estimate = signif(w$estimate[[1]], 15),
             ci_low = signif(w$conf.int[1], 15), ci_high = signif(w$conf.int[2], 15),
             p_value = signif(w$p.value, 15), median_difference = signif(median(outer(x, y, "-")), 15))
})
write.csv(do.call(rbind, rows), "tests/reference/hodges_lehmann_reference.csv", row.names = FALSE)
cat("wrote tests/reference/hodges_lehmann_data.csv and hodges_lehmann_reference.csv;", R.version.string, "\n")
