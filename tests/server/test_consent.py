"""Informed consent through the API, on SQLite and PostgreSQL: deferred consent recorded then confirmed (and late),
the sites' to-do list with overdue ones flagged, re-consent on a new form version, withdrawal and what it stops,
routes the protocol does not allow, and randomization and enrolment refused without consent.

None of the five built-in trials allows deferred consent (no source describes it), so the deferred tests run on a
copy of AMASS-2 whose consent section adds it, with a 72-hour deadline and a second approved form version.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest
from sqlalchemy import select

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, export, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import verify
from stroketrial.store.models import Allocation, AuditEvent, Consent

from ..trials import amass1, amass2
from ..trials.helpers import happening_now

BUILTIN = load_builtin("amass-2")
DEFERRED = "amass-2-deferred"


@pytest.fixture
def deferred_trial(platform, tmp_path):
    """AMASS-2 with deferred consent allowed (72 h to confirm) and form versions 1.0 and 2.0."""
    text = resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text(encoding="utf-8")
    text = text.replace("id: amass-2\n", f"id: {DEFERRED}\n", 1)
    text = text.replace('  routes: [patient, representative]\n  form_versions: ["1.0"]\n',
                        '  routes: [patient, representative, deferred]\n  form_versions: ["1.0", "2.0"]\n'
                        '  deferred_confirmation_hours: 72\n'
                        '  deferred_text: "test: confirmation by the patient or a representative within 72 hours"\n', 1)
    path = tmp_path / f"{DEFERRED}.yaml"
    path.write_text(text, encoding="utf-8")
    with platform.db.write() as session:
        trials.create_trial(session, SYSTEM, str(path), ["S1", "S2"])
    return DEFERRED


def register(platform, trial="amass-2", code="P1", consent=True, record=None):
    data = dict(happening_now(record or amass2.ELIGIBLE))
    attestations = dict(data.pop("attestations"))
    if not consent:
        del attestations["informed_consent"]
    answer = platform.call("POST", f"/trials/{trial}/patients", "coordinator",
                           json={"patient_id": code, "site": "S1", "data": data, "attestations": attestations})
    assert answer.status_code == 201, answer.text
    return answer.json()


def randomize(platform, trial="amass-2", code="P1"):
    return platform.call("POST", f"/trials/{trial}/patients/{code}/randomization", "coordinator",
                         headers={"Idempotency-Key": f"key-{trial}-{code}"})


def ago(**delta) -> str:
    """A wall-clock time at the test sites (UTC), `delta` ago, to the minute."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).replace(tzinfo=None).isoformat(timespec="minutes")


def consents(platform, trial, code="P1", role="coordinator"):
    answer = platform.call("GET", f"/trials/{trial}/patients/{code}/consents", role)
    assert answer.status_code == 200, answer.text
    return answer.json()


def post_consent(platform, trial, code="P1", role="coordinator", **body):
    return platform.call("POST", f"/trials/{trial}/patients/{code}/consents", role, json=body)


