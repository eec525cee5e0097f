"""Investigational product supply and the sealed emergency envelopes against the audit trail
(service/reconcile.py, `stroketrial audit verify`), on SQLite and PostgreSQL.

The operations are done through the API (kit list, shipments and their receipt, site levels, resupply, dispensing,
replacement, quarantine, close-out; an envelope set made, printed, one envelope opened, the set voided) and the
tables then agree with the trail. Then someone with database access edits rows around the platform (a kit's arm or
status, an opened envelope's arm, a shipment, a request, a set's print count), deletes one and copies one in, and
each is named in one line. A sealed envelope's contents are not in the trail; changing them is refused when the
envelope is recorded, because its printed check code no longer matches.
"""

from __future__ import annotations

from sqlalchemy import select

from stroketrial.protocol import load_builtin
from stroketrial.randomization.envelopes import envelope_label
from stroketrial.store.models import Envelope, EnvelopeSet, ResupplyRequest, SupplyKit, SupplyShipment

from ..trials import angel_rescue
from . import test_supply as supply
from .test_envelopes import code_of, envelopes_of, generate, opened
from .test_reconcile_gcp import around_the_platform, copy_in, problems
from .test_api import register

KIT_TRIAL, ENVELOPE_TRIAL = supply.TRIAL, angel_rescue.TRIAL
DRUG, PLACEBO = supply.DRUG, supply.PLACEBO
PHARMACIST = "unblinded_pharmacist"


def named(platform, *fragments: str) -> list[str]:
    """The reconcile lines, each fragment found in one of them."""
    found = problems(platform)
    for fragment in fragments:
        assert any(fragment in line for line in found), (fragment, found)
    return found


def rows(platform, model, *where):
    with platform.db.read() as session:
        out = list(session.execute(select(model).where(*where)).scalars())
        session.expunge_all()
    return out


def supply_done_through_the_platform(platform) -> dict[str, str]:
    """Every supply operation once, through the API; the kits the tampering below is done on."""
    supply.with_manager(platform)
    supply.stocked(platform, per_arm=3)  # import, ship, receive
    assert supply.import_kits(platform, [(str(700 + 2 * i + j), arm, "L-7", supply.day(300))
                                         for i in range(6) for j, arm in enumerate((DRUG, PLACEBO))]).status_code == 201
    extra = supply.ship(platform, "S1", ["700", "701", "702"], expected_on=supply.day(2))
    assert supply.receive(platform, extra, damaged=["700"], missing=["701"]).status_code == 200
    levels = platform.call("PUT", f"/trials/{KIT_TRIAL}/supply/sites/S1/levels", "supply_manager",
                           json={"trigger_per_arm": 3, "target_per_arm": 5})
    assert levels.status_code == 200 and levels.json()["resupply_raised"], levels.text
    filled = supply.ship(platform, "S1")  # what the open requests ask for
    assert supply.receive(platform, filled).status_code == 200
    given = supply.randomize(platform, "P1")
    assert given.status_code == 201, given.text
    replaced = platform.call("POST", f"/trials/{KIT_TRIAL}/patients/P1/kit-replacement", PHARMACIST,
                             json={"reason": "vial cracked when opened"})
    assert replaced.status_code == 201, replaced.text
    shelf = [k for k in supply.kits(platform).values() if k.status == "available"]
    held = platform.call("POST", f"/trials/{KIT_TRIAL}/supply/quarantine", PHARMACIST,
                         json={"kits": [shelf[0].kit_number], "reason": "fridge at 12 C overnight"})
    assert held.status_code == 200, held.text
    back = platform.call("POST", f"/trials/{KIT_TRIAL}/supply/quarantine/release", PHARMACIST,
                         json={"kits": [shelf[0].kit_number], "reason": "stability data allow 12 C for a night"})
    assert back.status_code == 200, back.text
    closed = platform.call("POST", f"/trials/{KIT_TRIAL}/supply/kits/700/close-out", PHARMACIST,
                           json={"outcome": "destroyed"})
    assert closed.status_code == 200, closed.text
    return {"dispensed": replaced.json()["kit"], "damaged": given.json()["kit"], "available": shelf[1].kit_number,
            "depot": next(k.kit_number for k in supply.kits(platform).values() if k.status == "in_depot")}


