"""The blinded outcome assessor of a PROBE trial, on SQLite and PostgreSQL: AMASS-2 reserves its 90-day mRS for an
assessor who never learns the arm (`assessor_only` on the d90 visit).

What the role may do: find its sites' patients and their visits, and record the assessments reserved for it and
nothing else; site staff record the rest of that visit and never the reserved ones. What it may never receive:
an arm, a kit, or anything computed from the arm. The attacks below take two patients, one in each arm, whose
site teams record everything an unblinded team records (an SAE narrative naming the infusion, the albumin arm's
infusion form, a day-90 SAE for one arm only), and then ask the platform every question the assessor can ask:
each answer must be the same for both patients but for the patient's id, randomization number and times.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from stroketrial.protocol import load_builtin
from stroketrial.service import reconcile
from stroketrial.store import verify
from stroketrial.web import create_app

from ..trials.helpers import saved_over_warnings
from .test_api import randomize, register

ASSESSOR = "outcome_assessor"
AMASS2 = load_builtin("amass-2")
ARMS = {a.id: a for a in AMASS2.arms}
# What would tell the arm: the arms' ids and names, the interventions' names, and any kit.
ARM_WORDS = sorted({*ARMS, *(a.name for a in ARMS.values()), *(i.name for i in AMASS2.interventions
                                                               if i.kind != "procedure")})
SAE = {"term": "infusion reaction during the intra-arterial albumin", "onset_date": None,
       "criteria": ["hospitalization"], "outcome": "recovered", "relatedness": "probable",
       "description": "rash and hypotension during the albumin infusion; albumin arm"}


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()  # the server's clock


def _d90(schedule: list[dict]) -> dict:
    return next(v for v in schedule if v["visit"] == "d90")


@pytest.fixture
def both_arms(platform) -> dict[str, str]:
    """One randomized patient per arm (arm -> patient id, ids of equal length), each followed up by the site as an
    unblinded team would: every visit it has, the albumin patient's infusion form and SAE, a day-90 SAE flag."""
    by_arm: dict[str, str] = {}
    for i in range(1, 30):
        code = f"PT{i:02d}"
        assert register(platform, code=code).status_code == 201
        response = randomize(platform, code=code, key=code)
        assert response.status_code == 201, response.text
        by_arm.setdefault(response.json()["arm"], code)
        if len(by_arm) == len(ARMS):
            break
    assert set(by_arm) == set(ARMS)
    today = _today()
    for arm, code in by_arm.items():
        for visit in AMASS2.visits:
            if visit.assessor_only:
                continue
            only_for = getattr(visit, "arms", None)  # a visit of some arms only (the albumin infusion form)
            if only_for is not None and arm not in only_for:
                continue
            values = {a: True for a in visit.assessments if a in ("infusion_completed", "vital_signs", "labs")}
            entered = platform.call("PUT", f"/trials/amass-2/patients/{code}/visits/{visit.id}",
                                    json={"visit_date": today, "values": values})
            if entered.status_code != 200:  # a form whose fields the dictionary does not hold yet: record it empty
                entered = platform.call("PUT", f"/trials/amass-2/patients/{code}/visits/{visit.id}",
                                        json={"visit_date": today, "values": {}})
            assert entered.status_code == 200, (visit.id, entered.text)
        site_part = {"death": False, "sae": arm == "albumin"}
        assert platform.call("PUT", f"/trials/amass-2/patients/{code}/visits/d90", "investigator",
                             json={"visit_date": today, "values": site_part}).status_code == 200
        if arm == "albumin":
            assert platform.call("POST", f"/trials/amass-2/patients/{code}/saes", "investigator",
                                 json={**SAE, "onset_date": today}).status_code == 201
    return by_arm


def _normalised(text: str, code: str) -> str:
    """An answer with what legitimately differs between two patients made equal: the id, the randomization
    number, times and dates (the two were randomized seconds apart) and the form token."""
    text = text.replace(code, "PATIENT")
    text = re.sub(r"\d{4}-\d{2}-\d{2}(T[0-9:.]+([+-]\d{2}:\d{2}|Z)?)?", "DATE", text)
    text = re.sub(r'("sequence": ?)\d+', r"\g<1>N", text)
    text = re.sub(r"#\d+|(data-testid=\"sequence\">)\d+", r"\g<1>N", text)
    return re.sub(r'name="csrf" value="[^"]+"|data-csrf="[^"]+"', 'name="csrf"', text)


def _headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("content-length", "date", "set-cookie")}


