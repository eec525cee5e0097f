"""The data management pages without a browser: a monitor raises a query on the patient's queries page, the
coordinator sees it beside the field on the visits page and answers it with a correction, the data manager closes
and re-opens it; the trial's list counts unresolved queries by site and age, the dashboard shows them; the monitor
verifies a form, a correction clears it and the list asks for it again. Labels, not codes; no arm anywhere for a
data manager of a double-blind trial."""

from __future__ import annotations


import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts
from stroketrial.web import create_app

from ..trials.helpers import saved_over_warnings as confirmed_save

from ..server.conftest import Platform
from ..server.test_api import randomize, register

TRIAL = "impact-lvo"
PROTOCOL = load_builtin(TRIAL)
ARM_WORDS = sorted({*(a.id for a in PROTOCOL.arms), *(a.name for a in PROTOCOL.arms)})


@pytest.fixture
def platform(tmp_path):
    p = Platform(f"sqlite:///{tmp_path / 'pages.db'}")
    with p.db.write() as session:
        _, p.tokens["data_manager"] = accounts.create_user(session, SYSTEM, "data_manager", "data_manager", ["S1"],
                                                           password="password-1")
    assert register(p, trial=TRIAL).status_code == 201
    assert randomize(p, trial=TRIAL).status_code == 201
    with p.db.engine.begin() as conn:  # randomized 90 days ago: today is in the day-90 window
        conn.execute(text("UPDATE allocations SET created_at = :at"),
                     {"at": (dt.datetime.now(dt.UTC) - dt.timedelta(days=90)).replace(tzinfo=None)})
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert p.call("PUT", f"/trials/{TRIAL}/patients/P1/visits/d90",
                  json={"visit_date": today, "values": {"mrs": 3, "sae": False, "death": False}}).status_code == 200
    yield p
    p.db.dispose()


