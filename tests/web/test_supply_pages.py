"""The supply page without a browser, on SQLite and PostgreSQL: the unblinded pharmacist imports the kit list
through the form (a bad list is refused whole, each row named), the site confirms a shipment kit by kit, and the
page shows stock per treatment, requests and the pharmacy instructions to the pharmacist, pooled stock alone to
the blinded coordinator. The pharmacist ships, sets a site's levels, quarantines and releases, replaces a damaged
kit and closes out kits through the forms, each refusal shown in words with what was typed kept, and prints the
site's reconciliation report; the blinded roles' pages for two sites whose stock differs only by arm are the
same page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, patients, randomize, supply, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import SupplyKit

from ..trials import impact_lvo
from ..trials.helpers import happening_now
from .test_signatures_locks_pages import PASSWORD, client_for, csrf_of

TRIAL = "impact-lvo"
PROTOCOL = load_builtin(TRIAL)
ARMS = {a.id: a.name for a in PROTOCOL.arms}
PAGE = f"/trials/{TRIAL}/supply"
PHARMACIST = Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1"}))


def expiry(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        for name, role in (("pharmacist", "unblinded_pharmacist"), ("coordinator", "coordinator")):
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
    yield database
    database.dispose()


def kit_count(db) -> int:
    with db.read() as session:
        return session.execute(select(func.count(SupplyKit.id))).scalar_one()


def test_the_pharmacist_imports_the_kit_list_and_the_site_confirms_the_shipment(db):
    pharmacist = client_for(db, "pharmacist")
    page = pharmacist.get(PAGE)
    assert page.status_code == 200 and 'data-testid="import-form"' in page.text
    assert 'data-testid="no-inventory"' in page.text and 'data-testid="pharmacy-instructions"' in page.text
    token = csrf_of(page.text)
    bad = "kit_number,arm,lot,expiry\n1,placebo,L1,2020-01-01\n2,steroid,L1,not-a-date\n"
    refused = pharmacist.post(f"{PAGE}/import", data={"csrf": token, "csv": bad})
    assert refused.status_code == 422 and 'data-testid="supply-errors"' in refused.text
    assert "row 2: expiry" in refused.text and "row 3: arm" in refused.text and kit_count(db) == 0
    latin1 = pharmacist.post(f"{PAGE}/import", files={"file": ("kits.csv", "kit_number,arm,lot,expiry\n1,é".encode(
        "latin-1"))}, data={"csrf": token})
    assert latin1.status_code == 422 and "not UTF-8 text" in latin1.text and kit_count(db) == 0
    rows = "".join(f"{n}{j},{arm},L{j},{expiry(200)}\n" for j, arm in enumerate(ARMS) for n in range(3))
    done = pharmacist.post(f"{PAGE}/import", files={"file": ("kits.csv", "kit_number,arm,lot,expiry\n" + rows)},
                           data={"csrf": token})
    assert done.status_code == 200 and "6 kits imported" in done.text and kit_count(db) == 6
    with db.write() as session:
        shipment = supply.ship(session, PHARMACIST, TRIAL, "S1", kits_per_arm=3)
    coordinator = client_for(db, "coordinator")
    page = coordinator.get(PAGE).text
    assert f'data-testid="shipment-{shipment["shipment"]}"' in page and "Confirm receipt" in page
    assert 'data-testid="import-form"' not in page
    marks = {f"kit:{k}": "received" for k in shipment["kits"]} | {f"kit:{shipment['kits'][0]}": "damaged"}
    confirmed = coordinator.post(f"{PAGE}/shipments/{shipment['shipment']}/receipt",
                                 data={"csrf": csrf_of(page), **marks}, follow_redirects=False)
    assert confirmed.status_code == 303
    blinded = coordinator.get(PAGE).text
    assert 'data-testid="stock-S1"' in blinded
    blinded = re.sub(r'(data-csrf|value)="[^"]*"', "", blinded)  # a random form token may hold "L0" itself
    assert not any(name in blinded for name in ARMS.values()) and not any(f">{a}<" in blinded for a in ARMS)
    assert "L0" not in blinded and "Resupply requests" not in blinded and "pharmacy-instructions" not in blinded
    unblinded = pharmacist.get(PAGE).text
    assert all(name in unblinded for name in ARMS.values()) and "Resupply requests" in unblinded
    assert "at or below trigger" in unblinded  # 2 of one treatment on the shelf after the damaged kit
    trial_page = coordinator.get(f"/trials/{TRIAL}").text
    assert 'data-testid="supply-link"' in trial_page


# ---- the forms of the unblinded pharmacist and the supply manager ----------------------------------------------
DRUG, PLACEBO = ARMS
SUPPLIER = Actor("supplier", "supply_manager", frozenset({"S1", "S2"}))
BLINDED = {"coordinator": "coordinator", "investigator": "investigator", "monitor": "monitor"}
FORMS = ("ship-form", "levels-form", "quarantine-form", "replacement-form", "close-out-form")


@pytest.fixture
def two_sites(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1", "S2"])
        accounts.create_user(session, SYSTEM, "pharmacist", "unblinded_pharmacist", ["S1", "S2"], password=PASSWORD)
        accounts.create_user(session, SYSTEM, "supplier", "supply_manager", ["S1", "S2"], password=PASSWORD)
        for site in ("s1", "s2"):
            for name, role in BLINDED.items():
                accounts.create_user(session, SYSTEM, f"{name}-{site}", role, [site.upper()], password=PASSWORD)
    yield database
    database.dispose()


def import_rows(db, rows) -> None:
    text = "kit_number,arm,lot,expiry\n" + "".join(f"{n},{arm},{lot},{exp}\n" for n, arm, lot, exp in rows)
    with db.write() as session:
        supply.import_kits(session, SUPPLIER, TRIAL, text)


def statuses(db) -> dict[str, str]:
    with db.read() as session:
        return dict(session.execute(select(SupplyKit.kit_number, SupplyKit.status)).all())


def in_words(html: str) -> None:
    """A refusal on a page: in words, never a traceback or the API's JSON."""
    assert "Traceback" not in html and '{"detail"' not in html and "Internal Server Error" not in html