def _tells_no_arm(response, where: str) -> None:
    body = response.text
    assert '"arm"' not in body and '"kit"' not in body and "data-arm" not in body, where
    if response.headers.get("content-type", "").startswith("application/json"):
        assert not any(f'"{a}"' in body for a in ARMS), where  # an arm id as a JSON value
    else:  # (a page's class="control" is a style, not the arm)
        assert not any(re.search(rf">\s*{a}\s*<", body, re.I) for a in ARMS), where  # an arm id as the text shown
    assert not any(w in body for w in ARM_WORDS if " " in w), where  # "Albumin Group", "Control Group", ...
    assert not any(a in v.lower() for a in ARMS for v in response.headers.values()), where


def _same_for_both_arms(get, by_arm: dict[str, str], path: str) -> int:
    """Ask the same question of both patients: the answers (status, headers, body) differ only by what
    `_normalised` makes equal, and none names an arm. Returns the status."""
    answers = {arm: get(path.format(p=code)) for arm, code in by_arm.items()}
    for arm, response in answers.items():
        _tells_no_arm(response, f"{path} ({arm})")
    (a, ra), (b, rb) = answers.items()
    assert ra.status_code == rb.status_code, path
    assert _headers(ra) == _headers(rb), path
    assert _normalised(ra.text, by_arm[a]) == _normalised(rb.text, by_arm[b]), path
    return ra.status_code


