"""Issue 22: the fast method comparison gives exactly today's figures for the same seed.

Today's code is kept in `stroketrial.randomization.compare_reference`; every BalanceSummary
value (each float, each per-trial and per-patient array) must be equal, not merely close,
so `randomization compare --json` prints the same JSON as before."""

from dataclasses import fields

import numpy as np
import pytest

from stroketrial.protocol import load_builtin
from stroketrial.randomization import ArmSlots, compare, simulate_slots, summarize
from stroketrial.randomization.compare import candidates, eligible_pool
from stroketrial.randomization.compare_reference import (compare_reference, convergence_hits_reference,
                                                         simulate_slots_reference, summarize_reference)
from stroketrial.randomization.diagnostics import convergence_hits


def assert_identical(new, old):
    for f in fields(old):
        a, b = getattr(new, f.name), getattr(old, f.name)
        if isinstance(b, np.ndarray):
            assert a.shape == b.shape and np.array_equal(a, b), f.name
        else:
            assert a == b, f.name


@pytest.mark.parametrize(("trial", "trials", "seed", "patients", "chunk"), [
    ("amass-2", 700, 1, None, 250),
    ("amass-2", 37, 5, 90, 2500),
    ("isis-hermes", 300, 2, None, 120),
    ("impact-lvo", 60, 3, 200, 25),
    ("angel-rescue", 90, 4, 150, 40),
])
def test_compare_gives_todays_balance_summaries(trial, trials, seed, patients, chunk):
    protocol = load_builtin(trial)
    new = compare(protocol, trials, seed, patients, chunk=chunk)
    old = compare_reference(protocol, trials, seed, patients, chunk=chunk)
    assert [r.method for r in new.results] == [r.method for r in old.results]
    assert new.to_json() == old.to_json()
    for a, b in zip(new.results, old.results, strict=True):
        assert_identical(a, b)


@pytest.mark.parametrize("trial", ["amass-2", "isis-hermes"])
def test_each_method_allocates_and_scores_as_today(trial):
    protocol = load_builtin(trial)
    arms = ArmSlots.of(protocol.arms)
    pool = eligible_pool(protocol, np.random.SeedSequence(11))
    n_levels = [len(lv) for lv in pool.levels]
    rng = np.random.default_rng(12)
    codes = pool.codes[rng.integers(0, pool.n, size=(64, 120))]
    u, v = rng.random((64, 120)), rng.random((64, 120))
    names = [f.name for f in protocol.randomization.factors]
    site = names.index("site") if "site" in names else None
    for c in candidates(protocol):
        slots = simulate_slots(c.scheme, arms, codes, n_levels, u, v, naive_unequal=c.naive_unequal)
        assert np.array_equal(slots, simulate_slots_reference(c.scheme, arms, codes, n_levels, u, v,
                                                              naive_unequal=c.naive_unequal)), c.label
        allocated = slots if c.naive_unequal else np.asarray(arms.slot_arm)[slots]
        assert_identical(summarize(c.label, allocated, codes, n_levels, names, arms.ratio, site, 0),
                         summarize_reference(c.label, allocated, codes, n_levels, names, arms.ratio, site, 0))


def test_a_trial_without_factors_scores_as_today():
    rng = np.random.default_rng(7)
    arms = rng.integers(0, 3, size=(40, 50))
    codes = np.zeros((40, 50, 0), dtype=np.int64)
    assert_identical(summarize("simple", arms, codes, [], [], (1, 1, 1), None, 1),
                     summarize_reference("simple", arms, codes, [], [], (1, 1, 1), None, 1))
    sites = rng.integers(0, 4, size=(40, 50))
    for ratio in ((1, 1, 1), (2, 1, 3)):
        assert np.array_equal(convergence_hits(arms, ratio, sites, 4),
                              convergence_hits_reference(arms, ratio, sites, 4))
        assert np.array_equal(convergence_hits(arms, ratio), convergence_hits_reference(arms, ratio))


@pytest.mark.parametrize(("ratio", "weights", "measure", "mti"), [
    ((1, 1), (0.3, 1.7, 1.0, 2.5, 0.1, 1.0), "range", None),  # two slots, weights that are not whole numbers
    ((1, 1), (0.3, 1.7, 1.0, 2.5, 0.1, 1.0), "variance", 2),
    ((4, 3), (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), "range", 4),  # seven slots: no lookup table
    ((1, 1, 1), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0), "variance", None),
    ((3, 1), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0), "range", None),  # two arms, four slots: balance counted in units of 1/4
])
def test_minimization_off_the_fast_paths_allocates_as_today(ratio, weights, measure, mti):
    protocol = load_builtin("amass-2")
    own = protocol.randomization
    factors = [f.model_copy(update={"weight": w}) for f, w in zip(own.factors, weights, strict=True)]
    scheme = own.model_copy(update={"factors": factors, "imbalance": measure, "max_imbalance": mti})
    arms = ArmSlots(tuple(f"arm{k}" for k in range(len(ratio))), ratio)
    pool = eligible_pool(protocol, np.random.SeedSequence(21))
    n_levels = [len(lv) for lv in pool.levels]
    rng = np.random.default_rng(22)
    codes = pool.codes[rng.integers(0, pool.n, size=(40, 100))]
    u = rng.random((40, 100))
    slots = simulate_slots(scheme, arms, codes, n_levels, u)
    assert np.array_equal(slots, simulate_slots_reference(scheme, arms, codes, n_levels, u))
    names = [f.name for f in factors]
    allocated = np.asarray(arms.slot_arm)[slots]
    assert_identical(summarize("m", allocated, codes, n_levels, names, arms.ratio, 0, 0),
                     summarize_reference("m", allocated, codes, n_levels, names, arms.ratio, 0, 0))