def test_the_pharmacist_ships_sets_levels_quarantines_replaces_and_closes_out_through_the_forms(two_sites):
    db = two_sites
    import_rows(db, [(f"{j}{i:02d}", arm, f"LOT-{arm[:3]}", expiry(200 + i)) for j, arm in enumerate(ARMS, 1)
                     for i in range(8)])
    pharmacist = client_for(db, "pharmacist")
    page = pharmacist.get(PAGE).text
    assert all(f'data-testid="{form}"' in page for form in FORMS)
    token = csrf_of(page)
    # Shipping: a refusal in words, the treatment named (not its code), what was typed kept.
    too_many = pharmacist.post(f"{PAGE}/ship", data={"csrf": token, "site": "S1", f"arm:{DRUG}": "9",
                                                     "expected_on": expiry(3)})
    assert too_many.status_code == 409 and "8 dispensable kit(s) of Methylprednisolone" in too_many.text
    assert 'value="9"' in too_many.text and f'value="{expiry(3)}"' in too_many.text
    assert "supply-refused" in too_many.text
    in_words(too_many.text)
    not_a_number = pharmacist.post(f"{PAGE}/ship", data={"csrf": token, "site": "S1", f"arm:{DRUG}": "two"})
    assert not_a_number.status_code == 422 and "not a whole number" in not_a_number.text
    assert 'value="two"' in not_a_number.text
    unknown = pharmacist.post(f"{PAGE}/ship", data={"csrf": token, "site": "S1", "kits": "101 999"})
    assert unknown.status_code == 422 and 'kit "999": no such kit' in unknown.text
    assert ">101 999</textarea>" in unknown.text and all(s == "in_depot" for s in statuses(db).values())
    shipped = pharmacist.post(f"{PAGE}/ship", data={"csrf": token, "site": "S1", f"arm:{DRUG}": "4",
                                                    f"arm:{PLACEBO}": "3", "shipped_on": expiry(0),
                                                    "expected_on": expiry(2)})
    assert shipped.status_code == 200 and "Shipment 1 to S1: 7 kit(s) on their way" in shipped.text
    # post/redirect/get: the answer was a redirect, so a reload shows the page again and ships nothing twice
    assert [r.status_code for r in shipped.history] == [303]
    again = pharmacist.get(PAGE)
    assert "Shipment 1 to S1: 7 kit(s) on their way" not in again.text and "Shipment 2" not in again.text
    in_transit = [n for n, s in statuses(db).items() if s == "in_transit"]
    received = pharmacist.post(f"{PAGE}/shipments/1/receipt", data={"csrf": token} | {f"kit:{n}": "received"
                                                                                       for n in in_transit},
                               follow_redirects=False)
    assert received.status_code == 303
    # Levels: a bad pair refused in words; a good one raises the resupply it implies.
    bad = pharmacist.post(f"{PAGE}/levels", data={"csrf": token, "site": "S1", "trigger": "5", "target": "5"})
    assert bad.status_code == 422 and 'value="5"' in bad.text
    in_words(bad.text)
    levels = pharmacist.post(f"{PAGE}/levels", data={"csrf": token, "site": "S1", "trigger": "3", "target": "8"})
    assert levels.status_code == 200 and "Resupply raised: S1, 5 kit(s) of Placebo" in levels.text
    # Quarantine: bad input named, then a kit and a lot; released with a reason.
    drug_on_shelf = sorted(n for n, s in statuses(db).items() if s == "available" and n.startswith("1"))
    refused = pharmacist.post(f"{PAGE}/quarantine", data={"csrf": token, "action": "quarantine",
                                                          "kits": "nope", "reason": "fridge at 14 C"})
    assert refused.status_code == 422 and "no such kit" in refused.text and ">fridge at 14 C</textarea>" in refused.text
    done = pharmacist.post(f"{PAGE}/quarantine", data={"csrf": token, "action": "quarantine",
                                                       "kits": drug_on_shelf[0], "reason": "fridge at 14 C"})
    assert done.status_code == 200 and "1 kit(s) quarantined" in done.text
    assert "Resupply raised: S1, 5 kit(s) of Methylprednisolone" in done.text
    assert re.search(r'data-testid="quarantined-S1">1<', done.text) and 'data-testid="supply-quarantined"' in done.text
    twice = pharmacist.post(f"{PAGE}/quarantine", data={"csrf": token, "action": "quarantine",
                                                        "kits": drug_on_shelf[0], "reason": "fridge at 14 C"})
    assert twice.status_code == 422 and "already quarantined" in twice.text
    lot = pharmacist.post(f"{PAGE}/quarantine", data={"csrf": token, "action": "quarantine", "lot": "LOT-pla",
                                                      "reason": "sponsor recall 2026-07"})
    assert lot.status_code == 200 and "kit(s) quarantined" in lot.text
    assert sum(s == "quarantined" for s in statuses(db).values()) == 9  # 3 at S1, 5 in the depot, and the kit
    release = pharmacist.post(f"{PAGE}/quarantine", data={"csrf": token, "action": "release", "lot": "LOT-pla",
                                                          "reason": "recall withdrawn"})
    assert release.status_code == 200 and "8 kit(s) released from quarantine" in release.text
    not_quarantined = pharmacist.post(f"{PAGE}/quarantine", data={"csrf": token, "action": "release",
                                                                  "kits": drug_on_shelf[1], "reason": "recall gone"})
    assert not_quarantined.status_code == 422 and "not quarantined (on the shelf)" in not_quarantined.text


