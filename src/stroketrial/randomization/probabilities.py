"""The arithmetic every allocation rule shares, vectorised over any leading axes.

The one-patient path (`Randomizer.allocate`) and the many-trial simulations
(`simulate`) call these same functions, so a seeded simulation and a live
allocation given the same uniform draw pick the same arm, to the last tie.

Arms are handled as *slots*: an arm with ratio weight r fills r slots, and every
rule allocates the slots equally. For 1:1 a slot is an arm. For 2:1 this is the
allocation-ratio-preserving expansion of Kuznetsova and Tymofyeyev (Stat Med
2012;31:701-723): minimization over equally allocated sub-arms, merged afterwards.
The rule treats the slots symmetrically and the first allocation is uniform over
them, so by symmetry each slot has unconditional probability 1/R at every
allocation, and each arm exactly r/R: the target ratio holds at every step, where
the plain extension of Pocock-Simon to unequal ratios (imbalance on counts divided
by the ratio weights) drifts away from it (see `naive_unequal_scores`).
"""

from __future__ import annotations

import numpy as np

# Imbalance scores are sums of small integers times factor weights; two scores
# within EPS are a tie, so float rounding in a weighted sum never breaks a tie.
EPS = 1e-9


def choose(p: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """The slot a uniform draw u in [0, 1) picks from probabilities p (last axis).

    The cumulative sum is normalised so its last entry is exactly 1; a slot of
    probability 0 then has an empty interval and can never be picked.
    """
    c = np.cumsum(p, axis=-1)
    c = c / c[..., -1:]
    return (c <= np.asarray(u)[..., None]).sum(axis=-1)


def uniform(n_slots: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    return np.full((*shape, n_slots), 1.0 / n_slots)


def tolerated(totals: np.ndarray, max_imbalance: int | None) -> np.ndarray:
    """Slots that keep max - min of the slot totals within the bound (all, without a bound)."""
    n_slots = totals.shape[-1]
    if max_imbalance is None:
        return np.ones(totals.shape, dtype=bool)
    after = totals[..., None, :] + np.eye(n_slots, dtype=totals.dtype)
    return (after.max(axis=-1) - after.min(axis=-1)) <= max_imbalance


def minimization_scores(margins: np.ndarray, weights: np.ndarray, measure: str) -> np.ndarray:
    """Pocock-Simon total imbalance G_j if the patient went to slot j.

    margins[..., f, k]: patients already in slot k at this patient's level of factor f.
    For each candidate j the level's counts gain one in slot j; the imbalance of a
    level is the range (max - min) or the variance of its counts across slots, and
    G_j is the weighted sum over factors (Pocock and Simon, Biometrics 1975;31:103-115).
    """
    # Closed forms of the imbalance after one more patient in slot j, to avoid building
    # the (slots x slots) array of hypothetical counts at every step; the tests check them
    # against that direct construction.
    n_slots = margins.shape[-1]
    if measure == "range":
        ordered = np.sort(margins, axis=-1)
        low, high = ordered[..., :1], ordered[..., -1:]
        second = ordered[..., 1:2]
        others_min = np.where((margins == low) & (second > low), second, low)  # min over k != j
        imbalance = np.maximum(high, margins + 1) - np.minimum(others_min, margins + 1)
    elif measure == "variance":
        mean = margins.mean(axis=-1, keepdims=True)
        imbalance = margins.var(axis=-1, keepdims=True) + (2 * (margins - mean) + 1 - 1 / n_slots) / n_slots
    else:
        raise ValueError(f"imbalance measure {measure!r} is not range or variance")
    return np.einsum("...fj,f->...j", imbalance, weights)


def naive_unequal_scores(margins: np.ndarray, weights: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Range imbalance of arm counts divided by their ratio weights: the plain extension of
    Pocock-Simon to unequal allocation, kept only to show in comparisons how it drifts."""
    n_arms = margins.shape[-1]
    after = (margins[..., None, :] + np.eye(n_arms)) / ratio
    return np.einsum("...fj,f->...j", after.max(axis=-1) - after.min(axis=-1), weights)


def preferred_probabilities(scores: np.ndarray, allowed: np.ndarray, p_preferred: float,
                            base: np.ndarray | None = None) -> np.ndarray:
    """Probabilities given imbalance scores (lower is better).

    The slots with the lowest score share p_preferred, the other allowed slots share
    the rest; when every allowed slot ties, allocation is at random (in proportion to
    `base` where given, else equally): this makes the first allocation random.
    """
    masked = np.where(allowed, scores, np.inf)
    best = allowed & (masked <= masked.min(axis=-1, keepdims=True) + EPS)
    if base is None:
        base = np.ones(scores.shape[-1])
    weight = np.broadcast_to(base, scores.shape)
    w_best = np.where(best, weight, 0.0).sum(axis=-1, keepdims=True)
    w_rest = np.where(allowed & ~best, weight, 0.0).sum(axis=-1, keepdims=True)
    tied = w_rest == 0
    p_best = np.where(tied, 1.0, p_preferred)
    p = np.where(best, p_best * weight / w_best, np.where(allowed & ~best, (1 - p_best) * weight /
                                                          np.where(tied, 1.0, w_rest), 0.0))
    return p


def efron_probabilities(totals: np.ndarray, p: float) -> np.ndarray:
    """Efron (Biometrika 1971;58:403-417): the lagging arm with probability p, 1/2 when level."""
    d = totals[..., 0] - totals[..., 1]
    p0 = np.where(d < 0, p, np.where(d > 0, 1 - p, 0.5))
    return np.stack([p0, 1 - p0], axis=-1)


def big_stick_probabilities(totals: np.ndarray, max_imbalance: int) -> np.ndarray:
    """Soares and Wu (Commun Stat 1983;12:2017-34): equal chances among the slots that keep the
    imbalance within the bound; at the bound the lagging slot is forced."""
    allowed = tolerated(totals, max_imbalance).astype(float)
    return allowed / allowed.sum(axis=-1, keepdims=True)
