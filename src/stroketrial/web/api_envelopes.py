"""The JSON API of randomization when the platform cannot be reached: whether the platform can take a randomization
now, the sites' sealed emergency envelope sets (made and printed by the unblinded pharmacist or the trial admin),
and the envelopes a site opened, recorded when the link returns. Thin calls into service.envelopes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.responses import Response
from pydantic import Field

from ..service import envelopes
from ..service.accounts import Actor
from .api import Trial, _Body, current_actor, database, database_takes_writes, router

SetId = Annotated[int, Path(description="the envelope set's number (`GET .../envelope-sets`)", ge=1,
                            le=2_147_483_647)]


class EnvelopeSetIn(_Body):
    site: str = Field(description="the site the set is for", min_length=1, max_length=40)
    per_stratum: int | None = Field(None, ge=1, le=100, description="envelopes per stratum, at least (whole blocks); "
                                                                    "default: the protocol's")


class VoidIn(_Body):
    reason: str = Field(description="why the set is voided (lost, damaged, replaced; at most 2000 characters)",
                        min_length=1)


class OpenedEnvelopeIn(_Body):
    envelope: str = Field(description="the envelope's number as printed, SITE-NUMBER", examples=["S1-004"],
                          min_length=1, max_length=60)
    check_code: str = Field(description="the check code printed on the envelope", examples=["ABCD-EFGH"],
                            min_length=1, max_length=40)
    patient_id: str = Field(description="the patient the envelope was opened for (registered on the platform)",
                            min_length=1, max_length=60)
    opened_at: str = Field(description="when the envelope was opened, YYYY-MM-DDTHH:MM on the site's clock (or with "
                                       "a UTC offset); not in the future", examples=["2026-03-01T14:05"],
                           min_length=1, max_length=40)
    allocation: str | None = Field(None, description="the allocation read inside (the arm's id, or the kit number): "
                                                     "checked against the envelope's", max_length=60)


@router.get("/trials/{trial}/randomization-status", tags=["emergency randomization"])
def randomization_status(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Whether the platform can take a randomization in this trial now (the database takes a write, the trial is
    not locked), and the site's envelope procedure for when it cannot: the next sealed envelope of each stratum."""
    writable = database_takes_writes(db)
    with db.read() as session:
        status = envelopes.randomization_status(session, actor, trial)
    if not writable:
        status["reasons"].insert(0, "the database does not take writes now")
    return status | {"database_writable": writable, "can_randomize": writable and status["can_randomize"]}


@router.get("/trials/{trial}/envelope-sets", tags=["emergency randomization"])
def list_envelope_sets(trial: Trial, actor: Actor = Depends(current_actor),
                       db=Depends(database)) -> list[dict[str, Any]]:
    """The sites' envelope sets: each envelope's number, stratum and status, the patient of an opened one (and its
    arm for those who see arms); never a sealed envelope's allocation."""
    with db.read() as session:
        return envelopes.list_sets(session, actor, trial)


@router.post("/trials/{trial}/envelope-sets", status_code=201, tags=["emergency randomization"])
def generate_envelope_set(trial: Trial, body: EnvelopeSetIn, actor: Actor = Depends(current_actor),
                          db=Depends(database)) -> dict[str, Any]:
    """Make a site's set (unblinded pharmacist, or the admin of a trial where the admin sees arms): whole permuted
    blocks per stratum, apart from the online list. Print it with POST .../print."""
    with db.write(trial) as session:
        return envelopes.generate(session, actor, trial, body.site, body.per_stratum)


@router.post("/trials/{trial}/envelope-sets/{set_id}/print", tags=["emergency randomization"],
             response_class=Response,
             responses={200: {"content": {"application/pdf": {}},
                              "description": "the printable set: per envelope its outside label and inside sheet"}})
def print_envelope_set(trial: Trial, set_id: SetId, actor: Actor = Depends(current_actor),
                       db=Depends(database)) -> Response:
    """The set as a PDF to print (counted and audited: the print number is on every page)."""
    with db.write(trial) as session:
        pdf, filename = envelopes.set_pdf(session, actor, trial, set_id)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/trials/{trial}/envelope-sets/{set_id}/void", tags=["emergency randomization"])
def void_envelope_set(trial: Trial, set_id: SetId, body: VoidIn, actor: Actor = Depends(current_actor),
                      db=Depends(database)) -> dict[str, Any]:
    """Void a set's sealed envelopes (lost, damaged, replaced), with the reason."""
    with db.write(trial) as session:
        return envelopes.void_set(session, actor, trial, set_id, body.reason)


@router.post("/trials/{trial}/opened-envelopes", status_code=201, tags=["emergency randomization"])
def record_opened_envelope(trial: Trial, body: OpenedEnvelopeIn, actor: Actor = Depends(current_actor),
                           db=Depends(database)) -> dict[str, Any]:
    """Record an envelope opened while the platform could not be reached: the patient is randomized to its
    allocation (409 for an envelope used twice, void or out of order; 422 for a wrong check code or a time in the
    future)."""
    with db.write(trial) as session:
        return envelopes.record_opened(session, actor, trial, body.envelope, body.check_code, body.patient_id,
                                       body.opened_at, body.allocation)