def test_a_deferred_consent_is_recorded_and_then_confirmed(platform, deferred_trial):
    trial = deferred_trial
    assert register(platform, trial, consent=False)["status"] == "incomplete"
    assert consents(platform, trial)["status"] == "none"
    recorded = post_consent(platform, trial, route="deferred", form_version="2.0", consented_at=ago(hours=1))
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    assert body["status"] == "awaiting_confirmation" and body["obtained_by"] == "coordinator"
    assert dt.datetime.fromisoformat(body["confirmation_due"]) - dt.datetime.fromisoformat(
        body["consented_at"]) == dt.timedelta(hours=72)
    # The consent record meets the consent criterion: the patient is eligible now, and is randomized.
    patient = platform.call("GET", f"/trials/{trial}/patients/P1").json()
    assert patient["status"] == "eligible" and "informed_consent" not in patient["outstanding"]
    todo = platform.call("GET", f"/trials/{trial}/consents/pending").json()
    assert [(p["patient_id"], p["overdue"]) for p in todo["pending"]] == [("P1", False)]
    assert todo["deferred_confirmation_hours"] == 72 and todo["overdue"] == 0
    assert randomize(platform, trial).status_code == 201
    path = f"/trials/{trial}/patients/P1/consents/{body['id']}/confirmation"
    unnamed = platform.call("POST", path, json={"route": "representative", "confirmed_at": ago(minutes=5)})
    assert unnamed.status_code == 422
    assert {e["field"] for e in unnamed.json()["errors"]} == {"signer_name", "signer_relationship"}
    before = platform.call("POST", path, json={"route": "patient", "confirmed_at": ago(hours=3)})
    assert before.status_code == 422 and before.json()["errors"][0]["field"] == "confirmed_at"
    confirmed = platform.call("POST", path, json={"route": "representative", "confirmed_at": ago(minutes=5),
                                                  "signer_name": "Wang Li", "signer_relationship": "spouse"})
    assert confirmed.status_code == 200, confirmed.text
    done = confirmed.json()
    assert (done["status"], done["late"], done["confirmed_route"], done["signer"]) == \
        ("confirmed", False, "representative", "Wang Li (spouse)")
    assert platform.call("POST", path, json={"route": "patient", "confirmed_at": ago(minutes=1)}).status_code == 409
    assert platform.call("GET", f"/trials/{trial}/consents/pending").json()["pending"] == []
    with platform.db.read() as session:
        actions = list(session.execute(select(AuditEvent.action).where(AuditEvent.entity == "consent")).scalars())
        assert actions == ["record_consent", "confirm_consent"]
        assert verify(session).ok


def test_an_overdue_deferred_consent_is_flagged_on_the_to_do_list_and_its_confirmation_is_late(platform,
                                                                                             deferred_trial):
    trial = deferred_trial
    register(platform, trial, "P1", consent=False)
    register(platform, trial, "P2", consent=False)
    late = post_consent(platform, trial, "P1", route="deferred", form_version="2.0", consented_at=ago(hours=80))
    recent = post_consent(platform, trial, "P2", route="deferred", form_version="2.0", consented_at=ago(hours=2))
    assert late.status_code == recent.status_code == 201
    todo = platform.call("GET", f"/trials/{trial}/consents/pending", "monitor").json()
    assert [(p["patient_id"], p["overdue"], p["status"]) for p in todo["pending"]] == \
        [("P1", True, "overdue"), ("P2", False, "awaiting_confirmation")]
    assert todo["overdue"] == 1
    # a site sees its own patients only
    assert platform.call("GET", f"/trials/{trial}/consents/pending", "coordinator_s2").json()["pending"] == []
    assert platform.call("GET", f"/trials/{trial}/consents/pending", "outcome_assessor").status_code == 403
    confirmed = platform.call("POST", f"/trials/{trial}/patients/P1/consents/{late.json()['id']}/confirmation",
                              "investigator", json={"route": "patient", "confirmed_at": ago(minutes=1)})
    assert confirmed.status_code == 200 and confirmed.json()["late"] is True
    assert confirmed.json()["status"] == "confirmed_late"
    with platform.db.read() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "confirm_consent")).scalar_one()
        assert '"late":true' in (event.after_json or "")


def test_a_route_the_protocol_does_not_allow_is_refused_naming_the_allowed_ones(platform):
    register(platform)
    refused = post_consent(platform, "amass-2", route="deferred", form_version="1.0", consented_at=ago(hours=1))
    assert refused.status_code == 422
    error = refused.json()["errors"][0]
    assert error["field"] == "route" and error["value"] == "deferred"
    assert "patient (the patient), representative (a legally authorised representative)" in error["message"]
    version = post_consent(platform, "amass-2", route="patient", form_version="0.9", consented_at=ago(hours=1))
    assert version.status_code == 422 and "1.0" in version.json()["errors"][0]["message"]
    future = post_consent(platform, "amass-2", route="patient", form_version="1.0", consented_at=ago(hours=-2))
    assert future.status_code == 422 and "in the future" in future.json()["detail"]
    unnamed = post_consent(platform, "amass-2", route="representative", form_version="1.0",
                           consented_at=ago(hours=1))
    assert unnamed.status_code == 422 and {e["field"] for e in unnamed.json()["errors"]} == {
        "signer_name", "signer_relationship"}
    # the monitor reads, site staff record; the outcome assessor does neither
    assert post_consent(platform, "amass-2", role="monitor", route="patient", form_version="1.0",
                        consented_at=ago(hours=1)).status_code == 403
    assert platform.call("GET", "/trials/amass-2/patients/P1/consents", "outcome_assessor").status_code == 403


