"""The JSON API, versioned under /api/v1. Every route is a thin call into `stroketrial.service`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from pydantic import BaseModel, ConfigDict, Field

from ..protocol import BUILTIN_IDS, load_builtin
from ..service import accounts, dose_sheet, patients, randomize, safety, serious_adverse_events, trials, unblinding, \
    visits
from ..service.accounts import Actor
from ..service import notifications
from ..service.audit_trail import trail_check
from ..service.errors import Unauthorized
from ..store import Database, DatabaseError



class FieldError(BaseModel):
    """One refused field: its name, the value sent (echoed when printable) and what is allowed."""
    model_config = ConfigDict(extra="allow")
    field: str
    value: Any = None
    message: str


class ErrorBody(BaseModel):
    """Every error answer: `detail` says what went wrong in a sentence; `errors` names each refused field.
    Some errors add keys of their own (an ineligible patient's criteria, for one)."""
    model_config = ConfigDict(extra="allow")
    detail: str
    errors: list[FieldError] | None = None


_ERRORS = {400: "malformed request (a NUL character in the URL or a header, a bad Content-Length)",
           401: "no API token, or an unknown or revoked one",
           403: "the role or the sites of the token's user do not allow this",
           404: "no such trial, patient, visit or route at the user's sites",
           409: "conflicts with what is recorded (already registered or randomized, a reused Idempotency-Key)",
           413: "the request body is over the server's limit (STROKETRIAL_MAX_BODY_BYTES, 1 MiB by default)",
           422: "a field is missing or not allowed: each is named with the value and what is allowed",
           429: "too many requests; wait and retry",
           503: "the database is busy or unavailable; retry (with the same Idempotency-Key)"}

router = APIRouter(prefix="/api/v1", responses={status: {"model": ErrorBody, "description": description}
                                                for status, description in _ERRORS.items()})
bearer = HTTPBearer(auto_error=False, description="an API token: `stroketrial admin create-user` prints one")

Trial = Annotated[str, Path(description="the trial's id (`GET /api/v1/trials`)", examples=[BUILTIN_IDS[0]])]
MAX_PAGE = 1000
MAX_OFFSET = 1_000_000_000  # past any trial's size, within the databases' 64-bit integers
PatientCode = Annotated[str, Path(description="the patient's screening identifier", examples=["P1"])]
VisitId = Annotated[str, Path(description="the visit's id in the protocol's schedule (`GET .../visits`)",
                               examples=[load_builtin(BUILTIN_IDS[0]).visits[-1].id])]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatientIn(_Body):
    # The length is documented here but checked by the service, whose refusal says what is allowed.
    patient_id: str = Field(description="the site's screening identifier: 1-60 letters (any script, CJK "
                                        "included), digits, '-', '_' and '.'; no spaces, slashes or control "
                                        "characters", examples=["AMASS-031"],
                            json_schema_extra={"minLength": 1, "maxLength": 60})
    site: str = Field(description="site code", min_length=1, max_length=40)
    data: dict[str, Any] = Field(description="screening data by data-dictionary field (`stroketrial dictionary`)")
    attestations: dict[str, Any] | None = Field(None, description="criterion id: true/false")


class ScreeningChange(_Body):
    data: dict[str, Any] = Field(description="fields to change (null removes a value)")
    reason: str = Field(description="why the recorded data change (at most 2000 characters)", min_length=1)


class VisitIn(_Body):
    visit_date: str = Field(description="date of the visit, YYYY-MM-DD")
    values: dict[str, Any] = Field(description="assessment: value, for the assessments this visit schedules")
    reason: str | None = Field(None, description="required when correcting an entered visit (at most 2000 "
                                                    "characters)")


class SaeIn(_Body):
    # Typed loosely on purpose: the service checks every field and names each one refused, in one answer.
    term: Any = Field(None, description="the event, in words (at most 200 characters)")
    onset_date: Any = Field(None, description="YYYY-MM-DD")
    criteria: Any = Field(None, description="seriousness criteria: death, life_threatening, hospitalization, "
                                            "disability, congenital_anomaly, important_medical_event")
    outcome: Any = Field(None, description="recovered, recovering, not_recovered, recovered_with_sequelae, fatal, "
                                           "unknown")
    relatedness: Any = Field(None, description="not_related, unlikely, possible, probable, definite")
    description: Any = Field(None, description="narrative (at most 4000 characters)")
    awareness_at: Any = Field(None, description="when the site learned of the SAE, YYYY-MM-DDTHH:MM (site clock, or "
                                                 "with a UTC offset): the 24-h clock runs from it; default now")
    coded_term: Any = Field(None, description="optional MedDRA-style preferred term (free text)")
    system_organ_class: Any = Field(None, description="optional MedDRA-style system organ class (free text)")


class UnblindingIn(_Body):
    reason: str = Field(description="the clinical reason the treating team needs the arm (10-2000 characters)")


async def database(request: Request):
    # async: FastAPI would hand a plain function to a worker thread on every request, for one attribute read
    return request.app.state.db


def current_actor(request: Request, _documented: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Actor:
    """The API takes bearer tokens only: a browser's session cookie never authorizes an API call,
    so a page on another site cannot make a signed-in browser randomize. (`bearer` only documents the
    scheme in OpenAPI; the header is read here to answer each mistake in its own words.)"""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Unauthorized("send an API token as 'Authorization: Bearer TOKEN' (stroketrial admin create-user)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send the API token as 'Authorization: Bearer TOKEN'")
    with request.app.state.db.lookup() as session:
        return accounts.actor_for_token(session, token.strip())


T = TypeVar("T")


async def as_token_user(request: Request, work: Callable[[Actor], T]) -> T:
    """`work` done for the API token's user, the user looked up in the same worker thread. With the user as a
    dependency of a plain route, FastAPI hands each to a thread of its own; every hand-over between the event
    loop and a thread costs more CPU than the lookup itself (one fewer: 6.5 -> 5.8 ms of the server's CPU per
    allocation, benchmarks/server.py). For the hot routes; the route still declares `bearer` for OpenAPI."""
    return await anyio.to_thread.run_sync(lambda: work(current_actor(request, None)))


def database_takes_writes(db: Database) -> bool:
    """Whether the database takes a write now: the write lock (the audit head's) is taken and released."""
    try:
        with db.write():
            pass
    except (DatabaseError, SQLAlchemyError):
        return False
    return True


@router.get("/health", tags=["platform"])
def health(request: Request) -> dict[str, Any]:
    """The server answers; `randomization` says whether it can take a randomization now (the database takes
    writes). When it cannot, sites follow their emergency envelope procedure (`.../randomization-status`)."""
    writable = database_takes_writes(request.app.state.db)
    return {"status": "ok" if writable else "degraded", "database": request.app.state.db.backend,
            "randomization": "available" if writable else "unavailable",
            **({} if writable else {"what_to_do": "the database does not take writes: randomize by the site's "
                                                  "sealed emergency envelopes and record them when it returns"})}


@router.get("/me", tags=["platform"])
def me(actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return {"name": actor.name, "role": actor.role, "sites": sorted(actor.sites) if not actor.is_admin else "all"}


@router.get("/trials", tags=["trials"])
def list_trials(actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    with db.read() as session:
        return trials.list_trials(session, actor)


@router.get("/trials/{trial}", tags=["trials"])
def get_trial(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    with db.read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        return trials.protocol_summary(protocol) | {"sites": trials.trial_sites(session, trial)}


@router.post("/trials/{trial}/patients", status_code=201, tags=["patients"])
def register_patient(trial: Trial, body: PatientIn, actor: Actor = Depends(current_actor),
                     db=Depends(database)) -> dict[str, Any]:
    """Register a patient with screening data; the answer holds the eligibility result per criterion."""
    with db.write(trial) as session:
        return patients.register(session, actor, trial, body.patient_id, body.site, body.data, body.attestations)


@router.get("/trials/{trial}/patients", tags=["patients"])
def list_patients(trial: Trial, response: Response,
                  limit: int | None = Query(None, ge=1, le=MAX_PAGE, description="at most this many patients "
                                            f"(1 to {MAX_PAGE:,}); without it, every patient"),
                  offset: int = Query(0, ge=0, le=MAX_OFFSET, description="skip this many patients first (0 to "
                                      f"{MAX_OFFSET:,})"),
                  actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    """The trial's patients at your sites, in order of registration. With `limit`, one page: the header
    X-Total-Count says how many there are, and Link (rel="next") where the next page starts."""
    with db.read() as session:
        listed = patients.list_patients(session, actor, trial, limit, offset)
        if limit is not None:
            total = patients.count_patients(session, actor, trial)
            response.headers["X-Total-Count"] = str(total)
            if offset + limit < total:
                response.headers["Link"] = (f'</api/v1/trials/{trial}/patients?limit={limit}&offset={offset + limit}>; '
                                            'rel="next"')
        return listed


@router.get("/trials/{trial}/patients/{patient}", tags=["patients"])
def get_patient(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return patients.get_patient(session, actor, trial, patient)


@router.patch("/trials/{trial}/patients/{patient}", tags=["patients"])
def correct_screening(trial: Trial, patient: PatientCode, body: ScreeningChange, actor: Actor = Depends(current_actor),
                      db=Depends(database)):
    with db.write(trial) as session:
        return patients.update_screening(session, actor, trial, patient, body.data, body.reason)


IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": True,
                   "description": "new for each patient, the same when retrying (1-200 characters); the same key "
                                  "replays the first answer, a key used for another patient is 409",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200}}


# The key is read from the request rather than declared as a parameter so that a missing or bad key gets
# the service's own 422 (naming Idempotency-Key); `openapi_extra` documents it as the required header it is.
@router.post("/trials/{trial}/patients/{patient}/randomization", status_code=201, tags=["randomization"],
             openapi_extra={"parameters": [IDEMPOTENCY_KEY]})
async def randomize_patient(trial: Trial, patient: PatientCode, request: Request, response: Response,
                            _token: HTTPAuthorizationCredentials | None = Depends(bearer),
                            db: Database = Depends(database)) -> dict[str, Any]:
    """Randomize once. Send a new Idempotency-Key per patient; resend the same key to retry safely."""
    idempotency_key = request.headers.get("idempotency-key")

    def allocate(actor: Actor) -> tuple[dict[str, Any], bool]:
        with db.write(trial) as session:
            return randomize.randomize(session, actor, trial, patient, idempotency_key)

    body, created = await as_token_user(request, allocate)
    if not created:
        response.headers["Idempotent-Replay"] = "true"
    return body


@router.get("/trials/{trial}/patients/{patient}/randomization", tags=["randomization"])
def get_randomization(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        view = patients.get_patient(session, actor, trial, patient)
    if view["randomization"] is None:
        from ..service.errors import NotFound
        raise NotFound(f"patient {patient} is not randomized")
    return view["randomization"] | {"patient_id": patient}


@router.get("/trials/{trial}/patients/{patient}/dose", tags=["follow-up"])
def get_dose(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor), db=Depends(database)):
    actor.require("reading a dose sheet")  # (the dose sheet service does not ask yet; the page asks too)
    with db.read() as session:
        return dose_sheet.dose(session, actor, trial, patient)


@router.get("/trials/{trial}/patients/{patient}/visits", tags=["follow-up"])
def get_visits(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return visits.visits(session, actor, trial, patient)


@router.put("/trials/{trial}/patients/{patient}/visits/{visit}", tags=["follow-up"])
def put_visit(trial: Trial, patient: PatientCode, visit: VisitId, body: VisitIn, actor: Actor = Depends(current_actor),
              db=Depends(database)):
    with db.write(trial) as session:
        return visits.record_visit(session, actor, trial, patient, visit, body.visit_date, body.values, body.reason)


@router.post("/trials/{trial}/patients/{patient}/saes", status_code=201, tags=["safety"])
def post_sae(trial: Trial, patient: PatientCode, body: SaeIn, actor: Actor = Depends(current_actor),
             db=Depends(database)):
    with db.write(trial) as session:
        result = serious_adverse_events.report_sae(session, actor, trial, patient, body.model_dump(exclude_none=True))
    notifications.deliver(db)  # after the commit: emails never go out for a report that was not stored
    return result


@router.get("/trials/{trial}/patients/{patient}/saes", tags=["safety"])
def get_saes(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return serious_adverse_events.list_saes(session, actor, trial, patient)


@router.post("/trials/{trial}/patients/{patient}/unblinding", status_code=201, tags=["safety"])
def post_unblinding(trial: Trial, patient: PatientCode, body: UnblindingIn, actor: Actor = Depends(current_actor),
                    db=Depends(database)):
    """Emergency unblinding by the treating investigator, with the clinical reason; audited."""
    with db.write(trial) as session:
        result = unblinding.unblind(session, actor, trial, patient, body.reason)
    notifications.deliver(db)
    return result


@router.get("/trials/{trial}/unblindings", tags=["safety"])
def get_unblindings(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return unblinding.unblindings(session, actor, trial)


@router.get("/trials/{trial}/safety", tags=["safety"])
def get_safety(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return safety.safety(session, actor, trial)


@router.get("/assessments", tags=["follow-up"])
def get_assessments(actor: Actor = Depends(current_actor)):
    return visits.assessment_dictionary()


@router.get("/audit/verify", tags=["platform"])
def audit_verify(actor: Actor = Depends(current_actor), db=Depends(database)):
    with db.read() as session:
        return trail_check(session, actor)
