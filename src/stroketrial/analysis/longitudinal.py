"""Repeated scores over visits (NIHSS, motor NIHSS, Fugl-Meyer, Barthel), as ISIS-HERMES analysed them.

Long data: one row per patient and visit. The fixed effects are always score ~ visit + treated + treated:visit
(visit categorical), fitted by REML; the arm effect at each visit is the treated coefficient plus that visit's
interaction. Three covariance models (`model=`):

- "random intercept" (the default): a random intercept per patient (lme4: (1 | patient)).
- "random slope": a random intercept and slope per patient with an unstructured 2 x 2 covariance (lme4:
  (1 + time | patient)). The slope is on `time=`, a numeric column such as the study day of the visit, or,
  without `time`, on the visit's position in `order` (0, 1, 2, ...). The variances are per unit of that time.
- "unstructured": an MMRM: no random effects, an unstructured residual covariance across visits within a
  patient (nlme: gls(correlation = corSymm, weights = varIdent)); a patient with missing visits contributes the
  rows and columns of the visits they have.

Every model is fitted by REML here (`_Reml`: the REML likelihood of y ~ N(X beta, V) with V linear in the
covariance parameters, with analytic first and second derivatives): L-BFGS-B over the Cholesky factor of the
random effects' (or the unstructured) covariance matrix, as lme4 parametrizes it, so that a singular fit lands
on a bound, then Newton steps to the optimum. The fixed effects' covariance is (X' V^-1 X)^-1 at the estimate,
as in lme4 and nlme. (Until issue 16 the random-intercept model was statsmodels MixedLM's fit; its standard
errors, from the inverse of the full observed information, differed from lme4's by up to about 1e-4 relative.)

The interval and p-value (`df=`): "normal" (the default) is the Wald z interval; "satterthwaite" is a t
interval and p with Satterthwaite's degrees of freedom for that visit's contrast, as lmerTest computes them for
lmer fits and the mmrm package for MMRMs: df = 2 v^2 / (g' A g), v the contrast's variance, g its gradient in
the covariance parameters and A = 2 H^-1, H the (observed) Hessian of -2 REML log-likelihood at the estimate.

The mixed models' df are computed in lme4's parameters (the relative Cholesky factor and sigma), as lmerTest
does: at an interior optimum the df do not depend on the parameters, but at a singular fit (a variance at zero,
a correlation at +-1; lme4's isSingular) they do, and there they are lmerTest's. An MMRM whose covariance is
singular at the estimate is not reported.

Each result's details hold the visit, the standard error, the df when Satterthwaite's, the REML log-likelihood
and the variance components: var_intercept and var_residual (and `singular`); var_slope and
cov_intercept_slope with the random slope (and slope_time, what the slope is on); the covariance matrix
(visit by visit, a dict of dicts) for the MMRM.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)
MODELS = ("random intercept", "random slope", "unstructured")
DF_METHODS = ("normal", "satterthwaite")
VISIT_ORDER = "visit order"  # what a random slope is on without a time column: 0, 1, 2, ... in the visits' order


def mixed_model(long: pd.DataFrame, score: str, arm: str, treatment: str, control: str,
                patient: str = "patient_id", visit: str = "visit", order: list | None = None, *,
                model: str = "random intercept", time: str | None = None, df: str = "normal") -> list[Result]:
    """The arm effect at each visit; `order` lists the visits in time order (the first is the reference),
    else a categorical column's order, else numeric then alphabetical. `model`: "random intercept",
    "random slope" (on the numeric column `time`, else on the visit order) or "unstructured" (MMRM);
    `df`: "normal" (Wald z) or "satterthwaite" (t). See the module's docstring."""
    if model not in MODELS:
        raise AnalysisInputError(f"unknown mixed model {model!r}: one of {', '.join(MODELS)}")
    if df not in DF_METHODS:
        raise AnalysisInputError(f"unknown degrees of freedom {df!r}: one of {', '.join(DF_METHODS)}")
    if time is not None and model != "random slope":
        raise AnalysisInputError(f"time={time!r} is for the random-slope model only")
    for column in (score, arm, patient, visit, *([time] if time else [])):
        if column not in long.columns:
            raise AnalysisInputError(f"the long dataset has no column {column!r}")
    data = long[long[arm].isin([treatment, control])].dropna(subset=[score]).copy()
    if data[patient].nunique() < 4:
        raise AnalysisInputError("a mixed model needs repeated scores from at least 4 patients")
    data["treated"] = (data[arm] == treatment).astype(float)
    data["score_"] = pd.to_numeric(data[score], errors="coerce")
    data = data[data["score_"].notna()]
    visits = _visits(data, visit, order)
    data["visit_"] = pd.Categorical(data[visit], categories=visits)
    for v in visits:
        if data.loc[data["visit_"] == v, "treated"].nunique() < 2:
            raise AnalysisInputError(f"visit {v!r} has scores from one arm only")
    if model == "unstructured":
        fit = _fit_unstructured(data, patient, visits)
    else:
        fit = _fit_mixed(data, patient, visits, time if model == "random slope" else None, model == "random slope")
    return _results(fit, data, score, visit, visits, df)


