"""The supply page without a browser, on SQLite and PostgreSQL: the unblinded pharmacist imports the kit list
through the form (a bad list is refused whole, each row named), the site confirms a shipment kit by kit, and the
page shows stock per treatment, requests and the pharmacy instructions to the pharmacist, pooled stock alone to
the blinded coordinator."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, supply, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import SupplyKit

from .test_signatures_locks_pages import PASSWORD, client_for, csrf_of, database_url  # noqa: F401

TRIAL = "impact-lvo"
PROTOCOL = load_builtin(TRIAL)
ARMS = {a.id: a.name for a in PROTOCOL.arms}
PAGE = f"/trials/{TRIAL}/supply"
PHARMACIST = Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1"}))


def expiry(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


@pytest.fixture
def db(database_url):  # noqa: F811
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
    assert not any(name in blinded for name in ARMS.values()) and not any(f">{a}<" in blinded for a in ARMS)
    assert "L0" not in blinded and "Resupply requests" not in blinded and "pharmacy-instructions" not in blinded
    unblinded = pharmacist.get(PAGE).text
    assert all(name in unblinded for name in ARMS.values()) and "Resupply requests" in unblinded
    assert "at or below trigger" in unblinded  # 2 of one treatment on the shelf after the damaged kit
    trial_page = coordinator.get(f"/trials/{TRIAL}").text
    assert 'data-testid="supply-link"' in trial_page
