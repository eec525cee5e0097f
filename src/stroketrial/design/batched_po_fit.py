"""Thousands of proportional-odds models fitted at once: Newton-Raphson as batched array operations.

statsmodels fits one model at a time (about 0.1 s each for 1,000 patients); a power
simulation needs thousands, so this fitter takes every simulated trial in a chunk
together: y [trials, patients] in 0..K-1, X [trials, patients, p]. Same model and
parameterization as statsmodels' OrderedModel and MASS::polr: P(Y <= j) =
logistic(alpha_j - X beta). Tests and the benchmark check it against statsmodels to 1e-6,
and against the fitter it replaced (`power_reference.fit_reference`) to 1e-8.

The analyses fit their single models here too (`analysis/po_model.py`, issue 23): frequency weights, an
offset (the profile likelihood fixes the arm's coefficient through it), a warm start, and cut-points
per group (the arm's effect free at each cut-point, as ordinal::clm's nominal effects) are optional,
and without them the arithmetic is the power simulation's, step for step.

Where the time goes (issue 22): one pass over the patients per Newton step. Each trial's
patients are sorted by outcome once, so every per-category sum of the gradient and the
Hessian is a segment sum (`np.add.reduceat`) instead of a product with one-hot rows; the
log-likelihood the line search needs comes from the same pass; trials are taken in
cache-sized batches.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

BATCH = 16  # trials per pass: the working arrays of 1,000-patient trials stay in a core's L2 cache


@dataclass(frozen=True)
class BatchFit:
    alpha: np.ndarray  # [trials, K-1]
    beta: np.ndarray  # [trials, p]
    se: np.ndarray  # [trials, p] (from the observed information)
    loglik: np.ndarray  # [trials]
    converged: np.ndarray  # [trials] bool
    iterations: int
    covariance: np.ndarray | None = None  # [trials, G(K-1) + p, G(K-1) + p] (alpha, beta), with full=True
    gradient: np.ndarray | None = None  # [trials, G(K-1) + p] at the estimate, with full=True


class _Sorted:
    """A batch of trials with each trial's patients in outcome order, and what every pass reuses."""

    def __init__(self, y: np.ndarray, X: np.ndarray, k: int, groups: np.ndarray | None = None, n_groups: int = 1,
                 weights: np.ndarray | None = None, offset: np.ndarray | None = None):
        t, n = y.shape
        g = n_groups
        cells = y if groups is None else groups * k + y  # each trial's patients in (group, outcome) order
        key = (np.arange(t)[:, None] * (g * k) + cells).ravel()
        order = np.argsort(key.astype(np.uint16 if t * g * k < 65_536 else np.int64), kind="stable")  # radix sort
        counts = np.bincount(key, minlength=t * g * k).reshape(t, g * k)
        self.k, self.t, self.n, self.g = k, t, n, g
        self.x = np.ascontiguousarray(X.reshape(t * n, -1)[order].T).reshape(-1, t, n)  # [p, t, n]
        self.w = None if weights is None else weights.ravel()[order].reshape(t, n)
        self.offset = None if offset is None else offset.ravel()[order].reshape(t, n)
        p = len(self.x)
        pairs = [(i, j) for i in range(p) for j in range(i, p)]
        self.pairs = pairs
        # [t, n, p + p(p+1)/2]: the covariates and their products, for the whole-trial sums
        design = np.empty((t, n, p + len(pairs)))
        design[..., :p] = self.x.transpose(1, 2, 0)
        for c, (i, j) in enumerate(pairs):
            np.multiply(self.x[i], self.x[j], out=design[..., p + c])
        self.design = design
        # alpha padded as [-inf, alpha_0..alpha_{K-2}, +inf] per trial and group; flat indices of each patient's
        # two thresholds (a group's outcome j sits at block g, position j)
        cell = np.tile(np.arange(g * k), t)
        ys = np.repeat(cell // k * (k + 1) + cell % k, counts.ravel()).reshape(t, n)
        self.lo = (np.arange(t) * (g * (k + 1)))[:, None] + ys
        self.hi = self.lo + 1
        self.starts = (np.arange(t)[:, None] * n + np.cumsum(counts, axis=1) - counts).ravel()
        self.counts = counts
        self.totals = counts if weights is None else np.bincount(key, weights.ravel(), t * g * k).reshape(t, g * k)
        self._rows: np.ndarray | None = None

    def evaluate(self, params: np.ndarray, derivatives: bool = True):
        """Log-likelihood per trial, and (with `derivatives`) its gradient and Hessian, in one pass.

        A step too far (a small trial or bootstrap resample that a covariate separates) can leave a patient
        probability 0: that trial's log-likelihood is then -inf, the step is halved, and the derivatives
        computed on the way, inf or NaN, are never used; NumPy is told not to warn about them."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._evaluate(params, derivatives)

    def _evaluate(self, params: np.ndarray, derivatives: bool):
        k, t, n, m, g = self.k, self.t, self.n, self.k - 1, self.g
        alpha, beta = params[:, :g * m].reshape(t, g, m), params[:, g * m:]
        eta = np.einsum("ptn,tp->tn", self.x, beta)
        if self.offset is not None:
            eta += self.offset
        padded = np.concatenate([np.full((t, g, 1), -np.inf), alpha, np.full((t, g, 1), np.inf)], axis=2).ravel()
        # in place where it saves a pass; the same operations, so the same numbers, as 1 / (1 + exp(-(a - eta)))
        with np.errstate(over="ignore"):  # exp(-inf) = 0 and exp(inf) = inf give 1 and 0
            Fa, Fb = np.subtract(eta, padded[self.hi]), np.subtract(eta, padded[self.lo])
            for F in (Fa, Fb):
                np.exp(F, out=F)
                F += 1
                np.reciprocal(F, out=F)
        pi = Fa - Fb
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pi = np.log(pi) if self.w is None else self.w * np.log(pi)
            ll = np.where(np.all(pi > 0, axis=1), log_pi.sum(axis=1), -np.inf)
        if not derivatives:
            return ll, None, None
        p = len(self.x)
        rows, both = self._buffers()  # reused across passes: fresh arrays this size cost a page fault per page
        fa, fb = 1 - Fa, 1 - Fb
        fa *= Fa
        fb *= Fb
        dfa, dfb = Fa * 2, Fb * 2  # then 1 - 2F, times f, times 1 / pi
        for d, f in ((dfa, fa), (dfb, fb)):
            np.subtract(1, d, out=d)
            d *= f
        r = np.reciprocal(pi, out=pi)
        dfa *= r
        dfb *= r
        g_hi, g_lo, h_hl, c_hi, c_lo = rows[:5]  # d loglik / d (upper, lower) threshold of each observation, ...
        np.multiply(fa, r, out=g_hi)
        np.multiply(fb, r, out=g_lo)
        np.negative(g_lo, out=g_lo)
        e = np.add(g_hi, g_lo, out=both[:, 0])
        np.multiply(g_hi, g_lo, out=h_hl)
        np.negative(h_hl, out=h_hl)
        np.multiply(g_hi, e, out=c_hi)  # minus d2 loglik / d(upper threshold) d(eta), and the same for the lower one
        c_hi -= dfa
        np.multiply(g_lo, e, out=c_lo)
        c_lo += dfb
        np.add(c_hi, c_lo, out=both[:, 1])
        np.multiply(c_hi, self.x, out=rows[5:5 + p])
        np.multiply(c_lo, self.x, out=rows[5 + p:])
        if self.w is not None:  # each patient's terms count `weight` times
            rows *= self.w
            both *= self.w[:, None, :]
        by_y = np.add.reduceat(rows.reshape(len(rows), t * n), self.starts, axis=1).reshape(len(rows), t, g, k)
        whole = np.matmul(both, self.design)  # [t, 2, p + pairs]
        grad, hess = self._derivatives(by_y, whole)
        return ll, grad, hess

    def _derivatives(self, by_y: np.ndarray, whole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gradient and Hessian from the per-(group, outcome) sums and the whole-trial sums of a pass."""
        t, m, g, p = self.t, self.k - 1, self.g, len(self.x)
        s_hi, s_lo, s_hl, s_chi, s_clo = by_y[:5]
        # observation in category j: upper threshold j (none for K-1), lower threshold j-1 (none for 0); the
        # thresholds of different groups share no observation
        grad = np.empty((t, g * m + p))
        grad[:, :g * m] = (s_hi[..., :m] + s_lo[..., 1:]).reshape(t, g * m)
        grad[:, g * m:] = -whole[:, 0, :p]
        hess = np.zeros((t, g * m + p, g * m + p))
        diag = -(s_chi[..., :m] + s_hl[..., :m]) - (s_clo[..., 1:] + s_hl[..., 1:])  # h_hh = -c_hi - h_hl, ...
        pair = s_hl[..., 1:m]  # observations in category j + 1 link thresholds j and j + 1
        ab = (by_y[5:5 + p, :, :, :m].transpose(1, 2, 3, 0)
              + by_y[5 + p:, :, :, 1:].transpose(1, 2, 3, 0))  # [t, g, m, p]
        for h in range(g):
            at = h * m
            hess[:, at + np.arange(m), at + np.arange(m)] = diag[:, h]
            hess[:, at + np.arange(1, m), at + np.arange(m - 1)] = pair[:, h]
            hess[:, at + np.arange(m - 1), at + np.arange(1, m)] = pair[:, h]
            hess[:, at:at + m, g * m:] = ab[:, h]
            hess[:, g * m:, at:at + m] = ab[:, h].transpose(0, 2, 1)
        bb = -whole[:, 1, p:]
        for c, (i, j) in enumerate(self.pairs):
            hess[:, g * m + i, g * m + j] = hess[:, g * m + j, g * m + i] = bb[:, c]
        return grad, hess

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        if self._rows is None:
            self._rows = np.empty((2 * len(self.x) + 5, self.t, self.n))
            self._both = np.empty((self.t, 2, self.n))
        return self._rows, self._both

    def take(self, rows: np.ndarray) -> _Sorted:
        """The same trials, only those in `rows` (as the active set shrinks)."""
        part = object.__new__(_Sorted)
        part.k, part.t, part.n, part.g, part.pairs, part._rows = self.k, len(rows), self.n, self.g, self.pairs, None
        part.x, part.design = np.ascontiguousarray(self.x[:, rows]), self.design[rows]
        part.w = None if self.w is None else self.w[rows]
        part.offset = None if self.offset is None else self.offset[rows]
        block = self.g * (self.k + 1)
        base = (np.arange(len(rows)) * block - rows * block)[:, None]
        part.lo, part.hi = self.lo[rows] + base, self.hi[rows] + base
        part.counts = self.counts[rows]
        part.starts = (np.arange(len(rows))[:, None] * self.n + np.cumsum(part.counts, axis=1)
                       - part.counts).ravel()
        return part


class _TwoCategories:
    """A batch of two-category trials (logistic regression: the binary analyses' bootstrap resamples), with the
    same interface, model and numbers as _Sorted at K = 2 (tests: 1e-10) in about a third of the arithmetic:
    one logistic per patient instead of one per threshold, and the gradient and Hessian as one product with
    the design (its constant, the covariates and their products) instead of per-category segment sums."""

    def __init__(self, y: np.ndarray, X: np.ndarray, weights: np.ndarray | None = None,
                 offset: np.ndarray | None = None):
        t, n = y.shape
        self.k, self.t, self.n = 2, t, n
        self.y = y.astype(bool)
        self.x = np.ascontiguousarray(X, dtype=float)  # [t, n, p]
        self.w, self.offset = weights, offset
        p = self.x.shape[2]
        self.pairs = [(i, j) for i in range(p) for j in range(i, p)]
        design = np.empty((t, n, 1 + p + len(self.pairs)))
        design[..., 0] = 1
        design[..., 1:1 + p] = self.x
        for c, (i, j) in enumerate(self.pairs):
            np.multiply(self.x[..., i], self.x[..., j], out=design[..., 1 + p + c])
        self.design = design
        events = self.y.sum(axis=1)
        self.counts = np.stack([n - events, events], axis=1)
        self.totals = self.counts if weights is None else np.stack(
            [np.where(self.y, 0, weights).sum(axis=1), np.where(self.y, weights, 0).sum(axis=1)], axis=1)

    def evaluate(self, params: np.ndarray, derivatives: bool = True):
        """As _Sorted.evaluate: a patient probability 0 makes that trial's log-likelihood -inf."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._evaluate(params, derivatives)

    def _evaluate(self, params: np.ndarray, derivatives: bool):
        t, p = self.t, self.x.shape[2]
        eta = np.matmul(self.x, params[:, 1:, None])[..., 0]
        if self.offset is not None:
            eta += self.offset
        # F = P(y = 0) = logistic(alpha - eta), computed as _Sorted computes it; G = P(y = 1) = logistic(eta - alpha)
        # from its own exponential, not as 1 - F: where F rounds to 1 (alpha - eta past about 37) 1 - F is 0, the
        # Hessian F (1 - F) of a quasi-separated fit turns singular and Newton stalls as if converged.
        F = np.subtract(eta, params[:, :1])
        G = np.negative(F)
        np.exp(F, out=F)
        F += 1
        np.reciprocal(F, out=F)
        np.exp(G, out=G)
        G += 1
        np.reciprocal(G, out=G)
        pi = np.where(self.y, G, F)
        log_pi = np.log(pi) if self.w is None else self.w * np.log(pi)
        ll = np.where(np.all(pi > 0, axis=1), log_pi.sum(axis=1), -np.inf)
        if not derivatives:
            return ll, None, None
        # d loglik / d eta = y - G (F where y = 1, -G where y = 0); minus its derivative: F G; alpha's sign is -1
        both = np.empty((t, 2, self.n))
        np.copyto(both[:, 0], np.where(self.y, F, -G))
        np.multiply(F, G, out=both[:, 1])
        if self.w is not None:
            both *= self.w[:, None, :]
        sums = np.matmul(both, self.design)  # [t, 2, 1 + p + pairs]
        grad = np.empty((t, 1 + p))
        grad[:, 0] = -sums[:, 0, 0]
        grad[:, 1:] = sums[:, 0, 1:1 + p]
        hess = np.empty((t, 1 + p, 1 + p))
        hess[:, 0, 0] = -sums[:, 1, 0]
        hess[:, 0, 1:] = hess[:, 1:, 0] = sums[:, 1, 1:1 + p]
        for c, (i, j) in enumerate(self.pairs):
            hess[:, 1 + i, 1 + j] = hess[:, 1 + j, 1 + i] = -sums[:, 1, 1 + p + c]
        return ll, grad, hess

    def take(self, rows: np.ndarray) -> _TwoCategories:
        part = object.__new__(_TwoCategories)
        part.k, part.t, part.n, part.pairs = 2, len(rows), self.n, self.pairs
        part.y, part.x, part.design = self.y[rows], self.x[rows], self.design[rows]
        part.w = None if self.w is None else self.w[rows]
        part.offset = None if self.offset is None else self.offset[rows]
        part.counts, part.totals = self.counts[rows], self.totals[rows]
        return part


def _solve(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(-hess, grad[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([_least_squares(-h, g) for h, g in zip(hess, grad, strict=True)])


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The least-squares step; NaN where even that fails (an information matrix of inf or NaN, from a fit that
    has broken down): the step is then refused and that fit ends unconverged."""
    try:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    except np.linalg.LinAlgError:
        return np.full(len(b), np.nan)


def _inverse(information: np.ndarray) -> np.ndarray:
    """The inverse of each matrix; NaN for one that is singular (a diverging fit, e.g. a bootstrap resample whose
    outcome a covariate separates), which would otherwise stop the whole batch."""
    try:
        return np.linalg.inv(information)
    except np.linalg.LinAlgError:
        out = np.full(information.shape, np.nan)
        for i, matrix in enumerate(information):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.inv(matrix)
        return out


def _fit_batch(y: np.ndarray, X: np.ndarray, k: int, max_iter: int, tol: float, groups: np.ndarray | None = None,
               n_groups: int = 1, weights: np.ndarray | None = None, offset: np.ndarray | None = None,
               start: np.ndarray | None = None):
    trials = len(y)
    data: _Sorted | _TwoCategories = (_TwoCategories(y, X, weights, offset) if k == 2 and n_groups == 1
                                       else _Sorted(y, X, k, groups, n_groups, weights, offset))
    counts = data.counts
    if start is None:
        totals = data.totals.reshape(trials, n_groups, k)
        cumulative = np.cumsum(totals, axis=2)[..., :-1] / totals.sum(axis=2, keepdims=True)
        cumulative = np.clip(cumulative, 1e-4, 1 - 1e-4).reshape(trials, n_groups * (k - 1))
        params = np.concatenate([np.log(cumulative / (1 - cumulative)), np.zeros((trials, X.shape[2]))], axis=1)
    else:
        params = np.array(start, dtype=float)
    active = np.all(counts > 0, axis=1)  # a trial missing a category has a threshold not identified
    converged = np.zeros(trials, dtype=bool)
    hess = np.full((trials, params.shape[1], params.shape[1]), np.nan)
    grad = np.zeros_like(params)
    ll = np.full(trials, -np.inf)
    iteration = 0
    live = np.flatnonzero(active)
    if not len(live):
        return params, hess, ll, converged, iteration, grad
    if len(live) < trials:
        data = data.take(live)
    ll[live], grad[live], hess[live] = data.evaluate(params[live])
    threshold = tol ** 0.5 * 1e-2
    for iteration in range(1, max_iter + 1):  # noqa: B007  (the count is reported after the loop)
        idx = np.flatnonzero(active & ~converged)
        if not len(idx):
            break
        if len(idx) < len(live):
            data, live = data.take(np.searchsorted(live, idx)), idx
        step = _solve(hess[idx], grad[idx])
        size = np.abs(step).max(axis=1)
        tiny = size < 1e-3 * threshold
        # A step this small is the last: Newton is then within ~step**2 of the maximum, and the information
        # at the point it starts from gives the standard errors to ~1e-10, so the pass there is saved.
        # Steps up to the threshold are taken as before and also end the fit (converged below).
        params[idx[tiny]] += step[tiny]
        converged[idx[tiny]] = True
        moving = ~tiny
        if not moving.any():
            continue
        rows, step = idx[moving], step[moving]
        sub = data if moving.all() else data.take(np.flatnonzero(moving))
        new = params[rows] + step
        new_ll, new_grad, new_hess = sub.evaluate(new)
        scale = np.ones(len(rows))
        worse = ~(new_ll >= ll[rows] - 1e-12)
        if worse.any():  # step halving where the likelihood would fall (or an order of thresholds break)
            bad = np.flatnonzero(worse)
            part = sub.take(bad)
            for _ in range(30):
                worse_part = ~(new_ll[bad] >= ll[rows[bad]] - 1e-12)
                if not worse_part.any():
                    break
                scale[bad[worse_part]] /= 2
                new[bad] = params[rows[bad]] + scale[bad, None] * step[bad]
                new_ll[bad] = part.evaluate(new[bad], derivatives=False)[0]
            new_ll[bad], new_grad[bad], new_hess[bad] = part.evaluate(new[bad])
        params[rows], ll[rows], grad[rows], hess[rows] = new, new_ll, new_grad, new_hess
        converged[rows] = size[moving] * scale < threshold
    return params, hess, ll, converged & active, iteration, grad


def fit(y: np.ndarray, X: np.ndarray, k: int, max_iter: int = 50, tol: float = 1e-10, *,
        groups: np.ndarray | None = None, n_groups: int = 1, weights: np.ndarray | None = None,
        offset: np.ndarray | None = None, start: np.ndarray | None = None, full: bool = False) -> BatchFit:
    """Fit every trial's model; a trial missing a category (a threshold not identified) is not converged.

    groups [trials, patients] in 0..n_groups-1: each group its own K-1 thresholds (alpha is then
    [trials, n_groups (K-1)], group by group). weights, offset [trials, patients]: frequency weights, and a
    term added to X beta. start [trials, n_groups (K-1) + p]: where Newton starts (alpha, then beta).
    full: the covariance of every parameter and the gradient at the estimate, too."""
    m = n_groups * (k - 1)

    def part(a: np.ndarray | None, s: int) -> np.ndarray | None:
        return None if a is None else a[s:s + BATCH]

    parts = [_fit_batch(y[s:s + BATCH], X[s:s + BATCH], k, max_iter, tol, part(groups, s), n_groups,
                        part(weights, s), part(offset, s), part(start, s)) for s in range(0, len(y), BATCH)]
    params = np.concatenate([p[0] for p in parts])
    hess = np.concatenate([p[1] for p in parts])
    se = np.full(params.shape, np.nan)
    known = np.isfinite(hess).all(axis=(1, 2))  # not for a trial missing a category
    with np.errstate(invalid="ignore"):
        inverse = _inverse(-hess[known])
        se[known] = np.sqrt(np.clip(np.diagonal(inverse, axis1=1, axis2=2), 0, None))
    covariance = gradient = None
    if full:
        covariance = np.full(hess.shape, np.nan)
        covariance[known] = inverse
        gradient = np.concatenate([p[5] for p in parts])
    return BatchFit(params[:, :m], params[:, m:], se[:, m:], np.concatenate([p[2] for p in parts]),
                    np.concatenate([p[3] for p in parts]), max(p[4] for p in parts), covariance, gradient)
