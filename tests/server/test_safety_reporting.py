"""Safety reporting on SQLite and PostgreSQL, through the API, with a real SMTP server (aiosmtpd) receiving the
notification emails: the AE log and its checks, expedited SAE reporting (the 24-h initial report, the SUSAR's 7-
and 15-day clocks, follow-ups and the sponsor's assessment), notifications in the inbox and by email, and the
attack on blinding: an emergency unblinding in a double-blind trial tells the DSMB the arm and no one else."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from stroketrial.protocol import BUILTIN_IDS, load_builtin
from stroketrial.service import SYSTEM, accounts, export
from stroketrial.service.accounts import Actor
from stroketrial.service.serious_adverse_events import sae_status
from stroketrial.store import verify
from stroketrial.store.models import Notification

from .test_api import randomize, register

SHARED = Path(__file__).resolve().parents[3] / "shared"
TODAY = dt.date.today().isoformat()
YESTERDAY = (dt.date.today() - dt.timedelta(days=1)).isoformat()  # onset for an awareness hours ago, at any hour


class Inbox:
    """The SMTP server's mailbox: each message as (envelope recipients, parsed message)."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls this hook by name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]


@pytest.fixture
def smtp(monkeypatch):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    mailbox = Inbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("STROKETRIAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("STROKETRIAL_SMTP_PORT", str(port))
    monkeypatch.setenv("STROKETRIAL_SMTP_FROM", "safety@stroketrial.test")
    yield mailbox
    controller.stop()


@pytest.fixture
def pv(platform):
    """The sponsor's pharmacovigilance, at both sites."""
    with platform.db.write() as session:
        _, platform.tokens["pharmacovigilance"] = accounts.create_user(session, SYSTEM, "pv", "pharmacovigilance",
                                                                       ["S1", "S2"])
    return platform


def recipients(platform, trial, **by_role):
    for role, address in by_role.items():
        answer = platform.call("POST", f"/trials/{trial}/notification-recipients", "admin",
                               json={"email": address, "role": role})
        assert answer.status_code == 201, answer.text


def randomized(platform, trial="amass-2", code="P1"):
    assert register(platform, trial=trial, code=code).status_code == 201
    answer = randomize(platform, trial=trial, code=code, key=f"key-{code}")
    assert answer.status_code == 201, answer.text
    return answer.json()


def sae(platform, trial="amass-2", code="P1", role="investigator", **changes):
    body = {"term": "aspiration pneumonia", "onset_date": TODAY, "criteria": ["hospitalization"],
            "outcome": "recovering", "relatedness": "unlikely", **changes}
    return platform.call("POST", f"/trials/{trial}/patients/{code}/saes", role, json=body)


def subject(message) -> str:
    """The Subject header unfolded (a long subject is folded after the colon)."""
    return " ".join(str(message["Subject"]).split())


def ago(**delta) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).isoformat(timespec="seconds")


def listed(platform, trial="amass-2", role="pharmacovigilance"):
    answer = platform.call("GET", f"/trials/{trial}/saes", role)
    assert answer.status_code == 200, answer.text
    return answer.json()


def inbox(platform, role):
    answer = platform.call("GET", "/inbox", role)
    assert answer.status_code == 200, answer.text
    return answer.json()


