# Reference values for tests/test_longitudinal.py (longitudinal.mixed_model), from R packages in Debian's
# repositories:
#   apt-get install r-base-core r-cran-lme4 r-cran-lmertest r-cran-nlme   (numDeriv comes with lmerTest)
#   Rscript tests/reference/make_longitudinal_reference.R   (run from the repository root)
# It reads the committed long datasets amass2_nihss_long.csv (3 visits, complete, 306 patients) and
# repeated_scores_long.csv (6 visits, incomplete, 60 patients), and, for a singular random-slope fit,
# isis_hermes_sim_long.csv (8 visits, 31 patients), both written by make_repeated_scores.py; it writes
# tests/reference/longitudinal_reference.csv: name,value with 12 significant digits. make test never runs R.
#
# For each dataset and each model, the arm effect at each visit (treated + visit:treated), its standard error
# and Satterthwaite degrees of freedom, and the variance components:
#   ri      lmer(y ~ visit * treated + (1 | patient), REML); df from lmerTest::contest1D (Satterthwaite)
#   rs_year lmer(y ~ visit * treated + (1 + year | patient), REML), year = the visit's study day / 365.25 (the
#           second dataset only; on days lme4 stops, nearly unidentifiable, so the test converts); lmerTest as above
#   rs_ord  lmer(y ~ visit * treated + (1 + vorder | patient), REML), vorder = the visit's position 0, 1, 2, ...
#           (singular_<score>_rs_ord: on isis_hermes_sim_long.csv, a singular fit; the script checks isSingular)
#   un_nlme nlme::gls(y ~ visit * treated, correlation = corSymm(~ vindex | patient), weights = varIdent(~ 1 | visit),
#           REML): the unstructured covariance (MMRM) as nlme estimates it, with optim (nlminb stopped 2e-4 from
#           the optimum on amass2; optim stops 1.3e-3 from it on the second dataset, on covariances of 100-280).
#   un      the same model at the REML optimum, and its Satterthwaite df, which nlme does not give: this script
#           writes out the REML function of the covariance matrix's elements and its gradient, checks them against
#           nlme's log-likelihood, estimates and numDeriv at nlme's optimum, takes Newton steps to the optimum
#           (Hessian: numDeriv's Jacobian of that gradient) and there computes df = 2 v^2 / (g' A g), as lmerTest
#           and the mmrm package define it: v the contrast's variance, g its gradient in the covariance
#           parameters (numDeriv), A = 2 H^-1 with H the Hessian of -2 REML log-likelihood.
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(nlme); library(numDeriv)})
out <- list()
put <- function(name, value) out[[name]] <<- signif(value, 12)

contrast <- function(b, levels, v) {  # the arm effect at visit v: treated + visit v:treated
  w <- setNames(rep(0, length(b)), names(b)); w["treated"] <- 1
  if (v != levels[1]) w[paste0("visit", v, ":treated")] <- 1
  w
}
key <- function(v) gsub("[^A-Za-z0-9]+", "_", v)

lmer_reference <- function(prefix, d, random, singular = FALSE) {
  f <- as.formula(paste("y ~ visit * treated +", random))
  m <- suppressMessages(lmerTest::lmer(f, data = d, REML = TRUE,
                                       control = lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))))
  messages <- setdiff(m@optinfo$conv$lme4$messages, "boundary (singular) fit: see help('isSingular')")
  if (length(messages)) stop(prefix, ": ", paste(messages, collapse = "; "))
  stopifnot(isSingular(m) == singular)
  b <- fixef(m); V <- as.matrix(vcov(m))
  for (v in levels(d$visit)) {
    w <- contrast(b, levels(d$visit), v)
    ct <- contest1D(m, w, ddf = "Satterthwaite")
    put(paste0(prefix, "_effect_", key(v)), ct$Estimate)
    put(paste0(prefix, "_se_", key(v)), ct[["Std. Error"]])
    put(paste0(prefix, "_df_", key(v)), ct$df)
    put(paste0(prefix, "_p_", key(v)), ct[["Pr(>|t|)"]])
    stopifnot(abs(sqrt(sum(w * (V %*% w))) - ct[["Std. Error"]]) < 1e-10)
  }
  vc <- as.data.frame(VarCorr(m))
  one <- function(x) { stopifnot(length(x) == 1); x }
  put(paste0(prefix, "_var_intercept"), one(vc$vcov[which(vc$grp == "patient_id" & vc$var1 == "(Intercept)" &
                                                          is.na(vc$var2))]))
  if (nrow(vc) > 2) {
    slope <- setdiff(vc$var1, c("(Intercept)", NA))
    put(paste0(prefix, "_var_slope"), one(vc$vcov[which(vc$var1 == one(slope) & is.na(vc$var2))]))
    put(paste0(prefix, "_cov_intercept_slope"), one(vc$vcov[which(!is.na(vc$var2))]))
  }
  put(paste0(prefix, "_var_residual"), one(vc$vcov[which(vc$grp == "Residual")]))
  stopifnot(abs(sigma(m)^2 - vc$vcov[which(vc$grp == "Residual")]) < 1e-12)
  put(paste0(prefix, "_reml_loglik"), as.numeric(logLik(m)))
  m
}

