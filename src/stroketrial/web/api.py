"""The JSON API, versioned under /api/v1. Every route is a thin call into `stroketrial.service`."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..service import accounts, followup, patients, randomize, trials
from ..service.accounts import Actor
from ..service.errors import Forbidden, Unauthorized
from ..store import verify

router = APIRouter(prefix="/api/v1")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatientIn(_Body):
    patient_id: str = Field(description="the site's screening identifier", min_length=1, max_length=60)
    site: str = Field(description="site code", min_length=1, max_length=40)
    data: dict[str, Any] = Field(description="screening data by data-dictionary field (`stroketrial dictionary`)")
    attestations: Optional[dict[str, Any]] = Field(None, description="criterion id: true/false")


class ScreeningChange(_Body):
    data: dict[str, Any] = Field(description="fields to change (null removes a value)")
    reason: str = Field(description="why the recorded data change", min_length=1)


class VisitIn(_Body):
    visit_date: str = Field(description="date of the visit, YYYY-MM-DD")
    values: dict[str, Any] = Field(description="assessment: value, for the assessments this visit schedules")
    reason: Optional[str] = Field(None, description="required when correcting an entered visit")


class SaeIn(_Body):
    term: Any = None
    onset_date: Any = None
    criteria: Any = None
    outcome: Any = None
    relatedness: Any = None
    description: Any = None


class UnblindingIn(_Body):
    reason: str = Field(description="the clinical reason the treating team needs the arm")


def database(request: Request):
    return request.app.state.db


def current_actor(request: Request, authorization: Optional[str] = Header(None)) -> Actor:
    """The API takes bearer tokens only: a browser's session cookie never authorizes an API call,
    so a page on another site cannot make a signed-in browser randomize."""
    if not authorization:
        raise Unauthorized("send an API token as 'Authorization: Bearer TOKEN' (stroketrial admin create-user)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send the API token as 'Authorization: Bearer TOKEN'")
    with request.app.state.db.read() as session:
        return accounts.actor_for_token(session, token.strip())


@router.get("/health", tags=["platform"])
def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "database": request.app.state.db.backend}


@router.get("/me", tags=["platform"])
def me(actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return {"name": actor.name, "role": actor.role, "sites": sorted(actor.sites) if not actor.is_admin else "all"}


@router.get("/trials", tags=["trials"])
def list_trials(actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    with db.read() as session:
        return trials.list_trials(session, actor)


@router.get("/trials/{trial}", tags=["trials"])
def get_trial(trial: str, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    with db.read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        return trials.protocol_summary(protocol) | {"sites": trials.trial_sites(session, trial)}


@router.post("/trials/{trial}/patients", status_code=201, tags=["patients"])
def register_patient(trial: str, body: PatientIn, actor: Actor = Depends(current_actor),
                     db=Depends(database)) -> dict[str, Any]:
    """Register a patient with screening data; the answer holds the eligibility result per criterion."""
    with db.write() as session:
        return patients.register(session, actor, trial, body.patient_id, body.site, body.data, body.attestations)


@router.get("/trials/{trial}/patients", tags=["patients"])
def list_patients(trial: str, actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    with db.read() as session:
        return patients.list_patients(session, actor, trial)


@router.get("/trials/{trial}/patients/{patient}", tags=["patients"])
def get_patient(trial: str, patient: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return patients.get_patient(session, actor, trial, patient)


@router.patch("/trials/{trial}/patients/{patient}", tags=["patients"])
def correct_screening(trial: str, patient: str, body: ScreeningChange, actor: Actor = Depends(current_actor),
                      db=Depends(database)):
    with db.write() as session:
        return patients.update_screening(session, actor, trial, patient, body.data, body.reason)


@router.post("/trials/{trial}/patients/{patient}/randomization", status_code=201, tags=["randomization"])
def randomize_patient(trial: str, patient: str, response: Response, actor: Actor = Depends(current_actor),
                      db=Depends(database), idempotency_key: Optional[str] = Header(None)) -> dict[str, Any]:
    """Randomize once. Send a new Idempotency-Key per patient; resend the same key to retry safely."""
    with db.write() as session:
        body, created = randomize.randomize(session, actor, trial, patient, idempotency_key)
    if not created:
        response.headers["Idempotent-Replay"] = "true"
    return body


@router.get("/trials/{trial}/patients/{patient}/randomization", tags=["randomization"])
def get_randomization(trial: str, patient: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        view = patients.get_patient(session, actor, trial, patient)
    if view["randomization"] is None:
        from ..service.errors import NotFound
        raise NotFound(f"patient {patient} is not randomized")
    return view["randomization"] | {"patient_id": patient}


@router.get("/trials/{trial}/patients/{patient}/dose", tags=["follow-up"])
def get_dose(trial: str, patient: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return followup.dose(session, actor, trial, patient)


@router.get("/trials/{trial}/patients/{patient}/visits", tags=["follow-up"])
def get_visits(trial: str, patient: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return followup.visits(session, actor, trial, patient)


@router.put("/trials/{trial}/patients/{patient}/visits/{visit}", tags=["follow-up"])
def put_visit(trial: str, patient: str, visit: str, body: VisitIn, actor: Actor = Depends(current_actor),
              db=Depends(database)):
    with db.write() as session:
        return followup.record_visit(session, actor, trial, patient, visit, body.visit_date, body.values, body.reason)


@router.post("/trials/{trial}/patients/{patient}/saes", status_code=201, tags=["safety"])
def post_sae(trial: str, patient: str, body: SaeIn, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.write() as session:
        return followup.report_sae(session, actor, trial, patient, body.model_dump(exclude_none=True))


@router.get("/trials/{trial}/patients/{patient}/saes", tags=["safety"])
def get_saes(trial: str, patient: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return followup.list_saes(session, actor, trial, patient)


@router.post("/trials/{trial}/patients/{patient}/unblinding", status_code=201, tags=["safety"])
def post_unblinding(trial: str, patient: str, body: UnblindingIn, actor: Actor = Depends(current_actor),
                    db=Depends(database)):
    """Emergency unblinding by the treating investigator, with the clinical reason; audited."""
    with db.write() as session:
        return followup.unblind(session, actor, trial, patient, body.reason)


@router.get("/trials/{trial}/unblindings", tags=["safety"])
def get_unblindings(trial: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return followup.unblindings(session, actor, trial)


@router.get("/trials/{trial}/safety", tags=["safety"])
def get_safety(trial: str, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return followup.safety(session, actor, trial)


@router.get("/assessments", tags=["follow-up"])
def get_assessments(actor: Actor = Depends(current_actor)):
    return followup.assessment_dictionary()


@router.get("/audit/verify", tags=["platform"])
def audit_verify(actor: Actor = Depends(current_actor), db=Depends(database)):
    if actor.role not in ("admin", "monitor"):
        raise Forbidden(f"checking the audit trail is for admin, monitor; {actor.name} is {actor.role}")
    with db.read() as session:
        result = verify(session)
    return {"ok": result.ok, "events": result.events, "message": result.message, "first_bad": result.first_bad}
