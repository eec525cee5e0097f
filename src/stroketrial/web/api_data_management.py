"""The JSON API of data management: data queries (raise, answer, close, re-open, list by patient and by trial) and
source data verification (mark a form or field verified, the monitor's list). Thin calls into service.queries and
service.verification."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import Field

from ..service import queries, verification
from ..service.accounts import Actor
from .api import PatientCode, Trial, _Body, current_actor, database, router

QueryId = Annotated[int, Path(description="the data query's number", ge=1, le=2_147_483_647)]


class QueryIn(_Body):
    form: str = Field(description="a visit's id in the patient's schedule, or `screening`")
    field: str = Field(description="a visit's assessment or `visit_date`; for screening a data-dictionary field")
    text: str = Field(description="the question to the site (at most 2000 characters)")


class CorrectionIn(_Body):
    value: Any = Field(description="the field's corrected value (null removes it); stored through the form's "
                                   "correction path with the answer as the reason")


class AnswerIn(_Body):
    answer: str = Field(description="the site's answer: the explanation, or why the value is corrected")
    correction: CorrectionIn | None = Field(None, description="with a correction: the field's new value")


class CloseIn(_Body):
    note: str | None = Field(None, description="why the query is closed (optional, audited)")


class ReopenIn(_Body):
    reason: str = Field(description="why the answer does not resolve the query (required)")


class VerificationIn(_Body):
    form: str = Field(description="`screening` or a visit's id")
    field: str | None = Field(None, description="one field of the form; none: the whole form")


@router.post("/trials/{trial}/patients/{patient}/queries", status_code=201, tags=["data management"])
def raise_query(trial: Trial, patient: PatientCode, body: QueryIn, actor: Actor = Depends(current_actor),
                db=Depends(database)) -> dict[str, Any]:
    """A monitor or data manager raises a query on one field of one form."""
    with db.write(trial) as session:
        return queries.raise_query(session, actor, trial, patient, body.form, body.field, body.text)


@router.get("/trials/{trial}/patients/{patient}/queries", tags=["data management"])
def patient_queries(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor),
                    db=Depends(database)) -> list[dict[str, Any]]:
    with db.read() as session:
        return queries.patient_queries(session, actor, trial, patient)


@router.get("/trials/{trial}/queries", tags=["data management"])
def trial_queries(trial: Trial, status: Literal["open", "answered", "closed"] | None = Query(None),
                  site: str | None = Query(None), form: str | None = Query(None),
                  origin: Literal["manual", "edit_check"] | None = Query(None), actor: Actor = Depends(current_actor),
                  db=Depends(database)) -> dict[str, Any]:
    """The trial's queries at your sites, filtered; unresolved ones counted by site and by days open."""
    with db.read() as session:
        return queries.trial_queries(session, actor, trial, status, site, form, origin)


@router.post("/trials/{trial}/queries/{query}/answer", tags=["data management"])
def answer_query(trial: Trial, query: QueryId, body: AnswerIn, actor: Actor = Depends(current_actor),
                 db=Depends(database)) -> dict[str, Any]:
    """The site answers an open query with an explanation, or with a correction of the field."""
    with db.write(trial) as session:
        return queries.answer_query(session, actor, trial, query, body.answer, body.correction is not None,
                                    body.correction.value if body.correction is not None else None)


@router.post("/trials/{trial}/queries/{query}/close", tags=["data management"])
def close_query(trial: Trial, query: QueryId, body: CloseIn | None = None, actor: Actor = Depends(current_actor),
                db=Depends(database)) -> dict[str, Any]:
    with db.write(trial) as session:
        return queries.close_query(session, actor, trial, query, body.note if body else None)


@router.post("/trials/{trial}/queries/{query}/reopen", tags=["data management"])
def reopen_query(trial: Trial, query: QueryId, body: ReopenIn, actor: Actor = Depends(current_actor),
                 db=Depends(database)) -> dict[str, Any]:
    with db.write(trial) as session:
        return queries.reopen_query(session, actor, trial, query, body.reason)


@router.post("/trials/{trial}/patients/{patient}/verifications", status_code=201, tags=["data management"])
def verify_source(trial: Trial, patient: PatientCode, body: VerificationIn, actor: Actor = Depends(current_actor),
                  db=Depends(database)) -> dict[str, Any]:
    """The monitor marks a form (or one field) verified against the source, over the SHA-256 of its values."""
    with db.write(trial) as session:
        return verification.verify_form(session, actor, trial, patient, body.form, body.field)


@router.get("/trials/{trial}/verifications", tags=["data management"])
def verification_list(trial: Trial, patient: str | None = Query(None, description="one patient only"),
                      actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Per patient and form: verified, cleared by a change (to verify again), or never verified."""
    with db.read() as session:
        return verification.verification_list(session, actor, trial, patient)
