"""One proportional-odds model, fitted by the power simulation's Newton fitter (`design/batched_po_fit`).

logit P(Y <= j) = cut_j - (offset + X beta), as MASS::polr and ordinal::clm; with groups, each group its own
cut-points (the arm's effect free at each cut-point: ordinal::clm's nominal effect). Newton-Raphson with the
analytic gradient and Hessian gives the estimates, the covariance (the inverse observed information, of the
cut-points themselves) and the log-likelihood. The profile-likelihood interval of one coefficient finds where
the signed root of the likelihood-ratio statistic crosses -z and z, each point a refit from the last one.

Nothing here imports SciPy: `stroketrial analyze ordinal` would spend more time loading scipy.optimize
and scipy.stats than fitting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..design import batched_po_fit
from .result import AnalysisInputError

Z95 = 1.959963984540054  # the standard normal's 97.5% point
CHI95 = Z95 ** 2  # the chi-square(1) 95% point


@dataclass(frozen=True)
class ProportionalOddsFit:
    cuts: np.ndarray  # [groups, K - 1]
    coef: np.ndarray  # [p]
    covariance: np.ndarray  # the cut-points group by group, then the coefficients
    llf: float

    @property
    def coef_se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance)[self.cuts.size:])

    @property
    def cut_se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance)[:self.cuts.size]).reshape(self.cuts.shape)

    def params(self) -> np.ndarray:
        return np.concatenate([self.cuts.ravel(), self.coef])


def fit(codes: np.ndarray, k: int, X: np.ndarray, weights: np.ndarray | None = None,
        offset: np.ndarray | None = None, groups: np.ndarray | None = None, n_groups: int = 1,
        start: np.ndarray | None = None, converge: bool = True) -> ProportionalOddsFit:
    """The maximum-likelihood fit of one model: codes in 0..k-1 (every one observed), X [patients, p].

    converge=False: where the maximum is not reached (a covariate level that separates the outcome: its
    coefficient runs off to infinity), the fit after 200 Newton steps, whose log-likelihood is then within
    far less than 1e-10 of its supremum, instead of an AnalysisInputError."""
    def one(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a, float)[None]

    fitted = batched_po_fit.fit(np.asarray(codes)[None], np.asarray(X, float).reshape(len(codes), -1)[None], k,
                                max_iter=200, groups=None if groups is None else np.asarray(groups)[None],
                                n_groups=n_groups, weights=one(weights), offset=one(offset), start=one(start),
                                full=True)
    assert fitted.covariance is not None
    # A quasi-separated fit (an arm in one outcome category) can stop with steps too small to tell from
    # convergence while the information matrix is singular: its covariance is then NaN or inf, not an answer.
    if converge and not (fitted.converged[0] and np.isfinite(fitted.covariance[0]).all()):
        raise AnalysisInputError("the proportional-odds model did not converge (an arm or a covariate level "
                                 "without every outcome category, or a covariate that predicts the outcome "
                                 "perfectly)")
    return ProportionalOddsFit(fitted.alpha[0].reshape(n_groups, k - 1), fitted.beta[0], fitted.covariance[0],
                               float(fitted.loglik[0]))


def p_value(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2))


def profile_interval(codes: np.ndarray, k: int, X: np.ndarray, column: int, fitted: ProportionalOddsFit,
                     weights: np.ndarray | None = None, z: float = Z95) -> tuple[float, float]:
    """Profile-likelihood interval of coefficient `column`: the values b at which the signed root of the
    likelihood-ratio statistic, sign(b - beta) sqrt(2 (llf - max over the others of loglik(b))), is -z and z."""
    X = np.asarray(X, float).reshape(len(codes), -1)
    fixed, others = X[:, column], np.delete(X, column, axis=1)
    beta, se = float(fitted.coef[column]), float(fitted.coef_se[column])
    warm = np.concatenate([fitted.cuts.ravel(), np.delete(fitted.coef, column)])

    def signed_root(b: float) -> float:
        nonlocal warm
        refit = fit(codes, k, others, weights, b * fixed, start=warm)
        warm = refit.params()
        return math.copysign(math.sqrt(max(2 * (fitted.llf - refit.llf), 0.0)), b - beta)

    def limit(side: float) -> float:
        nonlocal warm
        warm = np.concatenate([fitted.cuts.ravel(), np.delete(fitted.coef, column)])
        return _crossing(lambda b: signed_root(b) - side * z, beta, -side * z, side * se)

    return limit(-1.0), limit(1.0)


def _crossing(f: Callable[[float], float], origin: float, f_origin: float, step: float,
              xtol: float = 1e-10) -> float:
    """The root of f beyond `origin` (where f is f_origin, of the other sign) in the direction of `step`:
    bracketed from twice the Wald step out, then the Illinois variant of regula falsi (superlinear on the nearly
    linear signed root, and never outside the bracket)."""
    a, fa = origin, f_origin
    b = origin + 2 * step
    fb = f(b)
    while fa * fb > 0:
        if abs(b - origin) > 1e3 * abs(step):
            raise AnalysisInputError("the profile likelihood does not reach its 95% limit; the interval is "
                                     "unbounded")
        a, fa, b = b, fb, origin + 2 * (b - origin)
        fb = f(b)
    while abs(b - a) > xtol and fb != 0:
        c = b - fb * (b - a) / (fb - fa)
        fc = f(c)
        if fc * fb < 0:
            a, fa = b, fb
        else:
            fa /= 2  # the end kept again counts half, so that it moves too
        b, fb = c, fc
    return b
