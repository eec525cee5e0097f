"""Group-sequential boundaries by Lan-DeMets alpha spending, computed by numerical integration.

Spending functions (Lan KKG, DeMets DL, Biometrika 1983;70:659-63), as rpact defines them:
O'Brien-Fleming type a(t) = 2 (1 - Phi(Phi^-1(1 - alpha/2) / sqrt(t))) and Pocock type
a(t) = alpha log(1 + (e - 1) t) for one-sided alpha; a two-sided design spends alpha/2 by
these on each side.

The crossing probabilities come from the recursive integration of Armitage, McPherson
and Rowe (J R Stat Soc A 1969) on the score scale B_k = Z_k sqrt(t_k), whose increments
are independent normal: deterministic, and accurate to about 1e-9 on the grid used.
Futility bounds are non-binding: they are reported and used for the expected sample
size, never for the efficacy boundaries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from .samplesize import DesignInputError

GRID = 2001


def spending(t: np.ndarray, alpha: float, kind: str, sided: int = 1) -> np.ndarray:
    """Cumulative alpha spent by information t; two-sided designs spend alpha/2 on each side (as rpact does)."""
    t = np.asarray(t, dtype=float)
    if sided == 2:
        return 2 * spending(t, alpha / 2, kind, 1)
    if kind == "obf":
        return 2 * (1 - stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t)))
    if kind == "pocock":
        return alpha * np.log(1 + (np.e - 1) * t)
    raise DesignInputError(f"--spending {kind!r} is not obf or pocock")


@dataclass(frozen=True)
class Boundaries:
    information: list[float]
    z: list[float]
    nominal_p: list[float]
    cumulative_alpha: list[float]
    alpha: float
    sided: int
    spending: str
    futility: list[float] | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _continue_density(upper: float, lower: float, prev_grid: np.ndarray | None, prev_density: np.ndarray | None,
                      dt: float, t: float, drift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Density of B_k (times the probability of having continued) on a grid over the continuation region."""
    grid = np.linspace(lower * np.sqrt(t), upper * np.sqrt(t), GRID)
    if prev_grid is None:
        density = stats.norm.pdf(grid, loc=drift * t, scale=np.sqrt(t))
    else:
        assert prev_density is not None  # both callers pass the previous look's grid and density together
        kernel = stats.norm.pdf(grid[:, None] - prev_grid[None, :], loc=drift * dt, scale=np.sqrt(dt))
        density = np.trapezoid(kernel * prev_density[None, :], prev_grid, axis=1)
    return grid, density


def _excess_crossing(c, grid, density, dt, t_k, sided, target):
    """How far the chance of first crossing at bound c exceeds the alpha this look may spend."""
    return _cross_prob(c, grid, density, dt, t_k, 0.0, sided) - target


def _cross_prob(c: float, prev_grid, prev_density, dt: float, t: float, drift: float, sided: int) -> float:
    """P(continue to stage k-1, then Z_k beyond +c (or beyond either side when two-sided))."""
    b = c * np.sqrt(t)
    if prev_grid is None:
        up = stats.norm.sf(b, loc=drift * t, scale=np.sqrt(t))
        low = stats.norm.cdf(-b, loc=drift * t, scale=np.sqrt(t)) if sided == 2 else 0.0
        return float(up + low)
    up = stats.norm.sf(b - prev_grid, loc=drift * dt, scale=np.sqrt(dt))
    total = up + (stats.norm.cdf(-b - prev_grid, loc=drift * dt, scale=np.sqrt(dt)) if sided == 2 else 0.0)
    return float(np.trapezoid(total * prev_density, prev_grid))


def boundaries(looks: int, alpha: float = 0.025, sided: int = 1, kind: str = "obf",
               information: Sequence[float] | None = None, futility: Sequence[float] | None = None) -> Boundaries:
    if not 1 <= looks <= 20:
        raise DesignInputError(f"--looks {looks} must be 1 to 20")
    if sided not in (1, 2):
        raise DesignInputError(f"--sided {sided} must be 1 or 2")
    if not 0 < alpha < 0.5:
        raise DesignInputError(f"--alpha {alpha:g} must be between 0 and 0.5")
    t = np.asarray(information if information is not None else np.arange(1, looks + 1) / looks, dtype=float)
    if len(t) != looks or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1:
        raise DesignInputError(f"--information must be {looks} increasing fractions in (0, 1], the last usually 1 "
                               f"(got {', '.join(f'{x:g}' for x in t)})")
    if futility is not None and len(futility) != looks - 1:
        raise DesignInputError(f"--futility gives one z bound per interim look ({looks - 1})")
    spent = spending(t, alpha, kind, sided)
    z, grid, density, previous_t = [], None, None, 0.0
    for k in range(looks):
        target = spent[k] - (spent[k - 1] if k else 0.0)
        dt = t[k] - previous_t
        c = optimize.brentq(_excess_crossing, 0.01, 12, args=(grid, density, dt, t[k], sided, target), xtol=1e-10)
        z.append(float(c))
        lower = -c if sided == 2 else -12.0
        grid, density = _continue_density(c, lower, grid, density, dt, t[k])
        previous_t = t[k]
    nominal = [float(stats.norm.sf(c) * sided) for c in z]
    return Boundaries(t.tolist(), z, nominal, spent.tolist(), alpha, sided, kind,
                      list(futility) if futility is not None else None)


def stopping_probabilities(b: Boundaries, drift: float, upper_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(P(reject at look k), P(stop for futility at look k)) for a drift theta: E[Z_k] = theta sqrt(t_k).
    Futility bounds (non-binding) are assumed obeyed, for the expected sample size. `upper_only` counts
    only rejections in the direction of the effect (power)."""
    t = np.asarray(b.information)
    reject, futile = [], []
    grid = density = None
    previous_t = 0.0
    for k, c in enumerate(b.z):
        dt = t[k] - previous_t
        reject.append(_cross_prob(c, grid, density, dt, t[k], drift, 1 if upper_only else b.sided))
        lower = -c if b.sided == 2 else -12.0
        if b.futility is not None and k < len(b.z) - 1:
            lower = max(lower, b.futility[k])
            below = _cross_prob(-lower, grid, density, dt, t[k], -drift, 1) if grid is not None else \
                float(stats.norm.cdf(lower * np.sqrt(t[k]), loc=drift * t[k], scale=np.sqrt(t[k])))
            futile.append(below)
        else:
            futile.append(0.0)
        grid, density = _continue_density(c, lower, grid, density, dt, t[k], drift)
        previous_t = t[k]
    return np.asarray(reject), np.asarray(futile)


def inflation(b: Boundaries, power: float) -> dict:
    """Maximum sample size as a multiple of the fixed design's, and expected sizes under H0 and H1."""
    z_fixed = stats.norm.ppf(1 - b.alpha / b.sided) + stats.norm.ppf(power)

    def power_gap(theta):
        return stopping_probabilities(Boundaries(b.information, b.z, b.nominal_p, b.cumulative_alpha, b.alpha,
                                                 b.sided, b.spending, None), theta, upper_only=True)[0].sum() - power

    theta = optimize.brentq(power_gap, 0.1, 10, xtol=1e-10)
    factor = (theta / z_fixed) ** 2
    t = np.asarray(b.information)
    out = {"inflation_factor": float(factor), "drift": float(theta)}
    for label, drift in (("h0", 0.0), ("h1", theta)):
        reject, futile = stopping_probabilities(b, drift)
        stop = reject + futile
        stop[-1] = 1 - stop[:-1].sum()
        out[f"expected_fraction_{label}"] = float(np.sum(stop * t) * factor)
    return out
