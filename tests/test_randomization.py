"""Central randomization: each rule as its paper defines it, concealment, state as data, and bad input."""

import json
import textwrap

import numpy as np
import pytest

from stroketrial.protocol import ProtocolError, load_builtin, parse_protocol
from stroketrial.protocol.schemes import BigStick, EfronBiasedCoin, Factor, Minimization, SimpleRandomization
from stroketrial.randomization import (Allocation, ArmSlots, ArrayDraw, BlockList, FactorValueError, ListExhausted,
                                       RandomizationError, RandomizationState, Randomizer, SeededDraw, SystemDraw,
                                       generate_kit_list, level_of, patient_levels, simulate_slots)
from stroketrial.randomization import probabilities as P

from .trials import amass2

RANDOMIZABLE = {**amass2.ELIGIBLE, "site": "S1", "bridging_thrombolysis": True}
ONE_TO_ONE = ArmSlots(("treatment", "control"), (1, 1))
TWO_TO_ONE = ArmSlots(("msc", "control"), (2, 1))


def factor(name, **kw):
    return Factor(name=name, **kw)


AGE = factor("age_band", field="age", cutpoints=[70], levels=["<70", ">=70"])
NIHSS = factor("nihss_band", field="nihss", cutpoints=[16], levels=["6-15", ">=16"])
SITE = factor("site", field="site")


def minimization(*factors, **kw):
    return Minimization(method="minimization", timing="t", factors=list(factors or (AGE, NIHSS)), **kw)


# ---- the protocol declares the method --------------------------------------------------------------
@pytest.mark.parametrize("trial, method, ratio", [("amass-2", "minimization", "1:1"),
                                                  ("impact-lvo", "permuted_blocks", "1:1"),
                                                  ("isis-hermes", "minimization", "2:1"),
                                                  ("angel-rescue", "permuted_blocks", "1:1")])
def test_each_randomized_builtin_declares_its_method(trial, method, ratio):
    protocol = load_builtin(trial)
    randomizer = Randomizer.for_protocol(protocol)
    assert randomizer.method == method and randomizer.arms.label == ratio
    assert protocol.randomization.assumption  # no seed document names a method's parameters


def test_impact_lvo_is_double_blind_with_kits_and_amass1_is_not_randomized():
    assert load_builtin("impact-lvo").randomization.blinded_kits
    with pytest.raises(RandomizationError, match="not randomized"):
        Randomizer.for_protocol(load_builtin("amass-1"))


def _protocol_with(randomization: str, arms: str = "[{id: a, name: A, role: experimental, description: d}, "
                                                     "{id: b, name: B, role: control, description: d}]"):
    text = load_builtin_text("amass-2")
    start = text.index("randomization:\n")
    end = text.index("\ninterventions:")
    text = text[:start] + "randomization:\n" + textwrap.indent(textwrap.dedent(randomization), "  ") + text[end:]
    if arms:
        a_start, a_end = text.index("arms:\n"), text.index("\nrandomization:")
        text = text[:a_start] + f"arms: {arms}\n" + text[a_end:]
        text = text.replace("per_arm: {albumin: 153, control: 153}", "per_arm: {}")
    return parse_protocol(text, "test.yaml")


def load_builtin_text(trial):
    from importlib import resources
    return resources.files("stroketrial.protocol").joinpath("builtin", f"{trial}.yaml").read_text()


@pytest.mark.parametrize("randomization, message", [
    ("method: minimization\ntiming: t\nfactors: [{name: age_band, field: age, cutpoints: [70], levels: [young]}]\n",
     "1 cutpoints make 2 levels"),
    ("method: minimization\ntiming: t\nfactors: [{name: occ, field: occlusion_site, levels: [m1, m7]}]\n",
     "are not values of occlusion_site"),
    ("method: minimization\ntiming: t\nfactors: [{name: s, field: site}]\np_preferred: 0.3\n",
     "p_preferred"),
    ("method: minimization\ntiming: t\nfactors: []\n", "minimization needs at least one factor"),
    ("method: permuted_blocks\ntiming: t\nblock_sizes: [2, 3]\nfactors: [{name: s, field: site}]\n",
     "not multiples of 2"),
    ("method: permuted_blocks\ntiming: t\nblock_sizes: [2]\nstratify_by: [sex]\nfactors: [{name: s, field: site}]\n",
     "stratify_by names ['sex']"),
    ("method: permuted_blocks\ntiming: t\nblock_sizes: [2]\np_preferred: 0.8\n", "p_preferred: unknown key"),
    ("method: coin_toss\ntiming: t\n", "randomization"),
    ("method: minimization\ntiming: t\nfactors: [{name: a, field: age_years, cutpoints: [1], levels: [x, y]}]\n",
     "is not a variable a factor can cut"),
])
def test_a_bad_randomization_section_is_refused_with_the_path_and_reason(randomization, message):
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        _protocol_with(randomization)
    assert str(info.value).startswith("test.yaml: ") and "randomization" in str(info.value)