def _visits(data: pd.DataFrame, visit: str, order: list | None) -> list:
    if order is not None:
        unknown = sorted(set(data[visit].astype(str)) - {str(v) for v in order})
        if unknown:
            raise AnalysisInputError(f"visits {unknown} are not in the given order {order}")
        return [v for v in order if (data[visit].astype(str) == str(v)).any()]
    if isinstance(data[visit].dtype, pd.CategoricalDtype):
        return [v for v in data[visit].cat.categories if (data[visit] == v).any()]
    return sorted(data[visit].unique(), key=lambda v: (float(v) if _is_number(v) else 0, str(v)))


@dataclass
class _Fit:
    names: list[str]  # the fixed effects, in patsy's names: Intercept, C(visit_)[T.v], treated, C(visit_)[T.v]:treated
    at: _Evaluation  # the REML fit at the estimate
    method: str
    components: dict
    # d theta / d phi and d2 theta / d phi2 where the Satterthwaite df are computed in other parameters phi than
    # theta (the mixed models: lme4's, so that a singular fit's df are lmerTest's); None: in theta
    reparametrize: tuple[np.ndarray, np.ndarray] | None = None


def _design(data: pd.DataFrame, visits: list) -> tuple[np.ndarray, list[str]]:
    """The fixed effects of score ~ C(visit_) * treated, columns as patsy orders and names them."""
    treated = data["treated"].to_numpy(float)
    dummies = [(data["visit_"] == v).to_numpy(float) for v in visits[1:]]
    columns = [np.ones(len(data)), *dummies, treated, *(d * treated for d in dummies)]
    names = ["Intercept", *(f"C(visit_)[T.{v}]" for v in visits[1:]), "treated",
             *(f"C(visit_)[T.{v}]:treated" for v in visits[1:])]
    return np.column_stack(columns), names