def page_client(platform, user: str) -> TestClient:
    client = TestClient(create_app(platform.db), raise_server_exceptions=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": user, "password": "password-1", "next": "/"})
    assert response.status_code == 200 and "Your trials" in response.text, response.text
    return client


def _csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


# ---- attacks on the blinding ------------------------------------------------------------------------------------
API_READS = ["/trials/amass-2/patients/{p}", "/trials/amass-2/patients/{p}/randomization",
             "/trials/amass-2/patients/{p}/visits"]
API_REFUSED = ["/trials/amass-2/patients/{p}/dose", "/trials/amass-2/patients/{p}/saes"]


def test_the_api_answers_the_assessor_alike_for_both_arms(platform, both_arms):
    def get(path):
        return platform.call("GET", path, ASSESSOR)

    for path in API_READS:
        assert _same_for_both_arms(get, both_arms, path) == 200, path
    for path in API_REFUSED:
        assert _same_for_both_arms(get, both_arms, path) == 403, path
    listed = get("/trials/amass-2/patients")
    assert listed.status_code == 200 and len(listed.json()) >= 2
    _tells_no_arm(listed, "patient list")
    assert all(set(p["randomization"] or {}) <= {"sequence", "randomized_at", "randomized_by"}
               for p in listed.json())
    for path in ("/trials/amass-2/safety", "/trials/amass-2/unblindings", "/audit/verify"):
        response = get(path)
        assert response.status_code == 403, path
        _tells_no_arm(response, path)
    # The assessor's schedule: the day-90 visit alone, its mRS alone; nothing the site recorded there or elsewhere.
    schedule = get(f"/trials/amass-2/patients/{both_arms['albumin']}/visits").json()["visits"]
    assert [(v["visit"], v["assessments"], v.get("values")) for v in schedule] == [("d90", ["mrs"], {})]


def test_what_the_assessor_sends_is_answered_alike_for_both_arms(platform, both_arms):
    """Writes and refused writes: the answers (and their errors) carry nothing of the arm, and the refused ones
    store nothing."""
    today = _today()
    attempts = [
        ("PUT", "/trials/amass-2/patients/{p}/visits/d90", {"visit_date": today, "values": {"death": True}}),
        ("PUT", "/trials/amass-2/patients/{p}/visits/d90", {"visit_date": today, "values": {"sae": False}}),
        ("PUT", "/trials/amass-2/patients/{p}/visits/h24", {"visit_date": today, "values": {}}),
        *[("PUT", f"/trials/amass-2/patients/{{p}}/visits/{v.id}", {"visit_date": today, "values": {}})
          for v in AMASS2.visits if getattr(v, "arms", None)],
        ("PUT", "/trials/amass-2/patients/{p}/visits/d90", {"visit_date": "2001-01-01", "values": {"mrs": 9}}),
        ("PUT", "/trials/amass-2/patients/{p}/visits/d99", {"visit_date": today, "values": {"mrs": 2}}),
        ("POST", "/trials/amass-2/patients/{p}/randomization", None),
        ("POST", "/trials/amass-2/patients/{p}/saes", {**SAE, "onset_date": today}),
        ("POST", "/trials/amass-2/patients/{p}/unblinding", {"reason": "the assessor wants to know the arm"}),
        ("PATCH", "/trials/amass-2/patients/{p}", {"data": {"nihss": 15}, "reason": "re-scored"}),
    ]
    for method, path, body in attempts:
        def send(url, method=method, body=body):
            extra = {"json": body} if body is not None else {"headers": {"Idempotency-Key": url}}
            return platform.call(method, url, ASSESSOR, **extra)

        status = _same_for_both_arms(send, both_arms, path)
        assert status in (403, 404, 422), (method, path, status)
        if method == "PUT" and "d90" in path and "mrs" not in json.dumps(body):
            assert status == 403
    for code in both_arms.values():
        d90 = _d90(platform.call("GET", f"/trials/amass-2/patients/{code}/visits", "investigator").json()["visits"])
        assert "mrs" not in d90["values"] and d90["values"]["death"] is False  # nothing stored by the refusals
    entered = _same_for_both_arms(
        lambda url: platform.call("PUT", url, ASSESSOR, json={"visit_date": today, "values": {"mrs": 3}}),
        both_arms, "/trials/amass-2/patients/{p}/visits/d90")
    assert entered == 200
    answer = platform.call("PUT", f"/trials/amass-2/patients/{both_arms['albumin']}/visits/d90", ASSESSOR,
                           json={"visit_date": today, "values": {"mrs": 4}, "reason": "rescored with the family"})
    assert answer.status_code == 200 and answer.json()["values"] == {"mrs": 4}  # not the site's SAE flag


def test_the_pages_show_the_assessor_nothing_of_the_arm(platform, both_arms):
    client = page_client(platform, ASSESSOR)
    for path in ("/trials/amass-2/patients/{p}", "/trials/amass-2/patients/{p}/allocation",
                 "/trials/amass-2/patients/{p}/visits"):
        assert _same_for_both_arms(client.get, both_arms, path) == 200, path
    for path in ("/trials/amass-2/patients/{p}/dose", "/trials/amass-2/patients/{p}/unblind",
                 "/trials/amass-2/patients/{p}/randomize"):
        assert _same_for_both_arms(client.get, both_arms, path) == 403, path
    for path in ("/", "/trials/amass-2", "/trials/amass-2/dashboard"):
        response = client.get(path)
        assert response.status_code == 200, path
        _tells_no_arm(response, path)
    dashboard = client.get("/trials/amass-2/dashboard").text
    assert "All arms" in dashboard and 'data-testid="safety"' not in dashboard
    trial_page = client.get("/trials/amass-2").text
    assert "/export/csv" not in trial_page and "kit" not in trial_page.lower()
    visits = client.get(f"/trials/amass-2/patients/{both_arms['albumin']}/visits").text
    assert 'name="mrs"' in visits and 'name="death"' not in visits and 'name="sae"' not in visits
    assert "Serious adverse events" not in visits and "infusion" not in visits.lower()
    assert 'id="h24"' not in visits and 'data-testid="form-d90"' in visits
    patient = client.get(f"/trials/amass-2/patients/{both_arms['albumin']}").text
    assert 'data-testid="dose-link"' not in patient


def test_exports_and_the_audit_trail_are_not_the_assessors(platform, both_arms):
    client = page_client(platform, ASSESSOR)
    for path in ("/trials/amass-2/export/csv", "/trials/amass-2/export/odm", "/audit.csv"):
        response = client.get(path)
        assert response.status_code == 403, path
        _tells_no_arm(response, path)
        assert "attachment" not in response.headers.get("content-disposition", "")


def test_the_assessor_sees_no_kit_in_a_double_blind_trial(platform):
    assert register(platform, trial="impact-lvo").status_code == 201
    kit = randomize(platform, trial="impact-lvo").json()["kit"]
    assert kit
    client = page_client(platform, ASSESSOR)
    for response in (platform.call("GET", "/trials/impact-lvo/patients", ASSESSOR),
                     platform.call("GET", "/trials/impact-lvo/patients/P1", ASSESSOR),
                     platform.call("GET", "/trials/impact-lvo/patients/P1/randomization", ASSESSOR),
                     platform.call("GET", "/trials/impact-lvo/patients/P1/visits", ASSESSOR),
                     platform.call("GET", "/trials/impact-lvo/patients/P1/dose", ASSESSOR),
                     client.get("/trials/impact-lvo"), client.get("/trials/impact-lvo/patients/P1"),
                     client.get("/trials/impact-lvo/patients/P1/allocation"),
                     client.get("/trials/impact-lvo/patients/P1/visits")):
        assert kit not in response.text and '"arm"' not in response.text, response.url
    # IMPACT-LVO reserves nothing for the assessor: its schedule is empty and it records nothing.
    assert platform.call("GET", "/trials/impact-lvo/patients/P1/visits", ASSESSOR).json()["visits"] == []


# ---- who records the reserved assessment ------------------------------------------------------------------------
def test_only_the_assessor_records_the_day_90_mrs_and_only_that(platform):
    register(platform)
    randomize(platform)
    today = _today()
    path = "/trials/amass-2/patients/P1/visits/d90"
    for role in ("investigator", "coordinator", "admin"):
        refused = platform.call("PUT", path, role, json={"visit_date": today, "values": {"mrs": 2, "death": False}})
        assert refused.status_code == 403, (role, refused.text)
        assert "mrs" in refused.json()["detail"] and "outcome_assessor" in refused.json()["detail"]
        assert [e["field"] for e in refused.json()["errors"]] == ["mrs"]
    # The site still records the rest of the visit.
    site = platform.call("PUT", path, "investigator", json={"visit_date": today, "values": {"death": False,
                                                                                            "sae": False}})
    assert site.status_code == 200, site.text
    for values in ({"death": True}, {"mrs": 2, "sae": True}):
        refused = platform.call("PUT", path, ASSESSOR, json={"visit_date": today, "values": values})
        assert refused.status_code == 403 and "site staff" in refused.json()["detail"], refused.text
    for visit in ("baseline", "h24", "d7"):
        refused = platform.call("PUT", f"/trials/amass-2/patients/P1/visits/{visit}", ASSESSOR,
                                json={"visit_date": today, "values": {}})
        assert refused.status_code == 403 and "blinded outcome assessor" in refused.json()["detail"], visit
    entered = platform.call("PUT", path, ASSESSOR, json={"visit_date": today, "values": {"mrs": 2}})
    assert entered.status_code == 200 and entered.json()["values"] == {"mrs": 2}, entered.text
    # Each party's entry leaves the other's part alone; a change to one's own part is a correction with a reason.
    again = platform.call("PUT", path, "investigator", json={"visit_date": today, "values": {"death": False}})
    assert again.status_code == 422 and "needs a reason" in again.json()["detail"]
    corrected = platform.call("PUT", path, "investigator", json={"visit_date": today, "values": {"death": False},
                                                                "reason": "no SAE after all (source checked)"})
    assert corrected.status_code == 200 and corrected.json()["values"] == {"death": False, "mrs": 2}
    investigator = _d90(platform.call("GET", "/trials/amass-2/patients/P1/visits", "investigator").json()["visits"])
    assert investigator["values"] == {"death": False, "mrs": 2} and investigator["assessor_only"] == ["mrs"]
    assert investigator["status"] == "done"
    with platform.db.read() as session:
        events = session.execute(
            text("SELECT actor, action, before_json, after_json, reason FROM audit_events "
                 "WHERE entity = 'visit' ORDER BY seq")).all()
        assert verify(session).ok and reconcile.reconcile(session) == []
    assert [(e[0], e[1]) for e in events] == [("investigator", "enter_visit"), (ASSESSOR, "enter_visit"),
                                              ("investigator", "correct_visit")]
    assert json.loads(events[1][3])["values"] == {"death": False, "sae": False, "mrs": 2}
    assert json.loads(events[1][2])["values"] == {"death": False, "sae": False}
    assert events[2][4] == "no SAE after all (source checked)"
    monitor = platform.call("GET", "/trials/amass-2/patients/P1/visits", "monitor").json()
    assert _d90(monitor["visits"])["values"]["mrs"] == 2


def test_the_assessor_first_then_the_site_and_one_visit_date(platform):
    register(platform)
    randomize(platform)
    with platform.db.engine.begin() as conn:  # randomized two days ago (the allocation time, moved here)
        conn.execute(text("UPDATE allocations SET created_at = :at"),
                     {"at": (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(tzinfo=None)})
    today = _today()
    path = "/trials/amass-2/patients/P1/visits/d90"
    assert platform.call("PUT", path, ASSESSOR, json={"visit_date": today, "values": {"mrs": 1}}).status_code == 200
    # The site's first entry of its part needs no reason (its part was empty), and the assessor's status is done.
    schedule = platform.call("GET", "/trials/amass-2/patients/P1/visits", "coordinator").json()["visits"]
    assert _d90(schedule)["status"] != "done" and _d90(schedule)["values"] == {"mrs": 1}
    assert _d90(platform.call("GET", "/trials/amass-2/patients/P1/visits", ASSESSOR).json()["visits"])["status"] \
        == "done"
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    # A different date is a change to what is recorded: a reason, or a refusal that names it.
    moved = platform.call("PUT", path, json={"visit_date": yesterday, "values": {"death": False}})
    assert moved.status_code == 422 and "changing its date" in moved.json()["detail"], moved.text
    assert platform.call("PUT", path, json={"visit_date": yesterday, "values": {"death": False},
                                            "reason": "seen the day before"}).status_code == 200
    assert platform.call("PUT", path, ASSESSOR, json={"visit_date": yesterday, "values": {"mrs": 1},
                                                      "reason": "dated as the site visit"}).status_code == 200
    admin = _tables(page_client(platform, "admin").get("/trials/amass-2/export/csv").content)
    assert [(r["patient_id"], r["mrs"], r["death"]) for r in admin["visit_d90"]] == [("P1", "1", "False")]


def _tables(content: bytes) -> dict[str, list[dict]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name.split("/")[-1][:-4]: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
                for name in archive.namelist()}


def test_the_follow_up_page_splits_the_day_90_form(platform):
    register(platform)
    randomize(platform)
    today = _today()
    investigator = page_client(platform, "investigator")
    page = investigator.get("/trials/amass-2/patients/P1/visits").text
    form = page[page.index('data-testid="form-d90"'):]
    form = form[:form.index("</form>")]
    assert 'name="death"' in form and 'name="sae"' in form and 'name="mrs"' not in form
    assert "recorded by the blinded outcome assessor" in form and 'data-testid="d90-mrs-reserved"' in form
    assert 'data-testid="awaiting-d90-mrs"' in page
    # A forged field is refused by the service, by name; nothing is stored.
    forged = investigator.post("/trials/amass-2/patients/P1/visits/d90",
                               data={"csrf": _csrf(investigator), "visit_date": today, "mrs": "2", "death": "no"})
    assert forged.status_code == 403 and "recorded by the blinded outcome assessor" in forged.text
    assert "values" not in _d90(platform.call("GET", "/trials/amass-2/patients/P1/visits").json()["visits"])
    assessor = page_client(platform, ASSESSOR)
    saved = saved_over_warnings(assessor, "/trials/amass-2/patients/P1/visits/d90",  # day 90 on day 0: confirmed
                                {"csrf": _csrf(assessor), "visit_date": today, "mrs": "3"})
    assert saved.status_code == 303, saved.text
    page = investigator.get("/trials/amass-2/patients/P1/visits").text
    reserved = page[page.index('data-testid="d90-mrs-reserved"'):]
    assert ">3<" in reserved[:reserved.index("</div>")] and 'data-testid="awaiting-d90-mrs"' not in page
    saved = saved_over_warnings(investigator, "/trials/amass-2/patients/P1/visits/d90",
                                {"csrf": _csrf(investigator), "visit_date": today, "death": "no"})
    assert saved.status_code == 303
    values = _d90(platform.call("GET", "/trials/amass-2/patients/P1/visits").json()["visits"])["values"]
    assert values == {"mrs": 3, "death": False}


# ---- other trials are as they were -------------------------------------------------------------------------------
@pytest.mark.parametrize("trial", ["angel-rescue", "isis-hermes"])
def test_a_trial_that_reserves_nothing_behaves_as_before(platform, trial):
    protocol = load_builtin(trial)
    assert not any(v.assessor_only for v in protocol.visits)
    assert register(platform, trial=trial).status_code == 201
    assert randomize(platform, trial=trial).status_code == 201
    schedule = platform.call("GET", f"/trials/{trial}/patients/P1/visits").json()["visits"]
    assert all("assessor_only" not in v for v in schedule)
    visit = next(v for v in reversed(protocol.visits) if "mrs" in v.assessments)
    path = f"/trials/{trial}/patients/P1/visits/{visit.id}"
    today = _today()
    assert platform.call("PUT", path, ASSESSOR, json={"visit_date": today, "values": {"mrs": 2}}).status_code == 403
    assert platform.call("PUT", path, ASSESSOR, json={"visit_date": today, "values": {}}).status_code == 403
    assert platform.call("GET", f"/trials/{trial}/patients/P1/visits", ASSESSOR).json()["visits"] == []
    entered = platform.call("PUT", path, json={"visit_date": today, "values": {"mrs": 2}})
    assert entered.status_code == 200 and entered.json() == {"visit_date": today, "values": {"mrs": 2},
                                                             "visit": visit.id, "patient_id": "P1"}
    again = platform.call("PUT", path, json={"visit_date": today, "values": {"mrs": 3}})
    assert again.status_code == 422 and again.json()["detail"] == \
        f"visit {visit.id} is entered already; a correction needs a reason"
    corrected = platform.call("PUT", path, json={"visit_date": today, "values": {}, "reason": "entered in error"})
    assert corrected.status_code == 200 and corrected.json()["values"] == {}  # a correction replaces the form