def signed_in(platform, user: str) -> TestClient:
    client = TestClient(create_app(platform.db), raise_server_exceptions=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": user, "password": "password-1", "next": "/"})
    assert response.status_code == 200 and "Your trials" in response.text, response.text
    return client


def csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


def post(client: TestClient, url: str, **data) -> object:
    return client.post(url, data={"csrf": csrf(client), **data}, follow_redirects=False)


def saved_over_warnings(client: TestClient, url: str, **data) -> object:
    return confirmed_save(client, url, {"csrf": csrf(client), **data})


def test_a_query_from_raising_to_closing_on_the_pages(platform):
    monitor = signed_in(platform, "monitor")
    page = monitor.get(f"/trials/{TRIAL}/patients/P1/queries")
    assert page.status_code == 200 and "No data query." in page.text
    assert "modified Rankin Scale" in page.text and ">Day 90<" not in page.text  # labels in the field list
    raised = post(monitor, f"/trials/{TRIAL}/patients/P1/queries", target="d90/mrs", text="source says mRS 4")
    assert raised.status_code == 303, raised.text
    qid = int(raised.headers["location"].rsplit("-", 1)[1])
    refused = post(monitor, f"/trials/{TRIAL}/patients/P1/queries", target="d90/nihss", text="x")
    assert refused.status_code == 422 and "not a field of the Day 90 form" in refused.text
    # The coordinator sees the query beside the field on the visits page, and answers it with a correction.
    coordinator = signed_in(platform, "coordinator")
    visits = coordinator.get(f"/trials/{TRIAL}/patients/P1/visits")
    assert f'data-testid="query-d90-mrs">Data query {qid} (open): source says mRS 4' in visits.text
    page = coordinator.get(f"/trials/{TRIAL}/patients/P1/queries")
    assert f'data-testid="answer-{qid}"' in page.text and f'data-testid="close-{qid}"' not in page.text
    assert 'data-testid="raise"' not in page.text
    bad = post(coordinator, f"/trials/{TRIAL}/queries/{qid}/answer", patient="P1", answer="typo", correct="yes",
               value="four")
    assert bad.status_code == 422 and "not a whole number" in bad.text
    answered = post(coordinator, f"/trials/{TRIAL}/queries/{qid}/answer", patient="P1", answer="typo", correct="yes",
                    value="4")
    assert answered.status_code == 303, answered.text
    schedule = platform.call("GET", f"/trials/{TRIAL}/patients/P1/visits").json()["visits"]
    assert next(v for v in schedule if v["visit"] == "d90")["values"]["mrs"] == 4
    assert post(coordinator, f"/trials/{TRIAL}/queries/{qid}/close", patient="P1").status_code == 403
    visits = coordinator.get(f"/trials/{TRIAL}/patients/P1/visits")
    assert f"Data query {qid} (answered, awaiting review)" in visits.text
    # The data manager closes it, re-opens it with a reason, and the site sees it open again beside the field.
    manager = signed_in(platform, "data_manager")
    assert post(manager, f"/trials/{TRIAL}/queries/{qid}/close", patient="P1", note="fine").status_code == 303
    page = manager.get(f"/trials/{TRIAL}/patients/P1/queries")
    assert f'data-testid="status-{qid}">closed' in page.text and f'data-testid="reopen-{qid}"' in page.text
    assert post(manager, f"/trials/{TRIAL}/queries/{qid}/reopen", patient="P1", reason="see the day-90 call") \
        .status_code == 303
    visits = coordinator.get(f"/trials/{TRIAL}/patients/P1/visits")
    assert f"Data query {qid} (open)" in visits.text and "see the day-90 call" in visits.text
    # The trial's list and the dashboard count it by site and age.
    listed = manager.get(f"/trials/{TRIAL}/queries")
    assert listed.status_code == 200 and "<td>S1</td><td class=\"num\">1</td>" in listed.text
    assert "0-7 days</td><td class=\"num\">1" in listed.text
    assert "No data query." in manager.get(f"/trials/{TRIAL}/queries?status=closed").text
    dashboard = manager.get(f"/trials/{TRIAL}/dashboard")
    assert 'data-testid="queries"' in dashboard.text and "Open <b>1</b>" in dashboard.text
    for page in (listed, dashboard, manager.get(f"/trials/{TRIAL}/patients/P1/queries"),
                 manager.get(f"/trials/{TRIAL}/verification")):
        assert "data-arm" not in page.text
        assert not any(re.search(rf">\s*{re.escape(w)}\s*<", page.text, re.I) for w in ARM_WORDS), page.url


def test_the_monitor_verifies_a_form_and_a_correction_asks_for_it_again(platform):
    monitor = signed_in(platform, "monitor")
    page = monitor.get(f"/trials/{TRIAL}/verification")
    assert 'data-testid="sdv-status-P1-d90">never verified' in page.text
    assert 'data-testid="sdv-status-P1-screening">never verified' in page.text
    assert post(monitor, f"/trials/{TRIAL}/patients/P1/verify", form="d90").status_code == 303
    page = monitor.get(f"/trials/{TRIAL}/verification")
    assert 'data-testid="sdv-status-P1-d90">verified' in page.text and 'data-testid="verify-P1-d90"' not in page.text
    coordinator = signed_in(platform, "coordinator")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    corrected = post(coordinator, f"/trials/{TRIAL}/patients/P1/visits/d90", visit_date=today, mrs="2", sae="no",
                     death="no", reason="source: mRS 2")
    assert corrected.status_code == 303, corrected.text
    page = monitor.get(f"/trials/{TRIAL}/verification")
    assert 'data-testid="sdv-status-P1-d90">changed since: verify again' in page.text
    assert "changed by coordinator on" in page.text and "(source: mRS 2)" in page.text
    assert 'data-testid="verify-P1-d90"' in page.text
    assert coordinator.get(f"/trials/{TRIAL}/verification").status_code == 403
    assert post(coordinator, f"/trials/{TRIAL}/patients/P1/verify", form="d90").status_code == 403
    manager = signed_in(platform, "data_manager")
    page = manager.get(f"/trials/{TRIAL}/verification")
    assert page.status_code == 200 and 'data-testid="verify-P1-d90"' not in page.text  # reads, never verifies


def test_an_edit_check_query_shows_beside_the_field(platform):
    coordinator = signed_in(platform, "coordinator")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    warned = post(coordinator, f"/trials/{TRIAL}/patients/P1/visits/d90", visit_date=today, mrs="6", sae="no",
                  death="no", reason="died")
    assert warned.status_code == 422 and "modified Rankin Scale is 6 and death is no" in warned.text
    assert saved_over_warnings(coordinator, f"/trials/{TRIAL}/patients/P1/visits/d90", visit_date=today, mrs="6",
                               sae="no", death="no", reason="died").status_code == 303
    visits = coordinator.get(f"/trials/{TRIAL}/patients/P1/visits")
    assert 'data-testid="query-d90-death">Data query' in visits.text
    assert "modified Rankin Scale is 6 and death is no" in visits.text
    assert saved_over_warnings(coordinator, f"/trials/{TRIAL}/patients/P1/visits/d90", visit_date=today, mrs="6",
                               sae="no", death="yes", reason="died on day 80").status_code == 303
    assert 'data-testid="query-d90-death"' not in coordinator.get(f"/trials/{TRIAL}/patients/P1/visits").text
    page = coordinator.get(f"/trials/{TRIAL}/patients/P1/queries")
    assert "edit check" in page.text and ">closed<" in page.text


def test_the_verification_list_comes_a_page_at_a_time_with_filters_and_the_totals_of_all(platform):
    """56 patients: 50 a page, in order of registration; the counts are the trial's, whatever the page or filter;
    a patient number (or part of it), a site and a status narrow the list; verifying returns to the same page."""
    for n in range(2, 57):
        assert register(platform, trial=TRIAL, code=f"P{n}").status_code == 201
    monitor = signed_in(platform, "monitor")
    first = monitor.get(f"/trials/{TRIAL}/verification")
    counts = re.search(r'<p data-testid="counts">.*?</p>', first.text).group(0)
    assert "never verified <b>57</b>" in counts  # 56 screening forms and P1's day-90 form
    assert "Patients 1 to 50 of 56" in first.text and 'id="P50"' in first.text and 'id="P51"' not in first.text
    assert "Previous page" not in first.text
    second = monitor.get(f"/trials/{TRIAL}/verification" + re.search(r'href="([^"]+)" rel="next"', first.text)
                         .group(1).replace("&amp;", "&"))
    assert "Patients 51 to 56 of 56" in second.text and 'id="P56"' in second.text and 'id="P1"' not in second.text
    assert "Next page" not in second.text and 'rel="prev"' in second.text
    assert re.search(r'<p data-testid="counts">.*?</p>', second.text).group(0) == counts
    found = monitor.get(f"/trials/{TRIAL}/verification?patient=p5")
    assert "Patients 1 to 8 of 8" in found.text  # P5 and P50 to P56
    assert {m for m in re.findall(r'<tr id="(P\d+)"', found.text)} == {"P5", *(f"P{n}" for n in range(50, 57))}
    assert "Patients 0 to 0 of 0" in monitor.get(f"/trials/{TRIAL}/verification?site=S9").text
    # Verify from the second page: back on the second page, the patient's row in view.
    back = re.search(r'name="back" value="([^"]*)"', second.text).group(1).replace("&amp;", "&")
    done = post(monitor, f"/trials/{TRIAL}/patients/P53/verify", form="screening", back=back)
    assert done.status_code == 303 and done.headers["location"] == f"/trials/{TRIAL}/verification?page=2#P53"
    verified = monitor.get(f"/trials/{TRIAL}/verification?status=verified")
    assert "Patients 1 to 1 of 1" in verified.text
    assert 'data-testid="sdv-status-P53-screening">verified' in verified.text
    assert "never verified <b>56</b>" in verified.text and "Forms verified <b>1</b>" in verified.text
    # A made-up page or status is read as the nearest real one, never an error.
    assert "Patients 51 to 56 of 56" in monitor.get(f"/trials/{TRIAL}/verification?page=99&status=nonsense").text
    assert "Patients 1 to 50 of 56" in monitor.get(f"/trials/{TRIAL}/verification?page=-3").text
    assert "Patients 1 to 50 of 56" in monitor.get(f"/trials/{TRIAL}/verification?page=%C2%B2").text  # "²"
    assert "Patients 1 to 50 of 56" in monitor.get(f"/trials/{TRIAL}/verification?page=" + "9" * 5000).text
