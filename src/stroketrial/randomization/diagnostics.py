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


def _counts_by(group: np.ndarray, n_groups: int, arms: np.ndarray, n_arms: int) -> np.ndarray:
    """Arm counts per (trial, group): bincount over a flattened index."""
    n_trials = arms.shape[0]
    flat = (np.arange(n_trials)[:, None] * n_groups + group) * n_arms + arms
    return np.bincount(flat.ravel(), minlength=n_trials * n_groups * n_arms).reshape(n_trials, n_groups, n_arms)


def _running_counts(arms: np.ndarray, n_arms: int) -> np.ndarray:
    onehot = (arms[..., None] == np.arange(n_arms)).astype(np.int32)
    return np.cumsum(onehot, axis=1)


def convergence_hits(arms: np.ndarray, ratio: Sequence[int], group: np.ndarray | None = None,
                     n_groups: int = 1) -> np.ndarray:
    """Expected correct guesses per allocation, (trials, patients), guessing from `group` histories."""
    n_trials, n_patients = arms.shape
    r = np.asarray(ratio, dtype=float)
    if group is None:
        group = np.zeros_like(arms, dtype=np.int64)
    rows = np.arange(n_trials)
    seen = np.zeros((n_trials, n_groups, len(ratio)))
    hits = np.empty(arms.shape)
    for i in range(n_patients):
        g, a = group[:, i], arms[:, i]
        deficit = seen[rows, g] / r  # furthest below its target share: smallest n_k / r_k
        low = deficit <= deficit.min(axis=1, keepdims=True) + 1e-12
        hits[:, i] = low[rows, a] / low.sum(axis=1)
        seen[rows, g, a] += 1
    return hits


def running_balance(arms: np.ndarray, strata: np.ndarray, n_strata: int, codes: np.ndarray, n_levels: Sequence[int],
                    ratio: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """After each patient, per trial: the summed within-stratum imbalance and the worst factor-level imbalance.

    Kept incrementally (only the new patient's stratum and levels change), so the whole
    history costs one pass. Returns (strata_running, worst_running) as means over trials
    per patient, and the final (per-trial) values of both.
    """
    n_trials, n_patients = arms.shape
    n_arms, n_factors = len(ratio), len(n_levels)
    rows = np.arange(n_trials)
    s_counts = np.zeros((n_trials, n_strata, n_arms))
    s_imbalance = np.zeros((n_trials, n_strata))
    s_total = np.zeros(n_trials)
    m_counts = np.zeros((n_trials, n_factors, max(n_levels, default=1), n_arms))
    m_imbalance = np.zeros(m_counts.shape[:-1])
    factor_idx = np.arange(n_factors)[None, :]
    strata_running = np.empty(n_patients)
    worst_running = np.empty(n_patients)
    for i in range(n_patients):
        a, g = arms[:, i], strata[:, i]
        s_counts[rows, g, a] += 1
        new = group_imbalance(s_counts[rows, g], ratio)
        s_total += new - s_imbalance[rows, g]
        s_imbalance[rows, g] = new
        strata_running[i] = s_total.mean()
        if n_factors:
            lv = codes[:, i, :]
            m_counts[rows[:, None], factor_idx, lv, a[:, None]] += 1
            m_imbalance[rows[:, None], factor_idx, lv] = group_imbalance(m_counts[rows[:, None], factor_idx, lv],
                                                                         ratio)
            worst_running[i] = m_imbalance.max(axis=(1, 2)).mean()
        else:
            worst_running[i] = 0.0
    return strata_running, worst_running, s_total, m_imbalance


def summarize(method: str, arms: np.ndarray, codes: np.ndarray, n_levels: Sequence[int], factor_names: Sequence[str],
              ratio: Sequence[int], site_factor: int | None, treatment: int = 0) -> BalanceSummary:
    """Balance and predictability of simulated allocations `arms` (trials, patients) of arm indices."""
    arms = arms.astype(np.int64)
    n_trials, n_patients = arms.shape
    n_arms = len(ratio)
    total = _counts_by(np.zeros_like(arms), 1, arms, n_arms)[:, 0]
    final = group_imbalance(total, ratio)
    running = group_imbalance(_running_counts(arms, n_arms), ratio).mean(axis=0)

    stratum, _ = stratum_index(codes, range(len(n_levels)), n_levels)
    # Strata can outnumber patients (8 sites x 2^5 bands); number only the strata present.
    _, dense = np.unique(stratum, return_inverse=True)
    dense = dense.reshape(stratum.shape)
    strata_running, worst_running, per_stratum, level_imbalance = running_balance(
        arms, dense, int(dense.max()) + 1, codes, n_levels, ratio)
    marginal = {name: float(level_imbalance[:, f].max(axis=1).mean()) for f, name in enumerate(factor_names)}
    worst = level_imbalance.max(axis=(1, 2)) if factor_names else np.zeros(n_trials)

    site_group = codes[..., site_factor] if site_factor is not None else None
    n_sites = n_levels[site_factor] if site_factor is not None else 1
    predictability = convergence_hits(arms, ratio, site_group, n_sites).mean()
    predictability_overall = convergence_hits(arms, ratio).mean()
    return BalanceSummary(
        method=method, trials=n_trials, patients=n_patients,
        mean_final_imbalance=float(final.mean()), max_final_imbalance=float(final.max()),
        p95_final_imbalance=float(np.quantile(final, 0.95)), mean_running_imbalance=float(running.mean()),
        mean_stratum_imbalance=float(per_stratum.mean()),
        mean_running_stratum_imbalance=float(strata_running.mean()), mean_marginal_imbalance=marginal,
        max_marginal_imbalance=float(worst.max()), mean_worst_marginal_imbalance=float(worst.mean()),
        mean_running_worst_marginal_imbalance=float(worst_running.mean()),
        ratio_reached=float((arms == treatment).mean()), ratio_target=float(ratio[treatment] / np.sum(ratio)),
        predictability=float(predictability), predictability_overall=float(predictability_overall),
        final_imbalance=final, worst_margin=worst, running=running, running_strata=strata_running,
        running_worst_margin=worst_running)
