"""The Bayesian optimal interval design (BOIN; Liu S, Yuan Y. J R Stat Soc C 2015;64:507-523).

At the current dose with y DLTs in n patients: escalate if y/n <= lambda_e, de-escalate
if y/n >= lambda_d, otherwise stay. The boundaries minimise the chance of a wrong
decision between the target phi and phi1 = 0.6 phi (too low) or phi2 = 1.4 phi (too
high), or are given directly. A dose and all above it are eliminated when
Pr(p > phi | y, n) > cutoff_eli (0.95) under a Beta(1, 1) prior with n >= 3; the trial
stops without an MTD if the lowest dose goes. Optional rules, as in the BOIN software:

- n_earlystop: stop and select the MTD once the current dose has this many patients and
  the rule says stay there;
- extrasafe: stop without an MTD once Pr(p_1 > phi | data) > cutoff_eli - offset at the
  lowest dose (n >= 3).

At the end the MTD is the dose whose isotonic estimate of toxicity is closest to phi,
among the doses tried and not eliminated. The estimates start from (y + 0.05)/(n + 0.1)
(a Beta(0.05, 0.05) prior) and are pooled with inverse-variance weights; on a tie below
phi the higher dose wins, above phi the lower.

These are the rules of the authors' reference implementation (R package BOIN 2.7,
`get.oc` and `select.mtd`, and trialdesign.org); tests/test_escalation.py checks the
operating characteristics against its published output.

`step` and `select_mtd` work on arrays of trials; the live decision, the simulation and
the exact enumeration all call them, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import comb
from scipy.stats import beta

from .decisions import Decision, EscalationInputError, OperatingCharacteristics, check_tox, treat_next_cohorts

MAX_EXACT_STATES = 250_000  # about 3 s; 6 levels x 15 cohorts of 3 needs 130,000


class Step(NamedTuple):
    next_dose: np.ndarray  # [trials], 0-based
    eliminated: np.ndarray  # the lowest eliminated dose (n_doses when none)
    no_mtd: np.ndarray  # stop: the lowest dose is too toxic
    converged: np.ndarray  # stop and select: n_earlystop reached at a dose the rule keeps


class FinalStates(NamedTuple):
    """Every way a trial can end, with its probability (exact enumeration)."""
    n: np.ndarray  # [states, doses]
    y: np.ndarray
    selected: np.ndarray  # 0-based, -1 when no MTD
    probability: np.ndarray


@dataclass(frozen=True)
class Boin:
    target: float
    cohort_size: int = 3
    n_cohorts: int = 10
    p_saf: float | None = None
    p_tox: float | None = None
    n_earlystop: int = 100  # stop when the current dose has this many patients and the rule stays (100: off)
    cutoff_eli: float = 0.95
    extrasafe: bool = False
    offset: float = 0.05
    escalation_boundary: float | None = None  # lambda_e given directly instead of from p_saf
    deescalation_boundary: float | None = None  # lambda_d given directly instead of from p_tox

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise EscalationInputError(f"--target {self.target:g} is not a probability between 0 and 1")
        if self.cohort_size < 1 or self.n_cohorts < 1:
            raise EscalationInputError("cohort size and number of cohorts are at least 1")
        if self.p_saf is not None and self.escalation_boundary is not None:
            raise EscalationInputError("give p_saf or the escalation boundary lambda_e, not both")
        if self.p_tox is not None and self.deescalation_boundary is not None:
            raise EscalationInputError("give p_tox or the de-escalation boundary lambda_d, not both")
        if not 0 < self.phi1 < self.target < self.phi2 < 1:
            raise EscalationInputError(f"need 0 < p_saf ({self.phi1:g}) < target ({self.target:g}) < p_tox "
                                       f"({self.phi2:g}) < 1")
        if not 0 < self.lambda_e < self.target < self.lambda_d < 1:
            raise EscalationInputError(f"need 0 < lambda_e ({self.lambda_e:g}) < target ({self.target:g}) < "
                                       f"lambda_d ({self.lambda_d:g}) < 1")
        if not 0.5 <= self.cutoff_eli < 1:
            raise EscalationInputError(f"--cutoff-eli {self.cutoff_eli:g}: allowed 0.5 to below 1 (BOIN uses 0.95)")
        if not 0 <= self.offset < 0.5 or self.cutoff_eli - self.offset <= 0:
            raise EscalationInputError(f"--offset {self.offset:g}: allowed 0 to below 0.5 (BOIN uses 0.05)")
        if self.n_earlystop < 1:
            raise EscalationInputError(f"--n-earlystop {self.n_earlystop}: at least 1 patient")

    @property
    def phi1(self) -> float:
        return self.p_saf if self.p_saf is not None else 0.6 * self.target

    @property
    def phi2(self) -> float:
        return self.p_tox if self.p_tox is not None else 1.4 * self.target

    @property
    def lambda_e(self) -> float:
        if self.escalation_boundary is not None:
            return self.escalation_boundary
        phi, phi1 = self.target, self.phi1
        return float(np.log((1 - phi1) / (1 - phi)) / np.log(phi * (1 - phi1) / (phi1 * (1 - phi))))

    @property
    def lambda_d(self) -> float:
        if self.deescalation_boundary is not None:
            return self.deescalation_boundary
        phi, phi2 = self.target, self.phi2
        return float(np.log((1 - phi) / (1 - phi2)) / np.log(phi2 * (1 - phi) / (phi * (1 - phi2))))

    @property
    def max_n(self) -> int:
        return self.cohort_size * self.n_cohorts

    def elimination_table(self, max_n: int, cutoff: float | None = None) -> np.ndarray:
        """For n = 0..max_n, the smallest DLT count that eliminates the dose (max_n + 1: never)."""
        return _posterior_table(self.target, self.cutoff_eli if cutoff is None else cutoff, max_n)

    def _tables(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        size = max(self.max_n, int(n.max(initial=0)), 3)
        safety = self.elimination_table(size, self.cutoff_eli - self.offset) if self.extrasafe else None
        return self.elimination_table(size), safety

    def _eliminated(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The lowest dose eliminated by the data at every dose (n_doses when none), with the
        extra-safe rule at the lowest dose counted as eliminating everything."""
        elim, safety = self._tables(n)
        k = n.shape[1]
        hit = y >= elim[n]
        lowest = np.where(hit.any(axis=1), np.argmax(hit, axis=1), k)
        if safety is not None:
            lowest = np.where(y[:, 0] >= safety[n[:, 0]], 0, lowest)
        return lowest

    # ---- the rule, vectorised over trials ---------------------------------------------------
    def step(self, n: np.ndarray, y: np.ndarray, current: np.ndarray, eliminated: np.ndarray) -> Step:
        """After a cohort at `current` (0-based), from the counts so far and the lowest dose
        eliminated before it: where the next cohort goes, and whether the trial stops."""
        elim, safety = self._tables(n)
        rows = np.arange(len(current))
        k = n.shape[1]
        n_c, y_c = n[rows, current], y[rows, current]
        eliminated = np.where(y_c >= elim[n_c], np.minimum(eliminated, current), eliminated)
        no_mtd = eliminated == 0
        if safety is not None:
            no_mtd |= (current == 0) & (y_c >= safety[n_c])
        rate = y_c / np.maximum(n_c, 1)
        up = (rate <= self.lambda_e) & (current + 1 < np.minimum(eliminated, k))
        down = (rate >= self.lambda_d) | (current >= eliminated)
        nxt = np.where(up, current + 1, np.where(down, np.maximum(current - 1, 0), current))
        # "Stay" includes wanting to move but having nowhere to go (bottom, top, or eliminated above).
        converged = ~no_mtd & (nxt == current) & (n_c >= self.n_earlystop)
        return Step(nxt, eliminated, no_mtd, converged)

    def select_mtd(self, n: np.ndarray, y: np.ndarray, eliminated: np.ndarray | None = None) -> np.ndarray:
        """The selected dose per trial (0-based), -1 when none."""
        k = n.shape[1]
        lowest = self._eliminated(n, y)
        if eliminated is not None:
            lowest = np.minimum(lowest, eliminated)
        usable = (n > 0) & (np.arange(k)[None, :] < lowest[:, None])
        a, b = y + 0.05, n - y + 0.05
        variance = a * b / ((a + b) ** 2 * (a + b + 1))  # of the Beta(y + 0.05, n - y + 0.05) posterior
        estimate = isotonic(a / (a + b), 1 / variance, usable)
        distance = np.where(usable, np.abs(estimate - self.target), np.inf)
        best = distance.min(axis=1, keepdims=True)
        tied = usable & (distance <= best + 1e-12)
        # On a tie, prefer the higher dose when the estimate is below the target, the lower when above.
        below = np.where(tied, estimate < self.target, False).any(axis=1)
        highest = k - 1 - np.argmax(tied[:, ::-1], axis=1)
        lowest_tied = np.argmax(tied, axis=1)
        choice = np.where(below, highest, lowest_tied)
        return np.where(usable.any(axis=1) & (lowest > 0), choice, -1)

    # ---- simulation, exact enumeration and live use ----------------------------------------------
    def simulate(self, tox: Sequence[float], trials: int, rng: np.random.Generator,
                 start: int = 0) -> OperatingCharacteristics:
        p = check_tox(tox)
        k = len(p)
        n = np.zeros((trials, k), dtype=int)
        y = np.zeros((trials, k), dtype=int)
        current = np.full(trials, start)
        eliminated = np.full(trials, k)
        active = np.ones(trials, dtype=bool)
        for _ in range(self.n_cohorts):
            if not active.any():
                break
            idx, cur = treat_next_cohorts(n, y, active, current, p, self.cohort_size, rng)
            s = self.step(n[idx], y[idx], cur, eliminated[idx])
            eliminated[idx] = s.eliminated
            current[idx] = s.next_dose
            active[idx[s.no_mtd | s.converged]] = False
        selected = self.select_mtd(n, y, eliminated)
        return self._summary(p, n, y, selected, None, "simulation", trials)

    def final_states(self, tox: Sequence[float] | np.ndarray, start: int = 0,
                     max_states: int = MAX_EXACT_STATES) -> FinalStates:
        """Every end of the trial and its exact probability: each cohort's 0..c DLTs branch
        every open trial state; identical states are merged, so the work grows with the
        number of distinct (patients, DLTs, dose, eliminated) states, not of paths."""
        p = check_tox(tox)
        k, c = len(p), self.cohort_size
        n = np.zeros((1, k), dtype=np.int64)
        y = np.zeros((1, k), dtype=np.int64)
        current, eliminated, prob = np.array([start]), np.array([k]), np.ones(1)
        done: list[tuple[np.ndarray, ...]] = []
        dlt = np.arange(c + 1)
        for cohort in range(self.n_cohorts):
            m = len(current)
            # branch: every open state times every DLT count in the cohort
            pc = p[current][:, None]
            # binomial terms written out: scipy's binom.pmf overflows at subnormal p
            pr = prob[:, None] * comb(c, dlt)[None, :] * pc ** dlt[None, :] * (1 - pc) ** (c - dlt)[None, :]
            rows = np.repeat(np.arange(m), c + 1)
            n, y = n[rows], y[rows]
            current, eliminated, prob = current[rows], eliminated[rows], pr.ravel()
            keep = prob > 0
            n, y, current, eliminated, prob = n[keep], y[keep], current[keep], eliminated[keep], prob[keep]
            at = np.arange(len(current))
            n[at, current] += c
            y[at, current] += np.tile(dlt, m)[keep]
            s = self.step(n, y, current, eliminated)
            end = s.no_mtd | s.converged | (cohort == self.n_cohorts - 1)
            done.append((n[end], y[end], s.eliminated[end], prob[end]))
            n, y, current, eliminated, prob = n[~end], y[~end], s.next_dose[~end], s.eliminated[~end], prob[~end]
            if len(prob):
                n, y, current, eliminated, prob = _merge(n, y, current, eliminated, prob)
            if len(prob) > max_states:
                raise EscalationInputError(f"exact enumeration needs more than {max_states:,} open trial states "
                                           f"after cohort {cohort + 1}; simulate instead (--trials)")
        n_end = np.concatenate([d[0] for d in done])
        y_end = np.concatenate([d[1] for d in done])
        selected = self.select_mtd(n_end, y_end, np.concatenate([d[2] for d in done]))
        return FinalStates(n_end, y_end, selected, np.concatenate([d[3] for d in done]))

    def exact(self, tox: Sequence[float], start: int = 0) -> OperatingCharacteristics:
        p = check_tox(tox)
        states = self.final_states(p, start)
        return self._summary(p, states.n, states.y, states.selected, states.probability, "exact", None)

    def _summary(self, p: np.ndarray, n: np.ndarray, y: np.ndarray, selected: np.ndarray,
                 weight: np.ndarray | None, method: str, trials: int | None) -> OperatingCharacteristics:
        """Operating characteristics of trial ends: simulated (equal weights) or enumerated (probabilities)."""
        if weight is None:
            weight = np.full(len(n), 1 / len(n))
            mean_n, mean_y = n.mean(axis=0), y.mean(axis=0)
        else:
            mean_n, mean_y = weight @ n, weight @ y
        p_select = [float(weight[selected == j].sum()) for j in range(len(p))]
        return OperatingCharacteristics("boin", p.tolist(), p_select, float(weight[selected == -1].sum()),
                                        mean_n.tolist(), mean_y.tolist(), method=method,
                                        trials=trials, settings=self.settings())

    def decide(self, counts: Mapping[int, tuple[int, int]], current: int, n_levels: int) -> Decision:
        """The next cohort's dose (1-based levels), from the DLTs and patients per level so far."""
        n, y = _arrays(counts, n_levels)
        if not 1 <= current <= n_levels:
            raise EscalationInputError(f"--current {current} is not a level from 1 to {n_levels}")
        if n[0, current - 1] == 0:
            return Decision("treat", current, None, "start", f"treat the next cohort at level {current}")
        # the elimination rule applies to every dose with data, not only the current one
        elim, _ = self._tables(n)
        hit = (n[0] >= 3) & (y[0] >= elim[n[0]])
        eliminated = np.array([int(np.argmax(hit)) if hit.any() else n_levels])
        s = self.step(n, y, np.array([current - 1]), eliminated)
        rate = y[0, current - 1] / n[0, current - 1]
        if s.no_mtd[0]:
            cutoff = self.cutoff_eli if s.eliminated[0] == 0 else self.cutoff_eli - self.offset
            return Decision("stop", None, None, "lowest_eliminated",
                            f"Pr(DLT rate at level 1 > {self.target:g}) > {cutoff:g}: the lowest dose is "
                            "eliminated; stop, no MTD")
        mtd = int(self.select_mtd(n, y, s.eliminated)[0])
        if s.converged[0]:
            return Decision("stop", None, mtd + 1 if mtd >= 0 else None, "n_earlystop",
                            f"{n[0, current - 1]} patients at level {current} (>= {self.n_earlystop}) and the rule "
                            "stays: stop; MTD by isotonic regression closest to the target")
        if n.sum() >= self.max_n:
            return Decision("stop", None, mtd + 1 if mtd >= 0 else None, "sample_size_reached",
                            "the planned sample size is reached; MTD by isotonic regression closest to the target")
        level = int(s.next_dose[0]) + 1
        note = f"; levels {int(s.eliminated[0]) + 1} and above are eliminated" if s.eliminated[0] < n_levels else ""
        if level > current:
            rule, text = "escalate", f"DLT rate {rate:.3f} <= lambda_e {self.lambda_e:.3f}: escalate"
        elif level < current:
            rule, text = "de_escalate", (f"DLT rate {rate:.3f} >= lambda_d {self.lambda_d:.3f}"
                                         if rate >= self.lambda_d else "the dose is eliminated") + ": de-escalate"
        else:
            rule, text = "stay", (f"lambda_e {self.lambda_e:.3f} < DLT rate {rate:.3f} < lambda_d {self.lambda_d:.3f}"
                                  ": stay" if self.lambda_e < rate < self.lambda_d else
                                  "no allowed dose in that direction: stay")
        return Decision("treat", level, None, rule, text + note)

    def settings(self) -> dict:
        return {"target": self.target, "cohort_size": self.cohort_size, "n_cohorts": self.n_cohorts,
                "lambda_e": round(self.lambda_e, 4), "lambda_d": round(self.lambda_d, 4),
                "n_earlystop": self.n_earlystop, "cutoff_eli": self.cutoff_eli,
                "extrasafe": self.extrasafe, "offset": self.offset if self.extrasafe else None}


