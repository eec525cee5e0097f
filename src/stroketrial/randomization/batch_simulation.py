"""Many simulated trials at once: one loop over patients, every array operation across trials.

`simulate_slots` runs a randomization scheme over cohorts given as integer factor
codes, shape (trials, patients, factors), and returns the slot each patient was
allocated to. The allocation rules are the ones `Randomizer.allocate` uses
(`probabilities`), fed the same uniforms in the same order, so a simulated trial
replayed one patient at a time gives the identical sequence (tests check this).
Block designs draw the block size from a second stream `v`, and each position
without replacement from the block's remaining slots, as `lists.permuted_block` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..protocol.schemes import (BigStick, EfronBiasedCoin, Minimization, PermutedBlocks, RandomizationScheme,
                                SimpleRandomization)
from . import probabilities as P
from .state import ArmSlots


def simulate_slots(scheme: RandomizationScheme, arms: ArmSlots, codes: np.ndarray, n_levels: Sequence[int],
                   u: np.ndarray, v: np.ndarray | None = None, naive_unequal: bool = False) -> np.ndarray:
    """Slot index per (trial, patient). `u` (and `v` for blocks) are uniforms shaped (trials, patients).

    `naive_unequal` runs minimization on arms (not slots) with imbalance on counts divided by
    the ratio weights: the drifting variant, for comparison only; it returns arm indices.
    """
    n_trials, n_patients = u.shape
    n_slots = arms.n_slots
    if isinstance(scheme, SimpleRandomization):
        # `choose` with the same uniform probabilities for everyone: the count of cumulative bounds at or below u
        bounds = np.cumsum(P.uniform(n_slots))
        return np.searchsorted(bounds / bounds[-1], u, side="right").astype(np.int8)
    out = np.empty((n_trials, n_patients), dtype=np.int8)
    rows = np.arange(n_trials)
    if isinstance(scheme, PermutedBlocks):
        return _blocks(scheme, arms, codes, n_levels, u, v)
    totals = np.zeros((n_trials, n_slots))
    if isinstance(scheme, EfronBiasedCoin):
        return _efron(scheme.p, u)
    if isinstance(scheme, BigStick):
        for i in range(n_patients):
            if n_slots == 2:  # `big_stick_probabilities`, with the two-slot range |t_j + 1 - t_other| in closed form
                allowed = (np.abs(totals + 1 - totals[:, ::-1]) <= scheme.max_imbalance).astype(float)
                p = allowed / allowed.sum(axis=-1, keepdims=True)
            else:
                p = P.big_stick_probabilities(totals, scheme.max_imbalance)
            slot = P.choose(p, u[:, i])
            totals[rows, slot] += 1
            out[:, i] = slot
        return out
    if not isinstance(scheme, Minimization):
        raise ValueError(f"no simulation for method {scheme.method!r}")
    return _minimization(scheme, arms, codes, n_levels, u, naive_unequal)


def _efron(p: float, u: np.ndarray) -> np.ndarray:
    """Efron's coin on two slots as per-trial vectors: `efron_probabilities` and `choose`'s arithmetic."""
    n_trials, n_patients = u.shape
    u_by_patient = np.ascontiguousarray(u.T)
    lead = np.zeros(n_trials, dtype=np.int32)  # slot 0's patients less slot 1's
    out = np.empty((n_patients, n_trials), dtype=np.int8)
    for i in range(n_patients):
        p0 = np.where(lead < 0, p, np.where(lead > 0, 1 - p, 0.5))
        slot = (p0 / (p0 + (1 - p0)) <= u_by_patient[i]).view(np.int8)
        lead += 1 - 2 * slot.astype(np.int32)
        out[i] = slot
    return np.ascontiguousarray(out.T)


def _choice_table(width: int, p_preferred: float, base: np.ndarray | None) -> np.ndarray:
    """`choose`'s normalised cumulative probabilities for every (best slots, allowed slots) pattern.

    `preferred_probabilities` depends on the scores only through which allowed slots score
    lowest, so each step looks its row up by the bit pattern instead of recomputing it; the
    rows are made by the very same functions, so the chosen slots are the same to the last tie.
    """
    patterns = np.arange(1 << (2 * width))
    bits = (patterns[:, None] >> np.arange(2 * width)) & 1 == 1
    best, allowed = bits[:, :width], bits[:, width:]
    valid = best.any(axis=1) & ~(best & ~allowed).any(axis=1)
    p = P.preferred_probabilities(np.where(best, 0.0, 1.0), allowed | ~valid[:, None], p_preferred, base)
    cumulative = np.cumsum(p, axis=-1)
    return cumulative / cumulative[..., -1:]


def _level_rows(codes: np.ndarray, n_levels: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Each patient's level of each factor as a row of a (trials x all levels) table: small codes by patient
    (patients, trials, factors) and, per (trial, factor), the row of the factor's first level; a step adds the
    two, which costs less memory traffic than reading rows precomputed for every patient."""
    n_trials, n_rows = codes.shape[0], int(np.sum(n_levels))
    small = np.int8 if max(n_levels, default=0) <= np.iinfo(np.int8).max else np.intp
    by_patient = np.ascontiguousarray(codes.transpose(1, 0, 2).astype(small))
    first = np.cumsum([0, *n_levels[:-1]], dtype=np.intp) + (np.arange(n_trials, dtype=np.intp) * n_rows)[:, None]
    return by_patient, first, n_rows