def _fit_mixed(data: pd.DataFrame, patient: str, visits: list, time: str | None, slope: bool) -> _Fit:
    """Random intercept (and slope): V_i = Z_i G Z_i' + sigma^2 I, Z_i = [1] or [1, time]."""
    scale = 1.0
    if slope:
        if time is None:
            t = data["visit_"].cat.codes.to_numpy(float)
        else:
            t = pd.to_numeric(data[time], errors="coerce").to_numpy(float)
            if not np.isfinite(t).all():
                raise AnalysisInputError(f"the time column {time!r} has missing or non-numeric values")
        scale = float(np.max(np.abs(t)))  # fitted on time / scale (within [-1, 1]), reported per unit of time
        if scale == 0 or np.ptp(t) == 0:
            raise AnalysisInputError("a random slope needs times that differ")
        data["time_"] = t / scale
    X, names = _design(data, visits)
    y = data["score_"].to_numpy(float)
    k_re = 2 if slope else 1
    pairs = _lower(k_re)  # the lower triangle of G, then the residual variance
    blocks = []
    for rows in data.groupby(patient, sort=False).indices.values():
        z = np.column_stack([np.ones(len(rows)), *([data["time_"].to_numpy()[rows]] if slope else [])])
        ds = [_element(z[:, a], z[:, b], a == b) for a, b in pairs] + [np.eye(len(rows))]
        blocks.append((rows, np.stack(ds)))
    reml = _Reml(y, X, blocks)
    # start: the within-patient variance of the least-squares residuals, and the rest of their variance between
    # patients (a twentieth of it at least); the slope's variance a twentieth of the within variance
    residuals = pd.Series(y - X @ np.linalg.lstsq(X, y, rcond=None)[0])
    by_patient = residuals.groupby(data[patient].to_numpy())
    within = float(((residuals - by_patient.transform("mean")) ** 2).sum() / max(len(y) - by_patient.ngroups, 1))
    total = float(residuals.var(ddof=0))
    if total <= 0:
        raise AnalysisInputError("the scores do not vary within visit and arm")
    start = np.diag([max(total - within, total / 20), within / 20][:k_re])
    theta = _fit_cholesky(reml, k_re, start, max(within, total / 20), floor=0.0)

    def valid(theta: np.ndarray) -> bool:
        return bool(theta[-1] > 0 and np.linalg.eigvalsh(_matrix(theta[:-1], k_re)).min() >= 0)

    theta, at = _polish(reml, theta, valid)
    lam = _relative_cholesky(_matrix(theta[:-1], k_re), float(theta[-1]))
    # lme4's isSingular: a diagonal element of Lambda below 1e-4, in the time's own unit
    singular = bool(np.min(np.diag(lam) / np.array([1.0, scale])[:k_re]) < 1e-4)
    _check_converged(at, boundary=singular or bool(np.diag(lam).min() < 1e-4))
    components: dict[str, object] = {"var_intercept": float(theta[0]), "var_residual": float(theta[-1]),
                                     "singular": singular}
    if slope:
        components |= {"var_slope": float(theta[2]) / scale**2, "cov_intercept_slope": float(theta[1]) / scale,
                       "slope_time": time or VISIT_ORDER}
        method = (f"linear mixed model (REML), random intercept and slope on {time or VISIT_ORDER} per patient, "
                  "arm x visit")
    else:
        method = "linear mixed model (REML), random intercept per patient, arm x visit"
    return _Fit(names, at, method, components, _lme4_parameters(lam, float(theta[-1])))


