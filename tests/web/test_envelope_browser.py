"""The site's envelope procedure in a real browser (Debian's Chromium, headless, Playwright) against a real server:
a coordinator at a site holding a set of sealed emergency envelopes opens an eligible ANGEL-RESCUE or AMASS-2
patient's randomize page, ticks the box and presses "Randomize now" while the hospital network is down (the
randomize POST is aborted with `internetdisconnected`, which is what the browser sees of a dropped link). The page
must then say plainly that the platform cannot be reached and name the next sealed envelope of the patient's
stratum, and the patient stays unrandomized on the server; a proxy's 503 reads the same. When the link returns, the
same page randomizes once; and with the network up, the ordinary path lands on the allocation page.
Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations


import pytest
from sqlalchemy import select

from stroketrial.randomization.envelopes import envelope_label
from stroketrial.service import SYSTEM, accounts, envelopes, patients, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import Envelope

from ..process import ServerProcess
from ..trials import amass2, angel_rescue
from ..trials.helpers import happening_now
from .test_browser import SHOTS, allocations_of, require_chromium

PASSWORD = "password-1"
ANGEL, AMASS = angel_rescue.TRIAL, amass2.TRIAL
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
PHARMACIST = Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
# The patients' strata as the protocols define them: ANGEL-RESCUE stratifies the envelopes by circulation (an M1
# occlusion is anterior), AMASS-2's fallback list by NIHSS band.
STRATUM = {ANGEL: "circulation=anterior", AMASS: "nihss_band=6-15" if amass2.ELIGIBLE["nihss"] < 16 else
           "nihss_band=>=16"}
PATIENTS = {ANGEL: ("R1", "R2", "R3"), AMASS: ("M1",)}


def eligible(trial: str) -> tuple[dict, dict | None]:
    data = dict(happening_now(angel_rescue.ELIGIBLE if trial == ANGEL else amass2.ELIGIBLE))
    return data, data.pop("attestations", None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('envelope-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    with db.write() as session:
        for trial in PATIENTS:
            trials.create_trial(session, SYSTEM, trial, ["S1"])
        accounts.create_user(session, SYSTEM, "coordinator", "coordinator", ["S1"], password=PASSWORD)
        accounts.create_user(session, SYSTEM, "pharmacist", "unblinded_pharmacist", ["S1"])
        for trial, codes in PATIENTS.items():
            data, attestations = eligible(trial)
            for code in codes:
                patients.register(session, COORDINATOR, trial, code, "S1", data, attestations)
    for trial in PATIENTS:  # the site's sealed envelopes, made by the unblinded pharmacist
        with db.write() as session:
            envelopes.generate(session, PHARMACIST, trial, "S1")
    db.dispose()
    log = str(tmp_path_factory.getbasetemp() / "envelope-web-server.log")
    with ServerProcess(url, log_path=log) as process:
        yield process, url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server[0].url, viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=name]", "coordinator")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")  # not the language menu's
    page.wait_for_selector("[data-testid=user]")
    yield page
    context.close()


def next_envelope(url: str, trial: str) -> str:
    """The site's first sealed envelope of the patient's stratum, read from the database."""
    db = Database(url)
    with db.read() as session:
        first = session.execute(select(Envelope).where(
            Envelope.trial_id == trial, Envelope.site_code == "S1", Envelope.stratum == STRATUM[trial],
            Envelope.status == "sealed").order_by(Envelope.number).limit(1)).scalar_one()
    db.dispose()
    return envelope_label("S1", first.number)


def network_down(page, code: str, how: str = "abort") -> None:
    """The randomize POST never reaches the platform (the page itself was loaded while the link was up)."""
    def handle(route) -> None:
        if route.request.method != "POST":
            route.continue_()
        elif how == "abort":
            route.abort("internetdisconnected")
        else:  # a proxy in front of a platform that does not answer
            route.fulfill(status=503, content_type="text/html", body="<h1>503 Service Unavailable</h1>")
    page.route(f"**/patients/{code}/randomize", handle)


def press_randomize(page) -> None:
    page.check("[data-testid=confirm]")
    page.click("[data-testid=randomize-now]")


def assert_the_envelope_procedure_is_shown(page, label: str, stratum: str) -> None:
    alert = page.locator("[data-offline-message]")
    alert.wait_for(state="visible", timeout=10_000)
    text = alert.inner_text()
    assert "The platform cannot be reached" in text, text
    assert f"open envelope {label}" in text and stratum in text, text
    panel = page.locator("[data-testid=envelope-procedure]")
    assert "offline" in (panel.get_attribute("class") or "")
    assert page.inner_text("[data-testid=next-envelope]") == label
    assert "/randomize" in page.url and page.locator("[data-testid=allocation]").count() == 0
    button = page.locator("[data-testid=randomize-now]")  # ready for another try once the link is back
    assert button.is_enabled() and button.inner_text().strip() == "Randomize now"


@pytest.mark.parametrize(("trial", "code", "stratum_words"), [(ANGEL, "R1", "circulation: anterior"),
                                                               (AMASS, "M1", "nihss band")])
def test_a_dropped_link_shows_the_next_envelope_and_randomizes_no_one(page, server, trial, code, stratum_words):
    url = server[1]
    label = next_envelope(url, trial)
    page.goto(f"/trials/{trial}/patients/{code}/randomize")
    page.wait_for_selector("[data-testid=envelope-procedure]")
    assert page.locator("[data-offline-message]").is_hidden()  # nothing alarming while the link is up
    assert page.inner_text("[data-testid=next-envelope]") == label
    network_down(page, code)
    press_randomize(page)
    assert_the_envelope_procedure_is_shown(page, label, stratum_words)
    page.screenshot(path=str(SHOTS / f"60-envelope-offline-{trial}.png"), full_page=True)
    assert allocations_of(url, code) == []  # nothing reached the server
    assert next_envelope(url, trial) == label  # and no envelope was used up


def test_a_proxys_503_reads_as_unreachable_and_the_same_page_randomizes_once_when_the_link_returns(page, server):
    url, code = server[1], "R2"
    label = next_envelope(url, ANGEL)
    page.goto(f"/trials/{ANGEL}/patients/{code}/randomize")
    network_down(page, code, how="503")
    press_randomize(page)
    assert_the_envelope_procedure_is_shown(page, label, "circulation: anterior")
    assert allocations_of(url, code) == []
    page.unroute(f"**/patients/{code}/randomize")  # the link is back: the same button, the same key
    page.click("[data-testid=randomize-now]")
    page.wait_for_selector("[data-testid=allocation]")
    assert page.url.endswith(f"/patients/{code}/allocation")
    assert len(allocations_of(url, code)) == 1
    assert next_envelope(url, ANGEL) == label  # an online randomization opens no envelope


def test_with_the_network_up_the_allocation_page_appears(page, server):
    url, code = server[1], "R3"
    page.goto(f"/trials/{ANGEL}/patients/{code}/randomize")
    press_randomize(page)
    page.wait_for_selector("[data-testid=allocation]")
    assert page.url.endswith(f"/patients/{code}/allocation")
    assert page.inner_text("[data-testid=sequence]") == str(allocations_of(url, code)[0].sequence)
    assert page.locator("[data-offline-message]").count() == 0
    page.screenshot(path=str(SHOTS / "61-envelope-online-allocation.png"), full_page=True)
    assert len(allocations_of(url, code)) == 1