@lru_cache(maxsize=64)
def _posterior_table(target: float, cutoff: float, max_n: int) -> np.ndarray:
    """For n = 0..max_n, the smallest y with Pr(p > target | y of n, Beta(1, 1) prior) > cutoff,
    for n >= 3 (max_n + 1: never). Read-only: it is shared through the cache."""
    table = np.full(max_n + 1, max_n + 1)
    for n in range(3, max_n + 1):
        y = np.arange(n + 1)
        over = beta.sf(target, y + 1, n - y + 1) > cutoff
        if over.any():
            table[n] = int(y[over][0])
    table.flags.writeable = False
    return table


def _merge(n, y, current, eliminated, prob):
    """Sum the probabilities of identical open trial states."""
    key = np.ascontiguousarray(np.column_stack([n, y, current, eliminated]))
    _, first, inverse = np.unique(key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel(),
                                  return_index=True, return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=prob, minlength=len(first))
    return n[first], y[first], current[first], eliminated[first], total


def isotonic(values: np.ndarray, weights: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression per row over the usable entries, by the
    max-min formula: fit_j = max over a <= j of min over b >= j of the weighted mean of a..b.
    O(K^3) per row, vectorised over rows; dose-finding has fewer than a dozen doses."""
    w = np.where(usable, weights, 0.0)
    wv = np.where(usable, values * weights, 0.0)
    cw = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w, axis=1)], axis=1)
    cv = np.concatenate([np.zeros((len(w), 1)), np.cumsum(wv, axis=1)], axis=1)
    k = values.shape[1]
    a = np.arange(k)[:, None]
    b = np.arange(k)[None, :]
    sw = cw[:, None, 1:] - cw[:, :-1, None]  # [rows, a, b]: weight of a..b
    sv = cv[:, None, 1:] - cv[:, :-1, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where((b >= a) & (sw > 0), sv / np.where(sw > 0, sw, 1), np.nan)
    fit = np.empty(values.shape)
    for j in range(k):
        block = mean[:, : j + 1, j:]  # a <= j <= b
        with np.errstate(all="ignore"):
            inner = np.where(np.isnan(block), np.inf, block).min(axis=2)
            inner = np.where(np.isinf(inner), -np.inf, inner)
            fit[:, j] = inner.max(axis=1)
    return np.where(usable, fit, np.nan)


def _arrays(counts: Mapping[int, tuple[int, int]], n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    n, y = np.zeros((1, n_levels), dtype=int), np.zeros((1, n_levels), dtype=int)
    for level, (dlt, patients) in counts.items():
        if not 1 <= level <= n_levels:
            raise EscalationInputError(f"--dlt names level {level}; the trial has levels 1 to {n_levels}")
        n[0, level - 1], y[0, level - 1] = patients, dlt
    return n, y