def test_the_pharmacist_replaces_a_damaged_kit_closes_out_kits_and_prints_the_reconciliation(two_sites):
    db = two_sites
    import_rows(db, [(f"{j}{i:02d}", arm, f"LOT-{arm[:3]}", expiry(200 + i)) for j, arm in enumerate(ARMS, 1)
                     for i in range(4)])
    with db.write() as session:
        shipment = supply.ship(session, SUPPLIER, TRIAL, "S1", kits_per_arm=4)
    with db.write() as session:
        supply.receive(session, PHARMACIST, TRIAL, shipment["shipment"], shipment["kits"])
    with db.write() as session:
        supply.quarantine(session, SUPPLIER, TRIAL, ["103"], reason="fridge at 14 C")
    pharmacist = client_for(db, "pharmacist")
    token = csrf_of(pharmacist.get(PAGE).text)
    # Replacement of a damaged dispensed kit.
    data = dict(happening_now(impact_lvo.ELIGIBLE))
    attestations = data.pop("attestations")
    coordinator = Actor("coordinator-s1", "coordinator", frozenset({"S1"}))
    with db.write() as session:
        patients.register(session, coordinator, TRIAL, "P1", "S1", data, attestations)
    with db.write() as session:
        given = randomize.randomize(session, coordinator, TRIAL, "P1", "key-P1")[0]["kit"]
    no_patient = pharmacist.post(f"{PAGE}/replacement", data={"csrf": token, "patient": "P9",
                                                              "reason": "vial cracked"})
    assert no_patient.status_code == 404 and 'value="P9"' in no_patient.text
    in_words(no_patient.text)
    replaced = pharmacist.post(f"{PAGE}/replacement", data={"csrf": token, "patient": "P1",
                                                            "reason": "vial cracked"})
    assert replaced.status_code == 200 and f"kit {given} marked damaged" in replaced.text
    # Close-out, with who and when; a future day refused.
    future = pharmacist.post(f"{PAGE}/close-out", data={"csrf": token, "site": "S1", "kits": given,
                                                        "outcome": "destroyed", "on": expiry(2), "by": "J. Smith"})
    assert future.status_code == 422 and "in the future" in future.text and 'value="J. Smith"' in future.text
    closed = pharmacist.post(f"{PAGE}/close-out", data={"csrf": token, "site": "S1", "kits": given,
                                                        "outcome": "destroyed", "on": expiry(0),
                                                        "by": "J. Smith, witness K. Lee"})
    assert closed.status_code == 200 and f"1 kit(s) of S1 destroyed on {expiry(0)} by J. Smith" in closed.text
    report = pharmacist.get(f"{PAGE}/sites/S1/reconciliation")
    assert report.status_code == 200 and "data-print" in report.text
    assert re.search(r'data-testid="count-destroyed">1<', report.text)
    assert re.search(r'data-testid="count-quarantined">1<', report.text)
    assert "J. Smith, witness K. Lee" in report.text and "(patient P1)" in report.text
    assert 'data-testid="reconciliation-incomplete"' in report.text
    assert not any(name in report.text for name in ARMS.values()) and "LOT-" not in report.text
    # The supply manager: the same forms but the replacement (the unblinded pharmacist's), no patient named.
    manager = client_for(db, "supplier")
    page = manager.get(PAGE).text
    assert 'data-testid="replacement-form"' not in page and 'data-testid="quarantine-form"' in page
    assert "P1" not in manager.get(f"{PAGE}/sites/S1/reconciliation").text


