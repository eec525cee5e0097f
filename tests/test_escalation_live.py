"""The live escalation state (dosing/escalation/live.py) the platform runs on: cohorts fill at the open level,
observation windows and DLT assessments complete them, the design's own rule decides, and nothing moves
until the decision is confirmed. 3+3 as AMASS-1 ran it; BOIN and CRM when the protocol says so."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stroketrial.dosing.escalation import three_plus_three
from stroketrial.dosing.escalation.decisions import Cohort, EscalationInputError
from stroketrial.dosing.escalation.from_protocol import boin_design, crm_design
from stroketrial.dosing.escalation.live import (Confirmation, EnrolledPatient, EnrolmentClosed, check_confirmation,
                                                escalation_state)
from stroketrial.protocol import load_builtin, resolve

from .test_escalation import BOIN_IN_PROTOCOL, _amass1_with

AMASS1 = load_builtin("amass-1")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = START + dt.timedelta(days=365)


def run(escalation, dlt_at_level, cohorts, follow=True):
    """Enrol `cohorts` cohorts through the state, DLTs from `dlt_at_level(level, i)`, each decision confirmed."""
    patients, confirmations, decisions = [], [], []
    for _ in range(cohorts):
        state = escalation_state(escalation, patients, confirmations, LATER)
        if state.open_phase != "escalation":
            break
        for i in range(state.free_places):
            patients.append(EnrolledPatient(f"P{len(patients) + 1}", state.open_cohort, state.open_level,
                                            "escalation", START + dt.timedelta(days=len(patients)),
                                            dlt_at_level(state.open_level, i)))
        state = escalation_state(escalation, patients, confirmations, LATER)
        assert state.status == "awaiting_confirmation"
        decisions.append(state.pending)
        if follow:
            p = state.pending
            confirmations.append(Confirmation(state.pending_after, p.action, p.level, p.mtd))
    return patients, confirmations, decisions


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=14))
def test_3_3_live_decisions_are_the_rule_computed_on_the_same_cohorts(dlts):
    escalation = AMASS1.dose_escalation
    patients: list[EnrolledPatient] = []
    history: list[Cohort] = []
    confirmations: list[Confirmation] = []
    for count in dlts:
        state = escalation_state(escalation, patients, confirmations, LATER)
        if state.open_phase != "escalation":
            break
        for i in range(3):
            patients.append(EnrolledPatient(f"P{len(patients)}", state.open_cohort, state.open_level, "escalation",
                                            START, i < count))
        history.append(Cohort(state.open_level, 3, count))
        state = escalation_state(escalation, patients, confirmations, LATER)
        expected = three_plus_three.decide(history, len(escalation.levels), escalation.expansion_size)
        assert state.pending == expected
        confirmations.append(Confirmation(state.pending_after, expected.action, expected.level, expected.mtd))


def test_a_cohort_completes_only_when_every_window_has_ended_and_every_patient_is_assessed():
    escalation = AMASS1.dose_escalation
    enrolled = [EnrolledPatient(f"P{i}", 1, 1, "escalation", START + dt.timedelta(hours=i)) for i in range(3)]
    assert escalation_state(escalation, enrolled[:2], [], START).free_places == 1
    state = escalation_state(escalation, enrolled, [], START + dt.timedelta(hours=47))
    assert state.status == "observing" and "P0, P1, P2" in state.waiting[0]
    state = escalation_state(escalation, enrolled, [], START + dt.timedelta(hours=49))
    assert state.status == "observing" and "P0" not in state.waiting[0]  # P0's window is over but not assessed
    assert "assessment of P0" in state.waiting[-1]
    with pytest.raises(EnrolmentClosed, match="assessment of P0"):
        state.place()
    assessed = [EnrolledPatient(p.code, 1, 1, "escalation", p.enrolled_at, False) for p in enrolled]
    assert escalation_state(escalation, assessed, [], START + dt.timedelta(hours=51)).status == "awaiting_confirmation"
    # a DLT ends a patient's observation at once
    dlt = [EnrolledPatient(p.code, 1, 1, "escalation", START, True) for p in enrolled]
    assert escalation_state(escalation, dlt, [], START).pending.rule == "stop_2_plus_first"


def test_the_committee_may_not_skip_a_level_or_declare_an_untried_mtd():
    escalation = AMASS1.dose_escalation
    patients, confirmations, _ = run(escalation, lambda level, i: False, 1, follow=False)
    state = escalation_state(escalation, patients, confirmations, LATER)
    assert check_confirmation(escalation, state, "treat", 2, None).deviation is False
    assert check_confirmation(escalation, state, "treat", 1, None).deviation is True
    with pytest.raises(EscalationInputError, match="skip level 2"):
        check_confirmation(escalation, state, "treat", 3, None)
    with pytest.raises(EscalationInputError, match="not given to any patient"):
        check_confirmation(escalation, state, "stop", None, 4)
    with pytest.raises(EscalationInputError, match="one of treat, stop"):
        check_confirmation(escalation, state, "pause", None, None)


@pytest.mark.parametrize("design", ["boin", "crm"])
def test_boin_and_crm_run_live_from_the_protocol_with_their_own_decide(tmp_path, design):
    settings_ = BOIN_IN_PROTOCOL if design == "boin" else {
        "design": "crm", "n_cohorts": 8, "crm": {"target": 0.25, "skeleton": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]}}
    protocol = resolve(_amass1_with(tmp_path, f"amass1-{design}", **settings_))
    escalation = protocol.dose_escalation
    rng = np.random.default_rng(3)
    tox = [0.05, 0.1, 0.2, 0.3, 0.45, 0.55, 0.6]
    patients, _confirmed, decisions = run(escalation, lambda level, i: bool(rng.random() < tox[level - 1]), 12)
    counts: dict[int, tuple[int, int]] = {}
    by_cohort: dict[int, list[EnrolledPatient]] = {}
    for p in patients:
        by_cohort.setdefault(p.cohort, []).append(p)
    for number, decision in enumerate(decisions, 1):
        cohort = by_cohort[number]
        level, dlt = cohort[0].level, sum(p.dlt for p in cohort)
        y, n = counts.get(level, (0, 0))
        counts[level] = (y + dlt, n + len(cohort))
        k = len(escalation.levels)
        expected = (boin_design(escalation).decide(counts, level, k) if design == "boin"
                    else crm_design(escalation).decide(counts, k, level, dlt))
        assert decision == expected
    assert decisions[-1].action == "stop" or len(decisions) == 12


def test_a_blinded_or_randomized_escalation_is_refused(tmp_path):
    from importlib import resources

    import yaml

    from stroketrial.protocol.loader import ProtocolError

    data = yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", "amass-1.yaml").read_text())
    data["design"]["masking"] = "open_label_blinded_endpoint"
    path = tmp_path / "blinded.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ProtocolError, match="single-arm, open-label, non-randomized"):
        resolve(str(path))
