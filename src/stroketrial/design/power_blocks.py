"""Permuted blocks within strata for many simulated trials, as a small state machine.

`randomization.simulate_slots` steps through the patients one at a time, every step across
all trials (1,060 steps for IMPACT-LVO). The strata run independently of each other, so
here each (trial, stratum) is its own sequence and the loop runs over the position within
the stratum (at most the largest site's enrolment), every step across all of them. A
stratum's state is the slots left in its current block, coded as one integer; the draw
thresholds of every state are computed once by the same `probabilities.choose` arithmetic,
so each patient gets the slot `simulate_slots` gives from the same uniforms, bit for bit
(tests/test_power_speed_equivalence.py).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..protocol.schemes import PermutedBlocks


def block_slots(scheme: PermutedBlocks, n_slots: int, stratum: np.ndarray, n_strata: int, u: np.ndarray,
                v: np.ndarray) -> np.ndarray:
    """Slot per (trial, patient) from each patient's stratum and the uniforms `u` (choice) and `v` (block size)."""
    trials, patients = u.shape
    sizes = np.asarray(scheme.block_sizes)
    most = int(sizes.max()) // n_slots
    place = (most + 1) ** np.arange(n_slots)  # state = slots left per slot, in base most + 1; 0 = block used up
    lefts = np.array(list(itertools.product(range(most + 1), repeat=n_slots)))[:, ::-1]  # row s: slots left in s
    total = lefts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.cumsum(lefts / total, axis=-1)  # as probabilities.choose: p = left / sum, then cumsum / last
        thresholds = c / c[..., -1:]
    start_state = (sizes // n_slots)[:, None] * place[None, :]
    start_state = start_state.sum(axis=1)  # the full block of each size

    group = (np.arange(trials)[:, None] * n_strata + stratum).ravel()
    order = np.argsort(group.astype(np.uint16) if trials * n_strata < 65_536 else group, kind="stable")  # radix
    counts = np.bincount(group, minlength=trials * n_strata)
    by_length = np.argsort(-counts, kind="stable")  # longest first, so step j runs on a prefix of the groups
    first = (np.cumsum(counts) - counts)[by_length]  # where each group starts in `order`
    length = counts[by_length]
    us = u.ravel()[order]
    fresh = start_state[np.minimum((v.ravel()[order] * len(sizes)).astype(int), len(sizes) - 1)]
    chosen = np.empty(trials * patients, dtype=np.int8)
    state = np.zeros(len(length), dtype=np.int64)
    steps = int(length[0]) if len(length) else 0
    live = np.searchsorted(-length, -np.arange(1, steps + 1), side="right")  # groups longer than step j
    for j in range(steps):
        g = live[j]
        at = first[:g] + j
        s = state[:g]
        s = np.where(s == 0, fresh[at], s)
        if n_slots == 2:  # the second threshold is 1 and no uniform reaches it
            slot = (thresholds[s, 0] <= us[at]).astype(np.int8)
        else:
            slot = (thresholds[s] <= us[at, None]).sum(axis=-1).astype(np.int8)
        chosen[at] = slot
        state[:g] = s - place[slot]
    out = np.empty(trials * patients, dtype=np.int8)
    out[order] = chosen
    return out.reshape(trials, patients)