# ---- the adverse-event log --------------------------------------------------------------------------------
def test_the_ae_log_names_every_bad_field_and_keeps_corrections_with_a_reason(platform):
    randomized(platform)
    path = "/trials/amass-2/patients/P1/adverse-events"
    bad = platform.call("POST", path, "coordinator",
                        json={"term": " ", "onset_date": "2999-01-01", "severity": "awful", "relatedness": "maybe",
                              "action_taken": "stopped", "outcome": "better", "coded_term": "x" * 201})
    assert bad.status_code == 422
    fields = {e["field"]: e for e in bad.json()["errors"]}
    assert set(fields) == {"term", "onset_date", "severity", "relatedness", "action_taken", "outcome", "coded_term"}
    assert fields["severity"]["value"] == "awful" and "mild, moderate, severe" in fields["severity"]["message"]
    assert "dose_interrupted" in fields["action_taken"]["message"]
    assert "after today" in fields["onset_date"]["message"]
    missing = platform.call("POST", path, "coordinator", json={})
    assert {e["field"] for e in missing.json()["errors"]} == {"term", "onset_date", "severity", "relatedness",
                                                              "action_taken", "outcome"}
    ae = {"term": "headache", "coded_term": "Headache", "system_organ_class": "Nervous system disorders",
          "onset_date": TODAY, "severity": "mild", "relatedness": "possible", "action_taken": "none",
          "outcome": "recovered"}
    created = platform.call("POST", path, "coordinator", json=ae)
    assert created.status_code == 201, created.text
    ae_id = created.json()["id"]
    assert platform.call("POST", path, "monitor", json=ae).status_code == 403
    assert platform.call("GET", path, "outcome_assessor").status_code == 403
    no_reason = platform.call("PUT", f"{path}/{ae_id}", "coordinator", json={**ae, "severity": "moderate"})
    assert no_reason.status_code == 422 and {e["field"] for e in no_reason.json()["errors"]} == {"reason"}
    both = platform.call("PUT", f"{path}/{ae_id}", "coordinator", json={**ae, "severity": "x"})
    assert {e["field"] for e in both.json()["errors"]} == {"severity", "reason"}
    fixed = platform.call("PUT", f"{path}/{ae_id}", "coordinator",
                          json={**ae, "severity": "moderate", "reason": "severity misread from the chart"})
    assert fixed.status_code == 200, fixed.text
    log = platform.call("GET", path, "monitor").json()
    assert [(a["term"], a["severity"], a["corrected_by"]) for a in log] == [("headache", "moderate", "coordinator")]
    assert platform.call("PUT", f"{path}/999", "coordinator", json={**ae, "reason": "r"}).status_code == 404
    with platform.db.read() as session:
        assert verify(session).ok
        exported = export.tables(session, Actor("monitor", "monitor", frozenset({"S1"})), "amass-2")
        assert exported["adverse_event"] == [{"patient_id": "P1", "ae_id": ae_id, "recorded_by": "coordinator",
                                              **ae, "severity": "moderate"}]
        odm = export.odm_xml(session, Actor("monitor", "monitor", frozenset({"S1"})), "amass-2").decode()
        assert re.search(r'<ItemGroupDef OID="IG.ADVERSE_EVENT"[^>]*Repeating="Yes"', odm), odm[:3000]


# ---- SAE reporting, notification, email ---------------------------------------------------------------------
def test_an_sae_is_notified_in_the_inbox_and_emailed_through_smtp(pv, smtp):
    platform = pv
    randomized(platform)
    recipients(platform, "amass-2", pharmacovigilance="pv@sponsor.test", dsmb="dsmb@board.test",
               monitor="cra@cro.test")
    answer = sae(platform, onset_date=YESTERDAY, awareness_at=ago(hours=2))
    assert answer.status_code == 201, answer.text
    for address in ("pv@sponsor.test", "dsmb@board.test"):
        (message,) = smtp.to(address)
        assert subject(message).startswith("[AMASS-2] SAE reported: patient P1 (site S1)")
        assert message["From"] == "safety@stroketrial.test" and message["To"] == address
        body = message.get_content()
        assert "aspiration pneumonia" in body and "Initial report to the sponsor" in body and "on time" in body
    assert smtp.to("cra@cro.test") == []  # a monitor is not in an SAE's audience
    # The inbox of the roles it is for, at their sites; read and unread.
    (item,) = inbox(platform, "pharmacovigilance")
    assert item["kind"] == "sae_new" and not item["read"] and item["email"].startswith("emailed to 2 addresses")
    assert [n["kind"] for n in inbox(platform, "investigator")] == ["sae_new"]
    assert inbox(platform, "monitor") == [] and inbox(platform, "coordinator_s2") == []
    assert platform.call("POST", f"/inbox/{item['id']}/read", "pharmacovigilance").status_code == 200
    assert inbox(platform, "pharmacovigilance")[0]["read"] is True
    assert platform.call("GET", "/inbox?unread=true", "pharmacovigilance").json() == []
    assert inbox(platform, "dsmb")[0]["read"] is False  # read is per user
    assert platform.call("POST", f"/inbox/{item['id']}/read", "monitor").status_code == 404
    with platform.db.read() as session:
        assert verify(session).ok