def test_kits_shipments_and_requests_reconcile_and_every_edit_around_the_platform_is_named(platform):
    kit = supply_done_through_the_platform(platform)
    assert problems(platform) == []
    other = {DRUG: PLACEBO, PLACEBO: DRUG}
    dispensed = supply.kits(platform)[kit["dispensed"]]
    # The dispensed kit relabelled to the other arm (the patient's box says one thing, the platform another).
    around_the_platform(platform, "UPDATE supply_kits SET arm = :arm WHERE kit_number = :k",
                        arm=other[dispensed.arm], k=kit["dispensed"])
    named(platform, f"kit {KIT_TRIAL}/{kit['dispensed']}: arm differ from the audit trail (changed unseen)")
    # The damaged kit put back on the shelf, and a shelf kit moved to the other site.
    around_the_platform(platform, "UPDATE supply_kits SET status = 'available' WHERE kit_number = :k",
                        k=kit["damaged"])
    around_the_platform(platform, "UPDATE supply_kits SET site_code = 'S2' WHERE kit_number = :k",
                        k=kit["available"])
    named(platform, f"kit {KIT_TRIAL}/{kit['damaged']}: status differ",
          f"kit {KIT_TRIAL}/{kit['available']}: site differ")
    # The dispensed kit's patient taken away (the kit "never given").
    around_the_platform(platform, "UPDATE supply_kits SET patient_id = NULL WHERE kit_number = :k",
                        k=kit["dispensed"])
    named(platform, f"kit {KIT_TRIAL}/{kit['dispensed']}: arm, patient differ")
    # A kit of the depot deleted, and one copied in under a number the kit list never had.
    depot = supply.kits(platform)[kit["depot"]]
    around_the_platform(platform, "DELETE FROM supply_kits WHERE id = :id", id=depot.id)
    copy_in(platform, "supply_kits", supply.kits(platform)[kit["available"]].id, kit_number="X-999")
    named(platform, f"kit {KIT_TRIAL}/{kit['depot']}: in the audit trail but not in the table (deleted unseen)",
          f"kit {KIT_TRIAL}/X-999: in the table but not in the audit trail (inserted unseen)")

    shipment = rows(platform, SupplyShipment, SupplyShipment.trial_id == KIT_TRIAL)[0]
    around_the_platform(platform, "UPDATE supply_shipments SET status = 'in_transit', received_by = NULL "
                                  "WHERE id = :id", id=shipment.id)
    named(platform, f"shipment {KIT_TRIAL}/{shipment.id}: received_by, status differ")
    copy_in(platform, "supply_shipments", shipment.id)
    request = rows(platform, ResupplyRequest, ResupplyRequest.trial_id == KIT_TRIAL)[0]
    assert request.status == "received"
    around_the_platform(platform, "UPDATE supply_resupply_requests SET kits = kits + 10 WHERE id = :id",
                        id=request.id)
    copy_in(platform, "supply_resupply_requests", request.id)
    around_the_platform(platform, "UPDATE supply_site_levels SET trigger_per_arm = 0 WHERE site_code = 'S1'")
    found = named(platform, f"resupply request {KIT_TRIAL}/{request.id}: kits differ",
                  f"supply levels of {KIT_TRIAL}/S1: trigger_per_arm differ")
    assert any(line.startswith(f"shipment {KIT_TRIAL}/") and "inserted unseen" in line for line in found), found
    assert any(line.startswith(f"resupply request {KIT_TRIAL}/") and "inserted unseen" in line for line in found)


