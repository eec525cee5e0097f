"""The method comparison as it was before issue 22, kept verbatim as the reference.

`tests/test_randomization_speed_equivalence.py` checks that `compare` (and the
`batch_simulation` and `diagnostics` it calls) gives exactly these BalanceSummary values
for the same seed, and `benchmarks/randomization.py` times both in one run. Not used by
`randomization compare`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..protocol import Protocol
from ..protocol.schemes import (BigStick, EfronBiasedCoin, Minimization, PermutedBlocks, RandomizationScheme,
                                SimpleRandomization)
from . import probabilities as P
from .compare import Candidate, Comparison, _scheme, candidates, eligible_pool
from .diagnostics import BalanceSummary
from .randomizer import RandomizationError
from .state import ArmSlots


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


def stratum_index(codes: np.ndarray, factor_positions: Sequence[int], n_levels: Sequence[int]) -> tuple[np.ndarray,
                                                                                                          int]:
    """Mixed-radix index of each patient's stratum over the given factors, and the number of strata."""
    index = np.zeros(codes.shape[:-1], dtype=np.int64)
    n_strata = 1
    for pos in factor_positions:
        index = index * n_levels[pos] + codes[..., pos]
        n_strata *= n_levels[pos]
    return index, n_strata


def simulate_slots_reference(scheme: RandomizationScheme, arms: ArmSlots, codes: np.ndarray, n_levels: Sequence[int],
                   u: np.ndarray, v: np.ndarray | None = None, naive_unequal: bool = False) -> np.ndarray:
    """Slot index per (trial, patient). `u` (and `v` for blocks) are uniforms shaped (trials, patients).

    `naive_unequal` runs minimization on arms (not slots) with imbalance on counts divided by
    the ratio weights: the drifting variant, for comparison only; it returns arm indices.
    """
    n_trials, n_patients = u.shape
    n_slots = arms.n_slots
    if isinstance(scheme, SimpleRandomization):
        return P.choose(P.uniform(n_slots, u.shape), u).astype(np.int8)
    out = np.empty((n_trials, n_patients), dtype=np.int8)
    rows = np.arange(n_trials)
    if isinstance(scheme, PermutedBlocks):
        return _blocks_reference(scheme, arms, codes, n_levels, u, v)
    totals = np.zeros((n_trials, n_slots))
    if isinstance(scheme, (EfronBiasedCoin, BigStick)):
        for i in range(n_patients):
            p = (P.efron_probabilities(totals, scheme.p) if isinstance(scheme, EfronBiasedCoin)
                 else P.big_stick_probabilities(totals, scheme.max_imbalance))
            slot = P.choose(p, u[:, i])
            totals[rows, slot] += 1
            out[:, i] = slot
        return out
    if not isinstance(scheme, Minimization):
        raise ValueError(f"no simulation for method {scheme.method!r}")
    weights = np.array([f.weight for f in scheme.factors], dtype=float)
    n_factors = len(scheme.factors)
    width = n_slots if not naive_unequal else len(arms.arms)
    counts = np.zeros((n_trials, n_factors, max(n_levels), width))
    factor_idx = np.arange(n_factors)[None, :]
    ratio = np.asarray(arms.ratio, dtype=float)
    if naive_unequal:
        totals = np.zeros((n_trials, width))
    for i in range(n_patients):
        lv = codes[:, i, :]
        margins = counts[rows[:, None], factor_idx, lv]  # [T, F, width]
        if naive_unequal:
            scores = P.naive_unequal_scores(margins, weights, ratio)
            allowed = np.ones_like(scores, dtype=bool)
            p = P.preferred_probabilities(scores, allowed, scheme.p_preferred, base=ratio)
        else:
            scores = P.minimization_scores(margins, weights, scheme.imbalance)
            allowed = P.tolerated(totals, scheme.max_imbalance)
            p = P.preferred_probabilities(scores, allowed, scheme.p_preferred)
        slot = P.choose(p, u[:, i])
        counts[rows[:, None], factor_idx, lv, slot[:, None]] += 1
        totals[rows, slot] += 1
        out[:, i] = slot
    return out



