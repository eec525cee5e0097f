# Reference sample sizes from rpact for tests/test_design.py (src/stroketrial/design/samplesize.py):
#   - a difference in means, fixed design, by the t-test (rpact's default, normalApproximation = FALSE) and by
#     the normal approximation;
#   - the maximum sample size of group-sequential designs (Lan-DeMets O'Brien-Fleming or Pocock type alpha
#     spending, equally spaced looks) for means (t-test and normal approximation) and for two rates.
# rpact's maxNumberOfSubjects is nFixed x inflationFactor, split r / (1 + r) and 1 / (1 + r) between the arms
# (maxNumberOfSubjects1, maxNumberOfSubjects2); the test rounds each arm up and adds them.
#
#   Rscript tests/reference/make_samplesize_reference.R   # writes samplesize_reference.csv beside this script
#
# Debian: apt-get install r-cran-rpact. rpact solves the t-test's n to a tolerance of 1e-4.
suppressPackageStartupMessages(library(rpact))
here <- tryCatch(dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))),
                 error = function(e) ".")

spending <- c(obf = "asOF", pocock = "asP")
cases <- list(
  # id, endpoint, looks (1: fixed), spending, alpha, power, sided, ratio, normal (means only), effect
  list(id = "M1", endpoint = "means", looks = 1, alpha = 0.05, power = 0.8, sided = 2, ratio = 1, delta = 0.5, sd = 1.2),
  list(id = "M2", endpoint = "means", looks = 1, alpha = 0.05, power = 0.9, sided = 2, ratio = 2, delta = 10, sd = 30),
  list(id = "M3", endpoint = "means", looks = 1, alpha = 0.025, power = 0.8, sided = 1, ratio = 0.5, delta = 3, sd = 8),
  list(id = "M4", endpoint = "means", looks = 1, alpha = 0.05, power = 0.8, sided = 2, ratio = 1, delta = 1, sd = 1),
  list(id = "M5", endpoint = "means", looks = 1, alpha = 0.01, power = 0.9, sided = 2, ratio = 3, delta = 0.3, sd = 1),
  list(id = "G1", endpoint = "means", looks = 3, kind = "obf", alpha = 0.05, power = 0.8, sided = 2, ratio = 1,
       delta = 0.5, sd = 1.2),
  list(id = "G2", endpoint = "means", looks = 4, kind = "pocock", alpha = 0.05, power = 0.9, sided = 2, ratio = 2,
       delta = 10, sd = 30),
  list(id = "G3", endpoint = "means", looks = 2, kind = "obf", alpha = 0.025, power = 0.8, sided = 1, ratio = 0.5,
       delta = 3, sd = 8),
  list(id = "G4", endpoint = "means", looks = 5, kind = "obf", alpha = 0.05, power = 0.9, sided = 2, ratio = 3,
       delta = 0.3, sd = 1),
  list(id = "R1", endpoint = "rates", looks = 3, kind = "obf", alpha = 0.05, power = 0.8, sided = 2, ratio = 1,
       pi1 = 0.45, pi2 = 0.30),
  list(id = "R2", endpoint = "rates", looks = 4, kind = "pocock", alpha = 0.05, power = 0.9, sided = 2, ratio = 2,
       pi1 = 0.45, pi2 = 0.30),
  list(id = "R3", endpoint = "rates", looks = 2, kind = "obf", alpha = 0.025, power = 0.8, sided = 1, ratio = 1,
       pi1 = 0.20, pi2 = 0.12),
  list(id = "R4", endpoint = "rates", looks = 3, kind = "pocock", alpha = 0.05, power = 0.8, sided = 2, ratio = 0.5,
       pi1 = 0.60, pi2 = 0.45)
)

num <- function(x) sprintf("%.12g", x)
rows <- list()
for (s in cases) {
  normals <- if (s$endpoint == "means") c(FALSE, TRUE) else TRUE
  for (normal in normals) {
    beta <- 1 - s$power
    if (s$looks == 1) {
      r <- getSampleSizeMeans(alternative = s$delta, stDev = s$sd, alpha = s$alpha, beta = beta, sided = s$sided,
                              allocationRatioPlanned = s$ratio, normalApproximation = normal)
      inflation <- 1; m <- r$nFixed; m1 <- r$nFixed1; m2 <- r$nFixed2
    } else {
      d <- getDesignGroupSequential(kMax = s$looks, alpha = s$alpha, beta = beta, sided = s$sided,
                                    typeOfDesign = spending[[s$kind]])
      inflation <- getDesignCharacteristics(d)$inflationFactor
      r <- if (s$endpoint == "means") {
        getSampleSizeMeans(d, alternative = s$delta, stDev = s$sd, allocationRatioPlanned = s$ratio,
                           normalApproximation = normal)
      } else {
        getSampleSizeRates(d, pi1 = s$pi1, pi2 = s$pi2, allocationRatioPlanned = s$ratio)
      }
      m <- r$maxNumberOfSubjects; m1 <- r$maxNumberOfSubjects1; m2 <- r$maxNumberOfSubjects2
    }
    rows[[length(rows) + 1]] <- data.frame(
      id = s$id, endpoint = s$endpoint, looks = s$looks, spending = if (s$looks == 1) "" else s$kind,
      alpha = s$alpha, power = s$power, sided = s$sided, ratio = s$ratio,
      normal = if (s$endpoint == "means") normal else NA,
      delta = if (is.null(s$delta)) NA else s$delta, sd = if (is.null(s$sd)) NA else s$sd,
      pi1 = if (is.null(s$pi1)) NA else s$pi1, pi2 = if (is.null(s$pi2)) NA else s$pi2,
      inflation = num(inflation), n_fixed = num(r$nFixed), n_max = num(m), n_max_treatment = num(m1),
      n_max_control = num(m2), n_max_rounded = ceiling(m1) + ceiling(m2))
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "samplesize_reference.csv"), row.names = FALSE, quote = FALSE, na = "")
print(out[, c("id", "normal", "inflation", "n_fixed", "n_max", "n_max_treatment", "n_max_control", "n_max_rounded")])
cat(sprintf("rpact %s, %s\n", as.character(packageVersion("rpact")), R.version.string))
