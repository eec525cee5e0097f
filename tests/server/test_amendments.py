"""Protocol amendments: an amended AMASS-2 (NIHSS threshold raised, a 30-day visit added) comes into force; the
patient screened before keeps version 1, a new patient is screened under version 2, the visit schedule follows
the version in force, and what an amendment may not change is refused by name."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources

import pytest
import yaml
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.service import amendments, export
from stroketrial.service.accounts import SYSTEM, Actor
from stroketrial.service.errors import Conflict, Forbidden, Invalid

from .test_api import randomize, register

TODAY = dt.datetime.now(dt.UTC).date()


def amended(tmp_path, name="amass-2-v2.yaml", **change):
    data = yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text())
    for criterion in data["inclusion"]:
        if criterion["id"] == "nihss":
            criterion["rule"]["value"] = 8
            criterion["text"] = "Baseline NIHSS scores ≥ 8 (amendment 1)"
    data["visits"].insert(-1, {"id": "d30", "name": "Day 30", "day": 30, "window_before_days": 3,
                               "window_after_days": 3, "assessments": ["mrs"]})
    data.update(change)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def test_an_amendment_puts_patients_on_two_versions(platform, tmp_path):
    assert register(platform, code="V1", nihss=7).json()["status"] == "eligible"  # NIHSS >= 6 in version 1
    assert randomize(platform, code="V1", key="v1").status_code == 201
    with platform.db.write() as session:
        body = amendments.amend_protocol(session, SYSTEM, "amass-2", amended(tmp_path), TODAY)
    assert body["version"] == 2 and body["changes"]["eligibility"] == ["criterion nihss changed (rule, text)"]
    assert body["changes"]["visits and forms"] == ["visit d30 added"]
    later = register(platform, code="V2", nihss=7).json()
    assert later["status"] == "ineligible"  # NIHSS >= 8 in version 2
    assert register(platform, code="V3", nihss=9).json()["status"] == "eligible"
    versions = platform.call("GET", "/trials/amass-2/protocol/versions", "coordinator").json()
    assert [(v["version"], v["patients_screened"], v["in_force"]) for v in versions] == [(1, 1, False), (2, 2, True)]
    schedule = platform.call("GET", "/trials/amass-2/patients/V1/visits", "coordinator").json()
    assert "d30" in [v["visit"] for v in schedule["visits"]]  # the schedule follows the version in force
    with platform.db.read() as session:
        tables = export.tables(session, Actor("dsmb", "dsmb", frozenset({"S1"})), "amass-2")
    assert {(r["patient_id"], r["protocol_version"]) for r in tables["screening"]} == {("V1", 1), ("V2", 2), ("V3", 2)}


def test_a_patient_screened_before_the_amendment_is_randomized_under_their_version(platform, tmp_path):
    assert register(platform, code="W1", nihss=7).json()["status"] == "eligible"
    with platform.db.write() as session:
        amendments.amend_protocol(session, SYSTEM, "amass-2", amended(tmp_path), TODAY)
    assert randomize(platform, code="W1", key="w1").status_code == 201  # NIHSS 7 was eligible under version 1
    change = platform.call("PATCH", "/trials/amass-2/patients/W1", "coordinator",
                           json={"data": {"nihss": 6}, "reason": "typo"})
    assert change.status_code == 409  # randomized: screening data are corrected by a data query


def test_what_an_amendment_may_not_change_is_refused_by_name(platform, tmp_path):
    original = yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text())
    refusals = {
        # (the emergency fallback's blocks follow the new 2:1 ratio, so that the arms are the only refusal)
        "arms": amended(tmp_path, "arms.yaml", arms=[original["arms"][0], {**original["arms"][1], "ratio": 2}],
                        emergency_randomization={**original["emergency_randomization"],
                                                 "fallback": {**original["emergency_randomization"]["fallback"],
                                                              "block_sizes": [3, 6]}}),
    }
    coordinator = Actor("coordinator", "coordinator", frozenset({"S1"}))
    with platform.db.write() as session:
        for what, path in refusals.items():
            with pytest.raises(Invalid, match=f"the {what} change"):
                amendments.amend_protocol(session, SYSTEM, "amass-2", path, TODAY)
        with pytest.raises(Invalid, match="in the past") as past:
            amendments.amend_protocol(session, SYSTEM, "amass-2", amended(tmp_path), TODAY - dt.timedelta(days=1))
        assert past.value.errors[0]["field"] == "effective"
        same = resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml")
        with pytest.raises(Invalid, match="nothing to amend"):
            amendments.amend_protocol(session, SYSTEM, "amass-2", str(same), TODAY)
        with pytest.raises(Forbidden, match="amending a protocol is for admin"):
            amendments.amend_protocol(session, coordinator, "amass-2", amended(tmp_path), TODAY)
        amendments.amend_protocol(session, SYSTEM, "amass-2", amended(tmp_path), TODAY + dt.timedelta(days=10))
        with pytest.raises(Conflict, match="must come after"):
            amendments.amend_protocol(session, SYSTEM, "amass-2", amended(tmp_path, "v3.yaml", title="Another"),
                                      TODAY + dt.timedelta(days=5))
    # version 2 is recorded, but not in force for 10 days: screening today is still version 1
    assert register(platform, code="X1", nihss=7).json()["status"] == "eligible"


def test_the_command_shows_the_changes_and_refuses_bad_input(tmp_path, database_url):
    path = amended(tmp_path)
    dry = CliRunner().invoke(app, ["admin", "create-trial", "amass-2", "--site", "S1", "--db", database_url])
    assert dry.exit_code == 0, dry.output
    shown = CliRunner().invoke(app, ["admin", "amend-protocol", "amass-2", str(path), "--effective",
                                     TODAY.isoformat(), "--dry-run", "--db", database_url, "--json"])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["applied"] is False and body["version"] == 2
    assert "visit d30 added" in body["changes"]["visits and forms"]
    bad = CliRunner().invoke(app, ["admin", "amend-protocol", "amass-2", str(path), "--effective", "next week",
                                   "--db", database_url])
    assert bad.exit_code == 2 and "--effective 'next week' is not a date" in bad.output


def test_the_refusals_name_each_part_an_amendment_may_not_change():
    from stroketrial.protocol import load_builtin
    from stroketrial.protocol.amendments import refusals

    old = load_builtin("amass-2")
    new = old.model_copy(update={"design": old.design.model_copy(update={"masking": "double_blind"}),
                                 "randomization": None})
    problems = refusals(old, new)
    assert any("masking changes (open_label_blinded_endpoint to double_blind)" in p for p in problems)
    assert any("randomization changes" in p for p in problems)
    assert refusals(old, old) == []


def test_an_amendment_of_consent_edit_checks_or_safety_reference_alone_is_an_amendment():
    from stroketrial.protocol import load_builtin
    from stroketrial.protocol.amendments import compare

    old = load_builtin("angel-rescue")
    assert old.consent is not None and old.edit_checks and old.reference_safety_information
    deferred = old.consent.model_copy(update={"routes": [*old.consent.routes, "deferred"],
                                              "deferred_confirmation_hours": 72, "form_versions": ["1.0", "2.0"]})
    changes = compare(old, old.model_copy(update={"consent": deferred})).to_json()
    assert changes == {"consent": ["deferred_confirmation_hours changed", "form_versions changed", "routes changed"]}
    fewer = compare(old, old.model_copy(update={"edit_checks": old.edit_checks[1:]})).to_json()
    assert fewer == {"edit checks": [f"check {old.edit_checks[0].id} removed"]}
    safety = compare(old, old.model_copy(update={"reference_safety_information": []})).to_json()
    assert safety == {"reference safety information": ["expected events changed"]}
