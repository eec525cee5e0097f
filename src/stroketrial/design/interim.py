"""An interim analysis of a group-sequential trial at one look: the boundary recomputed at the information actually
observed, the rule's recommendation, conditional power and the predictive probability of success.

The boundaries are Lan-DeMets alpha spending (`groupseq.boundaries`) evaluated at the fractions observed at the
looks so far, so the alpha spent by earlier looks is carried into this one, as rpact's
`getDesignGroupSequential(informationRates = observed)` does. Conditional power is the chance of crossing the
efficacy boundary at a later planned look given the z now, for a drift theta (the expected z at full information):
under the planned effect and under the current trend (theta = z / sqrt(t), rpact's default thetaH1). The predictive
probability averages conditional power over the drift's posterior under a flat prior, theta | z ~ N(z / sqrt(t),
1 / t) (Spiegelhalter, Freedman and Blackburn, Control Clin Trials 1986;7:8-17). Futility bounds are non-binding:
crossing one recommends stopping, but the efficacy boundaries never assume it (conditional power ignores them, as
rpact does).

The z statistic is oriented so that a positive z favours the experimental arm; a two-sided design has a symmetric
boundary below for harm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .groupseq import GRID, boundaries
from .samplesize import DesignInputError

CONTINUE = "continue"
EFFICACY = "stop for efficacy"
HARM = "stop for harm"
FUTILITY = "stop for futility"
NOT_SIGNIFICANT = "final analysis: the boundary was not crossed"
RECOMMENDATIONS = (CONTINUE, EFFICACY, HARM, FUTILITY, NOT_SIGNIFICANT)


@dataclass(frozen=True)
class LookResult:
    look: int  # 1-based
    information: float  # the fraction observed at this look
    z: float
    efficacy_bound: float  # z at or above: the efficacy boundary crossed
    harm_bound: float | None  # two-sided designs: z at or below
    futility_bound: float | None  # non-binding
    nominal_p: float  # the one-sided p-value the efficacy bound corresponds to
    alpha_spent: float  # cumulative, at this look
    recommendation: str
    conditional_power_planned: float | None  # None at the final look
    conditional_power_trend: float | None
    predictive_probability: float | None
    final: bool

    def to_json(self) -> dict:
        return asdict(self)


def _check_fractions(observed: Sequence[float], planned: Sequence[float]) -> None:
    t = np.asarray(observed, dtype=float)
    if len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0:
        raise DesignInputError(f"the information fractions observed at the looks must increase from above 0 "
                               f"(got {', '.join(f'{x:g}' for x in t)})")
    p = np.asarray(planned, dtype=float)
    if len(p) == 0 or np.any(np.diff(p) <= 0) or p[0] <= 0 or abs(p[-1] - 1) > 1e-12:
        raise DesignInputError(f"the planned looks must be increasing fractions ending at 1 "
                               f"(got {', '.join(f'{x:g}' for x in p)})")


def schedule(observed: Sequence[float], planned: Sequence[float]) -> list[float]:
    """The looks as they now stand: those held, at the fractions observed (the k-th held look is the k-th planned
    one, wherever it fell; one at or beyond full information is the final analysis, at 1), then the planned looks
    after them that are still ahead."""
    _check_fractions(observed, planned)
    held = [min(float(t), 1.0) for t in observed]
    if held[-1] >= 1.0:
        return held
    ahead = [float(t) for t in list(planned)[len(held):] if t > held[-1] + 1e-9]
    return held + (ahead or [1.0])


def conditional_power(z: float, t: float, future: Sequence[float], bounds: Sequence[float], drift: float) -> float:
    """P(crossing an efficacy bound at a later look | Z(t) = z) for a drift theta, E[Z(1)] = theta, on the score scale
    B(s) = Z(s) sqrt(s), whose increments are independent N(theta ds, ds). `future`: the later looks' fractions;
    `bounds`: their z bounds. The trial stops at the first crossing (recursive integration, as in groupseq)."""
    b_now = z * np.sqrt(t)
    total, grid, density, previous = 0.0, None, None, t
    for s, c in zip(future, bounds, strict=True):
        ds = s - previous
        b = c * np.sqrt(s)
        if grid is None:
            total += float(stats.norm.sf(b, loc=b_now + drift * ds, scale=np.sqrt(ds)))
            grid = np.linspace(b_now + drift * ds - 12 * np.sqrt(ds), b, GRID)
            density = stats.norm.pdf(grid, loc=b_now + drift * ds, scale=np.sqrt(ds))
        else:
            assert density is not None
            cross = stats.norm.sf(b - grid, loc=drift * ds, scale=np.sqrt(ds))
            total += float(np.trapezoid(cross * density, grid))
            new_grid = np.linspace(grid[0] + drift * ds - 12 * np.sqrt(ds), b, GRID)
            kernel = stats.norm.pdf(new_grid[:, None] - grid[None, :], loc=drift * ds, scale=np.sqrt(ds))
            density = np.trapezoid(kernel * density[None, :], grid, axis=1)
            grid = new_grid
        previous = s
    return min(max(total, 0.0), 1.0)


def predictive_probability(z: float, t: float, future: Sequence[float], bounds: Sequence[float],
                           nodes: int = 60) -> float:
    """Conditional power averaged over theta ~ N(z / sqrt(t), 1 / t), the posterior under a flat prior
    (Gauss-Hermite quadrature)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    mean, sd = z / np.sqrt(t), 1 / np.sqrt(t)
    values = [conditional_power(z, t, future, bounds, mean + sd * xi) for xi in x]
    return float(np.dot(w, values) / np.sqrt(2 * np.pi))