def _two_slot_minimization(scheme: Minimization, codes: np.ndarray, n_levels: Sequence[int], u: np.ndarray,
                           weights: np.ndarray) -> np.ndarray:
    """Two slots and whole-number factor weights: each level's counts kept as one difference d = m_0 - m_1.

    One more patient in slot 0 makes the level's range |d + 1| and its variance (d + 1)^2 / 4
    (slot 1: d - 1); the weighted sums are whole numbers (quarters for the variance), exact in
    any order of addition, so the scores, and the slots chosen, are `minimization_scores`'.
    """
    n_trials, n_patients = u.shape
    by_patient, first_rows, n_rows = _level_rows(codes, n_levels)
    difference = np.zeros(n_trials * n_rows, dtype=np.int32)
    total = np.zeros(n_trials, dtype=np.int32)  # slot 0's patients less slot 1's
    # Slot 0 is chosen when u is at or above its cumulative bound, looked up by the pattern
    # best_0 + 2 best_1 + 4 allowed_0 + 8 allowed_1 (slot 1's bound is 1, never reached).
    bound = _choice_table(2, scheme.p_preferred, None)[:, 0]
    u_by_patient = np.ascontiguousarray(u.T)
    bounded = scheme.max_imbalance is not None
    allowed0 = allowed1 = np.ones(n_trials, dtype=bool)
    out = np.empty((n_patients, n_trials), dtype=np.int8)
    for i in range(n_patients):
        lv = first_rows + by_patient[i]
        d = difference[lv]
        if scheme.imbalance == "range":
            score0, score1 = np.abs(d + 1) @ weights, np.abs(d - 1) @ weights
        else:
            score0, score1 = (d + 1) ** 2 @ weights / 4, (d - 1) ** 2 @ weights / 4
        if bounded:
            allowed0, allowed1 = np.abs(total + 1) <= scheme.max_imbalance, np.abs(total - 1) <= scheme.max_imbalance
            score0, score1 = np.where(allowed0, score0, np.inf), np.where(allowed1, score1, np.inf)
        # `preferred_probabilities`' best slots: a score within EPS of the lower of the two
        key = (allowed0 & (score0 <= score1 + P.EPS)).astype(np.intp)
        key += 2 * (allowed1 & (score1 <= score0 + P.EPS))
        if bounded:
            key += 4 * allowed0 + 8 * allowed1
        else:
            key += 12
        slot = (bound[key] <= u_by_patient[i]).view(np.int8)
        step = 1 - 2 * slot.astype(np.int32)
        difference[lv] = d + step[:, None]
        total += step
        out[i] = slot
    return np.ascontiguousarray(out.T)