def _blocks_reference(scheme: PermutedBlocks, arms: ArmSlots, codes: np.ndarray, n_levels: Sequence[int], u: np.ndarray,
            v: np.ndarray | None) -> np.ndarray:
    if v is None:
        raise ValueError("block designs need a second stream of uniforms for the block sizes")
    names = [f.name for f in scheme.factors]
    stratum, n_strata = stratum_index(codes, [names.index(s) for s in scheme.stratify_by], n_levels)
    n_trials, n_patients = u.shape
    n_slots = arms.n_slots
    sizes = np.asarray(scheme.block_sizes)
    remaining = np.zeros((n_trials, n_strata, n_slots))
    rows = np.arange(n_trials)
    out = np.empty((n_trials, n_patients), dtype=np.int8)
    for i in range(n_patients):
        s = stratum[:, i]
        left = remaining[rows, s]  # [T, S]
        new = left.sum(axis=1) == 0
        if new.any():
            size = sizes[np.minimum((v[new, i] * len(sizes)).astype(int), len(sizes) - 1)]
            left[new] = (size // n_slots)[:, None]
        slot = P.choose(left / left.sum(axis=1, keepdims=True), u[:, i])
        left[rows, slot] -= 1
        remaining[rows, s] = left
        out[:, i] = slot
    return out


def convergence_hits_reference(arms: np.ndarray, ratio: Sequence[int], group: np.ndarray | None = None,
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



def running_balance_reference(arms: np.ndarray, strata: np.ndarray, n_strata: int, codes: np.ndarray,
                              n_levels: Sequence[int],
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



def summarize_reference(method: str, arms: np.ndarray, codes: np.ndarray, n_levels: Sequence[int],
                        factor_names: Sequence[str], ratio: Sequence[int], site_factor: int | None,
                        treatment: int = 0) -> BalanceSummary:
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
    strata_running, worst_running, per_stratum, level_imbalance = running_balance_reference(
        arms, dense, int(dense.max()) + 1, codes, n_levels, ratio)
    marginal = {name: float(level_imbalance[:, f].max(axis=1).mean()) for f, name in enumerate(factor_names)}
    worst = level_imbalance.max(axis=(1, 2)) if factor_names else np.zeros(n_trials)

    site_group = codes[..., site_factor] if site_factor is not None else None
    n_sites = n_levels[site_factor] if site_factor is not None else 1
    predictability = convergence_hits_reference(arms, ratio, site_group, n_sites).mean()
    predictability_overall = convergence_hits_reference(arms, ratio).mean()
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


def compare_reference(protocol: Protocol, trials: int, seed: int, patients: int | None = None,
            methods: Sequence[Candidate] | None = None, chunk: int = 2500,
            progress: Callable[[str, int], None] | None = None) -> Comparison:
    """Simulate `trials` trials of `patients` (default: the protocol's sample size) under each method."""
    if trials < 1:
        raise RandomizationError(f"--trials is {trials}; simulate at least 1 trial")
    patients = patients or protocol.sample_size.total
    if patients < 2:
        raise RandomizationError(f"--patients is {patients}; a trial needs at least 2 patients")
    methods = list(methods) if methods is not None else candidates(protocol)
    arms = ArmSlots.of(protocol.arms)
    slot_arm = np.asarray(arms.slot_arm, dtype=np.int8)
    factors = _scheme(protocol).factors
    root = np.random.SeedSequence(seed)
    pool_seed, *chunk_seeds = root.spawn(1 + -(-trials // chunk))
    pool = eligible_pool(protocol, pool_seed)
    n_levels = [len(lv) for lv in pool.levels]
    all_codes: list[np.ndarray] = []
    allocated: dict[str, list[np.ndarray]] = {c.label: [] for c in methods}
    for k, chunk_seed in enumerate(chunk_seeds):
        n = min(chunk, trials - k * chunk)
        rng = np.random.default_rng(chunk_seed)
        codes = pool.codes[rng.integers(0, pool.n, size=(n, patients))]
        u = rng.random((n, patients))
        v = rng.random((n, patients))
        all_codes.append(codes)
        for c in methods:
            slots = simulate_slots_reference(c.scheme, arms, codes, n_levels, u, v, naive_unequal=c.naive_unequal)
            allocated[c.label].append(slots if c.naive_unequal else slot_arm[slots])
            if progress:
                progress(c.label, n)
    codes = np.concatenate(all_codes)
    names = [f.name for f in factors]
    site = names.index("site") if "site" in names else None
    treatment = next(i for i, a in enumerate(protocol.arms) if a.role == "experimental")
    results = [summarize_reference(c.label, np.concatenate(allocated[c.label]), codes, n_levels, names, arms.ratio,
                                   site, treatment) for c in methods]
    return Comparison(protocol.id, trials, patients, seed, arms.label, pool.n, results, methods)