def test_an_sae_email_is_in_its_recipients_language_and_english_then_chinese_without_one(pv, smtp):
    platform = pv
    randomized(platform)
    for address, role, language in (("pv@sponsor.test", "pharmacovigilance", "zh_Hans"),
                                    ("dsmb@board.test", "dsmb", "en"), ("chair@board.test", "dsmb", None)):
        answer = platform.call("POST", "/trials/amass-2/notification-recipients", "admin",
                               json={"email": address, "role": role, "language": language})
        assert answer.status_code == 201 and answer.json()["language"] == language, answer.text
    refused = platform.call("POST", "/trials/amass-2/notification-recipients", "admin",
                            json={"email": "x@board.test", "role": "dsmb", "language": "fr"})
    assert refused.status_code == 422 and "zh_Hans" in refused.text
    assert sae(platform, onset_date=YESTERDAY, awareness_at=ago(hours=2)).status_code == 201
    (chinese,) = smtp.to("pv@sponsor.test")
    body = chinese.get_content()
    assert subject(chinese).startswith("[AMASS-2] 严重不良事件（SAE）报告：患者 P1（中心 S1）")  # noqa: RUF001
    assert "向申办者首次报告：截止" in body and "按时" in body and "严重性标准：导致住院" in body  # noqa: RUF001
    assert "aspiration pneumonia" in body  # the term as the site typed it
    assert "Initial report to the sponsor" not in body and "Seriousness" not in body
    (english,) = smtp.to("dsmb@board.test")
    assert subject(english).startswith("[AMASS-2] SAE reported: patient P1") and "严重" not in subject(english)
    assert "Initial report to the sponsor" in english.get_content() and "申办者" not in english.get_content()
    (both,) = smtp.to("chair@board.test")
    text = both.get_content()
    assert subject(both).startswith("[AMASS-2] SAE reported: patient P1 (site S1)") and "严重不良事件" in subject(both)
    assert text.index("Initial report to the sponsor") < text.index("向申办者首次报告")


def test_without_smtp_the_notification_is_stored_and_the_inbox_says_it_was_not_sent(platform, monkeypatch):
    monkeypatch.delenv("STROKETRIAL_SMTP_HOST", raising=False)
    randomized(platform)
    recipients(platform, "amass-2", dsmb="dsmb@board.test")
    assert sae(platform).status_code == 201
    (item,) = inbox(platform, "dsmb")
    assert item["email"] == "stored, not emailed: no SMTP server is configured (STROKETRIAL_SMTP_HOST)"
    assert "no notification recipients" in inbox(platform, "admin")[0]["email"] or \
        inbox(platform, "admin")[0]["email"].startswith("stored, not emailed")


