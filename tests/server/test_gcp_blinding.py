"""Attacks on the blinding of the GCP workflow features: notifications (inbox and email, through a real SMTP server),
the AE log, SAE lists and SUSARs, record signatures and freezes/locks over a form kept for some arms, data queries,
exports, and the answers (status and wording) a blinded user gets when it touches a form kept for some arms.

Each attack asks the same question for a patient of one arm and a patient of the other, as a user who may not see
arms, and compares the answers byte for byte once the patient's id, numbers and times are made equal: any
difference is computed from the arm. IMPACT-LVO is double-blind (everyone but the unblinded pharmacist, the
unblinded statistician and the DSMB is blind; the sponsor's pharmacovigilance sees the arm of a SUSAR alone);
AMASS-2 is open-label with a blinded endpoint (the blinded statistician and the outcome assessor are blind) and
keeps its infusion monitoring form for albumin patients only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile

import pytest
from sqlalchemy import text

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, notifications

from .test_api import randomize, register
from .test_outcome_assessor import page_client
from .test_safety_reporting import TODAY, smtp  # noqa: F401  (the SMTP fixture)

PASSWORD = "password-1"
IMPACT, AMASS = "impact-lvo", "amass-2"
INFUSION = next(v.id for v in load_builtin(AMASS).visits if v.arms is not None)  # the albumin patients' form


def _arm_words(trial: str) -> list[str]:
    protocol = load_builtin(trial)
    return sorted({w.casefold() for a in protocol.arms for w in (a.id, a.name)})


@pytest.fixture
def users(platform):
    """The roles the shared fixture lacks: pharmacovigilance and a data manager (both sites)."""
    with platform.db.write() as session:
        for role in ("pharmacovigilance", "data_manager"):
            _, platform.tokens[role] = accounts.create_user(session, SYSTEM, role, role, ["S1", "S2"],
                                                            password=PASSWORD)
    return platform


def arm_of(platform, trial: str, code: str) -> str:
    with platform.db.engine.begin() as conn:
        return conn.execute(text("SELECT a.arm FROM allocations a JOIN patients p ON p.id = a.patient_id "
                                 "WHERE p.code = :c AND p.trial_id = :t"), {"c": code, "t": trial}).scalar_one()


def both_arms(platform, trial: str) -> dict[str, str]:
    """One randomized patient per arm (arm -> patient id; ids of equal length)."""
    arms = {a.id for a in load_builtin(trial).arms}
    by_arm: dict[str, str] = {}
    for i in range(1, 40):
        code = f"PT{i:02d}"
        assert register(platform, trial=trial, code=code).status_code == 201
        answer = randomize(platform, trial=trial, code=code, key=f"{trial}-{code}")
        assert answer.status_code == 201, answer.text
        by_arm.setdefault(arm_of(platform, trial, code), code)
        if set(by_arm) == arms:
            return by_arm
    raise AssertionError(f"no patient of each arm in {trial}: {by_arm}")


def kit_of(platform, code: str) -> str | None:
    with platform.db.engine.begin() as conn:
        return conn.execute(text("SELECT a.kit FROM allocations a JOIN patients p ON p.id = a.patient_id "
                                 "WHERE p.code = :c"), {"c": code}).scalar_one()


def normalised(body: str, code: str) -> str:
    """What legitimately differs between two patients made equal: the id, row numbers, times and dates."""
    body = body.replace(code, "PATIENT")
    body = re.sub(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+([+-]\d{2}:?\d{2}|Z| UTC)?)?", "DATE", body)
    body = re.sub(r'"(id|sequence|sae_id|ae_id)": ?"?\d+"?', r'"\1": N', body)
    body = re.sub(r"(SAE|[Ll]ock|[Ff]reeze|query|signature|consent|kit|Kit|#) ?#?\d+", r"\1 N", body)
    body = re.sub(r"/(saes|adverse-events|queries|locks|inbox|consents|unblindings)/\d+", r"/\1/N", body)
    body = re.sub(r'name="csrf" value="[^"]+"', 'name="csrf"', body)
    body = re.sub(r'data-csrf="[^"]+"', 'data-csrf', body)  # each session's form token
    body = re.sub(r"kit <b>[^<]+</b>", "kit <b>KIT</b>", body)  # site staff see the patient's kit (sees_kit)
    body = re.sub(r"<tr><td>\d+</td>", "<tr><td>N</td>", body)  # a row's number (an SAE's)
    return body


def tells_no_arm(trial: str, body: str, where: str, kits: tuple[str | None, ...] = ()) -> None:
    lowered = body.casefold()
    assert '"arm"' not in lowered and '"slot"' not in lowered, where
    for word in _arm_words(trial):
        assert not re.search(rf"(\"|>|: ){re.escape(word)}(\"|<|\b)", lowered), (where, word)
    for kit in kits:
        assert not kit or kit.casefold() not in lowered, (where, kit)


def same_for_both(by_arm: dict[str, str], ask, where: str, trial: str, kits: tuple[str | None, ...] = ()):
    """Ask the same question of both patients: the status and the body (normalised) are equal, neither names an
    arm."""
    answers = {arm: ask(code) for arm, code in by_arm.items()}
    for arm, response in answers.items():
        tells_no_arm(trial, response.text, f"{where} ({arm})", kits)
    (a, ra), (b, rb) = answers.items()
    assert ra.status_code == rb.status_code, (where, ra.text, rb.text)
    assert normalised(ra.text, by_arm[a]) == normalised(rb.text, by_arm[b]), where
    return ra


def recipients(platform, trial, **by_role):
    for role, address in by_role.items():
        answer = platform.call("POST", f"/trials/{trial}/notification-recipients", "admin",
                               json={"email": address, "role": role.removesuffix("_2")})
        assert answer.status_code == 201, answer.text


def mail_text(message) -> str:
    return " ".join(str(message["Subject"]).split()) + "\n" + message.get_content()


# ---- notifications ----------------------------------------------------------------------------------------------
def test_an_emergency_unblinding_tells_a_blinded_reader_the_same_for_either_arm(users, smtp):  # noqa: F811
    platform = users
    by_arm = both_arms(platform, IMPACT)
    kits = tuple(kit_of(platform, c) for c in by_arm.values())
    recipients(platform, IMPACT, dsmb="dsmb@board.test", admin="admin@sponsor.test", monitor="cra@cro.test",
               investigator="pi@site.test")
    for code in by_arm.values():
        answer = platform.call("POST", f"/trials/{IMPACT}/patients/{code}/unblinding", "investigator",
                               json={"reason": "upper GI bleeding, steroid decision needed"})
        assert answer.status_code == 201, answer.text
    # The blinded admin's emails, one per patient: equal but for the patient.
    mails = {code: [m for m in smtp.to("admin@sponsor.test") if code in str(m["Subject"])]
             for code in by_arm.values()}
    assert all(len(m) == 1 for m in mails.values()), mails
    bodies = [normalised(mail_text(mails[code][0]), code) for code in by_arm.values()]
    for body in bodies:
        tells_no_arm(IMPACT, body, "admin's email", kits)
    assert bodies[0] == bodies[1]
    assert smtp.to("cra@cro.test") == [] and smtp.to("pi@site.test") == []
    # The blinded admin's inbox: one item per patient, equal but for the patient; the DSMB's copy is not there.
    items = platform.call("GET", "/inbox", "admin").json()
    per_patient = [[normalised(json.dumps(i, sort_keys=True), code) for i in items if code in i["subject"]]
                   for code in by_arm.values()]
    assert len(per_patient[0]) == 1 and per_patient[0] == per_patient[1]
    for item in items:
        tells_no_arm(IMPACT, item["subject"] + item["body"], "admin's inbox", kits)
    dsmb_ids = {i["id"] for i in platform.call("GET", "/inbox", "dsmb").json()}
    for nid in dsmb_ids:  # a blinded user probing the DSMB's copies gets what a missing id gets
        probe = platform.call("POST", f"/inbox/{nid}/read", "admin")
        missing = platform.call("POST", "/inbox/999999/read", "admin")
        assert probe.status_code == missing.status_code == 404
        assert probe.json()["detail"].replace(str(nid), "N") == missing.json()["detail"].replace("999999", "N")


def test_a_recipient_made_blind_before_the_email_is_sent_never_gets_the_arm(users, smtp, monkeypatch):  # noqa: F811
    """The arm's copy of an unblinding is stored with the DSMB's addresses; the email waits (no SMTP server yet).
    The admin then gives that address a blinded role, and removes another: when the emails go, neither address
    may receive the arm."""
    platform = users
    code = min(both_arms(platform, IMPACT).values())
    kit = kit_of(platform, code)
    recipients(platform, IMPACT, dsmb="dsmb@board.test", dsmb_2="gone@board.test", admin="admin@sponsor.test")
    host = os.environ["STROKETRIAL_SMTP_HOST"]
    monkeypatch.delenv("STROKETRIAL_SMTP_HOST")
    answer = platform.call("POST", f"/trials/{IMPACT}/patients/{code}/unblinding", "investigator",
                           json={"reason": "upper GI bleeding, steroid decision needed"})
    assert answer.status_code == 201, answer.text
    assert smtp.messages == []
    recipients(platform, IMPACT, monitor="dsmb@board.test")  # the same address, now a (blinded) monitor's
    assert platform.call("DELETE", f"/trials/{IMPACT}/notification-recipients/gone@board.test",
                         "admin").status_code == 204
    monkeypatch.setenv("STROKETRIAL_SMTP_HOST", host)
    notifications.send_pending(platform.db)
    for address in ("dsmb@board.test", "gone@board.test"):
        for message in smtp.to(address):
            tells_no_arm(IMPACT, mail_text(message), address, (kit,))
    assert [m for m in smtp.to("admin@sponsor.test")], "the blinded copy still goes to the admin"


def test_sae_and_ae_views_and_notifications_are_the_same_for_either_arm(users, smtp):  # noqa: F811
    platform = users
    by_arm = both_arms(platform, IMPACT)
    kits = tuple(kit_of(platform, c) for c in by_arm.values())
    recipients(platform, IMPACT, investigator="pi@site.test", pharmacovigilance="pv@sponsor.test",
               admin="admin@sponsor.test", dsmb="dsmb@board.test")
    sae_body = {"term": "pneumonia", "onset_date": TODAY, "criteria": ["hospitalization"], "outcome": "recovering",
                "relatedness": "unlikely"}  # expected (an infection synonym): not a SUSAR
    ae_body = {"term": "headache", "onset_date": TODAY, "severity": "mild", "relatedness": "unlikely",
               "action_taken": "dose_interrupted", "outcome": "recovered"}
    for code in by_arm.values():
        base = f"/trials/{IMPACT}/patients/{code}"
        created = platform.call("POST", f"{base}/saes", "investigator", json=sae_body)
        assert created.status_code == 201, created.text
        sae_id = created.json()["id"]
        assert platform.call("POST", f"{base}/adverse-events", "coordinator", json=ae_body).status_code == 201
        follow = platform.call("POST", f"{base}/saes/{sae_id}/follow-ups", "investigator",
                               json={"description": "worse: ICU", "criteria": ["life_threatening"]})
        assert follow.status_code == 201, follow.text
        assessed = platform.call("POST", f"{base}/saes/{sae_id}/sponsor-assessment", "pharmacovigilance",
                                 json={"causality": "unlikely", "expectedness": "expected", "comment": "labelled"})
        assert assessed.status_code == 201, assessed.text
        assert "arm" not in assessed.json()  # not a SUSAR: the PV does not see the arm
    blinded = ("investigator", "coordinator", "monitor", "admin", "blinded_statistician", "pharmacovigilance",
               "data_manager")
    for role in blinded:
        for path in ("/saes", "/adverse-events"):
            same_for_both(by_arm, lambda c, p=path, r=role: platform.call(
                "GET", f"/trials/{IMPACT}/patients/{c}{p}", r), f"{path} as {role}", IMPACT, kits)
        listing = platform.call("GET", f"/trials/{IMPACT}/saes", role)
        assert listing.status_code == 200, (role, listing.text)
        items = {code: [i for i in listing.json() if i["patient_id"] == code] for code in by_arm.values()}
        (ca, ia), (cb, ib) = items.items()
        assert normalised(json.dumps(ia), ca) == normalised(json.dumps(ib), cb), role
        tells_no_arm(IMPACT, listing.text, f"SAE list as {role}", kits)
    for role in ("investigator", "pharmacovigilance", "admin"):
        items = platform.call("GET", "/inbox", role).json()
        per = [sorted(normalised(i["subject"] + i["body"] + i["email"], c) for i in items if c in i["subject"])
               for c in by_arm.values()]
        assert per[0] and per[0] == per[1], role
    for address in ("pi@site.test", "pv@sponsor.test", "admin@sponsor.test", "dsmb@board.test"):
        per = [sorted(normalised(mail_text(m), c) for m in smtp.to(address) if c in str(m["Subject"]))
               for c in by_arm.values()]
        assert per[0] and per[0] == per[1], address
        for body in per[0]:
            tells_no_arm(IMPACT, body, address, kits)


def test_a_susars_arm_reaches_the_pv_alone_and_the_rest_see_the_same_for_either_arm(users, smtp):  # noqa: F811
    platform = users
    by_arm = both_arms(platform, IMPACT)
    kits = tuple(kit_of(platform, c) for c in by_arm.values())
    recipients(platform, IMPACT, investigator="pi@site.test", pharmacovigilance="pv@sponsor.test")
    for code in by_arm.values():
        created = platform.call("POST", f"/trials/{IMPACT}/patients/{code}/saes", "investigator",
                                json={"term": "acute pancreatitis", "onset_date": TODAY,
                                      "criteria": ["hospitalization"], "outcome": "recovering",
                                      "relatedness": "possible"})
        assert created.status_code == 201, created.text
    pv_list = platform.call("GET", f"/trials/{IMPACT}/saes", "pharmacovigilance").json()
    assert {i["patient_id"]: i.get("arm") for i in pv_list} == {c: a for a, c in by_arm.items()}  # allowed
    for role in ("investigator", "coordinator", "monitor", "admin", "blinded_statistician", "data_manager"):
        listing = platform.call("GET", f"/trials/{IMPACT}/saes", role)
        tells_no_arm(IMPACT, listing.text, f"SUSAR list as {role}", kits)
        first, second = ([i for i in listing.json() if i["patient_id"] == c] for c in by_arm.values())
        code_a, code_b = by_arm.values()
        assert normalised(json.dumps(first), code_a) == normalised(json.dumps(second), code_b), role
    for address in ("pi@site.test", "pv@sponsor.test"):  # the SUSAR's email names no arm, even to the PV
        for message in smtp.to(address):
            tells_no_arm(IMPACT, mail_text(message), address, kits)


# ---- the casebook, its signatures and locks over a form kept for some arms --------------------------------------
def _enter(platform, code, form, values=None, role="coordinator", reason=None):
    answer = platform.call("PUT", f"/trials/{AMASS}/patients/{code}/visits/{form}", role,
                           json={"visit_date": TODAY, "values": values or {},
                                 **({"reason": reason} if reason else {})})
    assert answer.status_code == 200, (form, answer.text)


def _sign(platform, code, form=None):
    answer = platform.call("POST", f"/trials/{AMASS}/patients/{code}/signatures", "investigator",
                           json={"form": form, "meaning": "review", "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_signatures_locks_and_exports_over_the_infusion_form_tell_the_blinded_statistician_nothing(users):
    platform = users
    by_arm = both_arms(platform, AMASS)
    albumin = by_arm["albumin"]
    for code in by_arm.values():
        _enter(platform, code, "baseline", {"nihss": 12})
        _sign(platform, code)  # the casebook
        assert platform.call("POST", f"/trials/{AMASS}/patients/{code}/saes", "investigator",
                             json={"term": "pneumonia", "onset_date": TODAY, "criteria": ["hospitalization"],
                                   "outcome": "recovering", "relatedness": "unlikely"}).status_code == 201
        _sign(platform, code)  # the casebook again, with the SAE
    # The albumin patient's infusion form: entered, signed on its own, corrected, queried, verified and locked.
    _enter(platform, albumin, INFUSION, {"infusion_completed": True})
    _sign(platform, albumin, INFUSION)
    # corrected: invalidates the form's own signature, never the casebook's
    _enter(platform, albumin, INFUSION, {"infusion_completed": False}, reason="stopped early")
    query = platform.call("POST", f"/trials/{AMASS}/patients/{albumin}/queries", "data_manager",
                          json={"form": INFUSION, "field": "infusion_completed", "text": "why not completed?"})
    assert query.status_code == 201, query.text
    assert platform.call("POST", f"/trials/{AMASS}/patients/{albumin}/verifications", "monitor",
                         json={"form": INFUSION}).status_code == 201
    locked = platform.call("POST", f"/trials/{AMASS}/locks", "data_manager",
                           json={"level": "freeze", "reason": "infusion record reviewed", "patient_id": albumin,
                                 "form": INFUSION})
    assert locked.status_code == 201, locked.text
    for code in by_arm.values():
        frozen = platform.call("POST", f"/trials/{AMASS}/locks", "data_manager",
                               json={"level": "freeze", "reason": "baseline reviewed", "patient_id": code,
                                     "form": "baseline"})
        assert frozen.status_code == 201, frozen.text
    # The unblinded investigator still sees a valid casebook for both: the infusion form is not in it.
    for code in by_arm.values():
        states = [(s["form"], s["state"]) for s in platform.call(
            "GET", f"/trials/{AMASS}/patients/{code}/signatures", "investigator").json()]
        assert states.count(("casebook", "valid")) == 1, states
    who = "blinded_statistician"
    asks = {"signatures": lambda c: platform.call("GET", f"/trials/{AMASS}/patients/{c}/signatures", who),
            "locks": lambda c: platform.call("GET", f"/trials/{AMASS}/locks", who, params={"patient": c}),
            "saes": lambda c: platform.call("GET", f"/trials/{AMASS}/patients/{c}/saes", who),
            "aes": lambda c: platform.call("GET", f"/trials/{AMASS}/patients/{c}/adverse-events", who)}
    for name, ask in asks.items():
        assert same_for_both(by_arm, ask, name, AMASS).status_code == 200, name
    trial_locks = platform.call("GET", f"/trials/{AMASS}/locks", who).text
    assert INFUSION not in trial_locks
    # The export: no infusion table, and each patient's rows alike.
    exported = page_client(platform, who).get(f"/trials/{AMASS}/export/csv")
    assert exported.status_code == 200, exported.text[:300]
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        names = archive.namelist()
        assert not any(INFUSION in n for n in names), names
        for name in names:
            rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
            per = [[normalised(json.dumps(r), c) for r in rows if r.get("patient_id") == c] for c in by_arm.values()]
            if name.endswith("/randomization.csv") or name.endswith("/screening.csv"):
                per = [[re.sub(r'"sequence": "\d+"', '"sequence": N', x) for x in p] for p in per]
            assert per[0] == per[1], name
            tells_no_arm(AMASS, archive.read(name).decode(), name)


def test_a_blinded_user_touching_the_infusion_form_gets_the_same_answer_for_either_arm(users):
    platform = users
    by_arm = both_arms(platform, AMASS)
    _enter(platform, by_arm["albumin"], INFUSION, {"infusion_completed": True})
    for code in by_arm.values():
        _enter(platform, code, "baseline", {"nihss": 12})
    writes = {
        "sign the infusion form": ("POST", "/patients/{p}/signatures",
                                   {"form": INFUSION, "meaning": "review", "password": PASSWORD}),
        "lock the infusion form": ("POST", "/locks", {"level": "freeze", "reason": "x", "patient_id": "{p}",
                                                      "form": INFUSION}),
        "query the infusion form": ("POST", "/patients/{p}/queries",
                                    {"form": INFUSION, "field": "infusion_completed", "text": "why?"}),
        "verify the infusion form": ("POST", "/patients/{p}/verifications", {"form": INFUSION}),
        "read the patient's queries": ("GET", "/patients/{p}/queries", None),
        "read the verifications": ("GET", "/verifications?patient={p}", None),
        "read the signatures": ("GET", "/patients/{p}/signatures", None),
        "read the AE log": ("GET", "/patients/{p}/adverse-events", None),
        "read the consents": ("GET", "/patients/{p}/consents", None),
    }
    for role in ("blinded_statistician", "outcome_assessor"):
        for what, (method, path, body) in writes.items():
            def ask(code, method=method, path=path, body=body, role=role):
                filled = None if body is None else {k: (v.replace("{p}", code) if isinstance(v, str) else v)
                                                    for k, v in body.items()}
                return platform.call(method, f"/trials/{AMASS}" + path.replace("{p}", code), role, json=filled)
            same_for_both(by_arm, ask, f"{what} as {role}", AMASS)


def test_the_pages_of_the_gcp_workflow_tell_a_blinded_user_nothing(users, smtp):  # noqa: F811
    platform = users
    by_arm = both_arms(platform, IMPACT)
    kits = tuple(kit_of(platform, c) for c in by_arm.values())
    for code in by_arm.values():
        assert platform.call("POST", f"/trials/{IMPACT}/patients/{code}/saes", "investigator",
                             json={"term": "acute pancreatitis", "onset_date": TODAY, "criteria": ["hospitalization"],
                                   "outcome": "recovering", "relatedness": "possible"}).status_code == 201
        assert platform.call("POST", f"/trials/{IMPACT}/patients/{code}/unblinding", "investigator",
                             json={"reason": "upper GI bleeding"}).status_code == 201
    for user in ("admin", "investigator", "monitor", "blinded_statistician", "pharmacovigilance", "data_manager"):
        client = page_client(platform, user)
        for path in ("/inbox", f"/trials/{IMPACT}/saes", f"/trials/{IMPACT}/locks"):
            page = client.get(path)
            if page.status_code == 200 and not (user == "pharmacovigilance" and path.endswith("/saes")):
                tells_no_arm(IMPACT, page.text, f"{path} as {user}", kits)
        for what in ("", "/adverse-events", "/queries"):  # (site staff see kits: blinding.sees_kit)
            same_for_both(by_arm, lambda c, w=what, client=client: client.get(f"/trials/{IMPACT}/patients/{c}{w}"),
                          f"patient page {what} as {user}", IMPACT)
