"""IMPACT-LVO's investigational product supply on the platform, through the API: the packager's kit list imported
all or nothing, shipments received kit by kit at the site, a randomized patient given an in-stock, unexpired kit
of the allocated arm (first expiry first out), the randomization refused before anything is stored when the site
cannot dispense every arm, a resupply raised at the trigger, a damaged kit replaced, the site reconciled at
close-out; and blinded roles never given an arm, a lot or a per-arm count."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest

from sqlalchemy import func, select

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, supply
from stroketrial.service.accounts import Actor
from stroketrial.service.errors import Conflict
from stroketrial.service.reconcile import reconcile
from stroketrial.store.models import Allocation, AuditEvent, RandomizationStateRow, SupplyKit, Trial

from ..trials import impact_lvo
from ..trials.helpers import happening_now

TRIAL = impact_lvo.TRIAL
PROTOCOL = load_builtin(TRIAL)
ARMS = [a.id for a in PROTOCOL.arms]
DRUG, PLACEBO = ARMS
TODAY = dt.datetime.now(dt.UTC).date()
BLINDED = ("coordinator", "investigator", "monitor", "blinded_statistician", "admin")


def day(n: int) -> str:
    return (TODAY + dt.timedelta(days=n)).isoformat()


def kit_csv(rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kit_number", "arm", "lot", "expiry"])
    writer.writerows(rows)
    return out.getvalue()


def with_manager(platform):
    with platform.db.write() as session:
        _, platform.tokens["supply_manager"] = accounts.create_user(session, SYSTEM, "supplier", "supply_manager",
                                                                    ["S1", "S2"])
    return platform


def import_kits(platform, rows, role="unblinded_pharmacist"):
    return platform.call("POST", f"/trials/{TRIAL}/supply/kits/import", role, json={"csv": kit_csv(rows)})


def ship(platform, site, kits=None, role="unblinded_pharmacist", **extra):
    answer = platform.call("POST", f"/trials/{TRIAL}/supply/shipments", role, json={"site": site, "kits": kits,
                                                                                     **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def receive(platform, shipment, role="coordinator", **marks):
    return platform.call("POST", f"/trials/{TRIAL}/supply/shipments/{shipment['shipment']}/receipt", role,
                         json={"received": [k for k in shipment["kits"] if not any(k in m for m in marks.values())],
                               **marks})


def register(platform, code, site="S1", role="coordinator"):
    data = dict(happening_now(impact_lvo.ELIGIBLE))
    attestations = data.pop("attestations")
    answer = platform.call("POST", f"/trials/{TRIAL}/patients", role,
                           json={"patient_id": code, "site": site, "data": data, "attestations": attestations})
    assert answer.status_code == 201, answer.text


def randomize(platform, code, site="S1", role="coordinator"):
    register(platform, code, site, role)
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/randomization", role,
                         headers={"Idempotency-Key": f"key-{code}"})


def kits(platform) -> dict[str, SupplyKit]:
    with platform.db.read() as session:
        rows = list(session.execute(select(SupplyKit).where(SupplyKit.trial_id == TRIAL)).scalars())
        session.expunge_all()
    return {k.kit_number: k for k in rows}


def stocked(platform, site="S1", per_arm=3, expiry_days=200, first=100):
    """per_arm kits of each arm imported, shipped to the site and received."""
    rows = [(str(first + 10 * i + j), arm, f"L-{arm[:3]}", day(expiry_days + i))
            for j, arm in enumerate(ARMS) for i in range(per_arm)]
    assert import_kits(platform, rows).status_code == 201
    shipment = ship(platform, site, [r[0] for r in rows], "unblinded_pharmacist" if site == "S1" else "supply_manager")
    answer = receive(platform, shipment, "coordinator" if site == "S1" else "coordinator_s2")
    assert answer.status_code == 200, answer.text
    return rows


# ---- the kit list ----------------------------------------------------------------------------------------------
def test_a_kit_list_with_bad_rows_is_refused_whole_each_row_named(platform):
    assert import_kits(platform, [("900", DRUG, "L1", day(300))]).status_code == 201
    answer = import_kits(platform, [
        ("101", DRUG, "L1", day(300)),           # good
        ("102", "steroid", "L1", day(300)),      # unknown arm
        ("103", PLACEBO, "L2", "31/12/2030"),    # bad date
        ("101", PLACEBO, "L2", day(300)),        # repeated in the file
        ("104", PLACEBO, "L2", day(-1)),         # expired
        ("900", PLACEBO, "L2", day(300)),        # stored already
        ("10 5", DRUG, "L1", day(300)),          # not a kit number
    ])
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert "nothing was stored" in body["detail"]
    found = {(e["row"], e["field"]) for e in body["errors"]}
    assert found == {(3, "arm"), (4, "expiry"), (5, "kit_number"), (6, "expiry"), (7, "kit_number"),
                     (8, "kit_number")}
    by_row = {e["row"]: e for e in body["errors"]}
    assert by_row[3]["value"] == "steroid" and DRUG in by_row[3]["message"]
    assert "row 2" in by_row[5]["message"] and "expired" in by_row[6]["message"]
    assert "already" in by_row[7]["message"]
    assert set(kits(platform)) == {"900"}  # nothing partial
    missing_column = platform.call("POST", f"/trials/{TRIAL}/supply/kits/import", "unblinded_pharmacist",
                                   json={"csv": "kit_number,arm\n1,placebo\n"})
    assert missing_column.status_code == 422 and "lot" in missing_column.json()["detail"]


def test_only_the_unblinded_pharmacist_and_the_supply_manager_handle_the_kit_list(platform):
    with_manager(platform)
    for role in ("coordinator", "investigator", "monitor", "blinded_statistician", "dsmb"):
        assert import_kits(platform, [("101", DRUG, "L1", day(300))], role).status_code == 403, role
        assert platform.call("GET", f"/trials/{TRIAL}/supply/kits.csv", role).status_code == 403
    assert import_kits(platform, [("101", DRUG, "L1", day(300))], "supply_manager").status_code == 201
    no_supply = platform.call("POST", "/trials/amass-2/supply/kits/generate", "unblinded_pharmacist",
                              json={"kits_per_arm": 2, "lot": "L1", "expiry": day(300)})
    assert no_supply.status_code == 409 and "supply" in no_supply.json()["detail"]


def test_a_generated_kit_list_is_exported_for_the_packager_its_numbers_telling_nothing(platform):
    answer = platform.call("POST", f"/trials/{TRIAL}/supply/kits/generate", "unblinded_pharmacist",
                           json={"kits_per_arm": 20, "lot": "B-2026", "expiry": day(400)})
    assert answer.status_code == 201, answer.text
    assert answer.json()["generated"] == 40
    export = platform.call("GET", f"/trials/{TRIAL}/supply/kits.csv", "unblinded_pharmacist")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 40 and {r["arm"] for r in rows} == set(ARMS)
    assert all(len(r["kit_number"]) == 6 and r["kit_number"].isdigit() for r in rows)
    assert [r["kit_number"] for r in rows] == sorted(r["kit_number"] for r in rows)
    arms_in_order = [r["arm"] for r in rows]
    assert arms_in_order != sorted(arms_in_order) and arms_in_order != sorted(arms_in_order, reverse=True)
    bad = platform.call("POST", f"/trials/{TRIAL}/supply/kits/generate", "unblinded_pharmacist",
                        json={"kits_per_arm": 0, "lot": "a b", "expiry": "tomorrow"})
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"kits_per_arm", "lot", "expiry"}


# ---- shipment, receipt, dispensing -----------------------------------------------------------------------------
def test_a_patient_gets_an_in_stock_unexpired_kit_of_the_allocated_arm_first_expiry_first_out(platform):
    rows = []
    for j, arm in enumerate(ARMS):
        rows += [(f"{j}01", arm, "L-A", day(3)),     # expires within the protocol's 7 days: never dispensed
                 (f"{j}02", arm, "L-B", day(90)),    # damaged on arrival
                 (f"{j}03", arm, "L-C", day(120)),   # the first to go
                 (f"{j}04", arm, "L-D", day(365))]
    assert import_kits(platform, rows).status_code == 201
    shipment = ship(platform, "S1", [r[0] for r in rows], expected_on=day(2))
    assert shipment["status"] == "in_transit"
    # Nothing is on the shelf until the site confirms receipt.
    assert randomize(platform, "P0").status_code == 409
    wrong = platform.call("POST", f"/trials/{TRIAL}/supply/shipments/{shipment['shipment']}/receipt",
                          "coordinator", json={"received": ["001"], "damaged": ["999"]})
    assert wrong.status_code == 422
    assert {e["field"] for e in wrong.json()["errors"]} == {"damaged", "received"}
    other_site = receive(platform, shipment, "coordinator_s2")
    assert other_site.status_code == 404
    answer = receive(platform, shipment, damaged=["002", "102"])
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["damaged"]) == ["002", "102"] and "resupply_raised" not in answer.json()
    assert receive(platform, shipment).status_code == 409  # received once
    given = {}
    for code in ("P1", "P2"):
        response = randomize(platform, code)
        assert response.status_code == 201, response.text
        given[code] = response.json()["kit"]
    stock = kits(platform)
    with platform.db.read() as session:
        allocations = {a.kit: a.arm for a in session.execute(select(Allocation)).scalars()}
    for kit in given.values():
        row = stock[kit]
        assert row.status == "dispensed" and row.site_code == "S1" and row.arm == allocations[kit], (kit, stock)
        same_arm = [k for k in stock.values() if k.arm == row.arm and k.status == "available"
                    and k.kit_number not in ("001", "101")]
        assert all(k.expiry >= row.expiry for k in same_arm), ("first expiry, first out", kit, given,
                                                                [(k.kit_number, k.expiry) for k in same_arm])
        assert kit not in ("001", "101", "002", "102")
    with platform.db.read() as session:
        assert reconcile(session) == []  # the allocation's kit and the trail agree


def test_the_randomization_is_refused_before_anything_is_stored_when_a_treatment_is_out_of_stock(platform):
    # S1 holds only placebo kits, S2 only active kits: whichever arm the next patient would get, the answer is
    # the same refusal, given before the allocation is made.
    assert import_kits(platform, [("11", PLACEBO, "L1", day(200)), ("12", PLACEBO, "L1", day(200)),
                                  ("21", DRUG, "L2", day(200)), ("22", DRUG, "L2", day(200))]).status_code == 201
    assert receive(platform, ship(platform, "S1", ["11", "12"])).status_code == 200
    with_manager(platform)
    assert receive(platform, ship(platform, "S2", ["21", "22"], "supply_manager"), "coordinator_s2").status_code \
        == 200
    patients = (("P1", "S1", "coordinator"), ("P2", "S1", "coordinator"), ("Q1", "S2", "coordinator_s2"))
    for code, site, role in patients:
        register(platform, code, site, role)
    with platform.db.read() as session:
        state_before = session.get(RandomizationStateRow, TRIAL).state_json
        events_before = session.execute(select(func.count(AuditEvent.seq))).scalar_one()
    refusals = []
    for code, _site, role in patients:
        answer = platform.call("POST", f"/trials/{TRIAL}/patients/{code}/randomization", role,
                               headers={"Idempotency-Key": f"key-{code}"})
        assert answer.status_code == 409, answer.text
        refusals.append(answer.json())
    for body in refusals:
        assert body["dispensable_kits"] == 2 and "Nothing was stored" in body["detail"]
        assert "urgent shipment" in body["detail"]
        assert not any(arm in json.dumps(body) for arm in ARMS)
    assert refusals[0]["detail"] == refusals[2]["detail"].replace("S2", "S1")
    with platform.db.read() as session:
        assert session.get(RandomizationStateRow, TRIAL).state_json == state_before
        assert session.execute(select(func.count(Allocation.id))).scalar_one() == 0
        assert session.execute(select(func.count(AuditEvent.seq))).scalar_one() == events_before
    assert all(k.status == "available" for k in kits(platform).values())


def test_an_expiring_kit_is_not_dispensed_and_the_patient_is_refused(platform):
    assert import_kits(platform, [("11", PLACEBO, "L1", day(200)), ("21", DRUG, "L2", day(6))]).status_code == 201
    assert receive(platform, ship(platform, "S1", ["11", "21"])).status_code == 200
    answer = randomize(platform, "P1")
    assert answer.status_code == 409 and answer.json()["dispensable_kits"] == 1
    assert "7 days" in answer.json()["detail"]


def test_allocate_and_flag_allocates_without_a_kit_and_raises_an_urgent_resupply(platform):
    with platform.db.write() as session:
        trial = session.get(Trial, TRIAL)
        protocol = json.loads(trial.protocol_json)
        protocol["supply"]["when_out_of_stock"] = "allocate_and_flag"
        trial.protocol_json = json.dumps(protocol)
    assert import_kits(platform, [("11", PLACEBO, "L1", day(200))]).status_code == 201
    assert receive(platform, ship(platform, "S1", ["11"])).status_code == 200
    answer = randomize(platform, "P1")
    assert answer.status_code == 201, answer.text
    assert answer.json()["kit"] is None
    assert kits(platform)["11"].status == "available"  # the kit is never given by arm when one arm is short
    requests = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()["requests"]
    urgent = [r for r in requests if r["urgent"]]
    assert [r["arm"] for r in urgent] == [DRUG] and "P1" in urgent[0]["reason"]
    sheet = platform.call("GET", f"/trials/{TRIAL}/patients/P1/dose", "coordinator")
    assert sheet.status_code == 409 and "without a kit" in sheet.json()["detail"]
    assert import_kits(platform, [("21", DRUG, "L2", day(200)), ("22", PLACEBO, "L2", day(200))]).status_code == 201
    assert receive(platform, ship(platform, "S1", ["21", "22"])).status_code == 200
    late = platform.call("POST", f"/trials/{TRIAL}/patients/P1/kit", "unblinded_pharmacist")
    assert late.status_code == 201, late.text
    assert kits(platform)[late.json()["kit"]].arm == late.json()["arm"]
    sheet = platform.call("GET", f"/trials/{TRIAL}/patients/P1/dose", "coordinator")
    assert sheet.status_code == 200 and sheet.json()["kit"] == late.json()["kit"]
    assert platform.call("POST", f"/trials/{TRIAL}/patients/P1/kit", "unblinded_pharmacist").status_code == 409


def test_trials_without_a_physical_inventory_keep_their_concealed_kit_list(platform):
    answer = randomize(platform, "P1")
    assert answer.status_code == 201 and answer.json()["kit"]
    assert kits(platform) == {}


# ---- resupply --------------------------------------------------------------------------------------------------
def test_a_resupply_is_raised_at_the_trigger_once_and_filled_by_a_shipment(platform):
    stocked(platform, per_arm=3)  # the protocol's trigger is 2 kits per arm, its target 6
    overview = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()
    assert overview["requests"] == [] and overview["stock"][0]["per_arm"][DRUG]["dispensable"] == 3
    first = randomize(platform, "P1")
    assert first.status_code == 201
    arm = kits(platform)[first.json()["kit"]].arm
    requests = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()["requests"]
    assert [(r["arm"], r["kits"], r["status"], r["urgent"]) for r in requests] == [(arm, 4, "open", False)]
    # The other arm gets more kits, so that the randomizations below cannot empty it first (a site out of either
    # arm refuses every randomization) however the blocks fall; it stays above its trigger.
    other = next(a for a in ARMS if a != arm)
    extra = [(str(700 + i), other, "L-more", day(250)) for i in range(6)]
    assert import_kits(platform, extra).status_code == 201
    assert receive(platform, ship(platform, "S1", [r[0] for r in extra])).status_code == 200
    # The next kit of that arm leaves the shelf: the open request stands, no second one.
    codes = iter(f"P{n}" for n in range(2, 20))
    while True:
        answer = randomize(platform, next(codes))
        assert answer.status_code == 201
        if kits(platform)[answer.json()["kit"]].arm == arm:
            break
    requests = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()["requests"]
    assert len([r for r in requests if r["arm"] == arm]) == 1
    assert import_kits(platform, [(str(500 + 2 * i + j), a, "L9", day(300)) for i in range(8)
                                    for j, a in enumerate(ARMS)]).status_code \
        == 201
    shipment = ship(platform, "S1")  # what the open requests ask for
    counted = {a: sum(1 for k in shipment["kits"] if kits(platform)[k].arm == a) for a in ARMS}
    asked = {r["arm"]: r["kits"] for r in requests if r["status"] == "open"}
    assert counted == {a: asked.get(a, 0) for a in ARMS}
    after = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()["requests"]
    assert all(r["status"] == "shipped" for r in after)
    assert receive(platform, shipment).status_code == 200
    final = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()
    assert all(r["status"] == "received" for r in final["requests"])


def test_a_site_may_be_given_its_own_levels(platform):
    with_manager(platform)
    stocked(platform, per_arm=3)
    answer = platform.call("PUT", f"/trials/{TRIAL}/supply/sites/S1/levels", "supply_manager",
                           json={"trigger_per_arm": 4, "target_per_arm": 10})
    assert answer.status_code == 200, answer.text
    assert {r["arm"]: r["kits"] for r in answer.json()["resupply_raised"]} == {a: 7 for a in ARMS}
    bad = platform.call("PUT", f"/trials/{TRIAL}/supply/sites/S1/levels", "supply_manager",
                        json={"trigger_per_arm": 5, "target_per_arm": 5})
    assert bad.status_code == 422
    assert platform.call("PUT", f"/trials/{TRIAL}/supply/sites/S1/levels", "coordinator",
                         json={"trigger_per_arm": 1, "target_per_arm": 3}).status_code == 403


def test_expiring_lots_are_flagged_to_unblinded_roles(platform):
    assert import_kits(platform, [("11", PLACEBO, "OLD-1", day(30)), ("12", DRUG, "NEW-1", day(300))]
                       ).status_code == 201
    lots = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()["expiring_lots"]
    assert [(x["lot"], x["arm"], x["where"], x["kits"]) for x in lots] == [("OLD-1", PLACEBO, "depot", 1)]


# ---- replacement and reconciliation ----------------------------------------------------------------------------
def test_a_damaged_kit_is_replaced_from_the_shelf_and_the_site_is_reconciled_at_close_out(platform):
    stocked(platform, per_arm=3)
    first = randomize(platform, "P1")
    kit = first.json()["kit"]
    assert platform.call("POST", f"/trials/{TRIAL}/patients/P1/kit-replacement", "coordinator",
                         json={"reason": "vial cracked"}).status_code == 403
    answer = platform.call("POST", f"/trials/{TRIAL}/patients/P1/kit-replacement", "unblinded_pharmacist",
                           json={"reason": "vial cracked when opened"})
    assert answer.status_code == 201, answer.text
    new = answer.json()["kit"]
    stock = kits(platform)
    assert answer.json()["damaged_kit"] == kit and stock[kit].status == "damaged" and stock[new].replaces == kit
    assert stock[new].arm == stock[kit].arm and stock[new].patient_id == stock[kit].patient_id
    sheet = platform.call("GET", f"/trials/{TRIAL}/patients/P1/dose", "coordinator").json()
    assert sheet["kit"] == new and all(f"kit {new}" in a["label"] for a in sheet["administrations"] if "label" in a)
    with platform.db.read() as session:
        events = [e.action for e in session.execute(select(AuditEvent).where(
            AuditEvent.entity_id.in_([f"{TRIAL}/{kit}", f"{TRIAL}/{new}"]))).scalars()]
        assert "kit_damaged" in events and "replace_kit" in events
        assert reconcile(session) == []
    report = platform.call("GET", f"/trials/{TRIAL}/supply/sites/S1/reconciliation", "unblinded_pharmacist").json()
    assert report["complete"] is False and report["dispensed"] == 2 and report["kits"] == 6
    assert any(f"kit {new} (patient P1)" in d for d in report["discrepancies"])
    manager = with_manager(platform)
    hidden = manager.call("GET", f"/trials/{TRIAL}/supply/sites/S1/reconciliation", "supply_manager").json()
    assert not any("P1" in d for d in hidden["discrepancies"])
    for number, row in stock.items():
        outcome = "destroyed" if row.status == "damaged" else "returned"
        done = platform.call("POST", f"/trials/{TRIAL}/supply/kits/{number}/close-out", "unblinded_pharmacist",
                             json={"outcome": outcome})
        assert done.status_code == 200, done.text
    again = platform.call("POST", f"/trials/{TRIAL}/supply/kits/{kit}/close-out", "unblinded_pharmacist",
                          json={"outcome": "returned"})
    assert again.status_code == 409
    report = platform.call("GET", f"/trials/{TRIAL}/supply/sites/S1/reconciliation", "unblinded_pharmacist").json()
    assert report["complete"] is True and report["discrepancies"] == []
    assert report["by_status"] == {"destroyed": 1, "returned": 5}


def test_a_missing_kit_is_a_named_discrepancy(platform):
    rows = [("11", PLACEBO, "L1", day(200)), ("21", DRUG, "L2", day(200))]
    assert import_kits(platform, rows).status_code == 201
    assert receive(platform, ship(platform, "S1", ["11", "21"]), missing=["21"]).status_code == 200
    report = platform.call("GET", f"/trials/{TRIAL}/supply/sites/S1/reconciliation", "unblinded_pharmacist").json()
    assert any("kit 21: missing" in d for d in report["discrepancies"])


# ---- the envelope helper's reservations ------------------------------------------------------------------------
def test_a_reserved_kit_is_never_dispensed_at_randomization_and_goes_to_its_envelope_patient(platform):
    stocked(platform, per_arm=1)
    pharmacist = Actor("unblinded_pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
    with platform.db.write() as session:
        reserved = supply.reserve_kit(session, pharmacist, TRIAL, "S1", PLACEBO, "envelope 1")
    assert kits(platform)[reserved].status == "reserved"
    assert randomize(platform, "P1").status_code == 409  # no placebo kit left to dispense
    with platform.db.write() as session:
        supply.dispense_reserved_kit(session, pharmacist, TRIAL, reserved, "P1")
    assert kits(platform)[reserved].status == "dispensed"


# ---- blinding --------------------------------------------------------------------------------------------------
def test_blinded_roles_see_stock_pooled_and_never_an_arm_a_lot_or_a_request(platform):
    with_manager(platform)
    stocked(platform, per_arm=3)
    assert randomize(platform, "P1").status_code == 201  # a request is raised for one arm
    for role in BLINDED:
        answer = platform.call("GET", f"/trials/{TRIAL}/supply", role)
        assert answer.status_code == 200, (role, answer.text)
        body = answer.json()
        text_ = json.dumps(body)
        assert not any(f'"{arm}"' in text_ for arm in ARMS), role
        assert "L-" not in text_ and '"per_arm"' not in text_ and '"lot"' not in text_, text_
        assert "requests" not in body and "expiring_lots" not in body and "depot" not in body
        assert "pharmacy_instructions" not in body
        assert body["stock"][0]["dispensable"] == 5 and body["arms_shown"] is False
    assert platform.call("GET", f"/trials/{TRIAL}/supply", "outcome_assessor").status_code == 403
    pharmacist = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()
    assert "Placebo kits" in pharmacist["pharmacy_instructions"] and pharmacist["requests"]
    manager = platform.call("GET", f"/trials/{TRIAL}/supply", "supply_manager").json()
    assert manager["stock"][0]["per_arm"] and "pharmacy_instructions" not in manager
    # The supply manager, who knows each kit's arm, never learns which patient had which kit.
    patient = platform.call("GET", f"/trials/{TRIAL}/patients/P1", "supply_manager")
    assert patient.status_code in (200, 403, 404)
    if patient.status_code == 200:
        assert first_kit_absent(patient.json(), kits(platform))
    assert platform.call("GET", f"/trials/{TRIAL}/patients/P1/dose", "supply_manager").status_code == 403
    # The audit trail read by the (blinded) monitor: kit events without their arm.
    from stroketrial.service.export import audit_csv
    with platform.db.read() as session:
        trail = audit_csv(session, Actor("monitor", "monitor", frozenset({"S1"})))
    assert "import_kit" in trail and "dispense_kit" in trail and "raise_resupply" in trail
    assert not any(f'""{arm}""' in trail for arm in ARMS)  # an arm as a value (screening fields name the drug)
    assert '""arm""' not in trail


def first_kit_absent(document, stock) -> bool:
    """No dispensed kit's number appears in the document as a value or inside a text.

    Compared word by word, not as a substring of the whole JSON: a kit numbered 110 is not in a
    timestamp's microseconds ("...58.845110").
    """
    dispensed = {n for n, k in stock.items() if k.status == "dispensed"}
    words: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                assert "kit" not in str(key).lower(), key
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif node is not None:
            words.update(re.findall(r"[A-Za-z0-9-]+", str(node)))

    walk(document)
    return not (dispensed & words)


@pytest.mark.sqlite_only
def test_the_demo_shows_kit_stock_at_two_sites_one_at_its_trigger_with_a_resupply_request(database_url):
    from stroketrial.service import demo
    from stroketrial.store import Database

    db = Database(database_url)
    db.migrate()
    demo.load(db, interim_look=False)  # no DSMB look: loads in seconds
    pharmacist = Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1", "S2", "S3"}))
    with db.read() as session:
        view = supply.overview(session, pharmacist, TRIAL)
        assert reconcile(session) == []
    stock = {s["site"]: s for s in view["stock"]}
    assert stock["S1"]["dispensable"] > 0 and stock["S2"]["dispensable"] > 0
    assert stock["S2"]["below_trigger"] == sorted(ARMS) and not stock["S1"]["below_trigger"]
    assert {(r["site"], r["status"]) for r in view["requests"]} == {("S2", "open")}
    db.dispose()


# ---- quarantine: a temperature excursion or a recall -----------------------------------------------------------
def quarantine(platform, role="unblinded_pharmacist", release=False, **body):
    path = f"/trials/{TRIAL}/supply/quarantine" + ("/release" if release else "")
    return platform.call("POST", path, role, json={"reason": "fridge read 14 C for 3 hours", **body})


def events(platform, action):
    with platform.db.read() as session:
        return [e for e in session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                           .order_by(AuditEvent.seq)).scalars()]


def test_quarantined_kits_are_never_dispensed_counted_apart_and_a_site_dropped_to_its_trigger_is_resupplied(platform):
    rows = stocked(platform, per_arm=3)  # trigger 2, target 6
    drug = [r[0] for r in rows if r[1] == DRUG]
    answer = quarantine(platform, kits=[drug[0]])
    assert answer.status_code == 200, answer.text
    assert answer.json()["quarantined"] == [drug[0]]
    assert [(r["site"], r["arm"], r["kits"]) for r in answer.json()["resupply_raised"]] == [("S1", DRUG, 4)]
    assert kits(platform)[drug[0]].status == "quarantined"
    view = platform.call("GET", f"/trials/{TRIAL}/supply", "unblinded_pharmacist").json()
    assert view["stock"][0]["quarantined"] == 1 and view["stock"][0]["dispensable"] == 5
    assert view["stock"][0]["per_arm"][DRUG]["quarantined"] == 1 and view["quarantined"][0]["kit_number"] == drug[0]
    blinded = platform.call("GET", f"/trials/{TRIAL}/supply", "coordinator").json()
    assert blinded["stock"][0]["quarantined"] == 1 and "quarantined" not in {k for k in blinded if k != "stock"}
    # Bad input, each named; nothing done.
    again = quarantine(platform, kits=[drug[0], "nope", drug[1]])
    assert again.status_code == 422
    named = {(e["value"], e["message"]) for e in again.json()["errors"]}
    assert named == {(drug[0], "already quarantined"), ("nope", "no such kit in the trial's kit list")}
    assert kits(platform)[drug[1]].status == "available"
    assert quarantine(platform, lot="NO-SUCH-LOT").status_code == 422
    assert quarantine(platform, release=True, kits=[drug[1]]).json()["errors"][0]["message"].startswith(
        "not quarantined")
    assert quarantine(platform, kits=[drug[1]], lot="L-pla").status_code == 422  # one or the other
    assert quarantine(platform, kits=[drug[1]], reason="hot").status_code == 422  # a reason, 5 characters or more
    for role in ("coordinator", "investigator", "monitor"):
        assert quarantine(platform, role, kits=[drug[1]]).status_code == 403
    # A whole lot: the placebo lot is set apart, so the site cannot randomize (nothing of every arm to dispense)
    # and no kit of it is reserved for an envelope.
    lot = quarantine(platform, lot=f"L-{PLACEBO[:3]}")
    assert lot.status_code == 200 and len(lot.json()["quarantined"]) == 3
    assert quarantine(platform, lot=f"L-{PLACEBO[:3]}").status_code == 409  # nothing left to quarantine
    assert randomize(platform, "P1").status_code == 409
    pharmacist = Actor("unblinded_pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
    with pytest.raises(Conflict), platform.db.write() as session:
        supply.reserve_kit(session, pharmacist, TRIAL, "S1", PLACEBO, "envelope 1")
    released = quarantine(platform, release=True, lot=f"L-{PLACEBO[:3]}", reason="recall withdrawn by sponsor")
    assert released.status_code == 200 and set(released.json()["released"].values()) == {"available"}
    answer = platform.call("POST", f"/trials/{TRIAL}/patients/P1/randomization", "coordinator",
                           headers={"Idempotency-Key": "key-P1-again"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["kit"] != drug[0] and kits(platform)[drug[0]].status == "quarantined"  # still apart
    assert len(events(platform, "quarantine_kit")) == 4 and len(events(platform, "release_quarantine")) == 3
    assert all(e.reason for e in events(platform, "quarantine_kit"))
    with platform.db.read() as session:
        assert reconcile(session) == []


def test_a_released_kit_goes_back_where_it_was_and_a_quarantined_kit_is_not_shipped(platform):
    with_manager(platform)
    stocked(platform, per_arm=2)
    assert import_kits(platform, [("900", DRUG, "DEPOT-1", day(300)), ("901", PLACEBO, "DEPOT-2", day(300))]
                       ).status_code == 201
    pharmacist = Actor("unblinded_pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
    with platform.db.write() as session:
        reserved = supply.reserve_kit(session, pharmacist, TRIAL, "S1", PLACEBO, "envelope 7")
    answer = quarantine(platform, "supply_manager", kits=["900", reserved])
    assert answer.status_code == 200, answer.text
    refused = platform.call("POST", f"/trials/{TRIAL}/supply/shipments", "supply_manager",
                            json={"site": "S2", "kits": ["900"]})
    assert refused.status_code == 422 and "quarantined" in refused.json()["errors"][0]["message"]
    view = platform.call("GET", f"/trials/{TRIAL}/supply", "supply_manager").json()
    assert view["depot_quarantined"][DRUG] == 1 and view["depot"][DRUG] == 0
    back = quarantine(platform, "supply_manager", release=True, kits=["900", reserved], reason="excursion assessed")
    assert back.json()["released"] == {"900": "in_depot", reserved: "reserved"}
    assert kits(platform)[reserved].note == "envelope 7"
    # A reserved kit quarantined while its envelope set is voided goes back on the shelf when released.
    quarantine(platform, "supply_manager", kits=[reserved])
    with platform.db.write() as session:
        supply.release_reserved_kit(session, pharmacist, TRIAL, reserved, "envelope set voided")
    assert kits(platform)[reserved].status == "quarantined"
    back = quarantine(platform, "supply_manager", release=True, kits=[reserved], reason="excursion assessed")
    assert back.json()["released"] == {reserved: "available"}


def test_the_cli_quarantines_and_releases_naming_bad_input(platform, database_url):
    from typer.testing import CliRunner

    from stroketrial.cli import app
    rows = stocked(platform, per_arm=3)
    base = ["--user", "unblinded_pharmacist", "--db", database_url]
    done = CliRunner().invoke(app, ["supply", "quarantine", TRIAL, "--kit", rows[0][0], "--reason",
                                    "temperature excursion", *base])
    assert done.exit_code == 0, done.output
    assert kits(platform)[rows[0][0]].status == "quarantined"
    bad = CliRunner().invoke(app, ["supply", "quarantine", TRIAL, "--kit", rows[0][0], "--kit", "nope", "--reason",
                                   "temperature excursion", *base, "--json"])
    assert bad.exit_code == 2 and {e["value"] for e in json.loads(bad.stdout)["errors"]} == {rows[0][0], "nope"}
    released = CliRunner().invoke(app, ["supply", "release", TRIAL, "--lot", rows[0][2], "--reason",
                                        "assessed stable", *base, "--json"])
    assert released.exit_code == 0, released.output
    assert json.loads(released.stdout)["released"] == {rows[0][0]: "available"}


# ---- shipping by treatment, closing out many kits -------------------------------------------------------------
def test_kits_are_shipped_by_a_number_per_treatment(platform):
    assert import_kits(platform, [(str(300 + i), arm, "L1", day(200 + i)) for i, arm in enumerate(ARMS * 3)]
                       ).status_code == 201
    shipment = ship(platform, "S1", kits_by_arm={DRUG: 2, PLACEBO: 0}, shipped_on=day(0), expected_on=day(2))
    assert {kits(platform)[k].arm for k in shipment["kits"]} == {DRUG} and len(shipment["kits"]) == 2
    for bad in ({"steroid": 1}, {DRUG: -1}, {DRUG: 0}):
        answer = platform.call("POST", f"/trials/{TRIAL}/supply/shipments", "unblinded_pharmacist",
                               json={"site": "S1", "kits_by_arm": bad})
        assert answer.status_code == 422, (bad, answer.text)
    late = platform.call("POST", f"/trials/{TRIAL}/supply/shipments", "unblinded_pharmacist",
                         json={"site": "S1", "kits_by_arm": {PLACEBO: 1}, "shipped_on": day(0), "expected_on": day(-3)})
    assert late.status_code == 422 and late.json()["errors"][0]["field"] == "expected_on"


def test_kits_of_a_site_are_closed_out_together_with_who_and_when(platform):
    with_manager(platform)
    rows = stocked(platform, per_arm=2)
    numbers = [r[0] for r in rows]
    call = lambda body: platform.call("POST", f"/trials/{TRIAL}/supply/sites/S1/close-out",  # noqa: E731
                                      "unblinded_pharmacist", json=body)
    refused = call({"kits": [*numbers[:2], "nope"], "outcome": "destroyed", "on": day(1)})
    assert refused.status_code == 422
    assert {(e["field"], e["value"]) for e in refused.json()["errors"]} == {("kits", "nope"), ("done_on", day(1))}
    assert all(k.status == "available" for k in kits(platform).values())
    done = call({"kits": numbers[:2], "outcome": "destroyed", "by": "J. Smith, witness K. Lee", "on": day(-1),
                 "reason": "expired stock"})
    assert done.status_code == 200, done.text
    assert done.json()["kits"] == numbers[:2] and done.json()["on"] == day(-1)
    again = call({"kits": numbers[:1], "outcome": "returned"})
    assert again.status_code == 422 and "destroyed" in again.json()["errors"][0]["message"]
    report = platform.call("GET", f"/trials/{TRIAL}/supply/sites/S1/reconciliation", "supply_manager").json()
    assert report["destroyed"] == 2 and report["on_shelf"] == 2 and report["received"] == 4
    closed = [k for k in report["kit_list"] if k["status"] == "destroyed"]
    assert {(k["by"], k["on"], k["recorded_by"]) for k in closed} == {("J. Smith, witness K. Lee", day(-1),
                                                                       "unblinded_pharmacist")}
    assert not any("patient" in k for k in report["kit_list"])
    assert platform.call("POST", f"/trials/{TRIAL}/supply/sites/S1/close-out", "coordinator",
                         json={"kits": numbers[2:], "outcome": "returned"}).status_code == 403
