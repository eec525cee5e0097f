# Reference values for stroketrial.analysis.matching (tests/test_matching.py): MatchIt's nearest-neighbour
# propensity-score matching on matchit_data.csv in twelve configurations.
#
#   MATCHIT_LIB=/path/to/library Rscript tests/reference/make_matchit_reference.R   (from the repository root)
#
# MATCHIT_LIB must hold a MatchIt whose nearest-neighbour C++ code has two upstream fixes that Debian's
# r-cran-matchit 4.5.1-1 lacks:
#   #163 (fixed in 4.5.4): nn_matchC_vec.cpp compared distances with C's integer abs(), which truncates: a
#        distance difference below 1 counts as 0, so a 0.2-SD caliper on the logit only refuses pairs 1 or
#        more apart, and of the two neighbours below and above a treated patient the one below always wins.
#   #159 (fixed in 4.5.3): with replace = TRUE and ratio > 1, a treated patient could get the same control twice.
# The file was made with MatchIt 4.5.1's source (github.com/kosukeimai/MatchIt commit 9762dc6) with
# src/nn_matchC.cpp and src/nn_matchC_vec.cpp taken from upstream commit 4b5b2f8 (2023-05-01; the only changes
# to src/ between the two are the fixes of #159 and #163), installed with R CMD INSTALL into its own library:
#   git -C MatchIt archive 9762dc6 | tar -x -C src_dir
#   git -C MatchIt show 4b5b2f8:src/nn_matchC_vec.cpp > src_dir/src/nn_matchC_vec.cpp   (and nn_matchC.cpp)
#   R CMD INSTALL -l /tmp/Rlib_fixed src_dir     (needs liblapack-dev libblas-dev gfortran)
# check_matching_fixes() below refuses a MatchIt with either bug.
#
# For each configuration it writes the propensity scores (MatchIt's, and the same glm run to convergence),
# the distance (linear logit), MatchIt's weights,
# the matched sets (treated id -> control ids, from match.matrix), the caliper in distance units, the
# sample sizes and summary()'s balance for all and for matched data (means, Std. Mean Diff., Var. Ratio).

suppressPackageStartupMessages({
  lib <- Sys.getenv("MATCHIT_LIB", unset = "")
  if (nzchar(lib)) library(MatchIt, lib.loc = lib) else library(MatchIt)
  library(jsonlite)
})

check_matching_fixes <- function() {
  toy <- data.frame(t = c(1, 0, 0), x = c(0.5, 0.1, 0.8))
  # with integer abs() both differences (0.4, 0.3) truncate to 0 and the control below, 0.1, wins
  m <- matchit(t ~ x, data = toy, distance = toy$x, method = "nearest")
  if (m$match.matrix[1, 1] != "3") stop("this MatchIt compares distances with integer abs() (MatchIt issue #163)")
  m <- matchit(t ~ x, data = toy, distance = toy$x, method = "nearest", replace = TRUE, ratio = 2)
  if (anyDuplicated(m$match.matrix[1, ])) stop("this MatchIt reuses a control within a matched set (MatchIt issue #159)")
}
check_matching_fixes()

data_path <- "tests/reference/matchit_data.csv"
d <- read.csv(data_path)
rownames(d) <- d$id