def test_efron_is_refused_for_a_two_to_one_trial():
    arms = ("[{id: a, name: A, role: experimental, description: d, ratio: 2}, "
            "{id: b, name: B, role: control, description: d}]")
    with pytest.raises(ProtocolError, match="Efron's biased coin is defined for two arms 1:1, not 2:1"):
        _protocol_with("method: efron\ntiming: t\n", arms)
    with pytest.raises(ProtocolError, match="block_sizes \\[2, 4\\] are not multiples of 3"):
        _protocol_with("method: permuted_blocks\ntiming: t\nblock_sizes: [2, 4]\n", arms)


# ---- factor levels ---------------------------------------------------------------------------------
def test_factor_levels_read_like_the_protocol():
    assert level_of(AGE, 69) == "<70" and level_of(AGE, 70) == ">=70"  # a cutpoint opens the level above
    circulation = factor("circulation", field="occlusion_site", levels=["anterior", "posterior"],
                         groups={"anterior": ["m1", "m2"], "posterior": ["basilar"]})
    assert level_of(circulation, "basilar") == "posterior"
    ivt = factor("bridging_ivt", field="bridging_thrombolysis", levels=["no", "yes"])
    assert level_of(ivt, True) == "yes" and level_of(ivt, False) == "no"
    levels = patient_levels(load_builtin("amass-2").randomization.factors, RANDOMIZABLE)
    assert levels == {"site": "S1", "age_band": "<70", "nihss_band": "6-15", "aspects_band": "8-10",
                      "occlusion": "m1", "bridging_ivt": "yes"}


def test_a_missing_or_unknown_factor_value_is_refused_by_name():
    factors = load_builtin("amass-2").randomization.factors
    record = {k: v for k, v in RANDOMIZABLE.items() if k != "bridging_thrombolysis"}
    with pytest.raises(FactorValueError, match="factor bridging_ivt: bridging_thrombolysis is missing"):
        patient_levels(factors, record)
    with pytest.raises(FactorValueError, match="occlusion_site 'm2' is not one of its levels"):
        patient_levels(factors, {**RANDOMIZABLE, "occlusion_site": "m2"})
    randomizer = Randomizer.for_protocol(load_builtin("amass-2"))
    with pytest.raises(FactorValueError, match="level 'old' is not one of <70, >=70"):
        randomizer.allocate(randomizer.initial_state(), "P1", {**_levels(), "age_band": "old"}, SeededDraw(1))
    with pytest.raises(FactorValueError, match="factor nihss_band has no level"):
        randomizer.allocate(randomizer.initial_state(), "P1",
                            {k: v for k, v in _levels().items() if k != "nihss_band"}, SeededDraw(1))


def _levels(**kw):
    return {"site": "S1", "age_band": "<70", "nihss_band": ">=16", "aspects_band": "8-10", "occlusion": "m1",
            "bridging_ivt": "yes", **kw}


# ---- the rules, as their papers define them ---------------------------------------------------------
def test_pocock_simon_prefers_the_arm_that_minimizes_the_summed_range():
    # Levels of the new patient: age <70 has 5 treatment / 3 control, NIHSS >=16 has 2 / 4.
    # Treatment: ranges |6-3| + |3-4| = 4; control: |5-4| + |2-5| = 4 -> a tie, 1/2 each.
    # With NIHSS weighted 2: treatment 3 + 2*1 = 5; control 1 + 2*3 = 7 -> treatment preferred.
    margins = np.array([[5.0, 3.0], [2.0, 4.0]])
    assert P.minimization_scores(margins, np.array([1.0, 1.0]), "range").tolist() == [4.0, 4.0]
    scores = P.minimization_scores(margins, np.array([1.0, 2.0]), "range")
    assert scores.tolist() == [5.0, 7.0]
    allowed = np.array([True, True])
    assert P.preferred_probabilities(scores, allowed, 0.8).tolist() == pytest.approx([0.8, 0.2])
    assert P.preferred_probabilities(scores, allowed, 1.0).tolist() == [1.0, 0.0]
    assert P.preferred_probabilities(np.array([4.0, 4.0]), allowed, 0.8).tolist() == [0.5, 0.5]


