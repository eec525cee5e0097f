"""The JSON API of randomization during the procedure: registering a patient before it, and the procedure step
that records what is new, screens in full and randomizes when eligible. Thin calls into service.procedure."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response
from pydantic import Field

from ..service import procedure
from ..service.accounts import Actor
from .api import IDEMPOTENCY_KEY, PatientCode, PatientIn, Trial, _Body, current_actor, database, router


class ProcedureIn(_Body):
    # Typed loosely on purpose: the service names each field it refuses, in one answer.
    data: Any = Field(description="the protocol's during-procedure fields (screening.during_procedure.fields)")
    attestations: Any = Field(None, description="the during-procedure attestations: criterion id: true/false")


@router.post("/trials/{trial}/patients/before-procedure", status_code=201, tags=["patients"])
def register_before_procedure(trial: Trial, body: PatientIn, actor: Actor = Depends(current_actor),
                              db=Depends(database)) -> dict[str, Any]:
    """Register a patient with everything known before the procedure; 422 names what is still missing."""
    with db.write(trial) as session:
        return procedure.register_before_procedure(session, actor, trial, body.patient_id, body.site, body.data,
                                                   body.attestations)


@router.post("/trials/{trial}/patients/{patient}/procedure", tags=["randomization"],
             openapi_extra={"parameters": [IDEMPOTENCY_KEY]})
def randomize_during_procedure(trial: Trial, patient: PatientCode, body: ProcedureIn, request: Request,
                               response: Response, actor: Actor = Depends(current_actor),
                               db=Depends(database)) -> dict[str, Any]:
    """Record the during-procedure fields and randomize when eligible (201); ineligible, 200 with the failed
    criteria and nothing randomized. Resend the same Idempotency-Key to retry safely."""
    with db.write(trial) as session:
        view, created = procedure.randomize_during_procedure(session, actor, trial, patient, body.data,
                                                             body.attestations,
                                                             request.headers.get("idempotency-key"))
    if created:
        response.status_code = 201
    elif view["randomized"]:
        response.headers["Idempotent-Replay"] = "true"
    return view
