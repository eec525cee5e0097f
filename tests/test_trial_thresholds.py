"""Both sides of every threshold of every built-in trial, read like the protocols.

Each table in tests/trials/ starts from a patient who meets every criterion;
moving one value just inside a threshold keeps the patient eligible, just
outside makes that criterion exclude the patient. The last test checks that the
tables leave no numeric threshold of any protocol untested.
"""

import pytest

from stroketrial.eligibility import screen
from stroketrial.protocol import BUILTIN_IDS, load_builtin
from stroketrial.protocol.rules import Compare, leaves

from .trials import amass1, amass2, angel_rescue, impact_lvo, isis_hermes

TABLES = {t.TRIAL: t for t in (amass1, amass2, impact_lvo, isis_hermes, angel_rescue)}
CASES = [pytest.param(trial, criterion, field, inside, outside, id=f"{trial}:{criterion}:{field}:{i}")
         for trial, table in TABLES.items()
         for i, (criterion, field, inside, outside) in enumerate(table.BOUNDARIES)]


def with_changes(base: dict, changes: dict) -> dict:
    patient = {**base, **changes}
    return {k: v for k, v in patient.items() if v is not None}


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_reference_patient_is_eligible(trial):
    result = screen(load_builtin(trial), TABLES[trial].ELIGIBLE)
    assert result.status == "eligible", [(c.id, c.status, c.reason) for c in result.criteria if c.status != "met"
                                         or c.excludes]


@pytest.mark.parametrize("trial, criterion, field, inside, outside", CASES)
def test_just_inside_the_threshold_is_eligible(trial, criterion, field, inside, outside):
    result = screen(load_builtin(trial), with_changes(TABLES[trial].ELIGIBLE, inside))
    assert result.status == "eligible", [c.reason for c in result.failing]


@pytest.mark.parametrize("trial, criterion, field, inside, outside", CASES)
def test_just_outside_the_threshold_excludes(trial, criterion, field, inside, outside):
    result = screen(load_builtin(trial), with_changes(TABLES[trial].ELIGIBLE, outside))
    assert result.status == "ineligible"
    assert criterion in [c.id for c in result.failing]


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_every_numeric_threshold_is_tested_on_both_sides(trial):
    protocol = load_builtin(trial)
    thresholds = {(c.id, leaf.field) for c in protocol.criteria if c.rule is not None
                  for leaf in leaves(c.rule) if isinstance(leaf, Compare)}
    tested = {(criterion, field) for criterion, field, _, _ in TABLES[trial].BOUNDARIES}
    assert thresholds - tested == set()


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_every_lab_threshold_is_tested_in_both_units(trial):
    protocol = load_builtin(trial)
    labs = {(c.id, leaf.field) for c in protocol.criteria if c.rule is not None for leaf in leaves(c.rule)
            if isinstance(leaf, Compare) and leaf.variable.alternate_units and leaf.field != "weight_kg"}
    for criterion, field in labs:
        cases = [(inside[field], outside[field]) for c, f, inside, outside in TABLES[trial].BOUNDARIES
                 if (c, f) == (criterion, field)]
        assert any(isinstance(i, dict) for i, _ in cases), f"{criterion}: no case in mg/dL"
        assert any(not isinstance(i, dict) for i, _ in cases), f"{criterion}: no case in the canonical unit"


def test_a_value_entered_in_mg_dl_keeps_its_threshold_when_stored_and_read_back():
    """The platform stores the record and re-screens it at randomization: 50 mg/dL must stay eligible then."""
    from stroketrial.clinical import parse_patient

    protocol = load_builtin("impact-lvo")
    patient = with_changes(impact_lvo.ELIGIBLE, {"glucose_mmol_l": {"value": 50, "unit": "mg/dL"}})
    stored = parse_patient(patient).to_json()
    assert stored["glucose_mmol_l"] == {"value": 50.0, "unit": "mg/dL"}
    assert screen(protocol, stored).status == "eligible"


def test_a_cohort_column_in_mg_dl_meets_the_mg_dl_threshold():
    import pandas as pd

    from stroketrial.clinical.cohort_records import records_from_frame
    from stroketrial.eligibility import encode_cohort, statuses

    protocol = load_builtin("impact-lvo")
    base = {k: v for k, v in impact_lvo.ELIGIBLE.items() if k not in ("glucose_mmol_l", "attestations")}
    frame = pd.DataFrame([{**base, "glucose_mg_dl": g} for g in (49, 50, 400, 401)])
    for key, answer in impact_lvo.ELIGIBLE.get("attestations", {}).items():
        frame[f"attestations.{key}"] = answer
    got = list(statuses(protocol, encode_cohort(protocol, frame)))
    assert got == ["ineligible", "eligible", "eligible", "ineligible"]
    assert records_from_frame(frame)  # the same rows read as records by the API


def test_a_threshold_in_another_unit_must_match_the_protocols_own():
    from stroketrial.protocol import ProtocolError, parse_protocol
    from .test_protocol import MINIMAL

    rule = '{field: glucose_mmol_l, op: "<", value: 2.8, also: [{value: 5, unit: mg/dL}]}'
    with pytest.raises(ProtocolError, match=r"also: 5 mg/dL is 0\.2775 mmol/L, more than 5% from the threshold 2\.8"):
        parse_protocol(_with_rule(MINIMAL, rule), "t.yaml")
    rule = '{field: glucose_mmol_l, op: "<", value: 2.8, also: [{value: 50, unit: g/L}]}'
    with pytest.raises(ProtocolError, match=r"also: 'g/L' is not a unit glucose_mmol_l may be entered in \(mg/dL\)"):
        parse_protocol(_with_rule(MINIMAL, rule), "t.yaml")


def _with_rule(text: str, rule: str) -> str:
    import yaml

    document = yaml.safe_load(text)
    document["exclusion"] = [{"id": "glucose", "text": "Blood glucose < 2.8mmol/L (50mg/dl)",
                              "rule": yaml.safe_load(rule)}]
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