# -2 REML log-likelihood of the unstructured model as a function of the covariance matrix's lower triangle
# (column by column: s11, s21, ..., sT1, s22, ...): log|V| + log|X'V^-1 X| + r'V^-1 r + (N - p) log(2 pi)
un_parts <- function(d, X) {
  groups <- split(seq_len(nrow(d)), d$patient_id)
  list(groups = groups, X = X, y = d$y, idx = lapply(groups, function(rows) d$vindex[rows]))
}
un_matrix <- function(theta, T) {
  S <- matrix(0, T, T); S[lower.tri(S, diag = TRUE)] <- theta; S[upper.tri(S)] <- t(S)[upper.tri(S)]; S
}
un_fit_at <- function(theta, parts, T) {
  S <- un_matrix(theta, T)
  p <- ncol(parts$X); XtViX <- matrix(0, p, p); XtViy <- rep(0, p); logdetV <- 0
  for (g in seq_along(parts$groups)) {
    rows <- parts$groups[[g]]; Vi <- S[parts$idx[[g]], parts$idx[[g]], drop = FALSE]
    R <- chol(Vi); logdetV <- logdetV + 2 * sum(log(diag(R)))
    Xi <- backsolve(R, parts$X[rows, , drop = FALSE], transpose = TRUE)
    yi <- backsolve(R, parts$y[rows], transpose = TRUE)
    XtViX <- XtViX + crossprod(Xi); XtViy <- XtViy + crossprod(Xi, yi)
  }
  C <- solve(XtViX); beta <- drop(C %*% XtViy)
  quad <- 0
  for (g in seq_along(parts$groups)) {
    rows <- parts$groups[[g]]; Vi <- S[parts$idx[[g]], parts$idx[[g]], drop = FALSE]
    r <- parts$y[rows] - drop(parts$X[rows, , drop = FALSE] %*% beta)
    quad <- quad + sum(r * solve(Vi, r))
  }
  n <- length(parts$y)
  list(deviance = logdetV + as.numeric(determinant(XtViX)$modulus) + quad + (n - p) * log(2 * pi), C = C, beta = beta)
}

# its gradient, written out (dense, n x n): d/d theta_k = tr(P D_k) - y'P D_k P y with P = V^-1 - V^-1 X C X'V^-1
# and D_k = d V / d theta_k (1 where a patient's pair of visits is (a, b) or (b, a))
un_gradient <- function(theta, parts, T) {
  S <- un_matrix(theta, T)
  n <- length(parts$y); Vinv <- matrix(0, n, n)
  for (g in seq_along(parts$groups)) {
    rows <- parts$groups[[g]]
    Vinv[rows, rows] <- solve(S[parts$idx[[g]], parts$idx[[g]], drop = FALSE])
  }
  VX <- Vinv %*% parts$X
  P <- Vinv - VX %*% solve(crossprod(parts$X, VX), t(VX))
  e <- drop(P %*% parts$y)
  pairs <- which(lower.tri(S, diag = TRUE), arr.ind = TRUE)  # the order of theta
  sapply(seq_len(nrow(pairs)), function(k) {
    a <- pairs[k, 1]; b <- pairs[k, 2]
    D <- parts$same & (outer(parts$vi == a, parts$vi == b) | outer(parts$vi == b, parts$vi == a))
    sum(P[D]) - sum((e %o% e)[D])
  })
}

