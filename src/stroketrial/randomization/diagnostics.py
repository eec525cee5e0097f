"""How well a randomization balances, and how predictable it is, over many simulated trials.

All measures are computed on arms (not slots) and in patients:

- imbalance of a group of patients: sum over arms of |n_k - n * r_k / R|, how far the
  group is from the target ratio; for 1:1 this is |n_A - n_B|;
- final imbalance overall, within each stratum (the cross-classification of all the
  trial's factors; summed over strata), and per factor margin (the largest over the
  factor's levels);
- running imbalance: the same three after each patient (averaged over the enrolment in
  the `mean_running_*` figures);
- ratio reached: the treatment (experimental) arm's share at the end, over all trials;
- predictability: the chance that a recruiter who knows every earlier allocation at
  the patient's site guesses the next arm under the convergence strategy
  (Blackwell and Hodges, Ann Math Stat 1957;28:449-460): guess the arm furthest
  below its target share, ties guessed at random. For a single-centre trial the
  site is the whole trial; `predictability_overall` uses the whole-trial history.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from collections.abc import Sequence

import numpy as np

from .batch_simulation import stratum_index


@dataclass(frozen=True)
class BalanceSummary:
    method: str
    trials: int
    patients: int
    mean_final_imbalance: float
    max_final_imbalance: float
    p95_final_imbalance: float
    mean_running_imbalance: float
    mean_stratum_imbalance: float
    mean_running_stratum_imbalance: float
    mean_marginal_imbalance: dict[str, float]
    max_marginal_imbalance: float
    mean_worst_marginal_imbalance: float
    mean_running_worst_marginal_imbalance: float
    ratio_reached: float
    ratio_target: float
    predictability: float
    predictability_overall: float
    final_imbalance: np.ndarray  # per trial, for plots
    worst_margin: np.ndarray  # per trial: largest level imbalance over all factors
    running: np.ndarray  # mean overall imbalance after each patient
    running_strata: np.ndarray  # mean summed within-stratum imbalance after each patient
    running_worst_margin: np.ndarray  # mean worst factor-level imbalance after each patient

    def to_json(self) -> dict:
        return {"method": self.method, "trials": self.trials, "patients": self.patients,
                "mean_final_imbalance": self.mean_final_imbalance, "max_final_imbalance": self.max_final_imbalance,
                "p95_final_imbalance": self.p95_final_imbalance,
                "mean_running_imbalance": self.mean_running_imbalance,
                "mean_stratum_imbalance": self.mean_stratum_imbalance,
                "mean_running_stratum_imbalance": self.mean_running_stratum_imbalance,
                "mean_marginal_imbalance": self.mean_marginal_imbalance,
                "mean_worst_marginal_imbalance": self.mean_worst_marginal_imbalance,
                "max_marginal_imbalance": self.max_marginal_imbalance,
                "mean_running_worst_marginal_imbalance": self.mean_running_worst_marginal_imbalance,
                "ratio_reached": self.ratio_reached, "ratio_target": self.ratio_target,
                "predictability": self.predictability, "predictability_overall": self.predictability_overall}


def group_imbalance(counts: np.ndarray, ratio: Sequence[int]) -> np.ndarray:
    """sum_k |n_k - n r_k / R| over the last axis (arm counts)."""
    share = np.asarray(ratio, dtype=float) / np.sum(ratio)
    n = counts.sum(axis=-1, keepdims=True)
    return np.abs(counts - n * share).sum(axis=-1)


def _exact(ratio: Sequence[int]) -> bool:
    """Two arms and a ratio total R that is a power of two (1:1, 3:1): every target n r_k / R and every
    convergence guess (0, 1/2, 1) is exact in binary floating point, so imbalances can be counted in whole
    units of 1/R and summed in any order with the same figures to the last bit. Other ratios keep
    today's float formula and today's order of summation."""
    total = int(np.sum(ratio))
    return len(ratio) == 2 and total & (total - 1) == 0


@dataclass(frozen=True)
class Grouping:
    """Each trial's patients ordered by group (a stratum, a factor's level), enrolment order kept within it.

    Arm counts within the patient's group after every patient are then one cumulative sum
    along that order, less the sum where the group begins. The cohorts are the same for
    every method compared, so the ordering is worked out once (`CohortGroups`).
    """

    gather: np.ndarray  # flat (trial, patient) positions, each trial's patients sorted by group
    start: np.ndarray  # for each sorted entry, the sorted position where its group begins
    back: np.ndarray  # (patients, trials): each patient's sorted position

    @classmethod
    def of(cls, group: np.ndarray, n_groups: int) -> Grouping:
        n_trials, n_patients = group.shape
        # A stable sort of 16-bit keys is a radix sort: linear in the patients.
        keys = group.astype(np.int16) if n_groups <= np.iinfo(np.int16).max else group
        order = np.argsort(keys, axis=1, kind="stable")
        ordered = np.take_along_axis(keys, order, axis=1)
        begins = np.ones(ordered.shape, dtype=bool)
        begins[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        row = (np.arange(n_trials) * n_patients)[:, None]
        positions = row + np.arange(n_patients)
        start = np.maximum.accumulate(np.where(begins, positions, 0), axis=1).ravel()
        gather = (order + row).ravel()
        back = np.empty(n_trials * n_patients, dtype=np.intp)
        back[gather] = positions.ravel()
        return cls(gather, start, np.ascontiguousarray(back.reshape(n_trials, n_patients).T))

    def running_counts(self, arms: np.ndarray, n_arms: int) -> np.ndarray:
        """(arms, patients, trials): arm counts in the patient's group up to and including the patient."""
        ordered = arms.reshape(-1)[self.gather]
        counts = np.empty((n_arms, *self.back.shape), dtype=np.int32)
        for k in range(n_arms):
            hit = ordered == k
            through = np.cumsum(hit)
            through -= (through - hit)[self.start]
            counts[k] = through[self.back]
        return counts