def test_a_failing_smtp_server_never_loses_the_notification(platform, monkeypatch):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there
    monkeypatch.setenv("STROKETRIAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("STROKETRIAL_SMTP_PORT", str(port))
    randomized(platform)
    recipients(platform, "amass-2", dsmb="dsmb@board.test")
    assert sae(platform).status_code == 201
    (item,) = inbox(platform, "dsmb")
    assert item["email"].startswith("email failed: 127.0.0.1:")
    with platform.db.read() as session:
        row = session.execute(select(Notification)).scalars().first()
        assert row.sent_at is None and row.send_error


# ---- the clocks -----------------------------------------------------------------------------------------------
def test_an_initial_report_entered_more_than_24_hours_after_awareness_is_flagged_overdue(pv, smtp):
    platform = pv
    randomized(platform)
    recipients(platform, "amass-2", pharmacovigilance="pv@sponsor.test")
    onset = (dt.date.today() - dt.timedelta(days=2)).isoformat()
    on_time = sae(platform, awareness_at=ago(hours=23), onset_date=onset)
    late = sae(platform, awareness_at=ago(hours=30), onset_date=onset)
    assert on_time.status_code == late.status_code == 201
    by_id = {s["id"]: s for s in listed(platform)}
    first, second = by_id[on_time.json()["id"]], by_id[late.json()["id"]]
    assert first["overdue"] is False and first["clocks"][0]["status"] == "on time"
    assert second["overdue"] is True and second["clocks"][0] == {**second["clocks"][0], "report": "initial",
                                                                 "status": "late", "overdue": True}
    due = dt.datetime.fromisoformat(second["clocks"][0]["due"])
    aware = dt.datetime.fromisoformat(second["awareness_at"])
    assert due - aware == dt.timedelta(hours=24)
    overdue = [m for m in smtp.to("pv@sponsor.test") if subject(m).startswith("[AMASS-2] Overdue")]
    assert len(overdue) == 1 and "initial SAE report (24 h)" in overdue[0]["Subject"]
    assert [n["kind"] for n in inbox(platform, "pharmacovigilance")].count("overdue_report") == 1
    listed(platform)  # looking again does not notify again
    assert [n["kind"] for n in inbox(platform, "pharmacovigilance")].count("overdue_report") == 1
    # Awareness in the future, or before the onset, is refused by name.
    future = sae(platform, awareness_at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat())
    before = sae(platform, awareness_at=ago(days=3))
    assert future.status_code == before.status_code == 422
    assert "in the future" in future.json()["errors"][0]["message"]
    assert "before the onset" in before.json()["errors"][0]["message"]


def test_an_sae_without_an_awareness_time_is_aware_when_reported(platform):
    randomized(platform)
    created = sae(platform).json()
    reported = dt.datetime.fromisoformat(created["awareness_at"])
    assert abs(reported - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize("criteria, outcome, days", [(["hospitalization"], "recovering", 15),
                                                     (["life_threatening"], "recovering", 7),
                                                     (["hospitalization"], "fatal", 7)])
def test_a_susar_is_due_to_the_authorities_in_7_or_15_days(pv, criteria, outcome, days):
    """Serious, related (possible or more) and unexpected: 7 days from awareness if fatal or life-threatening,
    else 15. The sponsor's assessment of expectedness decides; its submission stops the clock."""
    platform = pv
    randomized(platform)
    aware_at = ago(days=days - 1, hours=1)
    onset = (dt.date.today() - dt.timedelta(days=days)).isoformat()
    created = sae(platform, term="acute pancreatitis", relatedness="possible", criteria=criteria, outcome=outcome,
                  onset_date=onset, awareness_at=aware_at).json()
    (item,) = listed(platform)
    assert item["susar"] is True and item["expected"] is False
    assert item["expectedness_by"].startswith("reference safety information")
    _initial, susar = item["clocks"]
    assert susar["report"] == "susar" and susar["days"] == days and susar["status"] == "due"
    assert dt.datetime.fromisoformat(susar["due"]) - dt.datetime.fromisoformat(aware_at) == dt.timedelta(days=days)
    # The PV unblinds a SUSAR alone (AMASS-2 is open to all but its outcome assessor; see the blinded trial below).
    assert item["arm"] in ("albumin", "control")
    assessment = {"causality": "possible", "expectedness": "unexpected", "comment": "not in the IB"}
    path = f"/trials/amass-2/patients/P1/saes/{created['id']}/sponsor-assessment"
    assert platform.call("POST", path, "investigator", json=assessment).status_code == 403
    bad = platform.call("POST", path, "pharmacovigilance", json={"causality": "sure", "expectedness": "maybe"})
    assert {e["field"] for e in bad.json()["errors"]} == {"causality", "expectedness"}
    done = platform.call("POST", path, "pharmacovigilance", json={**assessment, "reported_to_authorities_at": ago()})
    assert done.status_code == 201, done.text
    (item,) = listed(platform)
    assert item["expectedness_by"] == "sponsor" and item["clocks"][1]["status"] == "on time"


def test_a_susar_past_its_deadline_is_overdue_and_notified_once(pv, smtp):
    platform = pv
    randomized(platform)
    recipients(platform, "amass-2", pharmacovigilance="pv@sponsor.test")
    onset = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    sae(platform, term="acute pancreatitis", relatedness="probable", criteria=["life_threatening"],
        onset_date=onset, awareness_at=ago(days=9))
    (item,) = listed(platform)
    assert item["clocks"][1]["status"] == "overdue" and item["overdue"] is True
    subjects = [subject(m) for m in smtp.to("pv@sponsor.test")]
    assert sum("Overdue: SUSAR report to the authorities (7 days)" in s for s in subjects) == 1
    assert sum("Overdue: initial SAE report" in s for s in subjects) == 1  # entered 9 days after awareness
    listed(platform)
    inbox(platform, "pharmacovigilance")
    assert len([m for m in smtp.to("pv@sponsor.test") if "Overdue" in subject(m)]) == 2


def test_expected_events_come_from_the_reference_safety_information_and_the_sponsor_decides(pv):
    platform = pv
    randomized(platform)
    created = sae(platform, term="Symptomatic intracranial haemorrhage", relatedness="probable").json()
    (item,) = listed(platform)
    assert item["expected"] is True and item["susar"] is False and len(item["clocks"]) == 1
    sae(platform, term="brain bleed", coded_term="sICH", relatedness="probable")
    assert all(s["expected"] for s in listed(platform))
    # The sponsor's assessment overrides the provisional expectedness: now a SUSAR, notified as an upgrade.
    path = f"/trials/amass-2/patients/P1/saes/{created['id']}/sponsor-assessment"
    platform.call("POST", path, "pharmacovigilance", json={"causality": "probable", "expectedness": "unexpected"})
    item = next(s for s in listed(platform) if s["id"] == created["id"])
    assert item["susar"] is True and item["expectedness_by"] == "sponsor"
    assert any(n["kind"] == "sae_upgraded" and "now a SUSAR" in n["subject"]
               for n in inbox(platform, "pharmacovigilance"))


def test_follow_up_reports_update_the_sae_and_an_upgrade_notifies(pv, smtp):
    platform = pv
    randomized(platform)
    recipients(platform, "amass-2", dsmb="dsmb@board.test")
    created = sae(platform).json()
    path = f"/trials/amass-2/patients/P1/saes/{created['id']}/follow-ups"
    bad = platform.call("POST", path, "investigator", json={"outcome": "dead", "criteria": []})
    assert {e["field"] for e in bad.json()["errors"]} == {"description", "outcome", "criteria"}
    assert platform.call("POST", path, "monitor", json={"description": "x"}).status_code == 403
    minor = platform.call("POST", path, "investigator", json={"description": "antibiotics changed"})
    assert minor.status_code == 201, minor.text
    upgraded = platform.call("POST", path, "investigator",
                             json={"description": "died of respiratory failure", "outcome": "fatal",
                                   "criteria": ["hospitalization", "death"]})
    assert upgraded.status_code == 201, upgraded.text
    body = upgraded.json()
    assert body["outcome"] == "fatal" and [r["kind"] for r in body["reports"]] == ["initial", "follow_up",
                                                                                     "follow_up"]
    subjects = [subject(m) for m in smtp.to("dsmb@board.test")]
    assert len(subjects) == 2 and "SAE upgraded (now fatal or life-threatening)" in subjects[1]
    # The patient's list keeps the SAE as first reported, with its current state beside it.
    (first,) = platform.call("GET", "/trials/amass-2/patients/P1/saes", "investigator").json()
    assert first["outcome"] == "recovering" and first["current"]["outcome"] == "fatal"
    with platform.db.read() as session:
        assert verify(session).ok


def test_the_sae_list_is_for_readers_of_safety_data_at_their_sites(pv):
    platform = pv
    randomized(platform)
    sae(platform)
    assert platform.call("GET", "/trials/amass-2/saes", "outcome_assessor").status_code == 403
    assert platform.call("GET", "/trials/amass-2/saes", "coordinator_s2").json() == []
    assert len(platform.call("GET", "/trials/amass-2/saes", "dsmb").json()) == 1


# ---- unblinding: the attack on blinding ---------------------------------------------------------------------
def test_an_unblinding_tells_the_dsmb_the_arm_and_the_admin_only_that_it_happened(pv, smtp):
    platform = pv
    trial = "impact-lvo"  # double-blind
    protocol = load_builtin(trial)
    arm_words = [w.casefold() for a in protocol.arms for w in (a.id, a.name)]
    allocation = randomized(platform, trial=trial)
    recipients(platform, trial, dsmb="dsmb@board.test", admin="admin@sponsor.test",
               pharmacovigilance="pv@sponsor.test", investigator="pi@site.test")
    answer = platform.call("POST", f"/trials/{trial}/patients/P1/unblinding", "investigator",
                           json={"reason": "upper GI bleeding, steroid decision needed"})
    assert answer.status_code == 201, answer.text
    arm = answer.json()["arm"]
    (dsmb_mail,) = smtp.to("dsmb@board.test")
    (admin_mail,) = smtp.to("admin@sponsor.test")
    assert smtp.to("pv@sponsor.test") == [] and smtp.to("pi@site.test") == []
    assert f"Arm: {arm}" in dsmb_mail.get_content() and allocation["kit"] in dsmb_mail.get_content()
    for message in (admin_mail,):
        text = (subject(message) + "\n" + message.get_content()).casefold()
        assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in arm_words), text
        assert allocation["kit"] not in text and "emergency unblinding" in text
    (dsmb_item,) = inbox(platform, "dsmb")
    (admin_item,) = inbox(platform, "admin")
    assert f"Arm: {arm}" in dsmb_item["body"]
    admin_text = (admin_item["subject"] + admin_item["body"]).casefold()
    assert not any(re.search(rf"\b{re.escape(w)}\b", admin_text) for w in arm_words)
    assert "upper gi bleeding" in admin_text  # the reason, the investigator and the patient: all but the arm
    # No blinded user finds the DSMB's copy in any inbox; the investigator and the PV are not told at all.
    for role in ("investigator", "coordinator", "blinded_statistician", "monitor", "pharmacovigilance"):
        assert inbox(platform, role) == [], role
    with platform.db.read() as session:
        assert verify(session).ok
        rows = session.execute(select(Notification)).scalars().all()
        assert sorted(r.audience_json.count('"carries_arm":true') for r in rows) == [0, 1]


def test_a_susar_in_a_blinded_trial_shows_its_arm_to_the_pv_alone(pv):
    platform = pv
    trial = "impact-lvo"
    randomized(platform, trial=trial)
    sae(platform, trial=trial, term="acute pancreatitis", relatedness="possible")
    sae(platform, trial=trial, term="pneumonia", relatedness="possible")  # an expected event (infection synonym)
    by_term = {s["term"]: s for s in listed(platform, trial)}
    assert by_term["acute pancreatitis"]["susar"] and "arm" in by_term["acute pancreatitis"]
    assert not by_term["pneumonia"]["susar"] and "arm" not in by_term["pneumonia"]
    for role in ("investigator", "admin", "blinded_statistician", "monitor"):
        assert all("arm" not in s for s in listed(platform, trial, role)), role
    assert all("arm" in s for s in listed(platform, trial, "dsmb"))
    arm_words = [w.casefold() for a in load_builtin(trial).arms for w in (a.id, a.name)]
    for role in ("investigator", "pharmacovigilance", "admin"):  # an SAE's message never names an arm
        for item in inbox(platform, role):
            text = (item["subject"] + item["body"]).casefold()
            assert not any(re.search(rf"\b{re.escape(w)}\b", text) for w in arm_words), (role, text)


# ---- recipients -------------------------------------------------------------------------------------------------
def test_recipients_are_the_admins_to_manage_and_checked(platform):
    path = "/trials/amass-2/notification-recipients"
    bad = platform.call("POST", path, "admin", json={"email": "not an address", "role": "sponsor"})
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"email", "role"}
    assert platform.call("POST", path, "investigator", json={"email": "a@b.test", "role": "dsmb"}).status_code == 403
    assert platform.call("POST", path, "admin", json={"email": "a@b.test", "role": "dsmb"}).status_code == 201
    assert platform.call("POST", path, "admin", json={"email": "a@b.test", "role": "admin"}).status_code == 201
    assert platform.call("GET", path, "admin").json() == [{"id": 1, "trial_id": "amass-2", "email": "a@b.test",
                                                           "role": "admin", "language": None}]
    assert platform.call("DELETE", f"{path}/a@b.test", "admin").status_code == 204
    assert platform.call("GET", path, "admin").json() == []