def test_registration_with_the_attestation_records_a_consent_and_a_re_consent_supersedes_it(platform,
                                                                                             deferred_trial):
    register(platform, "amass-2")
    history = consents(platform, "amass-2", role="monitor")
    assert history["valid"] and history["status"] == "given"
    [first] = history["consents"]
    assert (first["route"], first["form_version"], first["obtained_by"]) == ("patient", "1.0", "coordinator")
    with platform.db.read() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "record_consent")).scalar_one()
        assert "registration attestation" in (event.reason or "")
    trial = deferred_trial
    register(platform, trial, "R1", consent=False)
    taken = post_consent(platform, trial, "R1", route="representative", form_version="1.0",
                         consented_at=ago(hours=2), signer_name="Li Na", signer_relationship="daughter")
    assert taken.status_code == 201, taken.text
    same = post_consent(platform, trial, "R1", route="patient", form_version="1.0", consented_at=ago(hours=1))
    assert same.status_code == 409 and "newer approved version (2.0)" in same.json()["detail"]
    again = post_consent(platform, trial, "R1", route="patient", form_version="2.0", consented_at=ago(hours=1))
    assert again.status_code == 201, again.text
    history = consents(platform, trial, "R1")
    assert history["current"] == again.json()["id"]
    assert [(c["form_version"], c["status"], c["superseded_by"]) for c in history["consents"]] == [
        ("1.0", "superseded", again.json()["id"]), ("2.0", "given", None)]
    old = platform.call("POST", f"/trials/{trial}/patients/R1/consents/{taken.json()['id']}/withdrawal",
                        json={"scope": "treatment", "reason": "changed mind"})
    assert old.status_code == 409 and "replaced by consent" in old.json()["detail"]


def test_withdrawal_of_follow_up_refuses_later_visits_and_keeps_earlier_data(platform):
    register(platform)
    assert randomize(platform).status_code == 201
    ten_days = dt.timedelta(days=10)
    with platform.db.write() as session:  # the patient was randomized, and consented, ten days ago
        allocation = session.execute(select(Allocation)).scalar_one()
        allocation.created_at = allocation.created_at - ten_days
        row = session.execute(select(Consent)).scalar_one()
        row.consented_at = row.consented_at - ten_days
        consent_id = row.id
    early = (dt.date.today() - dt.timedelta(days=9)).isoformat()
    entered = platform.call("PUT", "/trials/amass-2/patients/P1/visits/h24",
                            json={"visit_date": early, "values": {"nihss": 4}})
    assert entered.status_code == 200, entered.text
    path = f"/trials/amass-2/patients/P1/consents/{consent_id}/withdrawal"
    reasonless = platform.call("POST", path, json={"scope": "follow_up", "reason": "  "})
    assert reasonless.status_code == 422
    withdrawn = platform.call("POST", path, "investigator",
                              json={"scope": "follow_up", "reason": "the family wants no more visits",
                                    "withdrawn_at": ago(days=5)})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn" and withdrawn.json()["withdrawal"] == "follow_up"
    later = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d7",
                          json={"visit_date": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
                                "values": {"nihss": 3}})
    assert later.status_code == 409
    assert "withdrew from follow-up" in later.json()["detail"] and later.json()["withdrawal"] == "follow_up"
    schedule = platform.call("GET", "/trials/amass-2/patients/P1/visits").json()["visits"]
    assert next(v for v in schedule if v["visit"] == "h24")["values"] == {"nihss": 4}  # kept
    dose = platform.call("GET", "/trials/amass-2/patients/P1/dose")
    assert dose.status_code == 409 and "withdrew from study treatment" in dose.json()["detail"]
    narrower = platform.call("POST", path, json={"scope": "treatment", "reason": "asked again"})
    assert narrower.status_code == 409 and "never narrowed" in narrower.json()["detail"]
    wider = platform.call("POST", path, json={"scope": "data_use", "reason": "no use of my data"})
    assert wider.status_code == 200 and wider.json()["withdrawal"] == "data_use"
    with platform.db.read() as session:
        tables = export.tables(session, Actor("monitor", "monitor", frozenset({"S1"})), "amass-2")
    [screening] = tables["screening"]
    assert screening["consent_withdrawn"] is True and screening["consent_withdrawal"] == "data_use"
    assert [r["patient_id"] for r in tables["visit_h24"]] == ["P1"]  # data collected before are exported


