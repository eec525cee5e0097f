"""Sample size for a two-arm trial: two proportions, the mRS shift (Whitehead 1993), a continuous outcome
(normal approximation or the t-test), with every inflation step reported, and the maximum sample size of a
group-sequential design.

Allocation ratio r = n_treatment / n_control. Two-sided alpha unless stated. Rounding is per arm: each arm's
unrounded n is rounded up, then the arms are added, as rpact's sample sizes are read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from .errors import DesignInputError


@dataclass(frozen=True)
class SampleSize:
    endpoint: str
    n_total: int
    n_per_arm: dict[str, int]
    steps: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    unrounded: dict[str, float] = field(default_factory=dict)  # each arm's n before rounding up and inflating

    def to_json(self) -> dict:
        return asdict(self)


def _z(alpha: float, power: float, sided: int) -> tuple[float, float]:
    if not 0 < alpha < 1:
        raise DesignInputError(f"--alpha {alpha:g} must be between 0 and 1")
    if not 0 < power < 1:
        raise DesignInputError(f"--power {power:g} must be between 0 and 1")
    if sided not in (1, 2):
        raise DesignInputError(f"--sided {sided} must be 1 or 2")
    return stats.norm.ppf(1 - alpha / sided), stats.norm.ppf(power)


def _arms(n_control: float, ratio: float, steps: list[str], dropout: float, non_adherence: float,
          endpoint: str, inputs: dict) -> SampleSize:
    if ratio <= 0:
        raise DesignInputError(f"--ratio {ratio:g} must be positive (n treatment / n control)")
    if not 0 <= dropout < 1 or not 0 <= non_adherence < 1:
        raise DesignInputError("--dropout and --non-adherence are proportions from 0 to below 1")
    unrounded = {"treatment": float(n_control * ratio), "control": float(n_control)}
    control = math.ceil(n_control - 1e-9)
    treatment = math.ceil(n_control * ratio - 1e-9)
    steps.append(f"rounded up: {treatment} treatment + {control} control = {treatment + control}")
    if non_adherence:
        # As IMPACT-LVO planned it: n x (1 + r) per arm, not n / (1 - r).
        treatment, control = (math.ceil(x * (1 + non_adherence) - 1e-9) for x in (treatment, control))
        steps.append(f"non-adherence {non_adherence:g}: each arm x (1 + {non_adherence:g}) = {treatment} + {control}")
    if dropout:
        treatment, control = (math.ceil(x / (1 - dropout) - 1e-9) for x in (treatment, control))
        steps.append(f"dropout {dropout:g}: each arm / (1 - {dropout:g}) = {treatment} + {control}")
    inputs = inputs | {"dropout": dropout, "non_adherence": non_adherence}
    return SampleSize(endpoint, treatment + control, {"treatment": treatment, "control": control}, steps, inputs,
                      unrounded)


def group_sequential_max(fixed: SampleSize, inflation_factor: float) -> SampleSize:
    """The maximum sample size of a group-sequential design: each arm's unrounded fixed-design n times the
    inflation factor, rounded up per arm (rpact: maxNumberOfSubjects1 and 2 = nFixed x inflationFactor x
    r / (1 + r) and / (1 + r)), then the fixed design's non-adherence and dropout inflation, per arm."""
    if not inflation_factor > 0:
        raise DesignInputError(f"inflation factor {inflation_factor:g} must be positive")
    ratio = fixed.inputs["ratio"]
    control = fixed.unrounded["control"] * inflation_factor
    steps = [f"group-sequential maximum: each arm's unrounded n x inflation factor {inflation_factor:.6f} = "
             f"{control * ratio:.2f} treatment, {control:.2f} control"]
    return _arms(control, ratio, steps, fixed.inputs.get("dropout", 0), fixed.inputs.get("non_adherence", 0),
                 fixed.endpoint, fixed.inputs | {"inflation_factor": inflation_factor})


def two_proportions(p_control: float, p_treatment: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1,
                    sided: int = 2, continuity: bool = False, dropout: float = 0,
                    non_adherence: float = 0) -> SampleSize:
    """Normal approximation with the pooled variance under H0 (Fleiss, Levin and Paik 2003, eq. 4.19);
    the continuity correction of Fleiss, Tytun and Ury (Biometrics 1980;36:343-6)."""
    for name, p in (("--p-control", p_control), ("--p-treatment", p_treatment)):
        if not 0 < p < 1:
            raise DesignInputError(f"{name} {p:g} must be a proportion between 0 and 1")
    if p_control == p_treatment:
        raise DesignInputError("--p-control and --p-treatment are equal: there is no difference to detect")
    za, zb = _z(alpha, power, sided)
    r = ratio
    p_bar = (p_control + r * p_treatment) / (1 + r)
    delta = abs(p_treatment - p_control)
    n_c = (za * math.sqrt(p_bar * (1 - p_bar) * (1 + 1 / r))
           + zb * math.sqrt(p_control * (1 - p_control) + p_treatment * (1 - p_treatment) / r)) ** 2 / delta ** 2
    steps = [f"z(1-alpha/{sided}) = {za:.4f}, z(power) = {zb:.4f}; pooled p = {p_bar:.4f}",
             f"control arm n = {n_c:.2f} (normal approximation, pooled variance under H0)"]
    if continuity:
        n_c = n_c / 4 * (1 + math.sqrt(1 + 2 * (r + 1) / (n_c * r * delta))) ** 2
        steps.append(f"continuity correction (Fleiss, Tytun and Ury): control arm n = {n_c:.2f}")
    return _arms(n_c, r, steps, dropout, non_adherence, "two proportions",
                 {"p_control": p_control, "p_treatment": p_treatment, "alpha": alpha, "power": power, "ratio": r,
                  "sided": sided, "continuity": continuity})