all_covariates <- c("age", "sex", "nihss", "aspects", "occlusion_site", "lkw_to_recanalization_h", "etici")
configs <- list(
  list(name = "a_1to1_caliper", ratio = 1, caliper = 0.2, exact = character(0), replace = FALSE, order = "largest"),
  list(name = "b_1to2_caliper", ratio = 2, caliper = 0.2, exact = character(0), replace = FALSE, order = "largest"),
  list(name = "c_1to1_caliper_exact_sex", ratio = 1, caliper = 0.2, exact = "sex", replace = FALSE, order = "largest"),
  list(name = "d_1to1_no_caliper", ratio = 1, caliper = NULL, exact = character(0), replace = FALSE, order = "largest"),
  list(name = "e_1to2_caliper_replace", ratio = 2, caliper = 0.2, exact = character(0), replace = TRUE, order = "largest"),
  list(name = "f_1to1_caliper_smallest", ratio = 1, caliper = 0.2, exact = character(0), replace = FALSE, order = "smallest"),
  list(name = "g_1to1_caliper_data", ratio = 1, caliper = 0.2, exact = character(0), replace = FALSE, order = "data"),
  list(name = "h_1to2_caliper_exact_site", ratio = 2, caliper = 0.2, exact = "occlusion_site", replace = FALSE, order = "largest"),
  # sex only in `exact`, not in the propensity model: summary() adds it to the balance table
  list(name = "i_1to1_caliper_exact_sex_not_in_model", ratio = 1, caliper = 0.2, exact = "sex", replace = FALSE,
       order = "largest", covariates = setdiff(all_covariates, "sex")),
  # ASPECTS and occlusion site alone: 20 covariate patterns, so patients share distances exactly and MatchIt's
  # rules for ties decide (the sort by distance keeps row order; of equally near controls the one below wins)
  list(name = "j_ties_1to1_caliper", ratio = 1, caliper = 0.2, exact = character(0), replace = FALSE,
       order = "largest", covariates = c("aspects", "occlusion_site")),
  list(name = "k_ties_1to2_smallest", ratio = 2, caliper = NULL, exact = character(0), replace = FALSE,
       order = "smallest", covariates = c("aspects", "occlusion_site")),
  list(name = "l_ties_1to3_replace", ratio = 3, caliper = 0.2, exact = character(0), replace = TRUE,
       order = "largest", covariates = c("aspects", "occlusion_site"))
)

balance_rows <- function(tab) {
  rows <- lapply(rownames(tab), function(term) {
    vr <- tab[term, "Var. Ratio"]
    list(mean_treated = tab[term, "Means Treated"], mean_control = tab[term, "Means Control"],
         smd = tab[term, "Std. Mean Diff."], variance_ratio = if (is.na(vr)) NULL else vr)
  })
  setNames(rows, rownames(tab))
}

matched_sets <- function(mm) {
  sets <- lapply(seq_len(nrow(mm)), function(i) I(as.integer(na.omit(mm[i, ]))))  # I(): a list even of one
  names(sets) <- rownames(mm)
  sets[lengths(sets) > 0]
}

run_config <- function(cfg) {
  covariates <- if (is.null(cfg$covariates)) all_covariates else cfg$covariates
  f <- reformulate(covariates, response = "treated")
  args <- list(formula = f, data = d, method = "nearest", distance = "glm", link = "linear.logit",
               ratio = cfg$ratio, replace = cfg$replace, m.order = cfg$order, caliper = cfg$caliper,
               std.caliper = TRUE)
  if (length(cfg$exact) > 0) args$exact <- reformulate(cfg$exact)
  m <- do.call(matchit, args)
  s <- summary(m)
  nn <- s$nn
  list(
    name = cfg$name, covariates = I(covariates), ratio = cfg$ratio, caliper = cfg$caliper, exact = I(cfg$exact),
    replace = cfg$replace, order = cfg$order,
    caliper_distance_units = if (is.null(m$caliper)) NULL else unname(m$caliper),
    id = d$id,
    propensity = unname(fitted(m$model)),
    # glm's default stop (relative deviance change < 1e-8) leaves the scores ~1e-9 from the maximum-likelihood
    # estimate; the same model fitted to convergence
    propensity_converged = unname(fitted(glm(f, data = d, family = binomial,
                                             control = glm.control(epsilon = 1e-14, maxit = 100)))),
    distance = unname(m$distance),
    weights = unname(m$weights),
    matched_sets = matched_sets(m$match.matrix),
    sample_sizes = list(matched_treated = nn["Matched", "Treated"], matched_control = nn["Matched", "Control"],
                        unmatched_treated = nn["Unmatched", "Treated"], unmatched_control = nn["Unmatched", "Control"]),
    balance_all = balance_rows(s$sum.all),
    balance_matched = balance_rows(s$sum.matched)
  )
}

out <- list(
  software = list(R = R.version.string, MatchIt = as.character(packageVersion("MatchIt")),
                  matchit_library = if (nzchar(lib)) lib else "default",
                  matchit_fixes = "nearest-neighbour fixes of MatchIt issues #159 and #163 present (checked)",
                  data_md5 = unname(tools::md5sum(data_path))),
  configs = lapply(configs, run_config)
)
write_json(out, "tests/reference/matchit_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE,
           null = "null", na = "null")
cat(R.version.string, "; MatchIt", as.character(packageVersion("MatchIt")), "from", out$software$matchit_library, "\n")