def test_envelopes_opened_and_voided_reconcile_and_an_edit_around_the_platform_is_named(platform):
    made = generate(platform)
    assert made.status_code == 201, made.text
    set_id = made.json()["set"]
    assert platform.call("POST", f"/trials/{ENVELOPE_TRIAL}/envelope-sets/{set_id}/print", PHARMACIST
                         ).status_code == 200
    anterior = [e for e in envelopes_of(platform) if e.stratum == "circulation=anterior"]
    for code in ("E1", "E2"):
        assert register(platform, trial=ENVELOPE_TRIAL, code=code).status_code == 201
    assert opened(platform, anterior[0], "E1", minutes_ago=20).status_code == 201
    assert problems(platform) == []

    # The arm inside a sealed envelope is not in the trail (the trail says no more than the outside label); changed
    # around the platform, the envelope is refused when the site records it, as its printed code no longer matches.
    printed = code_of(platform, anterior[1])
    around_the_platform(platform, "UPDATE envelopes SET arm = :arm WHERE id = :id", id=anterior[1].id,
                        arm=_other_arm(anterior[1].arm))
    refused = opened(platform, anterior[1], "E2", code=printed)
    assert refused.status_code == 422 and "check code" in refused.json()["detail"], refused.text
    around_the_platform(platform, "UPDATE envelopes SET arm = :arm WHERE id = :id", id=anterior[1].id,
                        arm=anterior[1].arm)

    void = platform.call("POST", f"/trials/{ENVELOPE_TRIAL}/envelope-sets/{set_id}/void", PHARMACIST,
                         json={"reason": "the box was found open"})
    assert void.status_code == 200, void.text
    assert problems(platform) == []
    first, second, last = (envelope_label("S1", e.number) for e in (anterior[0], anterior[1], anterior[-1]))

    # The opened envelope's arm changed (the allocation row left alone), its time of opening moved.
    around_the_platform(platform, "UPDATE envelopes SET arm = :arm WHERE id = :id", id=anterior[0].id,
                        arm=_other_arm(anterior[0].arm))
    named(platform, f"envelope {ENVELOPE_TRIAL}/{first}: arm differ from the audit trail (changed unseen)")
    opened_row = rows(platform, Envelope, Envelope.id == anterior[0].id)[0]
    assert opened_row.opened_at is not None
    around_the_platform(platform, "UPDATE envelopes SET opened_at = :t WHERE id = :id", id=anterior[0].id,
                        t=opened_row.opened_at.replace(year=opened_row.opened_at.year - 1))
    named(platform, f"envelope {ENVELOPE_TRIAL}/{first}: arm, opened_at differ")
    # A void envelope made sealed again (to be used), one deleted, one copied in under a new number.
    around_the_platform(platform, "UPDATE envelopes SET status = 'sealed' WHERE id = :id", id=anterior[1].id)
    around_the_platform(platform, "DELETE FROM envelopes WHERE id = :id", id=anterior[-1].id)
    copy_in(platform, "envelopes", anterior[1].id, number=900)
    named(platform, f"envelope {ENVELOPE_TRIAL}/{second}: status differ",
          f"envelope {ENVELOPE_TRIAL}/{last}: in the audit trail but not in the table (deleted unseen)",
          f"envelope {ENVELOPE_TRIAL}/S1-900: in the table but not in the audit trail (inserted unseen)")
    # The set's print count lowered (a second print hidden), its voiding undone.
    around_the_platform(platform, "UPDATE envelope_sets SET prints = 0, voided_at = NULL, voided_by = NULL, "
                                  "void_reason = NULL WHERE id = :id", id=set_id)
    named(platform, f"envelope set {ENVELOPE_TRIAL}/{set_id}: prints, void_reason, voided_by differ")
    assert len(rows(platform, EnvelopeSet)) == 1


def _other_arm(arm: str) -> str:
    return next(a.id for a in load_builtin(ENVELOPE_TRIAL).arms if a.id != arm)


def test_a_kit_reserved_for_an_envelope_reconciles_and_its_status_is_checked(platform):
    supply.stocked(platform, per_arm=6)
    made = generate(platform, trial=KIT_TRIAL, per_stratum=2)
    assert made.status_code == 201, made.text
    reserved = [e.kit for e in envelopes_of(platform, trial=KIT_TRIAL)]
    assert reserved and all(supply.kits(platform)[k].status == "reserved" for k in reserved)
    assert problems(platform) == []
    # A reserved kit put back on the shelf around the platform (so it could be dispensed to someone else).
    around_the_platform(platform, "UPDATE supply_kits SET status = 'available' WHERE kit_number = :k", k=reserved[0])
    named(platform, f"kit {KIT_TRIAL}/{reserved[0]}: status differ")
    assert rows(platform, SupplyKit, SupplyKit.kit_number == reserved[0])[0].status == "available"