def test_minimization_through_the_randomizer_matches_the_hand_count():
    randomizer = Randomizer(minimization(p_preferred=0.8), ONE_TO_ONE)
    state = RandomizationState(allocated=8,
                               slots={"treatment": 5, "control": 3},
                               margins={"age_band": {"<70": {"treatment": 5, "control": 3}},
                                        "nihss_band": {">=16": {"treatment": 3, "control": 3},
                                                       "6-15": {"treatment": 2, "control": 0}}})
    new_patient = {"age_band": "<70", "nihss_band": ">=16"}
    p, scores = randomizer.slot_probabilities(state, new_patient)
    assert scores.tolist() == [3 + 1, 1 + 1]  # treatment: |6-3| + |4-3|; control: |5-4| + |3-4|
    assert p.tolist() == pytest.approx([0.2, 0.8])
    allocation, _ = randomizer.allocate(state, "P9", new_patient, ArrayDraw([0.19]))
    assert allocation.arm == "treatment" and allocation.sequence == 9
    assert allocation.probabilities == pytest.approx({"treatment": 0.2, "control": 0.8})
    assert allocation.scores == {"treatment": 4.0, "control": 2.0}
    allocation, _ = randomizer.allocate(state, "P9", new_patient, ArrayDraw([0.2]))
    assert allocation.arm == "control"


def test_the_first_allocation_is_random_even_when_deterministic():
    randomizer = Randomizer(minimization(p_preferred=1.0), ONE_TO_ONE)
    p, _ = randomizer.slot_probabilities(randomizer.initial_state(), {"age_band": "<70", "nihss_band": "6-15"})
    assert p.tolist() == [0.5, 0.5]
    arms = {randomizer.allocate(randomizer.initial_state(), "P1", {"age_band": "<70", "nihss_band": "6-15"},
                                SeededDraw(seed))[0].arm for seed in range(20)}
    assert arms == {"treatment", "control"}


def test_variance_measure_and_the_tolerated_imbalance_bound():
    margins = np.array([[3.0, 1.0]])
    assert P.minimization_scores(margins, np.array([1.0]), "variance").tolist() == [2.25, 0.25]
    # Arm totals 5 vs 2 with a bound of 3: the treatment arm would reach 4 and is not allowed.
    allowed = P.tolerated(np.array([5.0, 2.0]), 3)
    assert allowed.tolist() == [False, True]
    p = P.preferred_probabilities(np.array([0.0, 9.0]), allowed, 0.8)
    assert p.tolist() == [0.0, 1.0]


def test_efron_and_big_stick():
    assert P.efron_probabilities(np.array([3.0, 5.0]), 2 / 3).tolist() == pytest.approx([2 / 3, 1 / 3])
    assert P.efron_probabilities(np.array([4.0, 4.0]), 2 / 3).tolist() == [0.5, 0.5]
    assert P.big_stick_probabilities(np.array([4.0, 2.0]), 3).tolist() == [0.5, 0.5]
    assert P.big_stick_probabilities(np.array([5.0, 2.0]), 3).tolist() == [0.0, 1.0]


def test_choose_never_picks_a_slot_of_probability_zero():
    p = np.array([0.0, 1.0, 0.0])
    assert {int(P.choose(p, u)) for u in np.linspace(0, 0.999999, 101)} == {1}
    p = np.array([0.1, 0.0, 0.9])
    assert int(P.choose(p, 0.0999999)) == 0 and int(P.choose(p, 0.1)) == 2


# ---- live and simulated allocation agree -------------------------------------------------------------
SCHEMES = {
    "simple": SimpleRandomization(method="simple", timing="t", factors=[AGE, NIHSS]),
    "efron": EfronBiasedCoin(method="efron", timing="t", factors=[AGE, NIHSS]),
    "big_stick": BigStick(method="big_stick", timing="t", max_imbalance=2, factors=[AGE, NIHSS]),
    "minimization": minimization(),
    "deterministic": minimization(p_preferred=1.0),
    "variance_weighted": minimization(factor("age_band", field="age", cutpoints=[70], levels=["<70", ">=70"],
                                             weight=2.5), NIHSS, imbalance="variance"),
    "mti": minimization(max_imbalance=2),
}


@pytest.mark.parametrize("name", list(SCHEMES))
@pytest.mark.parametrize("arms", [ONE_TO_ONE, TWO_TO_ONE], ids=["1:1", "2:1"])
def test_a_simulated_trial_replayed_one_patient_at_a_time_is_identical(name, arms):
    scheme = SCHEMES[name]
    if name == "efron" and arms.n_slots != 2:
        pytest.skip("Efron's coin is for 1:1")
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2, size=(25, 60, 2))
    u = rng.random((25, 60))
    simulated = simulate_slots(scheme, arms, codes, [2, 2], u)
    randomizer = Randomizer(scheme, arms)
    for t in range(codes.shape[0]):
        patients = [(f"P{i}", {"age_band": AGE.levels[a], "nihss_band": NIHSS.levels[b]}, None)
                    for i, (a, b) in enumerate(codes[t])]
        allocations, _, _ = randomizer.run(patients, ArrayDraw(u[t]))
        assert [arms.slots.index(a.slot) for a in allocations] == simulated[t].tolist()