def _fit_unstructured(data: pd.DataFrame, patient: str, visits: list) -> _Fit:
    """MMRM: V_i = the rows and columns of the unstructured covariance matrix for the visits patient i has."""
    k = len(visits)
    pairs = _lower(k)
    code = data["visit_"].cat.codes.to_numpy()
    X, names = _design(data, visits)
    y = data["score_"].to_numpy(float)
    blocks = []
    together = np.zeros((k, k), dtype=int)
    for who, rows in data.groupby(patient, sort=False).indices.items():
        seen = code[rows]
        if len(set(seen)) < len(seen):
            raise AnalysisInputError(f"patient {who} has more than one score at a visit")
        together[np.ix_(seen, seen)] += 1
        ds = np.zeros((len(pairs), len(rows), len(rows)))
        for i, (a, b) in enumerate(pairs):
            ds[i] = _element((seen == a).astype(float), (seen == b).astype(float), a == b)
        blocks.append((rows, ds))
    for a, b in pairs:
        if together[a, b] == 0:
            raise AnalysisInputError(f"an unstructured covariance needs patients with scores at both {visits[b]!r} "
                                     f"and {visits[a]!r}")
    reml = _Reml(y, X, blocks)
    # start: the covariances of the least-squares residuals over the patients seen at both visits, made positive
    # definite (with complete data and these fixed effects, the REML estimate is exactly that times (n - 1) / (n - 2))
    r = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    wide = pd.DataFrame({"p": data[patient].to_numpy(), "v": code, "r": r}).pivot(index="p", columns="v", values="r")
    wide = wide.reindex(columns=range(k))
    s0 = np.nan_to_num(wide.cov(min_periods=1).to_numpy())
    w, q = np.linalg.eigh(s0)
    if w.max() <= 0:
        raise AnalysisInputError("the scores do not vary within visit and arm")
    s0 = (q * np.maximum(w, 1e-3 * w.max())) @ q.T
    theta = _fit_cholesky(reml, k, s0, None, floor=1e-6)

    def valid(theta: np.ndarray) -> bool:
        return _positive_definite(_matrix(theta, k))

    theta, at = _polish(reml, theta, valid)
    sigma = _matrix(theta, k)
    w = np.linalg.eigvalsh(sigma)
    if w.min() <= 1e-8 * w.max():
        raise AnalysisInputError("the unstructured covariance is singular at the REML estimate (too many visits "
                                 "for the patients?)")
    _check_converged(at, boundary=False)
    components = {"covariance": {str(visits[a]): {str(visits[b]): float(sigma[a, b]) for b in range(k)}
                                 for a in range(k)}}
    method = "MMRM (REML): arm x visit means, unstructured covariance across visits within patient"
    return _Fit(names, at, method, components)


def _lower(k: int) -> list[tuple[int, int]]:
    """The lower triangle of a k x k matrix, row by row: the order of its elements in theta."""
    return [(a, b) for a in range(k) for b in range(a + 1)]


def _matrix(theta: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, k))
    for (a, b), value in zip(_lower(k), theta, strict=True):
        out[a, b] = out[b, a] = value
    return out


def _fit_cholesky(reml: _Reml, k: int, start: np.ndarray, residual: float | None, floor: float) -> np.ndarray:
    """theta near the REML optimum: L-BFGS-B over the Cholesky factor L (diagonal >= floor) of the k x k matrix
    (G, or the unstructured covariance) and, with a residual, the log of its variance, in units of the start's
    scale; the analytic gradient by the chain rule. As lme4 does, so that a singular G is reached on a bound."""
    unit = float(np.sqrt(max(np.max(np.diag(start)), residual or 0.0, 1e-300)))
    pairs = _lower(k)
    extra = residual is not None
    chol = np.linalg.cholesky(start / unit**2 + 1e-12 * np.eye(k))
    phi0 = np.array([chol[a, b] for a, b in pairs] + ([np.log(residual / unit**2)] if residual is not None else []))

    def theta_of(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lm = np.zeros((k, k))
        for (a, b), value in zip(pairs, phi, strict=False):
            lm[a, b] = value
        m = unit**2 * lm @ lm.T
        jac = np.zeros((len(phi), len(phi)))
        for i, (c, d) in enumerate(pairs):
            dm = unit**2 * (np.outer(np.eye(k)[c], lm[:, d]) + np.outer(lm[:, d], np.eye(k)[c]))
            jac[: len(pairs), i] = [dm[a, b] for a, b in pairs]
        theta = np.array([m[a, b] for a, b in pairs] + ([unit**2 * np.exp(phi[-1])] if extra else []))
        if extra:
            jac[-1, -1] = theta[-1]
        return theta, jac

    def objective(phi: np.ndarray) -> tuple[float, np.ndarray]:
        theta, jac = theta_of(phi)
        at = reml.evaluate(theta, hessian=False)
        if at is None:
            return 1e300, np.zeros_like(phi)
        return at.deviance, jac.T @ at.gradient

    bounds = [(floor, None) if a == b else (None, None) for a, b in pairs] + ([(None, None)] if extra else [])
    found = optimize.minimize(objective, phi0, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-10})
    return theta_of(found.x)[0]


