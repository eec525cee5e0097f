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