# ---- blocks and lists ---------------------------------------------------------------------------------
def test_block_list_is_whole_permuted_blocks_of_the_declared_sizes():
    blocks = BlockList().extended(TWO_TO_ONE, [3, 6], "site=S1", 300, SeededDraw(3))
    entries = blocks.strata["site=S1"]
    assert len(entries) >= 300 and [e.position for e in entries] == list(range(len(entries)))
    sizes = set()
    for number in {e.block for e in entries}:
        block = [e for e in entries if e.block == number]
        sizes.add(len(block))
        assert len(block) == block[0].block_size
        assert sum(e.arm == "msc" for e in block) == 2 * sum(e.arm == "control" for e in block)
    assert sizes == {3, 6}  # both sizes occur, so the end of a block cannot be counted


def test_a_block_design_allocates_from_its_list_and_says_when_it_runs_out():
    protocol = load_builtin("angel-rescue")
    randomizer = Randomizer.for_protocol(protocol)
    levels = {"site": "S1", "circulation": "posterior", "age_band": "<70", "nihss_band": ">=16",
              "bridging_ivt": "no"}
    key = randomizer.stratum(levels)
    assert key == "site=S1|circulation=posterior"
    blocks = BlockList().extended(randomizer.arms, [2], key, 2, SeededDraw(1))
    state = randomizer.initial_state()
    arms = []
    for i in range(2):
        allocation, state = randomizer.allocate(state, f"P{i}", levels, SystemDraw(), block_list=blocks)
        arms.append(allocation.arm)
        assert allocation.list_position == i and allocation.probabilities[allocation.arm] == 1.0
    assert arms == [e.arm for e in blocks.strata[key]]
    with pytest.raises(ListExhausted, match=r"site=S1\|circulation=posterior.*all are used"):
        randomizer.allocate(state, "P2", levels, SystemDraw(), block_list=blocks)
    with pytest.raises(ListExhausted, match="has 0 entries"):
        randomizer.allocate(state, "P3", {**levels, "site": "S2"}, SystemDraw(), block_list=blocks)


def test_blinded_kits_hide_the_arm():
    protocol = load_builtin("impact-lvo")
    randomizer = Randomizer.for_protocol(protocol)
    kits = generate_kit_list(randomizer.arms, ["S1", "S2"], 8, [2, 4], SeededDraw(5))
    numbers = [k.kit_number for k in kits.kits]
    assert len(set(numbers)) == len(numbers) and all(len(n) == 6 for n in numbers)
    for site in ("S1", "S2"):
        at_site = [k for k in kits.kits if k.site == site]
        assert 8 <= len(at_site) <= 10  # at least 8 kits, shipped in whole blocks of 2 or 4
        assert 2 * sum(k.arm == "methylprednisolone" for k in at_site) == len(at_site)
    assert all(set(row) == {"kit_number", "site"} for row in kits.without_arms())
    levels = {"site": "S1", "age_band": "<70", "nihss_band": ">=16", "aspects_band": "8-10", "occlusion": "m1"}
    blocks = BlockList().extended(randomizer.arms, [2, 4], "site=S1", 8, SeededDraw(6))
    state = randomizer.initial_state()
    for i in range(4):
        allocation, state = randomizer.allocate(state, f"P{i}", levels, SystemDraw(), block_list=blocks,
                                                kit_list=kits)
        kit = next(k for k in kits.kits if k.kit_number == allocation.kit)
        assert kit.site == "S1" and kit.arm == allocation.arm
        view = allocation.blinded()
        assert view["kit"] == allocation.kit and "arm" not in view and "probabilities" not in view
        assert allocation.arm not in json.dumps(view)
    with pytest.raises(RandomizationError, match="dispenses kits; pass kit_list"):
        randomizer.allocate(state, "P9", levels, SystemDraw(), block_list=blocks)


