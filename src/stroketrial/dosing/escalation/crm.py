"""The continual reassessment method (O'Quigley J, Pepe M, Fisher L. Biometrics 1990;46:33-48).

One-parameter power model: p_j(a) = skeleton_j ** exp(a), prior a ~ Normal(0, 1.34)
(the variance dfcrm uses by default). After each cohort the posterior of a is computed
on a grid (exact numerical integration, vectorised across trials), and the next cohort
goes to the dose whose posterior mean toxicity is closest to the target, never skipping
an untried dose upwards. Safety stopping rule: stop without an MTD when
Pr(p_1 > target | data) > 0.90 once at least 3 patients have been treated. At the end
the MTD is the dose whose posterior mean toxicity is closest to the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .common import Decision, EscalationInputError, OperatingCharacteristics, check_tox, treat_next_cohorts

GRID = np.linspace(-6, 6, 241)


def calibrated_skeleton(target: float, n_levels: int, halfwidth: float = 0.05,
                        prior_mtd: int | None = None) -> tuple[float, ...]:
    """A skeleton by the indifference-interval calibration of Lee SM, Cheung YK (Clin Trials
    2009;6:227-238): the prior MTD level sits at the target, and neighbours are spaced so that
    level k is recommended while its DLT rate is within target +/- halfwidth. Derived for the
    power model: at the boundary between levels k and k+1, p_k = target - halfwidth and
    p_k+1 = target + halfwidth for the same exp(a)."""
    if not 0 < halfwidth < min(target, 1 - target):
        raise EscalationInputError(f"halfwidth {halfwidth:g} must be between 0 and {min(target, 1 - target):g}")
    nu = prior_mtd or (n_levels + 1) // 2
    sk = np.empty(n_levels)
    sk[nu - 1] = target
    for k in range(nu - 1, 0, -1):  # downwards from the prior MTD
        e = np.log(target + halfwidth) / np.log(sk[k])
        sk[k - 1] = np.exp(np.log(target - halfwidth) / e)
    for k in range(nu - 1, n_levels - 1):  # upwards
        e = np.log(target - halfwidth) / np.log(sk[k])
        sk[k + 1] = np.exp(np.log(target + halfwidth) / e)
    return tuple(float(round(x, 4)) for x in sk)


@dataclass(frozen=True)
class Crm:
    target: float
    skeleton: tuple[float, ...]
    cohort_size: int = 3
    n_cohorts: int = 10
    prior_variance: float = 1.34
    stop_probability: float = 0.90

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise EscalationInputError(f"--target {self.target:g} is not a probability between 0 and 1")
        sk = np.asarray(self.skeleton, dtype=float)
        if sk.ndim != 1 or len(sk) < 2 or np.any((sk <= 0) | (sk >= 1)) or np.any(np.diff(sk) <= 0):
            raise EscalationInputError("--skeleton is a strictly increasing list of prior DLT probabilities in "
                                       f"(0, 1), one per level (got {', '.join(f'{x:g}' for x in sk)})")

    def _model(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sk = np.asarray(self.skeleton)
        log_p = np.exp(GRID)[:, None] * np.log(sk)[None, :]  # [grid, dose]: log of skeleton ** exp(a)
        # Far out on the grid p rounds to 0 or 1; clip so that 0 x log(0) never makes a NaN.
        log_q = np.log1p(-np.minimum(np.exp(log_p), 1 - 1e-15))
        prior = np.exp(-GRID ** 2 / (2 * self.prior_variance))
        return log_p, log_q, prior * np.gradient(GRID)

    def posterior(self, n: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(posterior mean DLT probability per dose [trials, doses], Pr(p_1 > target) [trials])."""
        log_p, log_q, prior = self._model()
        loglik = y @ log_p.T + (n - y) @ log_q.T  # [trials, grid]
        loglik -= loglik.max(axis=1, keepdims=True)
        weight = np.exp(loglik) * prior[None, :]
        weight /= weight.sum(axis=1, keepdims=True)
        mean = weight @ np.exp(log_p)
        # p_1(a) > target exactly when a < log(log(target) / log(skeleton_1))
        cut = np.log(np.log(self.target) / np.log(self.skeleton[0]))
        return mean, weight[:, GRID < cut].sum(axis=1)

    def step(self, n: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(next dose, stop for toxicity) per trial, from the counts so far."""
        mean, p_over = self.posterior(n, y)
        best = np.abs(mean - self.target).argmin(axis=1)
        highest_tried = np.where(n > 0, np.arange(n.shape[1])[None, :], -1).max(axis=1)
        nxt = np.minimum(best, highest_tried + 1)
        stop = (n.sum(axis=1) >= 3) & (p_over > self.stop_probability)
        return nxt, stop

    def simulate(self, tox: Sequence[float], trials: int, rng: np.random.Generator) -> OperatingCharacteristics:
        p = check_tox(tox)
        k = len(p)
        if k != len(self.skeleton):
            raise EscalationInputError(f"--skeleton has {len(self.skeleton)} levels but --tox has {k}")
        n = np.zeros((trials, k), dtype=int)
        y = np.zeros((trials, k), dtype=int)
        current = np.zeros(trials, dtype=int)
        active = np.ones(trials, dtype=bool)
        stopped = np.zeros(trials, dtype=bool)
        for _ in range(self.n_cohorts):
            if not active.any():
                break
            idx, cur = treat_next_cohorts(n, y, active, current, p, self.cohort_size, rng)
            nxt, stop = self.step(n[idx], y[idx])
            current[idx] = nxt
            stopped[idx[stop]] = True
            active[idx[stop]] = False
        mean, _ = self.posterior(n, y)
        selected = np.where(stopped, -1, np.abs(mean - self.target).argmin(axis=1))
        p_select = np.array([(selected == j).mean() for j in range(k)])
        return OperatingCharacteristics("crm", p.tolist(), p_select.tolist(), float((selected == -1).mean()),
                                        n.mean(axis=0).tolist(), y.mean(axis=0).tolist(), method="simulation",
                                        trials=trials, settings=self.settings())

    def decide(self, counts: Mapping[int, tuple[int, int]], n_levels: int) -> Decision:
        if n_levels != len(self.skeleton):
            raise EscalationInputError(f"--skeleton has {len(self.skeleton)} levels but the trial has {n_levels}")
        n = np.zeros((1, n_levels), dtype=int)
        y = np.zeros((1, n_levels), dtype=int)
        for level, (dlt, patients) in counts.items():
            if not 1 <= level <= n_levels:
                raise EscalationInputError(f"--dlt names level {level}; the trial has levels 1 to {n_levels}")
            n[0, level - 1], y[0, level - 1] = patients, dlt
        if n.sum() == 0:
            return Decision("treat", 1, None, "start", "treat the first cohort at level 1")
        mean, p_over = self.posterior(n, y)
        estimates = ", ".join(f"{m:.3f}" for m in mean[0])
        nxt, stop = self.step(n, y)
        if stop[0]:
            return Decision("stop", None, None, "safety_stop",
                            f"Pr(DLT rate at level 1 > {self.target:g}) = {p_over[0]:.3f} > {self.stop_probability:g}: "
                            "stop, no MTD")
        if n.sum() >= self.cohort_size * self.n_cohorts:
            mtd = int(np.abs(mean[0] - self.target).argmin()) + 1
            return Decision("stop", None, mtd, "sample_size_reached",
                            f"the planned sample size is reached; posterior mean DLT rates {estimates}")
        return Decision("treat", int(nxt[0]) + 1, None, "closest_to_target",
                        f"posterior mean DLT rates {estimates}: level {int(nxt[0]) + 1} is closest to the target "
                        f"{self.target:g} (no skipping of untried levels)")

    def settings(self) -> dict:
        return {"target": self.target, "skeleton": list(self.skeleton), "cohort_size": self.cohort_size,
                "n_cohorts": self.n_cohorts, "prior_variance": self.prior_variance,
                "stop_probability": self.stop_probability}
