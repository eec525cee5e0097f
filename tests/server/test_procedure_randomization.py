"""Randomization during the procedure (issue 20, defect 5), on SQLite and PostgreSQL: ANGEL-RESCUE registers a
patient before the procedure with everything then known; at the table the procedure step takes only what is new,
screens in full and randomizes when eligible, once however often it is sent."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from stroketrial.protocol import ProtocolError, load_builtin, parse_protocol
from stroketrial.protocol import loader

from ..trials import angel_rescue
from ..trials.helpers import happening_now

TRIAL = angel_rescue.TRIAL
SOURCE = resources.files(loader.__package__).joinpath("builtin", f"{TRIAL}.yaml").read_text(encoding="utf-8")
DURING = load_builtin(TRIAL).during_procedure
assert DURING is not None


def before_and_during() -> tuple[dict, dict, dict, dict]:
    """(data before the procedure, its attestations, the procedure's data, its attestations)."""
    full = happening_now({**angel_rescue.ELIGIBLE})
    attestations = full.pop("attestations")
    before = {k: v for k, v in full.items() if k not in DURING.fields and v is not None}
    during = {k: full[k] for k in DURING.fields}
    return (before, {k: v for k, v in attestations.items() if k not in DURING.attestations}, during,
            {k: attestations[k] for k in DURING.attestations})


def save_before(platform, code="P1", **changes):
    data, attestations, _, _ = before_and_during()
    data = {k: v for k, v in {**data, **changes}.items() if v is not None}
    return platform.call("POST", f"/trials/{TRIAL}/patients/before-procedure",
                         json={"patient_id": code, "site": "S1", "data": data, "attestations": attestations})


def at_procedure(platform, code="P1", key="key-1", attestations=None, **changes):
    _, _, data, asked = before_and_during()
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/procedure", headers={"Idempotency-Key": key},
                         json={"data": {**data, **changes}, "attestations": asked if attestations is None
                               else attestations})


def audit_actions(platform, code="P1") -> list[str]:
    from sqlalchemy import select

    from stroketrial.store.models import AuditEvent

    with platform.db.read() as session:
        return [e.action for e in session.execute(select(AuditEvent).where(
            AuditEvent.entity_id == f"{TRIAL}/{code}").order_by(AuditEvent.seq)).scalars()]


def test_a_patient_registered_before_the_procedure_waits_for_it(platform):
    response = save_before(platform)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "incomplete" and body["waiting_for_procedure"] is True and body["failing"] == []
    assert set(body["outstanding"]) == {"time_window", "failed_thrombectomy", "intracranial_hemorrhage",
                                        "vascular_access"}
    assert audit_actions(platform) == ["register"]
    # something the site could give before the procedure is missing: refused, named, nothing stored
    refused = save_before(platform, code="P2", nihss=None)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["nihss"]
    assert platform.call("GET", f"/trials/{TRIAL}/patients/P2").status_code == 404


def test_ineligible_at_the_procedure_randomizes_nothing_and_names_the_criterion(platform):
    assert save_before(platform).status_code == 201
    response = at_procedure(platform, thrombectomy_passes=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["randomized"] is False and body["status"] == "ineligible" and body["failing"] == ["failed_thrombectomy"]
    assert body["data"]["thrombectomy_passes"] == 2  # what the table said is recorded, audited
    assert audit_actions(platform) == ["register", "record_procedure_screening"]
    assert platform.call("GET", f"/trials/{TRIAL}/patients/P1/randomization").status_code in (404, 409)
    # after one more pass the step is taken again: eligible now, randomized
    again = at_procedure(platform, key="key-2", thrombectomy_passes=3)
    assert again.status_code == 201 and again.json()["randomized"] is True


def test_eligible_at_the_procedure_is_randomized_once_under_a_double_submit(platform):
    assert save_before(platform).status_code == 201
    first = at_procedure(platform)
    assert first.status_code == 201, first.text
    allocation = first.json()["randomization"]
    assert first.json()["status"] == "eligible" and allocation["sequence"] == 1 and allocation["arm"]
    second = at_procedure(platform)  # the same key: the first answer
    assert second.status_code == 200 and second.headers["Idempotent-Replay"] == "true"
    assert second.json()["randomization"] == allocation
    other_key = at_procedure(platform, key="key-3")  # a reloaded page: refused, the patient is randomized once
    assert other_key.status_code == 409 and "randomized already" in other_key.json()["detail"]
    assert audit_actions(platform).count("randomize") == 1
    with platform.db.read() as session:
        from sqlalchemy import func, select

        from stroketrial.store.models import Allocation
        assert session.execute(select(func.count()).select_from(Allocation)).scalar_one() == 1


def test_the_procedure_step_refuses_what_it_does_not_ask_naming_the_field(platform):
    assert save_before(platform).status_code == 201
    response = at_procedure(platform, nihss=20, attestations={"informed_consent": True})
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["nihss", "attestations.informed_consent"]
    missing = at_procedure(platform, etici=None)
    assert missing.status_code == 422 and [e["field"] for e in missing.json()["errors"]] == ["etici"]
    bad = at_procedure(platform, thrombectomy_passes="three")
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["thrombectomy_passes"]
    no_key = platform.call("POST", f"/trials/{TRIAL}/patients/P1/procedure",
                           json={"data": before_and_during()[2]})
    assert no_key.status_code == 422 and no_key.json()["errors"][0]["field"] == "Idempotency-Key"
    assert audit_actions(platform) == ["register"]  # nothing recorded by a refusal


def test_a_trial_that_randomizes_before_the_procedure_has_no_procedure_step(platform):
    response = platform.call("POST", "/trials/amass-2/patients/P9/procedure", headers={"Idempotency-Key": "k"},
                             json={"data": {}})
    assert response.status_code in (404, 409)


@pytest.mark.sqlite_only
def test_the_protocol_refuses_an_unknown_during_procedure_field_naming_it():
    document = yaml.safe_load(SOURCE)
    document["screening"]["during_procedure"]["fields"].append("thrombectomy_pases")
    with pytest.raises((ProtocolError, ValueError), match="thrombectomy_pases"):
        parse_protocol(yaml.safe_dump(document), f"{TRIAL}.yaml")
    document = yaml.safe_load(SOURCE)
    document["screening"]["during_procedure"]["attestations"] = ["age"]
    with pytest.raises((ProtocolError, ValueError), match="'age' is not a criterion with an attestation"):
        parse_protocol(yaml.safe_dump(document), f"{TRIAL}.yaml")