def test_the_packing_list_order_tells_nothing_of_the_dispensing_order():
    """The attack: a later patient given a kit listed earlier than an earlier patient's must be on the other
    arm, when the list is in dispensing order. On the packing list it must be right no more than chance."""
    arms = ONE_TO_ONE
    right = total = 0
    for seed in range(200):
        kits = generate_kit_list(arms, ["S1"], 12, [2, 4], SeededDraw(seed))
        order = {row["kit_number"]: i for i, row in enumerate(kits.without_arms())}
        draw, given, dispensed = SeededDraw(10_000 + seed), [], {"treatment": 0, "control": 0}
        for _ in range(10):
            arm = "treatment" if draw.random() < 0.5 else "control"
            if dispensed[arm] >= 6:
                arm = "control" if arm == "treatment" else "treatment"
            given.append((arm, order[kits.next_kit("S1", arm, dispensed[arm]).kit_number]))
            dispensed[arm] += 1
        for i, (arm_i, at_i) in enumerate(given):
            for arm_j, at_j in given[i + 1:]:
                if at_j < at_i:
                    total += 1
                    right += arm_i != arm_j
    assert total > 1000 and 0.4 < right / total < 0.6


def test_a_site_out_of_kits_is_told_to_resupply():
    arms = ONE_TO_ONE
    kits = generate_kit_list(arms, ["S1"], 2, [2], SeededDraw(1))
    with pytest.raises(ListExhausted, match=r"site 'S1' has no kit left.*resupply"):
        kits.next_kit("S1", "treatment", 1)


# ---- never twice, no gaps ---------------------------------------------------------------------------
def test_a_patient_is_randomized_once_and_the_history_has_no_gaps():
    randomizer = Randomizer(minimization(), ONE_TO_ONE)
    levels = {"age_band": "<70", "nihss_band": "6-15"}
    first, state = randomizer.allocate(randomizer.initial_state(), "P1", levels, SeededDraw(1))
    with pytest.raises(RandomizationError, match="P1 is already randomized"):
        randomizer.run([("P1", levels, None), ("P2", levels, None), ("P1", levels, None)], SeededDraw(2))
    second, _ = randomizer.allocate(state, "P2", levels, SeededDraw(2))
    with pytest.raises(RandomizationError, match="must have no gaps or repeats"):
        randomizer.rebuild([first, second.model_copy(update={"sequence": 3})])
    with pytest.raises(RandomizationError, match="appears twice"):
        randomizer.rebuild([first, second.model_copy(update={"patient_id": "P1"})])
    with pytest.raises(RandomizationError, match="patient_id is empty"):
        randomizer.allocate(state, " ", levels, SeededDraw(2))


def test_state_and_allocations_survive_a_json_round_trip():
    protocol = load_builtin("amass-2")
    randomizer = Randomizer.for_protocol(protocol)
    patients = [(f"P{i}", _levels(site=f"S{i % 3}", age_band=["<70", ">=70"][i % 2]), None) for i in range(40)]
    allocations, state, _ = randomizer.run(patients, SeededDraw(11))
    stored = [json.loads(a.model_dump_json()) for a in allocations]
    rebuilt = randomizer.rebuild(Allocation.model_validate(a) for a in reversed(stored))
    assert rebuilt == state
    assert RandomizationState.model_validate_json(state.model_dump_json()) == state


def test_system_draws_are_uniform_and_not_reproducible():
    draws = [SystemDraw().random() for _ in range(2000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.45 < np.mean(draws) < 0.55
    assert [SystemDraw().random() for _ in range(5)] != [SystemDraw().random() for _ in range(5)]


def test_running_balance_ends_where_a_direct_count_does():
    from stroketrial.randomization.diagnostics import group_imbalance, running_balance

    rng = np.random.default_rng(3)
    arms = rng.integers(0, 2, size=(50, 80))
    codes = rng.integers(0, 3, size=(50, 80, 2))
    strata = codes[..., 0] * 3 + codes[..., 1]
    strata_running, worst_running, final_strata, level_imbalance = running_balance(arms, strata, 9, codes, [3, 3],
                                                                                   (1, 1))
    for t in range(50):
        direct = sum(abs((arms[t][strata[t] == s] == 0).sum() - (arms[t][strata[t] == s] == 1).sum())
                     for s in range(9))
        assert final_strata[t] == direct
        for f in range(2):
            for level in range(3):
                chosen = arms[t][codes[t, :, f] == level]
                assert level_imbalance[t, f, level] == abs((chosen == 0).sum() - (chosen == 1).sum())
    assert strata_running[-1] == final_strata.mean()
    assert worst_running[-1] == level_imbalance.max(axis=(1, 2)).mean()
    assert group_imbalance(np.array([4, 2]), (2, 1)) == 0  # 4:2 is exactly 2:1
    assert group_imbalance(np.array([3, 3]), (2, 1)) == 2  # one patient away from 4:2