def _relative_cholesky(g: np.ndarray, sigma2: float) -> np.ndarray:
    """lme4's Lambda: G = sigma^2 Lambda Lambda', Lambda lower triangular with a non-negative diagonal (G's
    Cholesky factor / sigma; a zero column where G is singular)."""
    k = len(g)
    lam = np.zeros((k, k))
    for j in range(k):  # Cholesky of a positive semi-definite matrix
        pivot = g[j, j] - lam[j, :j] @ lam[j, :j]
        lam[j, j] = np.sqrt(max(pivot, 0.0))
        for i in range(j + 1, k):
            lam[i, j] = (g[i, j] - lam[i, :j] @ lam[j, :j]) / lam[j, j] if lam[j, j] > 0 else 0.0
    return lam / np.sqrt(sigma2)


def _lme4_parameters(lam: np.ndarray, sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    """The first and second derivatives of theta = (the lower triangle of G, sigma^2) in lme4's (and lmerTest's)
    parameters phi = (the lower triangle of Lambda, sigma), G = sigma^2 Lambda Lambda'."""
    k = len(lam)
    sigma = np.sqrt(sigma2)
    pairs = _lower(k)
    n = len(pairs) + 1
    jac, second = np.zeros((n, n)), np.zeros((n, n, n))
    for t, (a, b) in enumerate(pairs):  # theta_t = sigma^2 sum_c lam_ac lam_bc
        for i, (c, d) in enumerate(pairs):  # d / d lam_cd
            jac[t, i] = sigma2 * ((a == c) * lam[b, d] + (b == c) * lam[a, d])
            second[t, i, -1] = second[t, -1, i] = 2 * sigma * ((a == c) * lam[b, d] + (b == c) * lam[a, d])
            for j, (e, f) in enumerate(pairs):
                second[t, i, j] = sigma2 * (d == f) * ((a == c) * (b == e) + (b == c) * (a == e))
        jac[t, -1] = 2 * sigma * (lam[a] @ lam[b])
        second[t, -1, -1] = 2 * (lam[a] @ lam[b])
    jac[-1, -1], second[-1, -1, -1] = 2 * sigma, 2.0
    return jac, second


def _check_converged(at: _Evaluation, boundary: bool) -> None:
    """Inside the parameter space the Newton decrement g' H^-1 g must be negligible at the estimate."""
    if boundary:
        return
    try:
        decrement = float(at.gradient @ np.linalg.solve(at.hessian, at.gradient))
    except np.linalg.LinAlgError:
        decrement = np.inf
    if not (abs(decrement) < 1e-6 and _positive_definite(at.hessian)):
        raise AnalysisInputError("the REML fit did not converge")


def _results(fit: _Fit, data: pd.DataFrame, score: str, visit: str, visits: list, df: str) -> list[Result]:
    at = fit.at
    params = pd.Series(at.beta, index=fit.names)
    hessian_inverse, jac = None, None
    if df == "satterthwaite":
        hessian = at.hessian
        if fit.reparametrize is not None:  # the Hessian in phi: J' H J + sum_k (d deviance / d theta_k) d2 theta_k
            jac, second = fit.reparametrize
            hessian = jac.T @ hessian @ jac + np.einsum("k,kij->ij", at.gradient, second)
        try:
            hessian_inverse = np.linalg.inv(np.linalg.cholesky(hessian))  # L^-1: H^-1 = L^-T L^-1
        except np.linalg.LinAlgError as exc:
            raise AnalysisInputError("Satterthwaite's degrees of freedom need a positive definite Hessian of the "
                                     "REML likelihood; these data give none (a variance at zero?)") from exc
    if df == "normal":
        method = fit.method + ("" if fit.method.startswith("linear mixed model (REML), random intercept per")
                               else "; Wald (normal) interval")
    else:
        method = fit.method + "; t interval and p with Satterthwaite degrees of freedom"
    out = []
    for v in visits:
        names = ["treated"] + ([f"C(visit_)[T.{v}]:treated"] if v != visits[0] else [])
        weights = pd.Series(0.0, index=params.index)
        weights[names] = 1.0
        w = weights.to_numpy()
        estimate = float(w @ at.beta)
        variance = float(w @ at.cov @ w)
        se = float(np.sqrt(variance))
        details: dict = {"visit": str(v), "se": se}
        if hessian_inverse is None:
            half, p = Z95 * se, float(2 * stats.norm.sf(abs(estimate / se)))
        else:
            cw = at.cov @ w
            gradient = np.einsum("a,kab,b->k", cw, at.a, cw)  # d v / d theta_k = w' C A_k C w
            if jac is not None:
                gradient = jac.T @ gradient
            spread = hessian_inverse @ gradient
            dof = float(variance**2 / (spread @ spread))  # 2 v^2 / (g' (2 H^-1) g)
            half, p = float(stats.t.ppf(0.975, dof)) * se, float(2 * stats.t.sf(abs(estimate / se), dof))
            details["df"] = dof
        details |= {"reml_loglik": float(-at.deviance / 2), **fit.components}
        out.append(Result(f"{score} at {v}", estimate, estimate - half, estimate + half, p, method,
                          int((data[visit] == v).sum()), "mean difference (treatment - control)", details))
    return out


@dataclass
class _Evaluation:
    deviance: float  # -2 REML log-likelihood: log|V| + log|X'V^-1 X| + r'V^-1 r + (N - p) log(2 pi)
    beta: np.ndarray
    cov: np.ndarray  # C = (X'V^-1 X)^-1
    gradient: np.ndarray
    hessian: np.ndarray  # observed (empty when not asked for)
    expected: np.ndarray  # expected (Fisher scoring), tr(P D_k P D_l)
    a: np.ndarray  # A_k = X'V^-1 D_k V^-1 X: d C / d theta_k = C A_k C


class _Reml:
    """-2 REML log-likelihood of y ~ N(X beta, V), V block diagonal by patient, each block linear in the
    covariance parameters: V_i = sum_k theta_k D_ik (variances and covariances of the random effects and the
    residual, or the elements of the unstructured matrix). With P = V^-1 - V^-1 X C X' V^-1:
    d/d theta_k = tr(P D_k) - y'P D_k P y, d2/d theta_k d theta_l = -tr(P D_k P D_l) + 2 y'P D_k P D_l P y.
    The patients are stacked by their number of rows so that numpy works on all of them at once."""

    def __init__(self, y: np.ndarray, X: np.ndarray, blocks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        by_size: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        for rows, ds in blocks:
            by_size[len(rows)].append((rows, ds))
        self.groups = [(np.stack([y[rows] for rows, _ in items]), np.stack([X[rows] for rows, _ in items]),
                        np.stack([ds for _, ds in items], axis=1)) for items in by_size.values()]
        self.n, self.p = X.shape
        if np.linalg.matrix_rank(X) < self.p:
            raise AnalysisInputError("the fixed effects (visit x arm) cannot all be estimated from these data")

    def evaluate(self, theta: np.ndarray, hessian: bool = True) -> _Evaluation | None:
        """The deviance with its gradient (and Hessians) at theta, or None where some V_i is not positive
        definite."""
        p = self.p
        xwx, xwy, logdet, parts = np.zeros((p, p)), np.zeros(p), 0.0, []
        for y, x, d in self.groups:
            v = np.einsum("k,kmij->mij", theta, d)
            try:
                chol = np.linalg.cholesky(v)
            except np.linalg.LinAlgError:
                return None
            logdet += 2 * float(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
            w = np.linalg.inv(v)
            w = (w + np.swapaxes(w, 1, 2)) / 2
            wx = w @ x
            xwx += np.einsum("mia,mib->ab", x, wx)
            xwy += np.einsum("mib,mi->b", wx, y)
            parts.append((w, wx))
        try:
            np.linalg.cholesky(xwx)
        except np.linalg.LinAlgError:
            return None
        cov = np.linalg.inv(xwx)
        cov = (cov + cov.T) / 2
        beta = cov @ xwy
        k = len(theta)
        quad, tr_wd, a, q = 0.0, np.zeros(k), np.zeros((k, p, p)), np.zeros(k)
        tr_wdwd, tr_cm, u_wu, b = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, p))
        for (y, x, d), (w, wx) in zip(self.groups, parts, strict=True):
            r = y - np.einsum("mia,a->mi", x, beta)
            e = np.einsum("mij,mj->mi", w, r)  # P y, patient by patient
            quad += float(np.einsum("mi,mi->", r, e))
            tr_wd += np.einsum("mij,kmji->k", w, d)
            g = np.einsum("kmij,mjb->kmib", d, wx)  # D_k V^-1 X
            a += np.einsum("mia,kmib->kab", wx, g)
            q += np.einsum("mi,kmij,mj->k", e, d, e)
            if not hessian:
                continue
            wd = np.einsum("mij,kmjl->kmil", w, d)
            tr_wdwd += np.einsum("kmij,lmji->kl", wd, wd)
            # tr(C X'V^-1 D_k V^-1 D_l V^-1 X)
            tr_cm += np.einsum("kmib,lmib->kl", g @ cov, np.einsum("mij,lmjb->lmib", w, g))
            u = np.einsum("kmij,mj->kmi", d, e)  # D_k P y
            u_wu += np.einsum("kmi,lmi->kl", u, np.einsum("mij,lmj->lmi", w, u))
            b += np.einsum("mib,kmi->kb", wx, u)
        deviance = logdet + float(np.linalg.slogdet(xwx)[1]) + quad + (self.n - p) * np.log(2 * np.pi)
        gradient = tr_wd - np.einsum("ab,kba->k", cov, a) - q
        if not hessian:
            return _Evaluation(deviance, beta, cov, gradient, np.empty((0, 0)), np.empty((0, 0)), a)
        ca = cov @ a
        tr_pdpd = tr_wdwd - 2 * tr_cm + np.einsum("kab,lba->kl", ca, ca)
        observed = -tr_pdpd + 2 * (u_wu - b @ cov @ b.T)
        return _Evaluation(deviance, beta, cov, gradient, (observed + observed.T) / 2, (tr_pdpd + tr_pdpd.T) / 2, a)


def _polish(reml: _Reml, theta: np.ndarray, valid: Callable[[np.ndarray], bool],
              max_iter: int = 50) -> tuple[np.ndarray, _Evaluation]:
    """Polish theta: Newton steps on the deviance where the observed Hessian is positive definite, Fisher scoring
    where not, halved until the deviance falls and `valid` (the covariance matrices positive semi-definite)
    holds; stops when the Newton decrement or the step is negligible, or no step lowers the deviance."""
    at = reml.evaluate(theta)
    if at is None:
        raise AnalysisInputError("the covariance matrices are not positive definite at the estimate")
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(at.hessian if _positive_definite(at.hessian) else at.expected, at.gradient)
        except np.linalg.LinAlgError:
            break
        if abs(float(at.gradient @ step)) < 1e-14 * max(1.0, abs(at.deviance)):
            break
        for _halving in range(40):
            candidate = theta - step
            new = reml.evaluate(candidate) if valid(candidate) else None
            if new is not None and new.deviance <= at.deviance:
                break
            step = step / 2
        else:
            break
        theta, at = candidate, new
        if np.max(np.abs(step)) < 1e-12 * max(1.0, float(np.max(np.abs(theta)))):
            break
    return theta, at


def _positive_definite(matrix: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def _element(za: np.ndarray, zb: np.ndarray, diagonal: bool) -> np.ndarray:
    """d V_i / d theta for the covariance element (a, b) of effects with design columns za, zb: za za' on the
    diagonal, za zb' + zb za' off it."""
    outer = np.outer(za, zb)
    return outer if diagonal else outer + outer.T


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
