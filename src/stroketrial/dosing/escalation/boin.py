"""The Bayesian optimal interval design (BOIN; Liu S, Yuan Y. J R Stat Soc C 2015;64:507-523).

At the current dose with y DLTs in n patients: escalate if y/n <= lambda_e, de-escalate
if y/n >= lambda_d, otherwise stay. The boundaries minimise the chance of a wrong
decision between the target phi and phi1 = 0.6 phi (too low) or phi2 = 1.4 phi (too
high). A dose and all above it are eliminated when Pr(p > phi | y, n) > 0.95 under a
Beta(1, 1) prior with n >= 3; the trial stops without an MTD if the lowest dose goes.
At the end the MTD is the dose whose isotonic estimate of toxicity is closest to phi
(the estimates use a Beta(0.05, 0.05) prior; on a tie below phi the higher dose, above
phi the lower), among the doses tried and not eliminated.

`step` and `select_mtd` work on arrays of trials, and the live decision calls them on
one trial: simulation and live use are the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import beta

from .common import Decision, EscalationInputError, OperatingCharacteristics, check_tox, treat_next_cohorts

ELIMINATION_CUTOFF = 0.95


@dataclass(frozen=True)
class Boin:
    target: float
    cohort_size: int = 3
    n_cohorts: int = 10
    p_saf: float | None = None
    p_tox: float | None = None
    n_earlystop: int = 100  # stop when this many patients are at the current dose (100: off)

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise EscalationInputError(f"--target {self.target:g} is not a probability between 0 and 1")
        if self.cohort_size < 1 or self.n_cohorts < 1:
            raise EscalationInputError("cohort size and number of cohorts are at least 1")
        if not 0 < self.phi1 < self.target < self.phi2 < 1:
            raise EscalationInputError(f"need 0 < p_saf ({self.phi1:g}) < target ({self.target:g}) < p_tox "
                                       f"({self.phi2:g}) < 1")

    @property
    def phi1(self) -> float:
        return self.p_saf if self.p_saf is not None else 0.6 * self.target

    @property
    def phi2(self) -> float:
        return self.p_tox if self.p_tox is not None else 1.4 * self.target

    @property
    def lambda_e(self) -> float:
        phi, phi1 = self.target, self.phi1
        return float(np.log((1 - phi1) / (1 - phi)) / np.log(phi * (1 - phi1) / (phi1 * (1 - phi))))

    @property
    def lambda_d(self) -> float:
        phi, phi2 = self.target, self.phi2
        return float(np.log((1 - phi) / (1 - phi2)) / np.log(phi2 * (1 - phi) / (phi * (1 - phi2))))

    def elimination_table(self, max_n: int) -> np.ndarray:
        """For n = 0..max_n, the smallest DLT count that eliminates the dose (max_n + 1: never)."""
        table = np.full(max_n + 1, max_n + 1)
        for n in range(3, max_n + 1):
            y = np.arange(n + 1)
            over = 1 - beta.cdf(self.target, y + 1, n - y + 1) > ELIMINATION_CUTOFF
            if over.any():
                table[n] = int(y[over][0])
        return table

    # ---- the rule, vectorised over trials ---------------------------------------------------
    def step(self, n: np.ndarray, y: np.ndarray, current: np.ndarray, eliminated: np.ndarray,
             table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """After a cohort at `current` (0-based): (next dose, lowest eliminated dose, stop without MTD).

        n, y: [trials, doses]; eliminated: the lowest eliminated dose (n_doses when none).
        """
        rows = np.arange(len(current))
        k = n.shape[1]
        n_c, y_c = n[rows, current], y[rows, current]
        eliminated = np.where(y_c >= table[np.minimum(n_c, len(table) - 1)], np.minimum(eliminated, current),
                              eliminated)
        rate = y_c / np.maximum(n_c, 1)
        up = (rate <= self.lambda_e) & (current + 1 < np.minimum(eliminated, k))
        down = (rate >= self.lambda_d) | (current >= eliminated)
        nxt = np.where(up, current + 1, np.where(down, np.maximum(current - 1, 0), current))
        return nxt, eliminated, eliminated == 0

    def select_mtd(self, n: np.ndarray, y: np.ndarray, eliminated: np.ndarray) -> np.ndarray:
        """The selected dose per trial (0-based), -1 when none."""
        trials, k = n.shape
        usable = (n > 0) & (np.arange(k)[None, :] < eliminated[:, None])
        estimate = isotonic((y + 0.05) / (n + 0.1), n + 0.1, usable)
        distance = np.where(usable, np.abs(estimate - self.target), np.inf)
        best = distance.min(axis=1, keepdims=True)
        tied = usable & (distance <= best + 1e-12)
        # On a tie, prefer the higher dose when the estimate is below the target, the lower when above.
        below = np.where(tied, estimate < self.target, False).any(axis=1)
        highest = k - 1 - np.argmax(tied[:, ::-1], axis=1)
        lowest = np.argmax(tied, axis=1)
        choice = np.where(below, highest, lowest)
        return np.where(usable.any(axis=1) & (eliminated > 0), choice, -1)

    # ---- simulation and live use ----------------------------------------------------------------
    def simulate(self, tox: Sequence[float], trials: int, rng: np.random.Generator,
                 start: int = 0) -> OperatingCharacteristics:
        p = check_tox(tox)
        k = len(p)
        max_n = self.cohort_size * self.n_cohorts
        table = self.elimination_table(max_n)
        n = np.zeros((trials, k), dtype=int)
        y = np.zeros((trials, k), dtype=int)
        current = np.full(trials, start)
        eliminated = np.full(trials, k)
        active = np.ones(trials, dtype=bool)
        for _ in range(self.n_cohorts):
            if not active.any():
                break
            idx, cur = treat_next_cohorts(n, y, active, current, p, self.cohort_size, rng)
            nxt, elim, stop = self.step(n[idx], y[idx], cur, eliminated[idx], table)
            eliminated[idx] = elim
            early = n[idx, nxt] >= self.n_earlystop
            current[idx] = nxt
            active[idx[stop | early]] = False
        selected = self.select_mtd(n, y, eliminated)
        p_select = np.array([(selected == j).mean() for j in range(k)])
        return OperatingCharacteristics("boin", p.tolist(), p_select.tolist(), float((selected == -1).mean()),
                                        n.mean(axis=0).tolist(), y.mean(axis=0).tolist(), method="simulation",
                                        trials=trials, settings=self.settings())

    def decide(self, counts: Mapping[int, tuple[int, int]], current: int, n_levels: int) -> Decision:
        """The next cohort's dose (1-based levels), from the DLTs and patients per level so far."""
        n, y = _arrays(counts, n_levels)
        if not 1 <= current <= n_levels:
            raise EscalationInputError(f"--current {current} is not a level from 1 to {n_levels}")
        if n[0, current - 1] == 0:
            return Decision("treat", current, None, "start", f"treat the next cohort at level {current}")
        table = self.elimination_table(max(int(n.sum()), 3))
        eliminated = np.array([n_levels])
        for level in range(n_levels):  # the elimination rule applies to every dose with data
            if n[0, level] >= 3 and y[0, level] >= table[n[0, level]]:
                eliminated = np.minimum(eliminated, level)
        nxt, eliminated, stop = self.step(n, y, np.array([current - 1]), eliminated, table)
        rate = y[0, current - 1] / n[0, current - 1]
        if stop[0]:
            return Decision("stop", None, None, "lowest_eliminated",
                            f"Pr(DLT rate at level 1 > {self.target:g}) > {ELIMINATION_CUTOFF:g}: the lowest dose is "
                            "eliminated; stop, no MTD")
        if n.sum() >= self.cohort_size * self.n_cohorts:
            mtd = int(self.select_mtd(n, y, eliminated)[0])
            return Decision("stop", None, mtd + 1 if mtd >= 0 else None, "sample_size_reached",
                            "the planned sample size is reached; MTD by isotonic regression closest to the target")
        level = int(nxt[0]) + 1
        if eliminated[0] < n_levels:
            note = f"; levels {int(eliminated[0]) + 1} and above are eliminated"
        else:
            note = ""
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
                "lambda_e": round(self.lambda_e, 4), "lambda_d": round(self.lambda_d, 4)}


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