gls_reference <- function(prefix, d) {
  T <- nlevels(d$visit)
  g <- gls(y ~ visit * treated, data = d, correlation = corSymm(form = ~ vindex | patient_id),
           weights = varIdent(form = ~ 1 | visit), method = "REML",
           control = glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-10, opt = "optim"))
  b <- coef(g); V <- as.matrix(vcov(g))
  # the estimated covariance matrix: sigma^2 * diag(delta) R diag(delta), delta the varIdent ratios by visit
  delta <- coef(g$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)[levels(d$visit)]
  complete <- names(which(table(d$patient_id) == T))[1]  # a patient seen at every visit: the whole matrix
  R <- corMatrix(g$modelStruct$corStruct)[[complete]]
  stopifnot(nrow(R) == T, !anyNA(delta))
  S <- g$sigma^2 * diag(delta) %*% R %*% diag(delta)
  theta <- S[lower.tri(S, diag = TRUE)]
  parts <- un_parts(d, model.matrix(y ~ visit * treated, data = d))
  parts$same <- outer(d$patient_id, d$patient_id, "=="); parts$vi <- d$vindex
  at <- un_fit_at(theta, parts, T)
  # this script's REML function against nlme's: the same fixed effects, covariance and log-likelihood; its
  # gradient against numDeriv's
  stopifnot(max(abs(at$beta - b)) < 1e-6, max(abs(at$C - V)) < 1e-6)
  ll_nlme <- as.numeric(logLik(g))
  stopifnot(abs(ll_nlme + at$deviance / 2) < 1e-6)
  dev <- function(th) un_fit_at(th, parts, T)$deviance
  gradient <- function(th) un_gradient(th, parts, T)
  stopifnot(max(abs(gradient(theta) - numDeriv::grad(dev, theta))) < 1e-5)
  for (v in levels(d$visit)) {  # nlme's own estimates
    w <- contrast(b, levels(d$visit), v)
    put(paste0(prefix, "_nlme_effect_", key(v)), sum(w * b))
    put(paste0(prefix, "_nlme_se_", key(v)), sqrt(sum(w * (V %*% w))))
  }
  for (i in seq_len(T)) for (j in seq_len(i)) put(paste0(prefix, "_nlme_cov_", i, "_", j), S[i, j])
  put(paste0(prefix, "_nlme_reml_loglik"), ll_nlme)
  # Newton steps from nlme's optimum to this script's, the Hessian by numDeriv's Jacobian of the gradient above
  # (differencing the deviance itself twice loses ~1e-5 of the df on amass2: 304.004 where the exact is 304)
  hessian <- function(th) { H <- numDeriv::jacobian(gradient, th); (H + t(H)) / 2 }
  for (iteration in 1:20) {
    H <- hessian(theta); step <- solve(H, gradient(theta))
    if (iteration == 1) cat(prefix, ": nlme stopped a Newton step of at most", max(abs(step)), "from the optimum\n")
    theta <- theta - step
    if (max(abs(step)) < 1e-10 * max(abs(theta))) break
  }
  stopifnot(max(abs(step)) < 1e-8 * max(abs(theta)), dev(theta) <= at$deviance)
  at <- un_fit_at(theta, parts, T); S <- un_matrix(theta, T)
  H <- hessian(theta); A <- 2 * solve(H)
  names(at$beta) <- names(b)
  for (v in levels(d$visit)) {
    w <- contrast(at$beta, levels(d$visit), v)
    est <- sum(w * at$beta); var <- sum(w * (at$C %*% w))
    gv <- numDeriv::grad(function(th) { C <- un_fit_at(th, parts, T)$C; sum(w * (C %*% w)) }, theta)
    df <- 2 * var^2 / sum(gv * (A %*% gv))
    put(paste0(prefix, "_effect_", key(v)), est)
    put(paste0(prefix, "_se_", key(v)), sqrt(var))
    put(paste0(prefix, "_df_", key(v)), df)
    put(paste0(prefix, "_p_", key(v)), 2 * pt(abs(est) / sqrt(var), df, lower.tail = FALSE))
  }
  for (i in seq_len(T)) for (j in seq_len(i)) put(paste0(prefix, "_cov_", i, "_", j), S[i, j])
  put(paste0(prefix, "_reml_loglik"), -at$deviance / 2)
  g
}

prepare <- function(file, score, levels, treatment, day = NULL) {
  d <- read.csv(file)
  d$y <- d[[score]]
  d <- d[!is.na(d$y), ]
  d$treated <- as.numeric(d$arm == treatment)
  d$visit <- factor(d$visit, levels = levels)
  d$vindex <- as.integer(d$visit)
  d$vorder <- d$vindex - 1
  if ("day" %in% names(d)) d$year <- d$day / 365.25
  d
}

a <- prepare("tests/reference/amass2_nihss_long.csv", "nihss", c("baseline", "24 h", "7 days"), "albumin")
invisible(lmer_reference("amass2_ri", a, "(1 | patient_id)"))
invisible(lmer_reference("amass2_rs_ord", a, "(1 + vorder | patient_id)"))
invisible(gls_reference("amass2_un", a))

h <- prepare("tests/reference/repeated_scores_long.csv", "fugl_meyer",
             c("Inclusion", "2 weeks", "1 month", "4 months", "1 year", "2 years"), "msc")
invisible(lmer_reference("hermes_ri", h, "(1 | patient_id)"))
invisible(lmer_reference("hermes_rs_year", h, "(1 + year | patient_id)"))
invisible(lmer_reference("hermes_rs_ord", h, "(1 + vorder | patient_id)"))
invisible(gls_reference("hermes_un", h))

# a singular fit: the random slope's correlation with the intercept is +1 (motor NIHSS) or -1 (mRS)
visits <- c("Inclusion", "2 weeks", "1 month", "2 months", "4 months", "6 months", "1 year", "2 years")
for (score in c("motor_nihss", "mrs")) {
  s <- prepare("tests/reference/isis_hermes_sim_long.csv", score, visits, "msc")
  invisible(lmer_reference(paste0("singular_", score, "_rs_ord"), s, "(1 + vorder | patient_id)", singular = TRUE))
}

cat(R.version.string, "; lme4", format(packageVersion("lme4")), "; lmerTest", format(packageVersion("lmerTest")),
    "; nlme", format(packageVersion("nlme")),
    "; numDeriv", format(packageVersion("numDeriv")), "; Matrix", format(packageVersion("Matrix")), "\n")
write.csv(data.frame(name = names(out), value = unlist(out)), "tests/reference/longitudinal_reference.csv",
          row.names = FALSE)
cat("wrote tests/reference/longitudinal_reference.csv\n")
