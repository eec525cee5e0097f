"""Today's power simulation as it was before issue 22, kept verbatim as the reference.

`tests/test_power_speed_equivalence.py` checks that the fast path (`power.run_chunk`,
`batched_po_fit.fit`) gives the same trials and the same estimates to 1e-8 for the same
seed, and `benchmarks/power.py` times both in one run. Not used by `design power`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..protocol import Protocol
from ..randomization import ArmSlots, simulate_slots
from .batched_po_fit import BatchFit
from .power import COVARIATE_EFFECTS, PowerSettings, _pool, _scheme
from .samplesize import check_distribution


def _logistic(u):
    return 1.0 / (1.0 + np.exp(-u))


def _pieces(params, y, X, k):
    m = k - 1
    alpha, beta = params[:, :m], params[:, m:]
    eta = np.einsum("tnp,tp->tn", X, beta)
    lo_idx, hi_idx = y - 1, y  # threshold below and above each observation
    a_full = np.concatenate([alpha, np.full((len(alpha), 1), np.inf)], axis=1)
    b_full = np.concatenate([np.full((len(alpha), 1), -np.inf), alpha], axis=1)
    a = np.take_along_axis(a_full, hi_idx, axis=1) - eta
    b = np.take_along_axis(b_full, y, axis=1) - eta
    Fa, Fb = _logistic(a), _logistic(b)
    Fa = np.where(np.isinf(a), 1.0, Fa)
    Fb = np.where(np.isinf(b), 0.0, Fb)
    fa, fb = Fa * (1 - Fa), Fb * (1 - Fb)
    pi = Fa - Fb
    return alpha, beta, eta, lo_idx, hi_idx, a, b, Fa, Fb, fa, fb, pi


def _loglik(params, y, X, k):
    *_, pi = _pieces(params, y, X, k)
    with np.errstate(divide="ignore"):
        return np.where(np.all(pi > 0, axis=1), np.log(np.maximum(pi, 1e-300)).sum(axis=1), -np.inf)


def _grad_hess(params, y, X, k):
    m = k - 1
    _, _, _, lo_idx, hi_idx, _, _, Fa, Fb, fa, fb, pi = _pieces(params, y, X, k)
    dfa, dfb = fa * (1 - 2 * Fa), fb * (1 - 2 * Fb)
    hi_onehot = (hi_idx[..., None] == np.arange(m)).astype(float)  # [t, n, m]; y = K-1 has no upper threshold
    lo_onehot = (lo_idx[..., None] == np.arange(m)).astype(float)
    g_hi, g_lo = fa / pi, -fb / pi
    d = fa - fb
    grad_alpha = np.einsum("tn,tnm->tm", g_hi, hi_onehot) + np.einsum("tn,tnm->tm", g_lo, lo_onehot)
    grad_beta = -np.einsum("tn,tnp->tp", d / pi, X)
    pi2 = pi * pi
    h_hh = dfa / pi - fa * fa / pi2
    h_ll = -dfb / pi - fb * fb / pi2
    h_hl = fa * fb / pi2
    # The one-hot rows make the threshold block sparse: a diagonal from each observation's upper and lower
    # threshold, and the (k, k-1) pairs they share; summing by category avoids a [patients, K, K] product.
    diag = np.einsum("tn,tnm->tm", h_hh, hi_onehot) + np.einsum("tn,tnm->tm", h_ll, lo_onehot)
    pair = np.einsum("tn,tnm->tm", h_hl, hi_onehot)[:, 1:]  # observations with y = j + 1 link thresholds j and j+1
    hess_aa = np.zeros((len(diag), m, m))
    hess_aa[:, np.arange(m), np.arange(m)] = diag
    hess_aa[:, np.arange(1, m), np.arange(m - 1)] = pair
    hess_aa[:, np.arange(m - 1), np.arange(1, m)] = pair
    dg = (-(dfa - dfb) * pi + d * d) / pi2
    hess_bb = -np.einsum("tn,tnp,tnq->tpq", dg, X, X)
    c_hi = (-dfa * pi + fa * d) / pi2
    c_lo = (dfb * pi - fb * d) / pi2
    hess_ab = np.einsum("tn,tnm,tnp->tmp", c_hi, hi_onehot, X) + np.einsum("tn,tnm,tnp->tmp", c_lo, lo_onehot, X)
    grad = np.concatenate([grad_alpha, grad_beta], axis=1)
    hess = np.concatenate([np.concatenate([hess_aa, hess_ab], axis=2),
                           np.concatenate([np.transpose(hess_ab, (0, 2, 1)), hess_bb], axis=2)], axis=1)
    return grad, hess


def fit_reference(y: np.ndarray, X: np.ndarray, k: int, max_iter: int = 50, tol: float = 1e-10) -> BatchFit:
    """Fit every trial's model; a trial missing a category (a threshold not identified) is not converged."""
    trials, n = y.shape
    counts = np.stack([(y == j).sum(axis=1) for j in range(k)], axis=1)
    cumulative = np.clip(np.cumsum(counts, axis=1)[:, :-1] / n, 1e-4, 1 - 1e-4)
    params = np.concatenate([np.log(cumulative / (1 - cumulative)), np.zeros((trials, X.shape[2]))], axis=1)
    ll = _loglik(params, y, X, k)
    active = np.all(counts > 0, axis=1)
    converged = np.zeros(trials, dtype=bool)
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007  (the count is reported after the loop)
        idx = np.flatnonzero(active & ~converged)
        if not len(idx):
            break
        grad, hess = _grad_hess(params[idx], y[idx], X[idx], k)
        try:
            step = np.linalg.solve(-hess, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(-hess[0], grad[0], rcond=None)[0][None, :] if len(idx) == 1 else \
                np.stack([np.linalg.lstsq(-h, g, rcond=None)[0] for h, g in zip(hess, grad, strict=True)])
        scale = np.ones(len(idx))
        new = params[idx] + step
        new_ll = _loglik(new, y[idx], X[idx], k)
        for _ in range(30):  # step halving where the likelihood would fall (or an order of thresholds break)
            worse = ~(new_ll >= ll[idx] - 1e-12)
            if not worse.any():
                break
            scale[worse] /= 2
            new[worse] = params[idx][worse] + scale[worse, None] * step[worse]
            new_ll[worse] = _loglik(new[worse], y[idx][worse], X[idx][worse], k)
        params[idx] = new
        ll[idx] = new_ll
        converged[idx] = np.abs(step).max(axis=1) * scale < tol ** 0.5 * 1e-2
    grad, hess = _grad_hess(params, y, X, k)
    with np.errstate(invalid="ignore"):
        cov = np.linalg.inv(-hess)
        se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
    m = k - 1
    return BatchFit(params[:, :m], params[:, m:], se[:, m:], ll, converged & active, iteration)


def run_chunk_reference(protocol: Protocol, settings: PowerSettings, seed: np.random.SeedSequence, trials: int) -> dict:
    """Simulate and analyse `trials` trials; returns the arrays to combine (pure: same seed, same arrays)."""
    codes_pool, n_levels, cov_pool = _pool(protocol)
    rng = np.random.default_rng(seed)
    n = settings.n
    pick = rng.integers(0, len(cov_pool), size=(trials, n))
    codes, cov = codes_pool[pick], cov_pool[pick]
    arms = ArmSlots.of(protocol.arms)
    u, v = rng.random((trials, n)), rng.random((trials, n))
    slots = simulate_slots(_scheme(protocol), arms, codes, n_levels, u, v)
    treatment = next(i for i, a in enumerate(protocol.arms) if a.role == "experimental")
    treated = (np.asarray(arms.slot_arm)[slots] == treatment).astype(float)
    eta = sum(effect * (cov[..., j] - centre) for j, (effect, centre) in enumerate(COVARIATE_EFFECTS.values()))
    p = check_distribution(settings.control_mrs)
    cuts = np.log(np.cumsum(p)[:-1] / (1 - np.cumsum(p)[:-1]))
    cumulative = 1 / (1 + np.exp(-(cuts + np.log(settings.common_or) * treated[..., None] - eta[..., None])))
    mrs = (rng.random((trials, n))[..., None] > cumulative).sum(axis=-1)
    observed = rng.random((trials, n)) >= settings.dropout
    # Dropouts leave the analysis; keep arrays rectangular by analysing a fixed number per trial (the
    # smallest observed count in the chunk, taking observed patients first, in enrolment order).
    keep = int(observed.sum(axis=1).min())
    order = np.argsort(~observed, axis=1, kind="stable")[:, :keep]
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    y = take(mrs) if settings.endpoint == "ordinal" else (take(mrs) > settings.mrs_at_most).astype(int)
    k = 7 if settings.endpoint == "ordinal" else 2
    columns = [take(treated)] + [take(cov[..., j]) - centre for j, (name, (_, centre)) in
                                 enumerate(COVARIATE_EFFECTS.items()) if name in settings.adjust]
    X = np.stack(columns, axis=2)
    fitted = fit_reference(y, X, k)
    beta, se = fitted.beta[:, 0], fitted.se[:, 0]
    z = -beta / se  # above 0 favours treatment (shift toward lower mRS / more mRS 0-2)
    reject = (2 * stats.norm.sf(np.abs(z)) < settings.alpha) & (z > 0) & fitted.converged
    return {"reject": reject, "log_or": -beta, "converged": fitted.converged, "analysed": keep}
