"""The JSON API of the DSMB's interim analyses: run the next look on frozen or locked data, read the looks, and
record the DSMB's signed decision after one; generate, list and download the closed and open reports. Closed: 403
for every role that may not see them. Thin calls into service.interim_analyses and service.dsmb_reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request, Response
from pydantic import Field

from ..service import dsmb_reports, interim_analyses, safety_monitoring, signatures
from ..service.accounts import Actor
from .api import Trial, _Body, current_actor, database, router

LookNumber = Annotated[int, Path(description="the look's number in the plan (1, 2, ...)", ge=1, le=100)]


class DecisionIn(_Body):
    decision: Literal["continue", "modify", "stop for efficacy", "stop for harm", "stop for futility"] = Field(
        description="the DSMB's recommendation to the steering committee")
    reason: str = Field(description="why (1-4000 characters)")
    password: str = Field(description="the DSMB member's password: the electronic signature")


@router.post("/trials/{trial}/interim-looks", status_code=201, tags=["interim analyses"])
def post_look(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Run the next planned look on the trial's frozen or locked data: the information observed, the primary
    analysis's z, the boundary at the fractions observed so far, conditional power, the predictive probability and
    what the rule recommends. 409 without a trial-wide freeze or lock, or without new information."""
    with db.write(trial) as session:
        return interim_analyses.run_look(session, actor, trial)


@router.get("/trials/{trial}/interim-looks", tags=["interim analyses"])
def get_looks(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    """Every look run so far, with the DSMB's decision after each."""
    with db.read() as session:
        return interim_analyses.list_looks(session, actor, trial)


@router.post("/trials/{trial}/interim-looks/{look}/decision", status_code=201, tags=["interim analyses"])
def post_decision(trial: Trial, look: LookNumber, body: DecisionIn, request: Request,
                  actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """The DSMB records its recommendation after a look, with its reason, signed with the member's password."""
    actor.require(interim_analyses.DECIDING)
    signature = signatures.sign(db, actor, body.password, request.client.host if request.client else "unknown")
    with db.write(trial) as session:
        return interim_analyses.record_decision(session, actor, trial, look, body.decision, body.reason, signature)


@router.get("/trials/{trial}/safety-monitoring", tags=["interim analyses"])
def get_safety_monitoring(trial: Trial, actor: Actor = Depends(current_actor),
                          db=Depends(database)) -> list[dict[str, Any]]:
    """The protocol's safety monitoring rules on the data now: each watched rate, the posterior probability that it
    exceeds the rate expected, and whether the rule's bound is crossed. Closed (the DSMB and its statistician)."""
    with db.read() as session:
        return safety_monitoring.status(session, actor, trial)


ReportNumber = Annotated[int, Path(description="the report's number in the trial (1, 2, ...)", ge=1, le=100000)]


class ReportIn(_Body):
    kind: Literal["closed", "open"] = Field(description="closed: by arm (the DSMB and the unblinded statistician); "
                                                        "open: every patient pooled (the steering committee)")


@router.post("/trials/{trial}/dsmb-reports", status_code=201, tags=["interim analyses"])
def post_report(trial: Trial, body: ReportIn, actor: Actor = Depends(current_actor),
                db=Depends(database)) -> dict[str, Any]:
    """Generate a DSMB report on the data as they are now, kept as HTML and PDF with the SHA-256 of the data
    snapshot it read. Closed reports: 403 for every role that may not see arms."""
    with db.write(trial) as session:
        return dsmb_reports.generate(session, actor, trial, body.kind)


@router.get("/trials/{trial}/dsmb-reports", tags=["interim analyses"])
def get_reports(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    """The reports kept, newest first: closed ones only for those who see arms."""
    with db.read() as session:
        return dsmb_reports.list_reports(session, actor, trial)


@router.get("/trials/{trial}/dsmb-reports/{number}.{fmt}", tags=["interim analyses"])
def get_report(trial: Trial, number: ReportNumber, fmt: Literal["html", "pdf"],
               actor: Actor = Depends(current_actor), db=Depends(database)) -> Response:
    """A kept report as it was generated (HTML or PDF)."""
    with db.read() as session:
        content, media, name = dsmb_reports.document(session, actor, trial, number, fmt)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
