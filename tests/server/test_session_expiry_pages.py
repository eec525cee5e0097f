"""Issue 20, defect 2: a session that ends while a nurse types. A page's background request (the live
eligibility panel) gets 401 and JSON the page understands, never the sign-in page inside the panel; a form
posted after the end leads to the sign-in page and back to a page that can be shown (never a POST-only address
and its "Method Not Allowed"); the page warns before the end and can keep the session alive; a page kept open
while its user signed in again in another tab takes the new form token."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import text

PASSWORD = "password-1"
SCREEN = "/trials/amass-2/screen"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, user="coordinator") -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def end_by_idleness(platform) -> None:
    """The session last seen two hours ago: the next request finds it ended for want of activity."""
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE user_sessions SET last_seen_at = :t"),
                     {"t": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)})


def test_the_live_panel_gets_401_and_json_when_the_session_has_ended(platform):
    client = platform.client
    sign_in(client)
    page = client.get(SCREEN)
    assert page.status_code == 200 and 'data-session-minutes="30' in page.text
    token = csrf_of(page.text)
    end_by_idleness(platform)
    # the panel's request, as the browser sends a page's fetch
    answer = client.post(f"{SCREEN}/preview", data={"csrf": token, "age": "70"}, follow_redirects=False,
                         headers={"X-CSRF-Token": token, "Sec-Fetch-Mode": "same-origin"})
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["session_ended"] is True and "expired after 30 minutes without activity" in body["detail"]
    assert body["login"].startswith("/login?") and "Sign in" not in answer.text


def test_a_form_posted_after_the_end_comes_back_to_a_page_not_to_a_post_only_address(platform):
    client = platform.client
    sign_in(client)
    token = csrf_of(client.get(SCREEN).text)
    end_by_idleness(platform)
    posted = client.post(SCREEN, data={"csrf": token, "patient_id": "P1"}, follow_redirects=False)
    assert posted.status_code == 303
    login = urlsplit(posted.headers["location"])
    assert login.path == "/login"
    back = parse_qs(login.query)["next"][0]
    assert back == "/"  # no Referer is sent (Referrer-Policy: no-referrer): the page's script sets the form's page
    # and when the browser does name the page, that page is where signing in leads
    sign_in(client)
    token = csrf_of(client.get(SCREEN).text)
    end_by_idleness(platform)
    named = client.post(SCREEN, data={"csrf": token}, follow_redirects=False,
                        headers={"Referer": f"http://testserver{SCREEN}"})
    assert parse_qs(urlsplit(named.headers["location"]).query)["next"] == [SCREEN]
    assert client.get(SCREEN, follow_redirects=False).headers["location"].startswith("/login?next=")
    # signing in with that address shows the screening page, never "Method Not Allowed"
    token = csrf_of(client.get("/login").text)
    again = client.post("/login", data={"csrf": token, "name": "coordinator", "password": PASSWORD, "next": SCREEN})
    assert again.status_code == 200 and "Method Not Allowed" not in again.text and 'data-session-minutes' in again.text


def test_stay_signed_in_and_the_new_token_after_signing_in_elsewhere(platform):
    client = platform.client
    sign_in(client)
    token = csrf_of(client.get(SCREEN).text)
    kept = client.post("/session/keepalive", headers={"X-CSRF-Token": token})
    assert kept.status_code == 200 and kept.json()["user"] == "coordinator"
    assert client.post("/session/keepalive", headers={"X-CSRF-Token": "stale"}).status_code == 403
    end_by_idleness(platform)
    ended = client.post("/session/keepalive", headers={"X-CSRF-Token": token})
    assert ended.status_code == 401 and ended.json()["session_ended"] is True
    # signed in again (another tab shares the cookie): the page kept open takes the new token
    sign_in(client)
    fresh = client.get("/session/token", headers={"X-CSRF-Token": token, "Sec-Fetch-Mode": "same-origin"})
    assert fresh.status_code == 200 and fresh.json()["csrf"] != token
    assert client.post("/session/keepalive", headers={"X-CSRF-Token": fresh.json()["csrf"]}).status_code == 200
