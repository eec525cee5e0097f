"""Data queries, edit checks and source data verification through the API, on SQLite and PostgreSQL.

A query raised by the monitor is answered by the coordinator with a correction (the visit's value changes through
the visit's correction path, audited with the answer as the reason), closed, re-opened and answered again. The
protocol's edit checks open automatic queries (mRS 6 with death = no; the 90-day visit on day 0) and close them
when the form is corrected. A verified form is cleared by a later change and shows on the monitor's list to verify
again. The roles: a coordinator neither closes a query nor verifies; a data manager in a double-blind trial is
attacked for any arm in any query or list answer."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import text

from stroketrial.protocol import Protocol, load_builtin
from stroketrial.service import SYSTEM, accounts
from stroketrial.store import verify

from .test_api import randomize, register

TRIAL = "impact-lvo"  # double-blind: kits that look alike, no arm for the site, the monitor or the data manager
PROTOCOL = load_builtin(TRIAL)
ARM_WORDS = sorted({*(a.id for a in PROTOCOL.arms), *(a.name for a in PROTOCOL.arms),
                    *(i.name for i in PROTOCOL.interventions if i.kind != "procedure")})


@pytest.fixture
def platform(platform):
    """The platform with a data manager at both sites."""
    with platform.db.write() as session:
        _, platform.tokens["data_manager"] = accounts.create_user(session, SYSTEM, "data_manager", "data_manager",
                                                                  ["S1", "S2"])
    return platform


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def randomized(platform, code="P1", days_ago=90, trial=TRIAL) -> dict:
    """A patient randomized `days_ago` days ago (the allocation time moved back), so today is in the 90-day window."""
    assert register(platform, trial=trial, code=code).status_code == 201
    answer = randomize(platform, trial=trial, code=code, key=f"key-{code}")
    assert answer.status_code == 201, answer.text
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE allocations SET created_at = :at WHERE patient_id = "
                          "(SELECT id FROM patients WHERE code = :code AND trial_id = :trial)"),
                     {"at": (dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)).replace(tzinfo=None),
                      "code": code, "trial": trial})
    return answer.json()


def enter_d90(platform, code="P1", role="coordinator", reason=None, **values):
    body = {"visit_date": _today(), "values": {"mrs": 3, "sae": False, "death": False, **values}}
    if reason:
        body["reason"] = reason
    return platform.call("PUT", f"/trials/{TRIAL}/patients/{code}/visits/d90", role, json=body)


def queries_of(platform, code="P1", role="monitor") -> list[dict]:
    answer = platform.call("GET", f"/trials/{TRIAL}/patients/{code}/queries", role)
    assert answer.status_code == 200, answer.text
    return answer.json()


def raise_query(platform, code="P1", form="d90", field="mrs", text_="The source notes say mRS 4; please check",
                role="monitor"):
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/queries", role,
                         json={"form": form, "field": field, "text": text_})


def events(platform, entity: str) -> list[tuple]:
    with platform.db.read() as session:
        return [tuple(r) for r in session.execute(text(
            "SELECT actor, action, before_json, after_json, reason FROM audit_events WHERE entity = :e ORDER BY seq"),
            {"e": entity}).all()]


# ---- a manual query: raised, answered with a correction, closed, re-opened ---------------------------------------
def test_a_query_is_raised_answered_with_a_correction_closed_and_reopened(platform):
    randomized(platform)
    assert enter_d90(platform).status_code == 200
    assert queries_of(platform) == []  # in window, consistent: no edit check fails
    raised = raise_query(platform)
    assert raised.status_code == 201, raised.text
    query = raised.json()
    assert (query["status"], query["origin"], query["form_name"], query["field_label"], query["raised_by"]) == \
        ("open", "manual", "Day 90", "modified Rankin Scale", "monitor")
    qid = query["id"]
    # The site answers with a correction: the visit's value changes through the visit's own correction path.
    answered = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/answer", "coordinator",
                             json={"answer": "checked the clinic letter: mRS 4", "correction": {"value": 4}})
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "answered" and answered.json()["answered_by"] == "coordinator"
    schedule = platform.call("GET", f"/trials/{TRIAL}/patients/P1/visits", "monitor").json()["visits"]
    assert next(v for v in schedule if v["visit"] == "d90")["values"]["mrs"] == 4
    corrections = [e for e in events(platform, "visit") if e[1] == "correct_visit"]
    assert len(corrections) == 1
    actor, _, before, after, reason = corrections[0]
    assert actor == "coordinator" and reason == f"data query {qid}: checked the clinic letter: mRS 4"
    assert json.loads(before)["values"]["mrs"] == 3 and json.loads(after)["values"]["mrs"] == 4
    # Answered once: a second answer waits for a re-opening.
    again = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/answer", "coordinator", json={"answer": "again"})
    assert again.status_code == 409 and "re-opens" in again.json()["detail"]
    closed = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/close", "monitor", json={"note": "resolved"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_by"] == "monitor"
    assert platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/close", "monitor").status_code == 409
    # Re-opened by the data manager with a reason, which the site reads with the question; answered and closed again.
    no_reason = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/reopen", "data_manager", json={"reason": " "})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    reopened = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/reopen", "data_manager",
                             json={"reason": "the letter is dated day 60; the day-90 source is the phone call"})
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert body["status"] == "open" and body["reopened"] == 1 and "the day-90 source" in body["text"]
    assert body["closed_at"] is None
    assert platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/answer", "investigator",
                         json={"answer": "phone call of day 90 also says mRS 4"}).json()["status"] == "answered"
    assert platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/close", "data_manager").json()["status"] == "closed"
    trail = events(platform, "data_query")
    assert [(e[0], e[1]) for e in trail] == [
        ("monitor", "raise_query"), ("coordinator", "answer_query"), ("monitor", "close_query"),
        ("data_manager", "reopen_query"), ("investigator", "answer_query"), ("data_manager", "close_query")]
    assert json.loads(trail[1][3])["correction"] == {"form": "d90", "field": "mrs", "value": 4}
    assert trail[2][4] == "resolved"
    with platform.db.read() as session:
        assert verify(session).ok


def test_a_query_names_a_field_of_the_form_and_the_text(platform):
    randomized(platform)
    for form, field, message in (("d91", "mrs", "form"), ("d90", "nihss", "field"), ("screening", "arm", "field"),
                                 ("d90", "mrs", "text")):
        refused = raise_query(platform, form=form, field=field, text_="" if message == "text" else "check")
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == message
        assert refused.json()["errors"][0]["value"] == {"form": form, "field": field, "text": ""}[message]
    # A query on the screening form and on the visit date are allowed.
    assert raise_query(platform, form="screening", field="nihss", text_="NIHSS at screening?").status_code == 201
    assert raise_query(platform, form="d7", field="visit_date", text_="date?").status_code == 201


def test_a_screening_query_before_randomization_is_corrected_through_the_screening_correction(platform):
    assert register(platform, trial=TRIAL, code="P2").status_code == 201
    query = raise_query(platform, code="P2", form="screening", field="nihss", text_="source says NIHSS 14").json()
    answered = platform.call("POST", f"/trials/{TRIAL}/queries/{query['id']}/answer", "coordinator",
                             json={"answer": "source checked", "correction": {"value": 14}})
    assert answered.status_code == 200, answered.text
    patient = platform.call("GET", f"/trials/{TRIAL}/patients/P2", "coordinator").json()
    assert patient["data"]["nihss"] == 14
    assert [e[4] for e in events(platform, "patient") if e[1] == "update_screening"] == \
        [f"data query {query['id']}: source checked"]
    # After randomization screening data are locked: the refusal names the query route.
    randomize(platform, trial=TRIAL, code="P2", key="key-P2")
    locked = platform.call("PATCH", f"/trials/{TRIAL}/patients/P2", "coordinator",
                           json={"data": {"nihss": 15}, "reason": "typo"})
    assert locked.status_code == 409 and f"/api/v1/trials/{TRIAL}/patients/P2/queries" in locked.json()["detail"]


# ---- edit checks --------------------------------------------------------------------------------------------------
def test_an_edit_check_opens_a_query_and_closes_it_when_the_form_is_corrected(platform):
    randomized(platform)
    assert enter_d90(platform, mrs=6, death=False).status_code == 200
    (auto,) = queries_of(platform)
    assert (auto["origin"], auto["check_id"], auto["field"], auto["status"], auto["raised_by"]) == \
        ("edit_check", "mrs_6_is_death", "death", "open", "edit check")
    # Labels, not codes: the query says what was found in the form's words.
    assert "modified Rankin Scale is 6 and death is no" in auto["text"]
    # Entered again unchanged (a correction with a reason): the same query stays, no second one opens.
    assert enter_d90(platform, mrs=6, death=False, reason="re-saved").status_code == 200
    assert len(queries_of(platform)) == 1
    # The site answers with the correction; the check passes and closes its query.
    answered = platform.call("POST", f"/trials/{TRIAL}/queries/{auto['id']}/answer", "coordinator",
                             json={"answer": "the patient died on day 80", "correction": {"value": True}})
    assert answered.status_code == 200, answered.text
    (closed,) = queries_of(platform)
    assert (closed["status"], closed["closed_by"], closed["answered_by"]) == ("closed", "edit check", "coordinator")
    trail = events(platform, "data_query")
    assert [e[1] for e in trail] == ["raise_query", "answer_query", "close_query"]
    assert trail[2][0] == "coordinator" and "mrs_6_is_death passes" in trail[2][4]


def test_a_direct_correction_closes_the_automatic_query_and_a_confirmed_outlier_is_not_queried_again(platform):
    randomized(platform)
    assert enter_d90(platform, mrs=6, death=False).status_code == 200
    assert enter_d90(platform, mrs=6, death=True, reason="died on day 80").status_code == 200
    assert [q["status"] for q in queries_of(platform)] == ["closed"]
    # A query the data manager closed on the same values is not opened again by re-saving them.
    assert enter_d90(platform, mrs=6, death=False, reason="entered by mistake").status_code == 200
    second = [q for q in queries_of(platform) if q["status"] == "open"]
    assert len(second) == 1
    assert platform.call("POST", f"/trials/{TRIAL}/queries/{second[0]['id']}/close", "data_manager",
                         json={"note": "confirmed with the site"}).status_code == 200
    assert enter_d90(platform, mrs=6, death=False, sae=True, reason="SAE added").status_code == 200
    assert [q["status"] for q in queries_of(platform)] == ["closed", "closed"]


def test_the_ninety_day_visit_on_day_zero_is_queried_as_outside_its_window(platform):
    randomized(platform, days_ago=0)
    assert enter_d90(platform).status_code == 200
    (timing,) = queries_of(platform)
    assert (timing["check_id"], timing["field"], timing["field_label"]) == ("visit_in_window", "visit_date",
                                                                           "visit date")
    assert "Day 90 dated" in timing["text"] and "day 0" in timing["text"]
    listed = platform.call("GET", f"/trials/{TRIAL}/queries", "data_manager", params={"origin": "edit_check"}).json()
    assert [q["id"] for q in listed["queries"]] == [timing["id"]]
    assert listed["summary"]["by_site"] == [{"site": "S1", "open": 1, "answered": 0, "oldest_days": 0}]
    assert listed["summary"]["by_age"] == {"0-7 days": 1, "8-30 days": 0, "over 30 days": 0}


def test_edit_checks_are_validated_when_the_protocol_loads():
    data = PROTOCOL.model_dump(by_alias=True, exclude_none=True)
    bad = [({"id": "x", "kind": "range", "text": "t", "form": "d91", "assessment": "mrs", "low": 0, "high": 5},
            "form 'd91' is not a visit"),
           ({"id": "x", "kind": "range", "text": "t", "assessment": "barthel", "low": 0, "high": 50},
            "no visit form holds barthel"),
           ({"id": "x", "kind": "range", "text": "t", "assessment": "mrs", "low": 0, "high": 6}, "be narrower"),
           ({"id": "x", "kind": "cross_field", "text": "t", "if": {"assessment": "mrs", "is": 7},
             "then": {"assessment": "death", "is": True}}, "mrs is 7"),
           ({"id": "x", "kind": "visit_timing", "text": "t", "low": 1}, "takes no values"),
           ({"id": "visit_in_window", "kind": "visit_timing", "text": "t"}, "repeat an id")]
    for check, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            Protocol.model_validate({**data, "edit_checks": [*data["edit_checks"], check]})


# ---- source data verification -------------------------------------------------------------------------------------
def test_a_verified_form_is_cleared_by_a_change_and_listed_to_verify_again(platform):
    randomized(platform)
    assert enter_d90(platform).status_code == 200
    marked = platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", "monitor", json={"form": "d90"})
    assert marked.status_code == 201, marked.text
    assert marked.json()["status"] == "verified" and marked.json()["field_label"] == "whole form"
    death = platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", "monitor",
                          json={"form": "d90", "field": "death"})
    assert death.status_code == 201
    # Verifying the same values again changes nothing.
    assert platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", "monitor",
                         json={"form": "d90"}).json()["id"] == marked.json()["id"]

    def forms():
        listed = platform.call("GET", f"/trials/{TRIAL}/verifications", "monitor").json()
        return {f["form"]: f for f in listed["patients"][0]["forms"]}, listed["counts"]

    by_form, counts = forms()
    assert by_form["d90"]["status"] == "verified" and by_form["screening"]["status"] == "never"
    assert counts == {"verified": 1, "cleared": 0, "never": 1}
    assert enter_d90(platform, mrs=4, reason="source: mRS 4").status_code == 200
    by_form, counts = forms()
    assert by_form["d90"]["status"] == "cleared" and counts == {"verified": 0, "cleared": 1, "never": 1}
    why = by_form["d90"]["mark"]["cleared_why"]
    assert why.startswith(f"changed by coordinator on {_today()}") and why.endswith("(source: mRS 4)")
    # The mark on the death field alone stands: death did not change.
    assert [(f["field"], f["status"]) for f in by_form["d90"]["fields"]] == [("death", "verified")]
    trail = events(platform, "source_verification")
    assert [(e[0], e[1]) for e in trail] == [("monitor", "verify_source"), ("monitor", "verify_source"),
                                             ("coordinator", "clear_source_verification")]
    # Verified again over the new values.
    assert platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", "monitor",
                         json={"form": "d90"}).json()["status"] == "verified"
    assert forms()[0]["d90"]["status"] == "verified"
    refused = platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", "monitor", json={"form": "d7"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "form"


# ---- roles --------------------------------------------------------------------------------------------------------
def test_who_may_raise_answer_close_and_verify(platform):
    randomized(platform)
    assert enter_d90(platform).status_code == 200
    assert raise_query(platform, role="coordinator").status_code == 403
    qid = raise_query(platform, role="data_manager").json()["id"]
    for role in ("monitor", "data_manager"):
        refused = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/answer", role, json={"answer": "x"})
        assert refused.status_code == 403 and "investigator, coordinator" in refused.json()["detail"]
    for action in ("close", "reopen"):
        refused = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/{action}", "coordinator",
                                json={"reason": "x"} if action == "reopen" else None)
        assert refused.status_code == 403 and "monitor, data_manager" in refused.json()["detail"], action
    for role in ("coordinator", "data_manager", "investigator"):
        refused = platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", role, json={"form": "d90"})
        assert refused.status_code == 403 and "verifying source data is for monitor" in refused.json()["detail"]
    assert platform.call("GET", f"/trials/{TRIAL}/verifications", "coordinator").status_code == 403
    assert platform.call("GET", f"/trials/{TRIAL}/patients/P1/queries", "outcome_assessor").status_code == 403
    # Another site's coordinator learns nothing of the query, not even that it exists.
    other = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/answer", "coordinator_s2", json={"answer": "x"})
    assert other.status_code == 404
    assert platform.call("GET", f"/trials/{TRIAL}/queries", "coordinator_s2").json()["queries"] == []
    # The site staff answer through the correction path: a value out of the dictionary's range is refused by name.
    bad = platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/answer", "coordinator",
                        json={"answer": "corrected", "correction": {"value": 9}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "mrs"
    assert queries_of(platform)[0]["status"] == "open"  # refused as a whole: the answer is not stored either


def _normalised(body: str, code: str) -> str:
    body = body.replace(code, "PATIENT")
    body = re.sub(r"\d{4}-\d{2}-\d{2}(T[0-9:.]+([+-]\d{2}:\d{2}|Z)?)?", "DATE", body)
    return re.sub(r'"(id|sequence)": ?\d+', r'"\1": N', body)


def test_a_data_manager_in_a_double_blind_trial_sees_no_arm(platform):
    """Two patients, one in each arm, with the same follow-up, queries and verifications: every answer the data
    manager gets is the same for both but for the patient's id, numbers and times, and none names an arm."""
    by_arm: dict[str, str] = {}
    for i in range(1, 40):
        code = f"PT{i:02d}"
        allocation = randomized(platform, code=code)
        assert "arm" not in allocation  # the coordinator of a double-blind trial sees a kit, never the arm
        with platform.db.engine.begin() as conn:
            arm = conn.execute(text("SELECT arm FROM allocations a JOIN patients p ON p.id = a.patient_id "
                                    "WHERE p.code = :c"), {"c": code}).scalar_one()
        by_arm.setdefault(arm, code)
        if len(by_arm) == len(PROTOCOL.arms):
            break
    assert len(by_arm) == 2
    for code in by_arm.values():
        assert enter_d90(platform, code=code, mrs=6, death=False).status_code == 200  # an automatic query
        assert raise_query(platform, code=code, role="data_manager").status_code == 201
        assert platform.call("POST", f"/trials/{TRIAL}/patients/{code}/verifications", "monitor",
                             json={"form": "d90"}).status_code == 201
    answers: dict[str, list[str]] = {}
    for arm, code in by_arm.items():
        responses = [
            platform.call("GET", f"/trials/{TRIAL}/patients/{code}/queries", "data_manager"),
            platform.call("GET", f"/trials/{TRIAL}/queries", "data_manager", params={"status": "open"}),
            platform.call("GET", f"/trials/{TRIAL}/verifications", "data_manager", params={"patient": code}),
            platform.call("GET", f"/trials/{TRIAL}/patients/{code}", "data_manager"),
            platform.call("GET", f"/trials/{TRIAL}/patients/{code}/visits", "data_manager"),
            raise_query(platform, code=code, field="sae", text_="SAE form?", role="data_manager"),
            platform.call("POST", f"/trials/{TRIAL}/queries/999999/close", "data_manager"),
            raise_query(platform, code=code, form="d90", field="allocation", role="data_manager"),
        ]
        qid = responses[5].json()["id"]
        responses += [platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/close", "data_manager"),
                      platform.call("POST", f"/trials/{TRIAL}/queries/{qid}/reopen", "data_manager",
                                    json={"reason": "again"})]
        mine = [r for r in responses if "/queries" in str(r.url) or "/verifications" in str(r.url)]
        for response in responses:
            body = response.text
            assert '"arm"' not in body and '"slot"' not in body, (arm, response.url, body)
            assert not any(f'"{a.id}"' in body for a in PROTOCOL.arms), (arm, response.url)
        for response in mine:  # (a patient's screening result may name the drug in an exclusion criterion)
            assert not any(w.lower() in response.text.lower() for w in ARM_WORDS), (arm, response.url)
        answers[arm] = [_normalised(r.text, code) for r in mine]
    first, second = answers.values()
    # The trial-wide list holds both patients; compare the per-patient answers only.
    assert [x for i, x in enumerate(first) if i != 1] == [x for i, x in enumerate(second) if i != 1]