@dataclass(frozen=True)
class CohortGroups:
    """What every method's allocations are scored on: the strata (all factors crossed) and each factor's levels.

    The cohorts are the same for every method compared, so this is worked out once.
    """

    strata: np.ndarray  # (trials, patients): stratum numbers below n_strata
    n_strata: int
    codes: np.ndarray
    n_levels: tuple[int, ...]

    @classmethod
    def of_cohorts(cls, codes: np.ndarray, n_levels: Sequence[int]) -> CohortGroups:
        stratum, n_strata = stratum_index(codes, range(len(n_levels)), n_levels)
        if n_strata > codes.shape[1]:  # strata can outnumber patients (8 sites x 2^5 bands): number those present
            stratum, n_strata = _numbered_within_trial(stratum), codes.shape[1]
        return cls(stratum, n_strata, codes, tuple(n_levels))

    @cached_property
    def _codes_by_patient(self) -> np.ndarray:
        """(patients, factors, trials) codes, in the smallest integer type that holds them."""
        small = np.int8 if max(self.n_levels, default=0) <= np.iinfo(np.int8).max else np.intp
        return np.ascontiguousarray(self.codes.transpose(1, 2, 0).astype(small))

    @cached_property
    def _first_rows(self) -> np.ndarray:
        """(factors, trials): where each factor's first level starts for each trial, in a (levels, trials) table."""
        n_trials = self.codes.shape[0]
        return np.cumsum([0, *self.n_levels[:-1]], dtype=np.intp)[:, None] * n_trials + np.arange(n_trials)

    def level_rows(self, patient: int) -> np.ndarray:
        """(factors, trials): the patient's level of each factor as a flat position in a (all factors' levels,
        trials) table. Worked out per patient from the small codes: reading positions precomputed for every
        patient would cost more memory traffic than the table updates themselves."""
        rows = self._codes_by_patient[patient].astype(np.intp)
        rows *= self.codes.shape[0]
        rows += self._first_rows
        return rows

    @cached_property
    def stratum_rows(self) -> np.ndarray:
        """(patients, trials): the patient's stratum as a flat position in a (trials, strata) table, so that one
        patient's strata across trials are visited in memory order."""
        return self.strata.T + np.arange(self.codes.shape[0]) * self.n_strata

    @cached_property
    def strata_grouping(self) -> Grouping:
        return Grouping.of(self.strata, self.n_strata)

    @cached_property
    def level_groupings(self) -> tuple[Grouping, ...]:
        return tuple(Grouping.of(self.codes[..., f], n) for f, n in enumerate(self.n_levels))


