"""The JSON API of investigational product supply: the kit list (import, generate, export), shipments and their
receipt, stock, resupply levels, quarantine (a temperature excursion, a recall), kit replacement and close-out
reconciliation. Thin calls into service.supply."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path
from fastapi.responses import Response
from pydantic import Field

from ..service import supply
from ..service.accounts import Actor
from .api import PatientCode, Trial, _Body, current_actor, database, router

TAGS: list[str | Any] = ["supply"]
Site = Annotated[str, Path(description="a site code of the trial", examples=["S1"])]
KitNumber = Annotated[str, Path(description="a kit number of the trial's kit list", examples=["104233"])]


class KitListIn(_Body):
    csv: str = Field(description="the packager's kit list as CSV with the columns kit_number, arm, lot, expiry "
                                 "(YYYY-MM-DD); all or nothing", max_length=900_000)


class GenerateIn(_Body):
    kits_per_arm: int = Field(description="kits of each arm (times the arm's allocation ratio)")
    lot: str = Field(description="the lot printed on every kit (1-40 letters, digits, '.', '_', '/', '-')")
    expiry: str = Field(description="the kits' expiry date, YYYY-MM-DD")


class ShipmentIn(_Body):
    site: str = Field(description="the site the kits go to")
    kits: list[str] | None = Field(None, description="the kit numbers to ship (from the depot)")
    kits_per_arm: int | None = Field(None, description="instead of kits: this many of each arm, first expiry "
                                                       "first out; neither: what the open resupply requests ask")
    kits_by_arm: dict[str, int] | None = Field(None, description="instead of kits: a number per arm id, first "
                                                                 "expiry first out", examples=[{"placebo": 4}])
    shipped_on: str | None = Field(None, description="YYYY-MM-DD (default today)")
    expected_on: str | None = Field(None, description="YYYY-MM-DD")


class ReceiptIn(_Body):
    received: list[str] = Field(default_factory=list, description="kit numbers received in good order")
    damaged: list[str] = Field(default_factory=list, description="kit numbers received damaged")
    missing: list[str] = Field(default_factory=list, description="kit numbers not in the box")


class LevelsIn(_Body):
    trigger_per_arm: int = Field(description="a resupply is raised at or below this many kits of an arm")
    target_per_arm: int = Field(description="a resupply brings each arm back to this many kits")


class ReplacementIn(_Body):
    reason: str = Field(description="what happened to the dispensed kit (5-2000 characters)")


class CloseOutIn(_Body):
    outcome: Literal["returned", "destroyed"] = Field(description="returned to the depot, or destroyed at the site")
    reason: str | None = Field(None, description="optional note (at most 2000 characters)")
    by: str | None = Field(None, description="who returned or destroyed it, and any witness (at most 200 characters)")
    on: str | None = Field(None, description="the day it was returned or destroyed, YYYY-MM-DD (default today)")


class SiteCloseOutIn(CloseOutIn):
    kits: list[str] = Field(description="the site's kit numbers, all returned or all destroyed (all or nothing)")


class QuarantineIn(_Body):
    kits: list[str] | None = Field(None, description="the kit numbers (all or nothing)")
    lot: str | None = Field(None, description="instead of kits: every kit of this lot (in the depot, on a shelf or "
                                             "reserved; to release: every quarantined kit of it)")
    reason: str = Field(description="the temperature excursion, the recall, or why it is released (5-2000 "
                                    "characters)")


@router.get("/trials/{trial}/supply", tags=TAGS)
def get_supply(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Stock per site (per arm to unblinded roles, pooled to everyone else), shipments, resupply requests and
    expiring lots (unblinded roles)."""
    with db.read() as session:
        return supply.overview(session, actor, trial)


@router.post("/trials/{trial}/supply/kits/import", status_code=201, tags=TAGS)
def import_kits(trial: Trial, body: KitListIn, actor: Actor = Depends(current_actor),
                db=Depends(database)) -> dict[str, Any]:
    """Import the packager's kit list; every bad row is named (row, field, value, what is allowed) and nothing is
    stored while any row is bad."""
    with db.write(trial) as session:
        return supply.import_kits(session, actor, trial, body.csv)


@router.post("/trials/{trial}/supply/kits/generate", status_code=201, tags=TAGS)
def generate_kits(trial: Trial, body: GenerateIn, actor: Actor = Depends(current_actor),
                  db=Depends(database)) -> dict[str, Any]:
    """Generate a kit list here (kit numbers from the OS CSPRNG, telling nothing of the arm)."""
    with db.write(trial) as session:
        return supply.generate_kits(session, actor, trial, body.kits_per_arm, body.lot, body.expiry)


@router.get("/trials/{trial}/supply/kits.csv", tags=TAGS, response_class=Response,
            responses={200: {"content": {"text/csv": {}},
                             "description": "the kit list: kit number, arm, lot, expiry, one row per kit"}})
