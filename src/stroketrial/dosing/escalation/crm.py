"""The continual reassessment method (O'Quigley J, Pepe M, Fisher L. Biometrics 1990;46:33-48),
with the conventions of dfcrm (Cheung YK), the reference implementation:

- one-parameter power model p_j(beta) = skeleton_j ** exp(beta), prior beta ~ Normal(0, 1.34);
- after each cohort beta is estimated by its posterior mean (numerical integration on a
  grid, vectorised across trials: a smooth integrand, within about 1e-6 of adaptive
  quadrature) and the next cohort goes to the dose whose plug-in DLT rate
  skeleton_j ** exp(E[beta]) is closest to the target;
- restrictions: never more than one level above the last cohort's level, and no
  escalation right after a cohort whose DLT rate reached the target (coherence);
- at the end the MTD is the dose closest to the target on all the data.

Added for safety (dfcrm has no stopping rule; stop_probability=None turns it off): stop
without an MTD when Pr(p_1 > target | data) > 0.90 once at least 3 patients have been
treated. That probability is the posterior mass of beta below a cut-point. Summed on the
grid it came out low, by up to the mass of the grid cell that straddles the cut-point (0.004
for common data, 0.018 for one of the reference datasets), so it is integrated adaptively
(scipy's quad_vec, all trials at once) on each side of the cut-point, to about 1e-10.
tests/test_escalation.py checks it against R's integrate() on the same posterior
(tests/reference/make_crm_stop_reference.R), and the operating characteristics against
dfcrm's crmsim (tests/reference/make_crm_reference.R).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import integrate

from .decisions import Decision, EscalationInputError, OperatingCharacteristics, check_tox, treat_next_cohorts

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
    stop_probability: float | None = 0.90  # None: no safety stop, as dfcrm

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise EscalationInputError(f"--target {self.target:g} is not a probability between 0 and 1")
        sk = np.asarray(self.skeleton, dtype=float)
        if sk.ndim != 1 or len(sk) < 2 or np.any((sk <= 0) | (sk >= 1)) or np.any(np.diff(sk) <= 0):
            raise EscalationInputError("--skeleton is a strictly increasing list of prior DLT probabilities in "
                                       f"(0, 1), one per level (got {', '.join(f'{x:g}' for x in sk)})")
        if self.stop_probability is not None and not 0.5 <= self.stop_probability < 1:
            raise EscalationInputError(f"safety stop probability {self.stop_probability:g}: allowed 0.5 to below 1")

    def _model(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sk = np.asarray(self.skeleton)
        log_p = np.exp(GRID)[:, None] * np.log(sk)[None, :]  # [grid, dose]: log of skeleton ** exp(beta)
        # Far out on the grid p rounds to 0 or 1; clip so that 0 x log(0) never makes a NaN.
        log_q = np.log1p(-np.minimum(np.exp(log_p), 1 - 1e-15))
        prior = np.exp(-GRID ** 2 / (2 * self.prior_variance))
        return log_p, log_q, prior * np.gradient(GRID)

    def posterior(self, n: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(posterior mean of beta [trials], Pr(p_1 > target) [trials]) from the counts per dose."""
        return self.posterior_mean(n, y), self.prob_first_too_toxic(n, y)

    def _log_posterior_on_grid(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Log of likelihood x prior density (unnormalised) [trials, grid]."""
        log_p, log_q, _ = self._model()
        return y @ log_p.T + (n - y) @ log_q.T - GRID ** 2 / (2 * self.prior_variance)

    def posterior_mean(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Posterior mean of beta [trials], on the grid (a smooth integrand: accurate to about 1e-6)."""
        log_p, log_q, prior = self._model()
        loglik = y @ log_p.T + (n - y) @ log_q.T  # [trials, grid]
        loglik -= loglik.max(axis=1, keepdims=True)
        weight = np.exp(loglik) * prior[None, :]
        weight /= weight.sum(axis=1, keepdims=True)
        return weight @ GRID

    def prob_first_too_toxic(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pr(p_1 > target | data) [trials]: the posterior mass of beta below the cut-point where
        p_1(beta) = target (p_1 falls as beta grows), by adaptive quadrature over the whole line,
        normalised by the integral of the posterior, to about 1e-10."""
        if len(n) == 0:
            return np.zeros(0)
        # Simulated trials share histories: integrate each distinct one once.
        rows, inverse = np.unique(np.hstack([n, y]), axis=0, return_inverse=True)
        k = len(self.skeleton)
        n, y = rows[:, :k].astype(float), rows[:, k:].astype(float)
        log_sk = np.log(np.asarray(self.skeleton))
        # Scale each trial's integrand by its largest value on the grid, so that none underflows.
        scale = self._log_posterior_on_grid(n, y).max(axis=1)

        def density(beta: float) -> np.ndarray:
            # Beyond |beta| = 50 the prior factor is below exp(-900): freezing the likelihood there changes
            # nothing, and keeps exp() and expm1() finite for any beta the quadrature asks for.
            log_p = np.exp(np.clip(beta, -50.0, 50.0)) * log_sk
            log_q = np.log(-np.expm1(log_p))
            b = np.clip(beta, -1e150, 1e150)
            return np.exp(y @ log_p + (n - y) @ log_q - b * b / (2 * self.prior_variance) - scale)

        cut = float(np.log(np.log(self.target) / np.log(self.skeleton[0])))  # p_1(beta) > target iff beta < cut
        below = integrate.quad_vec(density, -np.inf, cut, epsabs=1e-13, epsrel=1e-10, norm="max")[0]
        above = integrate.quad_vec(density, cut, np.inf, epsabs=1e-13, epsrel=1e-10, norm="max")[0]
        return np.asarray(below / (below + above))[inverse.reshape(-1)]

    def dlt_rates(self, beta: np.ndarray) -> np.ndarray:
        """Plug-in DLT rate per dose [trials, doses] at the estimate of beta."""
        return np.asarray(self.skeleton)[None, :] ** np.exp(beta)[:, None]

    def closest(self, beta: np.ndarray) -> np.ndarray:
        return np.abs(self.dlt_rates(beta) - self.target).argmin(axis=1)  # ties: the lower dose, as dfcrm

    def step(self, n: np.ndarray, y: np.ndarray, last: np.ndarray, last_rate: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """(next dose, stop for toxicity) per trial, from the counts so far and the last cohort's
        dose (0-based) and DLT rate."""
        beta = self.posterior_mean(n, y)
        cap = np.where(last_rate >= self.target, last, last + 1)
        nxt = np.minimum(self.closest(beta), cap)
        if self.stop_probability is None:
            return nxt, np.zeros(len(nxt), dtype=bool)
        return nxt, (n.sum(axis=1) >= 3) & (self.prob_first_too_toxic(n, y) > self.stop_probability)

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
            before = y[active, current[active]]
            idx, cur = treat_next_cohorts(n, y, active, current, p, self.cohort_size, rng)
            nxt, stop = self.step(n[idx], y[idx], cur, (y[idx, cur] - before) / self.cohort_size)
            current[idx] = nxt
            stopped[idx[stop]] = True
            active[idx[stop]] = False
        beta = self.posterior_mean(n, y)
        selected = np.where(stopped, -1, self.closest(beta))
        p_select = np.array([(selected == j).mean() for j in range(k)])
        return OperatingCharacteristics("crm", p.tolist(), p_select.tolist(), float((selected == -1).mean()),
                                        n.mean(axis=0).tolist(), y.mean(axis=0).tolist(), method="simulation",
                                        trials=trials, settings=self.settings())

    def decide(self, counts: Mapping[int, tuple[int, int]], n_levels: int, last_level: int | None = None,
               last_dlt: int | None = None) -> Decision:
        """The next cohort's level (1-based) from the DLTs and patients per level so far, the last
        cohort's level (default: the highest level with patients) and its DLT count (needed by the
        coherence rule; it can be read from the counts only when that level has had one cohort)."""
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
        last = last_level if last_level is not None else int(np.flatnonzero(n[0])[-1]) + 1
        if not 1 <= last <= n_levels or n[0, last - 1] == 0:
            raise EscalationInputError(f"--current {last}: the last cohort's level must be one with patients")
        if last_dlt is None:
            if n[0, last - 1] != self.cohort_size:
                raise EscalationInputError(f"give --last-dlt, the DLTs in the last cohort at level {last}: the "
                                           f"coherence rule needs them and level {last} has had several cohorts")
            last_dlt = int(y[0, last - 1])
        if not 0 <= last_dlt <= min(self.cohort_size, y[0, last - 1]):
            raise EscalationInputError(f"--last-dlt {last_dlt}: allowed 0 to {min(self.cohort_size, y[0, last - 1])}")
        beta, p_over = self.posterior(n, y)
        estimates = ", ".join(f"{m:.3f}" for m in self.dlt_rates(beta)[0])
        nxt, stop = self.step(n, y, np.array([last - 1]), np.array([last_dlt / self.cohort_size]))
        if stop[0]:
            return Decision("stop", None, None, "safety_stop",
                            f"Pr(DLT rate at level 1 > {self.target:g}) = {p_over[0]:.3f} > {self.stop_probability:g}: "
                            "stop, no MTD")
        if n.sum() >= self.cohort_size * self.n_cohorts:
            mtd = int(self.closest(beta)[0]) + 1
            return Decision("stop", None, mtd, "sample_size_reached",
                            f"the planned sample size is reached; estimated DLT rates {estimates}")
        best = int(self.closest(beta)[0]) + 1
        level = int(nxt[0]) + 1
        if level == best:
            rule, why = "closest_to_target", f"level {level} is closest to the target {self.target:g}"
        elif last_dlt / self.cohort_size >= self.target:
            rule, why = "coherence", (f"level {best} is closest, but {last_dlt}/{self.cohort_size} DLTs in the last "
                                      f"cohort: no escalation above level {last}")
        else:
            rule, why = "no_skipping", f"level {best} is closest, but escalation is one level at a time"
        return Decision("treat", level, None, rule, f"estimated DLT rates {estimates}: {why}")

    def settings(self) -> dict:
        return {"target": self.target, "skeleton": list(self.skeleton), "cohort_size": self.cohort_size,
                "n_cohorts": self.n_cohorts, "prior_variance": self.prior_variance,
                "stop_probability": self.stop_probability}