def test_data_use_withdrawal_is_refused_where_the_protocol_does_not_offer_it(platform):
    from ..trials import isis_hermes

    register(platform, "isis-hermes", record=isis_hermes.ELIGIBLE)
    [row] = consents(platform, "isis-hermes")["consents"]
    refused = platform.call("POST", f"/trials/isis-hermes/patients/P1/consents/{row['id']}/withdrawal",
                            json={"scope": "data_use", "reason": "no"})
    assert refused.status_code == 422 and "treatment" in refused.json()["errors"][0]["message"]


def test_randomization_and_enrolment_are_refused_without_a_valid_consent(platform):
    assert register(platform, consent=False)["status"] == "incomplete"
    # the attestation given by a correction makes the patient eligible, but no consent is recorded
    corrected = platform.call("PATCH", "/trials/amass-2/patients/P1",
                              json={"data": {"attestations": {**amass2.ELIGIBLE["attestations"]}},
                                    "reason": "consent attested after registration"})
    assert corrected.status_code == 200 and corrected.json()["status"] == "eligible"
    refused = randomize(platform)
    assert refused.status_code == 409, refused.text
    assert "no informed consent is recorded" in refused.json()["detail"] and refused.json()["missing"] == "consent"
    taken = post_consent(platform, "amass-2", route="patient", form_version="1.0", consented_at=ago(minutes=30))
    assert taken.status_code == 201
    # withdrawn before randomization: refused, naming the withdrawal
    withdrawn = platform.call("POST", f"/trials/amass-2/patients/P1/consents/{taken.json()['id']}/withdrawal",
                              json={"scope": "treatment", "reason": "declined after reflection"})
    assert withdrawn.status_code == 200
    again = randomize(platform)
    assert again.status_code == 409 and "was withdrawn" in again.json()["detail"]
    with platform.db.read() as session:
        assert session.execute(select(Allocation)).first() is None
    # dose escalation (AMASS-1): the same rule at enrolment
    register(platform, "amass-1", "E1", record=amass1.ELIGIBLE)
    with platform.db.read() as session:
        row = session.execute(select(Consent).where(Consent.trial_id == "amass-1")).scalar_one()
    platform.call("POST", f"/trials/amass-1/patients/E1/consents/{row.id}/withdrawal",
                  json={"scope": "follow_up", "reason": "moved away"})
    enrolment = platform.call("POST", "/trials/amass-1/patients/E1/enrolment", headers={"Idempotency-Key": "k-E1"})
    assert enrolment.status_code == 409 and "cannot be enrolled" in enrolment.json()["detail"]


def test_the_built_in_protocols_consent_sections_name_an_attestation_criterion():
    from stroketrial.protocol import BUILTIN_IDS

    for trial in BUILTIN_IDS:
        protocol = load_builtin(trial)
        assert protocol.consent is not None, trial
        assert protocol.consent.criterion in protocol.attestation_ids, trial
        # no source describes deferred consent: none of the five allows it, and each says so in an assumption
        assert "deferred" not in protocol.consent.routes and "deferred" in (protocol.consent.assumption or "")
    assert BUILTIN.consent is not None and BUILTIN.consent.current_form == "1.0"
