"""The JSON API of the DSMB's interim analyses: run the next look on frozen or locked data, read the looks, and
record the DSMB's signed decision after one. Closed: 403 for every role that may not see them. Thin calls into
service.interim_analyses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from pydantic import Field

from ..service import interim_analyses, safety_monitoring, signatures
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
    with db.write() as session:
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
    with db.write() as session:
        return interim_analyses.record_decision(session, actor, trial, look, body.decision, body.reason, signature)


@router.get("/trials/{trial}/safety-monitoring", tags=["interim analyses"])
def get_safety_monitoring(trial: Trial, actor: Actor = Depends(current_actor),
                          db=Depends(database)) -> list[dict[str, Any]]:
    """The protocol's safety monitoring rules on the data now: each watched rate, the posterior probability that it
    exceeds the rate expected, and whether the rule's bound is crossed. Closed (the DSMB and its statistician)."""
    with db.read() as session:
        return safety_monitoring.status(session, actor, trial)
