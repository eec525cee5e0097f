"""The JSON API of a dose-escalation trial (AMASS-1): the escalation table, enrolment into the open cohort,
DLT assessments and the safety review committee's signed decisions. Thin calls into service.escalation."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, Request, Response
from pydantic import Field

from ..service import escalation, signatures
from ..service.accounts import Actor
from .api import IDEMPOTENCY_KEY, PatientCode, Trial, _Body, current_actor, database, router


class EnrolmentIn(_Body):
    cohort: int | None = Field(None, ge=1, description="the cohort the caller expects to enrol into (from the "
                                                        "escalation table); another is refused with 409")
    level: int | None = Field(None, ge=1, description="the dose level the caller expects; another is refused")


class DltIn(_Body):
    dlt: bool = Field(description="whether the patient had a dose-limiting toxicity as the protocol defines it")
    criterion: str | None = Field(None, description="with a DLT: the id of the protocol's DLT it meets "
                                                    "(GET .../escalation lists them)")
    event: str | None = Field(None, description="with a DLT: the event, in words (at most 2000 characters)")
    onset: str | None = Field(None, description="with a DLT: the onset date, YYYY-MM-DD, within the DLT's window")
    reason: str | None = Field(None, description="required when correcting an assessment")


class DecisionIn(_Body):
    after_cohort: int = Field(ge=1, description="the cohort whose decision is signed (the pending one)")
    action: Literal["treat", "stop"] = Field(description="treat the next cohort at `level`, or stop escalation "
                                                         "with `mtd` (none: no level tolerated)")
    level: int | None = Field(None, ge=1, description="with treat: the next cohort's level")
    mtd: int | None = Field(None, ge=1, description="with stop: the maximum tolerated dose level, or null")
    reason: str = Field(description="the committee's reason (required, also when confirming the rule)")
    password: str = Field(description="the signing member's password: the electronic signature")


@router.get("/trials/{trial}/escalation", tags=["dose escalation"])
def get_escalation(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Levels, cohorts, patients and DLTs; the open cohort; what waits; the decision awaiting the committee."""
    with db.read() as session:
        return escalation.escalation_view(session, actor, trial)


@router.post("/trials/{trial}/patients/{patient}/enrolment", status_code=201, tags=["dose escalation"],
             openapi_extra={"parameters": [IDEMPOTENCY_KEY]})
def enrol(trial: Trial, patient: PatientCode, request: Request, response: Response, body: EnrolmentIn | None = None,
          actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Enrol an eligible patient into the open cohort at its dose level, once (Idempotency-Key as randomization)."""
    wanted = body or EnrolmentIn()
    with db.write(trial) as session:
        result, created = escalation.enrol(session, actor, trial, patient, request.headers.get("idempotency-key"),
                                           wanted.cohort, wanted.level)
    if not created:
        response.headers["Idempotent-Replay"] = "true"
    return result


@router.put("/trials/{trial}/patients/{patient}/dlt", tags=["dose escalation"])
def put_dlt(trial: Trial, patient: PatientCode, body: DltIn, actor: Actor = Depends(current_actor),
            db=Depends(database)) -> dict[str, Any]:
    """The investigator's DLT assessment (yes, with the protocol's DLT and the event; or no)."""
    with db.write(trial) as session:
        return escalation.record_dlt(session, actor, trial, patient, body.dlt, body.criterion, body.event, body.onset,
                                     body.reason)


@router.post("/trials/{trial}/escalation/decisions", status_code=201, tags=["dose escalation"])
def post_decision(trial: Trial, body: DecisionIn, request: Request, actor: Actor = Depends(current_actor),
                  db=Depends(database)) -> dict[str, Any]:
    """The safety review committee signs the pending decision: the rule's, or a departure with its reason. A wrong
    password counts as a failed sign-in (429 after too many)."""
    actor.require("confirming an escalation decision")
    signature = signatures.sign(db, actor, body.password, request.client.host if request.client else "unknown")
    with db.write(trial) as session:
        return escalation.confirm_decision(session, actor, trial, body.after_cohort, body.action, body.level,
                                           body.mtd, body.reason, signature)
