"""Screening semantics: three-valued logic, attestations, eTICI 2b, reasons, and the vectorised funnel."""


import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from stroketrial.clinical.cohort_table import TableDataError
from stroketrial.clinical.cohort_records import records_from_frame
from stroketrial.cohort import synthesize
from stroketrial.eligibility import (ScreeningInputError, encode_cohort, first_failing, funnel, screen, statuses)
from stroketrial.protocol import BUILTIN_IDS, load_builtin, parse_protocol

from .test_protocol import MINIMAL
from .trials import amass2, impact_lvo

AMASS2 = load_builtin("amass-2")


def criterion(result, cid):
    return next(c for c in result.criteria if c.id == cid)


def test_reason_quotes_the_value_and_the_threshold():
    result = screen(AMASS2, {**amass2.ELIGIBLE, "nihss": 5})
    nihss = criterion(result, "nihss")
    assert (nihss.status, nihss.excludes, nihss.reason) == ("not_met", True, "NIHSS 5 is below 6")


def test_the_stored_screening_result_holds_every_field_of_every_criterion():
    from dataclasses import asdict

    result = screen(AMASS2, {**amass2.ELIGIBLE, "nihss": 5})
    assert result.to_json() == asdict(result) | {"criteria": [asdict(c) for c in result.criteria]}


def test_reason_for_a_lab_given_in_another_unit_shows_both_units():
    result = screen(AMASS2, {**amass2.ELIGIBLE, "creatinine_umol_l": {"value": 2.2, "unit": "mg/dL"}})
    renal = criterion(result, "renal_failure")
    assert renal.status == "met" and renal.excludes  # the exclusion applies
    assert renal.reason == "serum creatinine 194.5 µmol/L is above 176.8 µmol/L (2.0 mg/dL)"


def test_one_failed_criterion_makes_the_patient_ineligible_whatever_is_missing():
    result = screen(AMASS2, {"nihss": 3})
    assert result.status == "ineligible"
    assert [c.id for c in result.failing] == ["nihss"]


def test_missing_data_makes_the_patient_incomplete_not_ineligible():
    patient = {k: v for k, v in amass2.ELIGIBLE.items() if k != "hematocrit_pct"}
    result = screen(AMASS2, patient)
    assert result.status == "incomplete"
    anemia = criterion(result, "severe_anemia")
    assert (anemia.status, anemia.reason) == ("missing_data", "hematocrit not recorded")


def test_an_unanswered_attestation_needs_the_screener():
    patient = {**amass2.ELIGIBLE, "attestations": {"informed_consent": True, "life_expectancy": False}}
    result = screen(AMASS2, patient)
    assert result.status == "incomplete"
    judgement = criterion(result, "investigator_judgement")
    assert judgement.status == "needs_attestation" and "investigator's opinion" in judgement.reason


@pytest.mark.parametrize("cid, answer, excludes", [("informed_consent", False, True),
                                                   ("life_expectancy", True, True),
                                                   ("investigator_judgement", False, False)])
def test_attestation_answers_decide_their_criterion(cid, answer, excludes):
    patient = {**amass2.ELIGIBLE, "attestations": {**amass2.ELIGIBLE["attestations"], cid: answer}}
    assert criterion(screen(AMASS2, patient), cid).excludes is excludes


def test_an_attestation_the_protocol_does_not_ask_is_refused():
    with pytest.raises(ScreeningInputError, match="no attestation 'consent' in amass-2; allowed: informed_consent"):
        screen(AMASS2, {"attestations": {"consent": True}})


def test_a_bare_etici_2b_is_refused_where_the_protocol_names_2b50():
    with pytest.raises(ScreeningInputError, match="a bare 2b is not an eTICI grade in impact-lvo"):
        screen(load_builtin("impact-lvo"), {**impact_lvo.ELIGIBLE, "etici": "2b"})


def test_a_bare_2b_against_a_2b67_threshold_cannot_be_decided():
    text = MINIMAL.replace("rule: {field: nihss, op: \">=\", value: 6}",
                           "rule: {field: etici, op: \">=\", value: 2b67}")
    protocol = parse_protocol(text.replace("population: adults", "population: adults\netici_2b_accepted: true"), "t")
    result = screen(protocol, {"etici": "2b"})
    assert result.status == "incomplete"
    assert result.criteria[0].reason == "eTICI 2b cannot be compared with 2b67 (record 2b50 or 2b67)"
    assert screen(protocol, {"etici": "2b67"}).status == "eligible"


def test_posterior_circulation_uses_pc_aspects_not_aspects():
    from .trials import angel_rescue

    protocol = load_builtin("angel-rescue")
    basilar = {**angel_rescue.ELIGIBLE, "occlusion_site": "basilar", "pc_aspects": 8}
    del basilar["aspects"]
    result = screen(protocol, basilar)
    assert result.status == "eligible"
    assert "does not apply" in criterion(result, "aspects").reason


# ---- the vectorised screen agrees with the one-patient screen --------------------------------------
@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_vectorised_statuses_match_one_patient_at_a_time(trial):
    protocol = load_builtin(trial)
    frame = synthesize(400, seed=7, protocol=protocol)
    table = encode_cohort(protocol, frame)
    one_by_one = [screen(protocol, r) for r in records_from_frame(frame)]
    assert list(statuses(protocol, table)) == [r.status for r in one_by_one]
    firsts = first_failing(protocol, table)
    assert list(firsts) == [r.failing[0].id if r.failing else "" for r in one_by_one]