def _numbered_within_trial(group: np.ndarray) -> np.ndarray:
    """Each trial's groups numbered 0, 1, ... in order of their index."""
    order = np.argsort(group, axis=1, kind="stable")
    ordered = np.take_along_axis(group, order, axis=1)
    number = np.zeros(group.shape, dtype=np.intp)
    number[:, 1:] = np.cumsum(ordered[:, 1:] != ordered[:, :-1], axis=1)
    out = np.empty_like(number)
    np.put_along_axis(out, order, number, axis=1)
    return out


def _running_counts(arms: np.ndarray, n_arms: int) -> np.ndarray:
    """(arms, patients, trials): each arm's count in the trial up to and including the patient."""
    by_patient = np.ascontiguousarray(arms.T)
    return np.stack([np.cumsum(by_patient == k, axis=0, dtype=np.int32) for k in range(n_arms)])


def _imbalance(counts: np.ndarray, ratio: Sequence[int]) -> np.ndarray:
    """`group_imbalance` of arm-major counts (arms, ...), the same float64 values."""
    return group_imbalance(np.ascontiguousarray(np.moveaxis(counts, 0, -1)), ratio)


def _hits(seen: np.ndarray, arms: np.ndarray, ratio: Sequence[int]) -> np.ndarray:
    """Expected correct convergence guesses, (patients, trials), given each arm's count `seen` (arms, patients,
    trials) before the allocation: the guess is the arm furthest below its target share, the smallest
    n_k / r_k, compared as whole numbers n_k * (L / r_k) with L the ratio's least common multiple."""
    lcm = int(np.lcm.reduce(np.asarray(ratio)))
    deficit = seen * (lcm // np.asarray(ratio))[:, None, None]
    low = deficit == deficit.min(axis=0)
    chosen = np.take_along_axis(low, arms.T[None].astype(np.intp), axis=0)[0]
    return chosen / low.sum(axis=0)


def convergence_hits(arms: np.ndarray, ratio: Sequence[int], group: np.ndarray | None = None,
                     n_groups: int = 1) -> np.ndarray:
    """Expected correct guesses per allocation, (trials, patients), guessing from `group` histories."""
    n_arms = len(ratio)
    through = _running_counts(arms, n_arms) if group is None else Grouping.of(group, n_groups).running_counts(
        arms, n_arms)
    return np.ascontiguousarray(_hits(through - _onehot(arms, n_arms), arms, ratio).T)


def _onehot(arms: np.ndarray, n_arms: int) -> np.ndarray:
    """(arms, patients, trials): 1 where the patient went to the arm."""
    return (arms.T[None] == np.arange(n_arms)[:, None, None]).astype(np.int32)


@dataclass(frozen=True)
class _Balance:
    running: np.ndarray  # per patient: mean overall imbalance
    strata_running: np.ndarray  # per patient: mean summed within-stratum imbalance
    worst_running: np.ndarray  # per patient: mean worst factor-level imbalance
    final: np.ndarray  # per trial: overall imbalance at the end
    per_stratum: np.ndarray  # per trial: summed within-stratum imbalance at the end
    level_imbalance: np.ndarray  # (trials, factors, levels) at the end
    predictability: float
    predictability_overall: float


def _two_arm_balance(arms: np.ndarray, ratio: Sequence[int], groups: CohortGroups,
                     site_factor: int | None) -> _Balance:
    """Two arms r0:r1 with r0 + r1 = R a power of two, every figure from one signed count per group.

    D = r1 n0 - r0 n1 of a group (its patients n0, n1 per arm) gains r1 when a patient goes to
    arm 0 and loses r0 when one goes to arm 1. Its imbalance sum_k |n_k - n r_k / R| is 2|D| / R,
    and the convergence guess is arm 0 when D < 0, arm 1 when D > 0, either when D = 0. One
    loop over patients updates D of the patient's stratum and level of each factor in a
    table of integers; sums of these exact values give today's
    figures to the last bit, whatever the order of addition.
    """
    n_trials, n_patients = arms.shape
    r0, r1 = ratio
    scale = 2 / (r0 + r1)
    by_patient = np.ascontiguousarray(arms.T)
    # |D| is at most max(r0, r1) per patient: 16-bit counts halve the tables' memory traffic when they fit.
    small = np.int16 if max(r0, r1) * n_patients <= np.iinfo(np.int16).max else np.int32
    delta = np.where(by_patient == 0, r1, -r0).astype(small)  # (patients, trials)
    levels = np.zeros((sum(groups.n_levels), n_trials), dtype=small)
    strata = np.zeros(n_trials * groups.n_strata, dtype=small)
    flat_levels = levels.reshape(-1)
    stratum_before = np.empty((n_patients, n_trials), dtype=small)
    site_before = np.empty((n_patients, n_trials), dtype=small) if site_factor is not None else None
    worst_sum = np.zeros(n_patients, dtype=np.int64)
    worst = np.empty(n_trials, dtype=small)
    for i in range(n_patients):
        rows = groups.stratum_rows[i]
        stratum_before[i] = strata[rows]
        strata[rows] = stratum_before[i] + delta[i]
        if len(levels):
            rows = groups.level_rows(i)
            before = flat_levels[rows]
            flat_levels[rows] = before + delta[i]
            if site_before is not None:
                site_before[i] = before[site_factor]
            np.max(np.abs(levels), axis=0, out=worst)
            worst_sum[i] = worst.sum()
    through = np.cumsum(delta, axis=0)
    stratum_change = np.abs(stratum_before + delta) - np.abs(stratum_before)
    strata_units = np.cumsum(stratum_change, axis=0)

    def mean(unit_sums: np.ndarray) -> np.ndarray:  # the mean over trials, from each patient's sum of units
        return unit_sums.astype(float) * scale / n_trials

    def hits(d_before: np.ndarray) -> float:
        doubled = np.count_nonzero(d_before == 0) + 2 * (np.count_nonzero((d_before < 0) & (by_patient == 0))
                                                        + np.count_nonzero((d_before > 0) & (by_patient == 1)))
        return doubled / 2 / (n_trials * n_patients)

    overall_before = through - delta
    final_levels = np.zeros((n_trials, len(groups.n_levels), max(groups.n_levels, default=1)))
    offsets = np.cumsum([0, *groups.n_levels])
    for f, n in enumerate(groups.n_levels):
        final_levels[:, f, :n] = np.abs(levels[offsets[f]:offsets[f + 1]]).T * scale
    return _Balance(
        running=mean(np.abs(through).sum(axis=1)), strata_running=mean(strata_units.sum(axis=1)),
        worst_running=mean(worst_sum), final=np.abs(through[-1]) * scale,
        per_stratum=strata_units[-1] * scale, level_imbalance=final_levels,
        predictability=hits(site_before if site_before is not None else overall_before),
        predictability_overall=hits(overall_before))


def _worst_level_running(arms: np.ndarray, n_levels: Sequence[int], ratio: Sequence[int],
                         groups: CohortGroups) -> tuple[np.ndarray, np.ndarray]:
    """Mean over trials of the worst factor-level imbalance after each patient, and each level's final imbalance.

    Each patient changes one level of each factor, whose imbalance after the patient is known
    for all patients at once; the loop over patients only writes those into a (levels, trials)
    table and takes its maximum per trial.
    """
    n_trials, n_patients = arms.shape
    n_arms, n_factors = len(ratio), len(n_levels)
    after = np.empty((n_patients, n_factors, n_trials))
    for f, grouping in enumerate(groups.level_groupings):
        after[:, f] = _imbalance(grouping.running_counts(arms, n_arms), ratio)
    table = np.zeros((sum(n_levels), n_trials))
    flat_table = table.reshape(-1)
    worst = np.empty(n_trials)
    worst_running = np.empty(n_patients)
    for i in range(n_patients):
        flat_table[groups.level_rows(i)] = after[i]
        np.max(table, axis=0, out=worst)
        worst_running[i] = worst.mean()
    final = np.zeros((n_trials, n_factors, max(n_levels)))
    offsets = np.cumsum([0, *n_levels])
    for f, n in enumerate(n_levels):
        final[:, f, :n] = table[offsets[f]:offsets[f + 1]].T
    return worst_running, final


def _general_running_balance(arms: np.ndarray, ratio: Sequence[int], groups: CohortGroups
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_trials, n_patients = arms.shape
    n_arms, n_levels = len(ratio), groups.n_levels
    through = groups.strata_grouping.running_counts(arms, n_arms)
    # (patients, trials): the running sum along patients adds in enrolment order, as one patient at a time
    # would, and the mean over trials adds a trial-long row, as the mean of one patient's step would.
    s_running = _imbalance(through, ratio) - _imbalance(through - _onehot(arms, n_arms), ratio)
    np.cumsum(s_running, axis=0, out=s_running)
    strata_running = s_running.mean(axis=1)
    if n_levels:
        worst_running, m_imbalance = _worst_level_running(arms, n_levels, ratio, groups)
    else:
        worst_running, m_imbalance = np.zeros(n_patients), np.zeros((n_trials, 0, 1))
    return strata_running, worst_running, s_running[-1].copy(), m_imbalance


def _general_balance(arms: np.ndarray, ratio: Sequence[int], groups: CohortGroups,
                     site_factor: int | None) -> _Balance:
    """Any ratio: today's float formulas on counts per arm, added up in today's order."""
    n_arms = len(ratio)
    through = _running_counts(arms, n_arms)
    strata_running, worst_running, per_stratum, level_imbalance = _general_running_balance(arms, ratio, groups)
    onehot = _onehot(arms, n_arms)
    by_site = groups.level_groupings[site_factor].running_counts(arms, n_arms) if site_factor is not None \
        else through
    return _Balance(
        running=np.ascontiguousarray(_imbalance(through, ratio).T).mean(axis=0),
        strata_running=strata_running, worst_running=worst_running,
        final=group_imbalance(through[:, -1].T, ratio), per_stratum=per_stratum, level_imbalance=level_imbalance,
        predictability=float(np.ascontiguousarray(_hits(by_site - onehot, arms, ratio).T).mean()),
        predictability_overall=float(np.ascontiguousarray(_hits(through - onehot, arms, ratio).T).mean()))


def _balance(arms: np.ndarray, ratio: Sequence[int], groups: CohortGroups, site_factor: int | None) -> _Balance:
    exact = _exact(ratio)
    return (_two_arm_balance if exact else _general_balance)(np.ascontiguousarray(arms), ratio, groups, site_factor)


def running_balance(arms: np.ndarray, strata: np.ndarray, n_strata: int, codes: np.ndarray, n_levels: Sequence[int],
                    ratio: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """After each patient, per trial: the summed within-stratum imbalance and the worst factor-level imbalance.

    Returns (strata_running, worst_running) as means over trials per patient, and the final
    (per-trial) values of both (the summed within-stratum imbalance; each level's imbalance).
    """
    b = _balance(arms, ratio, CohortGroups(strata, n_strata, codes, tuple(n_levels)), None)
    return b.strata_running, b.worst_running, b.per_stratum, b.level_imbalance


def summarize(method: str, arms: np.ndarray, codes: np.ndarray, n_levels: Sequence[int], factor_names: Sequence[str],
              ratio: Sequence[int], site_factor: int | None, treatment: int = 0,
              groups: CohortGroups | None = None) -> BalanceSummary:
    """Balance and predictability of simulated allocations `arms` (trials, patients) of arm indices.

    `groups` (`CohortGroups.of_cohorts(codes, n_levels)`) is shared by every method scored on the same cohorts.
    """
    n_trials, n_patients = arms.shape
    b = _balance(arms, ratio, groups or CohortGroups.of_cohorts(codes, n_levels), site_factor)
    final, level_imbalance = b.final, b.level_imbalance
    marginal = {name: float(level_imbalance[:, f].max(axis=1).mean()) for f, name in enumerate(factor_names)}
    worst = level_imbalance.max(axis=(1, 2)) if factor_names else np.zeros(n_trials)
    return BalanceSummary(
        method=method, trials=n_trials, patients=n_patients,
        mean_final_imbalance=float(final.mean()), max_final_imbalance=float(final.max()),
        p95_final_imbalance=float(np.quantile(final, 0.95)), mean_running_imbalance=float(b.running.mean()),
        mean_stratum_imbalance=float(b.per_stratum.mean()),
        mean_running_stratum_imbalance=float(b.strata_running.mean()), mean_marginal_imbalance=marginal,
        max_marginal_imbalance=float(worst.max()), mean_worst_marginal_imbalance=float(worst.mean()),
        mean_running_worst_marginal_imbalance=float(b.worst_running.mean()),
        ratio_reached=float((arms == treatment).mean()), ratio_target=float(ratio[treatment] / np.sum(ratio)),
        predictability=b.predictability, predictability_overall=b.predictability_overall,
        final_imbalance=final, worst_margin=worst, running=b.running, running_strata=b.strata_running,
        running_worst_margin=b.worst_running)