def normalized(html: str, site: str, kit_prefix: str) -> str:
    html = re.sub(r'name="csrf" value="[^"]+"|data-csrf="[^"]+"', "", html)  # each session's form token
    html = re.sub(r"shipment-\d+|shipments/\d+/|Shipment \d+ to", "SHIPMENT", html)
    html = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?", "TIME", html)
    return html.replace(site, "SITE").replace(site.lower(), "site").replace(kit_prefix, "KIT")


def test_blinded_pages_for_two_sites_whose_stock_differs_only_by_arm_are_the_same(two_sites):
    db = two_sites
    # S1: four active kits and a placebo; S2: four placebo kits and an active one, the same kit of the majority
    # arm damaged on arrival and another quarantined: on the shelf, 2 and 1 against 1 and 2. Lots follow the arm.
    arms = {"A": [DRUG, DRUG, DRUG, DRUG, PLACEBO], "B": [PLACEBO, PLACEBO, PLACEBO, PLACEBO, DRUG]}
    import_rows(db, [(f"{p}0{i}", arm, f"LOT-{arm[:3]}", expiry(200)) for p, row in arms.items()
                     for i, arm in enumerate(row)])
    for prefix, site in (("A", "S1"), ("B", "S2")):
        with db.write() as session:
            shipment = supply.ship(session, SUPPLIER, TRIAL, site, [f"{prefix}0{i}" for i in range(5)],
                                   shipped_on=expiry(0))
        with db.write() as session:  # one kit received damaged, of the majority arm at each site
            supply.receive(session, Actor("c", "coordinator", frozenset({site})), TRIAL, shipment["shipment"],
                           [f"{prefix}0{i}" for i in range(1, 5)], [f"{prefix}00"])
        with db.write() as session:
            supply.quarantine(session, SUPPLIER, TRIAL, [f"{prefix}01"], reason="temperature excursion")
    for name in BLINDED:
        pages = {}
        for prefix, site in (("A", "S1"), ("B", "S2")):
            client = client_for(db, f"{name}-{site.lower()}")
            page = client.get(PAGE)
            assert page.status_code == 200, (name, page.text)
            assert not any(arm_name in page.text for arm_name in ARMS.values()), name
            assert not any(f">{arm}<" in page.text or f'"{arm}"' in page.text for arm in ARMS), name
            assert "LOT-" not in page.text and "Resupply requests" not in page.text
            assert not any(f'data-testid="{form}"' in page.text for form in FORMS), name
            assert re.search(rf'data-testid="quarantined-{site}">1<', page.text)
            report = client.get(f"{PAGE}/sites/{site}/reconciliation")
            assert report.status_code == 403 and "LOT-" not in report.text
            pages[site] = (normalized(page.text, site, f"{prefix}0"), normalized(report.text, site, f"{prefix}0"))
        assert pages["S1"] == pages["S2"], name
    # The pharmacist's page does tell them apart.
    pharmacist = client_for(db, "pharmacist").get(PAGE).text
    assert "LOT-met" in pharmacist and "Methylprednisolone" in pharmacist