def export_kits(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> Response:
    """The kit list as CSV for the packager (unblinded pharmacist and supply manager only)."""
    with db.write(trial) as session:
        text = supply.export_kits(session, actor, trial)
    return Response(text, media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{trial}-kits.csv"'})


@router.post("/trials/{trial}/supply/shipments", status_code=201, tags=TAGS)
def post_shipment(trial: Trial, body: ShipmentIn, actor: Actor = Depends(current_actor),
                  db=Depends(database)) -> dict[str, Any]:
    """Ship kits from the depot to a site."""
    with db.write(trial) as session:
        return supply.ship(session, actor, trial, body.site, body.kits, body.kits_per_arm, body.shipped_on,
                           body.expected_on, body.kits_by_arm)


@router.post("/trials/{trial}/supply/shipments/{shipment}/receipt", tags=TAGS)
def post_receipt(trial: Trial, shipment: int, body: ReceiptIn, actor: Actor = Depends(current_actor),
                 db=Depends(database)) -> dict[str, Any]:
    """The site confirms a shipment: each kit received, damaged or missing."""
    with db.write(trial) as session:
        return supply.receive(session, actor, trial, shipment, body.received, body.damaged, body.missing)


@router.put("/trials/{trial}/supply/sites/{site}/levels", tags=TAGS)
def put_levels(trial: Trial, site: Site, body: LevelsIn, actor: Actor = Depends(current_actor),
               db=Depends(database)) -> dict[str, Any]:
    """A site's own resupply trigger and target, in place of the protocol's."""
    with db.write(trial) as session:
        return supply.set_site_levels(session, actor, trial, site, body.trigger_per_arm, body.target_per_arm)


@router.get("/trials/{trial}/supply/sites/{site}/reconciliation", tags=TAGS)
def get_reconciliation(trial: Trial, site: Site, actor: Actor = Depends(current_actor),
                       db=Depends(database)) -> dict[str, Any]:
    """A site's kits at close-out: counts by status and each discrepancy named."""
    with db.read() as session:
        return supply.reconciliation(session, actor, trial, site)


@router.post("/trials/{trial}/supply/kits/{kit}/close-out", tags=TAGS)
def post_close_out(trial: Trial, kit: KitNumber, body: CloseOutIn, actor: Actor = Depends(current_actor),
                   db=Depends(database)) -> dict[str, Any]:
    """At close-out: a kit returned or destroyed."""
    with db.write(trial) as session:
        return supply.close_out_kit(session, actor, trial, kit, body.outcome, body.reason, body.by, body.on)


@router.post("/trials/{trial}/supply/sites/{site}/close-out", tags=TAGS)
def post_site_close_out(trial: Trial, site: Site, body: SiteCloseOutIn, actor: Actor = Depends(current_actor),
                        db=Depends(database)) -> dict[str, Any]:
    """At close-out: several kits of the site returned or destroyed, all or nothing (each refused kit named)."""
    with db.write(trial) as session:
        return supply.close_out_kits(session, actor, trial, site, body.kits, body.outcome, body.reason, body.by,
                                     body.on)


@router.post("/trials/{trial}/supply/quarantine", tags=TAGS)
def post_quarantine(trial: Trial, body: QuarantineIn, actor: Actor = Depends(current_actor),
                    db=Depends(database)) -> dict[str, Any]:
    """Quarantine kits or a whole lot (a temperature excursion, a recall): never shipped, dispensed or reserved
    until released; a site dropped to its trigger gets a resupply request."""
    with db.write(trial) as session:
        return supply.quarantine(session, actor, trial, body.kits, body.lot, body.reason)


@router.post("/trials/{trial}/supply/quarantine/release", tags=TAGS)
def post_release_quarantine(trial: Trial, body: QuarantineIn, actor: Actor = Depends(current_actor),
                            db=Depends(database)) -> dict[str, Any]:
    """Release quarantined kits (or a lot's), with a reason: each goes back where it was."""
    with db.write(trial) as session:
        return supply.release_quarantine(session, actor, trial, body.kits, body.lot, body.reason)


@router.post("/trials/{trial}/patients/{patient}/kit-replacement", status_code=201, tags=TAGS)
def post_replacement(trial: Trial, patient: PatientCode, body: ReplacementIn, actor: Actor = Depends(current_actor),
                     db=Depends(database)) -> dict[str, Any]:
    """A dispensed kit damaged: another kit of the same arm from the site's shelf (the unblinded pharmacist)."""
    with db.write(trial) as session:
        return supply.replace_kit(session, actor, trial, patient, body.reason)


@router.post("/trials/{trial}/patients/{patient}/kit", status_code=201, tags=TAGS)
def post_late_kit(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor),
                  db=Depends(database)) -> dict[str, Any]:
    """A patient allocated without a kit (allocate_and_flag) is given one once stock has arrived (the unblinded
    pharmacist)."""
    with db.write(trial) as session:
        return supply.dispense_late(session, actor, trial, patient)