def _minimization(scheme: Minimization, arms: ArmSlots, codes: np.ndarray, n_levels: Sequence[int], u: np.ndarray,
                  naive_unequal: bool) -> np.ndarray:
    n_trials, n_patients = u.shape
    weights = np.array([f.weight for f in scheme.factors], dtype=float)
    width = arms.n_slots if not naive_unequal else len(arms.arms)
    if width == 2 and not naive_unequal and np.array_equal(weights, np.round(weights)):
        return _two_slot_minimization(scheme, codes, n_levels, u, weights)
    ratio = np.asarray(arms.ratio, dtype=float)
    base = ratio if naive_unequal else None
    # Each patient's level of each factor as a row of a (trials x all levels, slots) table of counts.
    by_patient, first_rows, n_rows = _level_rows(codes, n_levels)
    counts = np.zeros((n_trials * n_rows, width))
    flat_counts = counts.reshape(-1)
    totals = np.zeros((n_trials, width))
    rows = np.arange(n_trials)
    table = _choice_table(width, scheme.p_preferred, base) if width <= 6 else None
    powers = 1 << np.arange(2 * width)
    every = np.ones((n_trials, width), dtype=bool)
    out = np.empty((n_trials, n_patients), dtype=np.int8)
    for i in range(n_patients):
        lv = first_rows + by_patient[i]
        margins = counts[lv]  # [T, F, width]
        if naive_unequal:
            scores = P.naive_unequal_scores(margins, weights, ratio)
        elif width == 2:
            # Two slots, one more patient in slot j: the range of the counts is |m_j + 1 - m_other| and their
            # variance its square over 4. These are `minimization_scores`' values exactly (small multiples of
            # 1/4), weighted and summed by the same einsum.
            after = np.abs(margins + 1 - margins[..., ::-1])
            imbalance = after if scheme.imbalance == "range" else (after / 2) ** 2
            scores = np.einsum("...fj,f->...j", imbalance, weights)
        else:
            scores = P.minimization_scores(margins, weights, scheme.imbalance)
        if naive_unequal or scheme.max_imbalance is None:
            allowed = every
        elif width == 2:
            allowed = np.abs(totals + 1 - totals[:, ::-1]) <= scheme.max_imbalance
        else:
            allowed = P.tolerated(totals, scheme.max_imbalance)
        if table is None:
            slot = P.choose(P.preferred_probabilities(scores, allowed, scheme.p_preferred, base), u[:, i])
        else:
            masked = np.where(allowed, scores, np.inf)
            best = allowed & (masked <= masked.min(axis=-1, keepdims=True) + P.EPS)
            key = np.concatenate([best, allowed], axis=1) @ powers
            slot = (table[key] <= u[:, i, None]).sum(axis=-1)
        flat_counts[lv * width + slot[:, None]] += 1
        totals[rows, slot] += 1
        out[:, i] = slot
    return out


def stratum_index(codes: np.ndarray, factor_positions: Sequence[int], n_levels: Sequence[int]) -> tuple[np.ndarray,
                                                                                                          int]:
    """Mixed-radix index of each patient's stratum over the given factors, and the number of strata."""
    index = np.zeros(codes.shape[:-1], dtype=np.int64)
    n_strata = 1
    for pos in factor_positions:
        index = index * n_levels[pos] + codes[..., pos]
        n_strata *= n_levels[pos]
    return index, n_strata


def _blocks(scheme: PermutedBlocks, arms: ArmSlots, codes: np.ndarray, n_levels: Sequence[int], u: np.ndarray,
            v: np.ndarray | None) -> np.ndarray:
    if v is None:
        raise ValueError("block designs need a second stream of uniforms for the block sizes")
    names = [f.name for f in scheme.factors]
    stratum, n_strata = stratum_index(codes, [names.index(s) for s in scheme.stratify_by], n_levels)
    n_trials, n_patients = u.shape
    n_slots = arms.n_slots
    sizes = np.asarray(scheme.block_sizes)
    remaining = np.zeros((n_trials * n_strata, n_slots))  # a row per (trial, stratum)
    rows = np.arange(n_trials)
    stratum_rows = np.ascontiguousarray((stratum + rows[:, None] * n_strata).T)
    u_by_patient = np.ascontiguousarray(u.T)
    out = np.empty((n_trials, n_patients), dtype=np.int8)
    for i in range(n_patients):
        s = stratum_rows[i]
        left = remaining[s]  # [T, S]
        new = left.sum(axis=1) == 0
        if new.any():
            size = sizes[np.minimum((v[new, i] * len(sizes)).astype(int), len(sizes) - 1)]
            left[new] = (size // n_slots)[:, None]
        if n_slots == 2:  # `choose`'s arithmetic on the block's remaining slots, without the (trials, 2) arrays
            n = left[:, 0] + left[:, 1]
            p0, p1 = left[:, 0] / n, left[:, 1] / n
            slot = (p0 / (p0 + p1) <= u_by_patient[i]).view(np.int8)
        else:
            slot = P.choose(left / left.sum(axis=1, keepdims=True), u[:, i])
        left[rows, slot] -= 1
        remaining[s] = left
        out[:, i] = slot
    return out