# ---- pure parts -------------------------------------------------------------------------------------------------
def test_the_susar_clock_runs_from_the_report_that_made_it_one():
    protocol = load_builtin("amass-2")
    t0 = dt.datetime(2025, 3, 1, 8, tzinfo=dt.UTC)
    initial = {"term": "rash", "criteria": ["hospitalization"], "outcome": "recovering", "relatedness": "unlikely",
               "awareness_at": t0.isoformat()}
    later = t0 + dt.timedelta(days=3)
    related = {"relatedness": "probable", "awareness_at": later.isoformat()}
    fatal = {"outcome": "fatal", "awareness_at": (later + dt.timedelta(days=10)).isoformat()}
    status = sae_status(protocol, t0, [("initial", initial), ("follow_up", related)], later)
    assert status["clocks"][1]["due"] == (later + dt.timedelta(days=15)).isoformat()
    status = sae_status(protocol, t0, [("initial", initial), ("follow_up", related), ("follow_up", fatal)], later)
    # Fatal 10 days after the 15-day clock began: due at the earlier of day 15 and 7 days from the new facts.
    assert status["clocks"][1]["due"] == (later + dt.timedelta(days=15)).isoformat()
    assert status["clocks"][1]["days"] == 15
    expected = {**initial, "term": "Pulmonary edema", "relatedness": "definite"}
    assert sae_status(protocol, t0, [("initial", expected)], t0)["susar"] is False


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_the_reference_safety_information_quotes_its_source_or_says_it_assumes(trial):
    protocol = load_builtin(trial)
    assert protocol.reference_safety_information, trial
    if not (SHARED / "seeds").is_dir():
        pytest.skip("no seed documents")
    document = re.sub(r"\s+", " ", (SHARED / protocol.source).read_text(encoding="utf-8"))
    for event in protocol.reference_safety_information:
        if event.text is None:
            assert event.assumption
            continue
        position = 0
        for part in re.sub(r"\s+", " ", event.text).split("..."):
            found = document.find(part.strip(), position)
            assert found >= 0, f"{trial} {event.term}: {part.strip()!r}"
            position = found + len(part.strip())


def test_an_endpoint_counting_adverse_events_counts_the_exported_ae_log():
    """No trial declares one now; one that did (`assessment: adverse_event`, `method: count`) counts each patient's
    rows of the export's adverse_event table, as the SAE endpoints count `sae`."""
    import pandas as pd

    from stroketrial.analysis.planned_outcomes import outcomes_from_forms

    protocol = load_builtin("amass-2")
    endpoint = next(e for e in protocol.endpoints if e.analysis and e.analysis.method == "count")
    assert endpoint.analysis is not None
    outcome = endpoint.analysis.outcome.model_copy(update={"assessment": "adverse_event", "column": "ae_count"})
    counted = endpoint.model_copy(update={"analysis": endpoint.analysis.model_copy(update={"outcome": outcome})})
    protocol = protocol.model_copy(update={"endpoints": [counted]})
    data = pd.DataFrame({"patient_id": ["P1", "P2", "P3"]})
    log = pd.DataFrame({"patient_id": ["P1", "P3", "P3"], "ae_id": [1, 2, 3], "term": ["headache", "rash", "fever"]})
    assert outcomes_from_forms(protocol, data, {}, {"adverse_event": log})["ae_count"].tolist() == [1, 0, 2]