def analyse_look(observed: Sequence[float], z: float, planned: Sequence[float], alpha: float, sided: int,
                 spending: str, planned_drift: float | None = None,
                 futility: Sequence[float] | None = None) -> LookResult:
    """The look at `observed[-1]` (the earlier entries: the fractions of the looks already held) with its z.

    alpha is the design's overall type I error (two-sided when sided is 2: alpha / 2 is spent on each side);
    `futility`: non-binding z bounds, one per planned interim look, by position."""
    if not np.isfinite(z):
        raise DesignInputError(f"the z statistic at the look is {z!r}; it must be a finite number")
    looks = schedule(observed, planned)
    k = len(observed)
    design = boundaries(len(looks), alpha, sided, spending, information=looks)
    c = design.z[k - 1]
    t = looks[k - 1]
    final = k == len(looks)
    bound_futility = None
    if futility is not None and not final and k - 1 < len(futility):
        bound_futility = float(futility[k - 1])
    if z >= c:
        recommendation = EFFICACY
    elif sided == 2 and z <= -c:
        recommendation = HARM
    elif final:
        recommendation = NOT_SIGNIFICANT
    elif bound_futility is not None and z <= bound_futility:
        recommendation = FUTILITY
    else:
        recommendation = CONTINUE
    cp_planned = cp_trend = pp = None
    if not final:
        future, later = looks[k:], design.z[k:]
        cp_trend = conditional_power(z, t, future, later, z / np.sqrt(t))
        pp = predictive_probability(z, t, future, later)
        if planned_drift is not None:
            cp_planned = conditional_power(z, t, future, later, planned_drift)
    return LookResult(k, t, float(z), float(c), -float(c) if sided == 2 else None, bound_futility,
                      float(stats.norm.sf(c)), float(design.cumulative_alpha[k - 1]), recommendation,
                      cp_planned, cp_trend, pp, final)


def planned_drift_for_odds_ratio(common_or: float, patients: int, control_mrs: Sequence[float],
                                 allocation: float = 1.0) -> float:
    """The drift (expected z at full information) of a proportional-odds comparison with this common odds ratio
    (> 1 favours treatment), by Whitehead's variance of log OR (Stat Med 1993;12:2257-71): var = 1 / (n r /
    (1 + r)^2 (1 - sum p_i^3) / 3), p the pooled category proportions, r the allocation ratio."""
    p_control = np.asarray(control_mrs, dtype=float)
    p_control = p_control / p_control.sum()
    cumulative = np.cumsum(p_control)[:-1]
    odds = cumulative / (1 - cumulative) * common_or  # a shift toward lower (better) grades
    treated_cum = odds / (1 + odds)
    p_treated = np.diff(np.concatenate([[0.0], treated_cum, [1.0]]))
    pooled = (p_control + allocation * p_treated) / (1 + allocation)
    information = patients * allocation / (1 + allocation) ** 2 * (1 - np.sum(pooled ** 3)) / 3
    return float(np.log(common_or) * np.sqrt(information))
