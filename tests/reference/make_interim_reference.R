# Reference values for tests/test_interim.py (issue 21): group-sequential boundaries recomputed at the information
# fractions actually observed, conditional power at a look, and the Wald z of the primary analysis at a look.
#   Rscript tests/reference/make_interim_reference.R   (from the repository root)
# Writes tests/reference/interim_reference.csv: name,value. make test never runs R.
suppressPackageStartupMessages({library(rpact); library(MASS)})
cat("R", R.version$major, R.version$minor, "; rpact", as.character(packageVersion("rpact")),
    "; MASS", as.character(packageVersion("MASS")), "\n")
out <- list()
put <- function(name, value) out[[name]] <<- signif(value, 12)
# Lan-DeMets spending at observed fractions: the interim looks fell at 48% (two looks) or at 30% and 62% (three).
d <- getDesignGroupSequential(kMax = 2, alpha = 0.025, sided = 1, typeOfDesign = "asOF", informationRates = c(0.48, 1))
for (k in 1:2) put(paste0("of2_048_z", k), d$criticalValues[k])
d <- getDesignGroupSequential(kMax = 3, alpha = 0.025, sided = 1, typeOfDesign = "asOF", informationRates = c(0.3, 0.62, 1))
for (k in 1:3) put(paste0("of3_030_062_z", k), d$criticalValues[k])
d3p <- getDesignGroupSequential(kMax = 3, alpha = 0.025, sided = 1, typeOfDesign = "asP", informationRates = c(0.3, 0.62, 1))
for (k in 1:3) put(paste0("p3_030_062_z", k), d3p$criticalValues[k])
d2s <- getDesignGroupSequential(kMax = 2, alpha = 0.05, sided = 2, typeOfDesign = "asOF", informationRates = c(0.52, 1))
for (k in 1:2) put(paste0("of2_two_052_z", k), d2s$criticalValues[k])
# Conditional power at the second of three looks (30%, 62%, 100% of 400 patients), 1:1, a mean difference with the
# normal approximation: under the planned effect (0.5, SD 2) and under the current trend (rpact's default thetaH1).
ds <- getDataset(n1 = c(60, 64), n2 = c(60, 64), means1 = c(1.2, 1.0), means2 = c(0.8, 0.9),
                 stDevs1 = c(2, 2), stDevs2 = c(2, 2))
planned <- getAnalysisResults(design = d, dataInput = ds, stage = 2, nPlanned = 152, normalApproximation = TRUE,
                              thetaH1 = 0.5, assumedStDev = 2)
put("cp_z2", planned$.stageResults$overallTestStatistics[2])
put("cp_planned", planned$conditionalPower[3])
early <- getAnalysisResults(design = d, dataInput = ds, stage = 1, nPlanned = c(128, 152),
                            normalApproximation = TRUE, thetaH1 = 0.5, assumedStDev = 2)
put("cp1_z1", early$.stageResults$overallTestStatistics[1])
put("cp1_planned_by2", early$conditionalPower[2]); put("cp1_planned_by3", early$conditionalPower[3])
trend <- getAnalysisResults(design = d, dataInput = ds, stage = 2, nPlanned = 152, normalApproximation = TRUE)
put("cp_trend", trend$conditionalPower[3])
put("cp_trend_theta", trend$thetaH1); put("cp_trend_sd", trend$assumedStDev)
# The primary analysis at a look: the first half of amass2_trial.csv (153 patients with their 90-day mRS), the
# proportional-odds model adjusted for age, NIHSS and ASPECTS; its Wald z for the treatment.
trial <- read.csv("tests/reference/amass2_trial.csv")
look <- trial[1:153, ]
look$mrs <- factor(look$mrs_90d, levels = 0:6, ordered = TRUE)
look$treated <- as.integer(look$arm == "albumin")
fit <- polr(mrs ~ treated + age + nihss + aspects, data = look, method = "logistic", Hess = TRUE)
put("look_polr_beta", coef(fit)[["treated"]])
put("look_polr_se", sqrt(vcov(fit)["treated", "treated"]))
put("look_polr_z", coef(fit)[["treated"]] / sqrt(vcov(fit)["treated", "treated"]))
write.csv(data.frame(name = names(out), value = unlist(out)), "tests/reference/interim_reference.csv", row.names = FALSE)
cat("wrote tests/reference/interim_reference.csv\n")