def treatment_distribution(control: Sequence[float] | np.ndarray, common_or: float) -> np.ndarray:
    """The treatment arm's mRS distribution: cumulative odds of mRS <= j multiplied by the common OR."""
    p = np.asarray(control, dtype=float)
    cumulative = np.cumsum(p)[:-1]
    shifted = common_or * cumulative / (1 - cumulative + common_or * cumulative)
    return np.diff(np.concatenate([[0.0], shifted, [1.0]]))


def check_distribution(control: Sequence[float]) -> np.ndarray:
    p = np.asarray(control, dtype=float)
    if p.ndim != 1 or len(p) < 2 or np.any(p < 0) or abs(p.sum() - 1) > 1e-6:
        raise DesignInputError(f"--control-mrs must be proportions for each mRS level summing to 1 (got "
                               f"{', '.join(f'{x:g}' for x in p)}, sum {p.sum():g})")
    return p / p.sum()


def ordinal_shift(control_mrs: Sequence[float], common_or: float, alpha: float = 0.05, power: float = 0.8,
                  ratio: float = 1, sided: int = 2, dropout: float = 0, non_adherence: float = 0) -> SampleSize:
    """Whitehead J, Stat Med 1993;12:2257-71: N = 3 (r+1)^2 (z_a + z_b)^2 / (r (log OR)^2 (1 - sum pbar^3)),
    with pbar the average of the two arms' anticipated mRS distributions (weighted by allocation)."""
    p_c = check_distribution(control_mrs)
    if common_or <= 0 or common_or == 1:
        raise DesignInputError(f"--common-or {common_or:g} must be positive and not 1")
    za, zb = _z(alpha, power, sided)
    p_t = treatment_distribution(p_c, common_or)
    p_bar = (p_c + ratio * p_t) / (1 + ratio)
    total = 3 * (ratio + 1) ** 2 * (za + zb) ** 2 / (ratio * math.log(common_or) ** 2 * (1 - np.sum(p_bar ** 3)))
    steps = [f"treatment mRS distribution under OR {common_or:g}: {', '.join(f'{x:.3f}' for x in p_t)}",
             f"1 - sum(pbar^3) = {1 - np.sum(p_bar ** 3):.4f}; z(1-alpha/{sided}) = {za:.4f}, z(power) = {zb:.4f}",
             f"Whitehead total N = {total:.2f}"]
    return _arms(total / (1 + ratio), ratio, steps, dropout, non_adherence, "ordinal shift (mRS)",
                 {"control_mrs": p_c.tolist(), "common_or": common_or, "alpha": alpha, "power": power,
                  "ratio": ratio, "sided": sided})


def continuous(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1, sided: int = 2,
               dropout: float = 0, non_adherence: float = 0, normal_approximation: bool = True) -> SampleSize:
    """A difference in means. normal_approximation=True (the default, as before): the z formula.
    False: the two-sample t-test's own power, from the noncentral t with n_t + n_c - 2 degrees of freedom,
    solved for n, as rpact's getSampleSizeMeans does by default (normalApproximation = FALSE; power from
    the upper tail only, twoSidedPower = FALSE); it needs a patient or two more per arm."""
    if sd <= 0 or delta == 0:
        raise DesignInputError("--sd must be positive and --delta non-zero")
    if ratio <= 0:
        raise DesignInputError(f"--ratio {ratio:g} must be positive (n treatment / n control)")
    za, zb = _z(alpha, power, sided)
    n_z = (1 + 1 / ratio) * sd ** 2 * (za + zb) ** 2 / delta ** 2
    if normal_approximation:
        n_c = n_z
        steps = [f"control arm n = (1 + 1/r) sd^2 (z_a + z_b)^2 / delta^2 = {n_c:.2f}"]
    else:
        n_c = _t_test_control_n(abs(delta) / sd, alpha / sided, power, ratio, n_z)
        steps = [f"normal approximation: control arm n = (1 + 1/r) sd^2 (z_a + z_b)^2 / delta^2 = {n_z:.2f}",
                 f"t-test: control arm n = {n_c:.2f}, where the noncentral t (df = n (1 + r) - 2, noncentrality "
                 f"|delta| / (sd sqrt(1/n + 1/(r n)))) exceeds t(1-alpha/{sided}, df) with probability {power:g}"]
    return _arms(n_c, ratio, steps, dropout, non_adherence, "continuous",
                 {"delta": delta, "sd": sd, "alpha": alpha, "power": power, "ratio": ratio, "sided": sided,
                  "normal_approximation": normal_approximation})


def _t_test_control_n(effect: float, alpha_one_side: float, power: float, ratio: float, n_z: float) -> float:
    """The control arm's (unrounded) n at which the two-sample t-test has the power asked for."""
    def gap(n: float) -> float:
        df = n * (1 + ratio) - 2
        ncp = effect * math.sqrt(n * ratio / (1 + ratio))
        return float(stats.nct.sf(stats.t.ppf(1 - alpha_one_side, df), df, ncp)) - power

    low = max(n_z, 2 / (1 + ratio)) + 1e-9  # the t-test needs at least the normal approximation's n (df > 0)
    high = max(2 * low, low + 4)
    while gap(high) < 0:
        high *= 2
    if gap(low) >= 0:
        return low
    return float(optimize.brentq(gap, low, high, xtol=1e-10, rtol=1e-14))