def test_funnel_counts_add_up_like_consort():
    frame = synthesize(3000, seed=3, protocol=AMASS2)
    f = funnel(AMASS2, encode_cohort(AMASS2, frame))
    assert f.excluded + f.incomplete + f.awaiting_attestation + f.eligible == f.assessed == 3000
    assert sum(r.excluded_first for r in f.criteria) == f.excluded
    assert all(r.excluded_any >= r.excluded_first for r in f.criteria)
    assert f.eligible > 0 and f.excluded > 0


def test_without_attestations_a_cohort_waits_for_the_screener():
    frame = synthesize(2000, seed=3)
    f = funnel(AMASS2, encode_cohort(AMASS2, frame))
    assert f.eligible == 0 and f.awaiting_attestation > 0


def test_a_cohort_with_bad_values_names_row_patient_field_value_and_range():
    frame = pd.DataFrame({"patient_id": ["A", "B", "C"], "nihss": ["7", "45", "x"], "etici": ["2b67", "2b", None],
                          "creatinine_mg_dl": [1.0, 2.0, None], "colour": ["red", "red", "red"]})
    with pytest.raises(TableDataError) as err:
        encode_cohort(AMASS2, frame)
    messages = [str(e) for e in err.value.errors]
    assert "row 2 (patient_id B): nihss: 45 is out of range; NIHSS is a whole number from 0 to 42" in messages
    assert any(m.startswith("row 3 (patient_id C): nihss: 'x' is not a number") for m in messages)
    assert any(m.startswith("colour: unknown column 'colour'") for m in messages)


def test_a_cohort_lab_column_in_mg_dl_is_converted():
    frame = pd.DataFrame({"creatinine_mg_dl": [2.0, 2.01]})
    low, _ = encode_cohort(AMASS2, frame).bounds("creatinine_umol_l")
    assert low == pytest.approx([176.8034, 177.6874], abs=1e-3)


def test_bare_2b_in_a_cohort_is_refused_for_impact_lvo():
    with pytest.raises(TableDataError, match="row 1: etici"):
        encode_cohort(load_builtin("impact-lvo"), pd.DataFrame({"etici": ["2b", "2b50"]}))


# ---- properties --------------------------------------------------------------------------------------
fields = st.fixed_dictionaries({}, optional={
    "age": st.integers(0, 120), "nihss": st.integers(0, 42), "aspects": st.integers(0, 10),
    "prestroke_mrs": st.integers(0, 5), "occlusion_site": st.sampled_from(["m1", "m2", "tandem_ica_m1", "basilar"]),
    "etici": st.sampled_from(["0", "1", "2a", "2b", "2b50", "2b67", "2c", "3"]),
    "hematocrit_pct": st.floats(5, 75), "sbp": st.integers(40, 300), "dbp": st.integers(20, 200),
    "creatinine_umol_l": st.floats(5, 3000), "pregnant": st.booleans(), "intracranial_hemorrhage": st.booleans(),
})


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(patient=fields, extra=fields)
def test_more_data_never_rescues_an_ineligible_patient(patient, extra):
    before = screen(AMASS2, patient)
    after = screen(AMASS2, {**extra, **patient})  # the same values, and more
    if before.status == "ineligible":
        assert after.status == "ineligible"
    if before.status == "eligible":
        assert after.status == "eligible"


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(patients=st.lists(fields, min_size=1, max_size=8))
def test_vectorised_and_single_screens_agree_on_any_records(patients):
    rows = pd.DataFrame(patients) if any(patients) else pd.DataFrame(index=range(len(patients)))
    table = encode_cohort(AMASS2, rows)
    assert list(statuses(AMASS2, table)) == [screen(AMASS2, p).status for p in patients]


def test_a_blank_randomization_factor_leaves_the_screen_incomplete_not_eligible():
    """AMASS-2 minimizes on bridging thrombolysis: a patient without it cannot be randomized, so the screen must
    not call them eligible (it once did, and randomization then refused them)."""
    from .trials import amass2

    protocol = load_builtin("amass-2")
    record = {k: v for k, v in amass2.ELIGIBLE.items() if k != "bridging_thrombolysis"}
    result = screen(protocol, record)
    assert result.status == "incomplete"
    gap = criterion(result, "randomization_factor_bridging_ivt")
    assert gap.status == "missing_data" and "bridging_thrombolysis is not recorded" in gap.reason
    assert screen(protocol, amass2.ELIGIBLE).status == "eligible"


@pytest.mark.parametrize("trial", [t for t in BUILTIN_IDS if load_builtin(t).randomization is not None])
def test_every_patient_the_screen_calls_eligible_can_be_randomized(trial):
    from stroketrial.randomization import Randomizer, SeededDraw, code_cohort, generate_kit_list
    from stroketrial.randomization.lists import kit_block_sizes

    protocol = load_builtin(trial)
    frame = synthesize(3000, seed=9, protocol=protocol)
    eligible = frame[statuses(protocol, encode_cohort(protocol, frame)) == "eligible"]
    assert len(eligible) > 20
    randomizer = Randomizer.for_protocol(protocol)
    coded = code_cohort(randomizer.factors, eligible)  # refuses a row with a factor missing
    names = [f.name for f in randomizer.factors]
    patients = [(str(pid), {n: coded.levels[j][row[j]] for j, n in enumerate(names)}, str(site))
                for pid, row, site in zip(eligible["patient_id"], coded.codes, eligible["site"], strict=True)]
    kits = generate_kit_list(randomizer.arms, sorted(set(eligible["site"])), len(eligible) + 8,
                             kit_block_sizes(randomizer.scheme, randomizer.arms), SeededDraw(1)) \
        if randomizer.scheme.blinded_kits else None
    allocations, _, _ = randomizer.run(patients, SeededDraw(2), kit_list=kits)
    assert len(allocations) == len(eligible)
