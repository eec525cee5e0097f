"""The JSON API of informed consent: a patient's consents (record, re-consent, confirm a deferred one, withdraw) and
a trial's to-do list of deferred consents awaiting confirmation. Thin calls into service.consent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import Field

from ..service import consent
from ..service.accounts import Actor
from .api import PatientCode, Trial, _Body, current_actor, database, router

ConsentId = Annotated[int, Path(description="the consent's id (`GET .../consents`)", ge=1, le=2**31 - 1)]


class ConsentIn(_Body):
    route: str = Field(description="who consents: patient, representative (a legally authorised representative) or "
                                   "deferred, as the protocol allows (`GET .../consents` lists them)")
    form_version: str = Field(description="the approved consent form version signed; a newer one than the current "
                                          "consent's records a re-consent")
    consented_at: str = Field(description="when consent was given (or the deferred enrolment began), "
                                          "YYYY-MM-DDTHH:MM on the site's clock, or with a zone")
    signer_name: str | None = Field(None, description="route representative: the representative's name")
    signer_relationship: str | None = Field(None, description="route representative: their relationship to the "
                                                              "patient (spouse, son, daughter...)")


class ConfirmationIn(_Body):
    route: str = Field(description="who confirms the deferred consent: patient or representative")
    confirmed_at: str = Field(description="when, YYYY-MM-DDTHH:MM on the site's clock; after the deadline it is "
                                          "stored and flagged late")
    signer_name: str | None = Field(None, description="route representative: the representative's name")
    signer_relationship: str | None = Field(None, description="route representative: their relationship")


class WithdrawalIn(_Body):
    scope: str = Field(description="treatment (stop study treatment only), follow_up (stop treatment and follow-up) "
                                   "or data_use (also withdraw the use of their data, where the protocol allows)")
    reason: str = Field(description="the reason, in the patient's or the representative's words (required)")
    withdrawn_at: str | None = Field(None, description="when, YYYY-MM-DDTHH:MM on the site's clock; default now")


@router.get("/trials/{trial}/patients/{patient}/consents", tags=["consent"])
def get_consents(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor),
                 db=Depends(database)) -> dict[str, Any]:
    """The patient's consents, oldest first, the consent in force and its status, and the protocol's routes."""
    with db.read() as session:
        return consent.history(session, actor, trial, patient)


@router.post("/trials/{trial}/patients/{patient}/consents", status_code=201, tags=["consent"])
def post_consent(trial: Trial, patient: PatientCode, body: ConsentIn, actor: Actor = Depends(current_actor),
                 db=Depends(database)) -> dict[str, Any]:
    """Record a consent (or a re-consent on a newer approved form version: the one in force is superseded)."""
    with db.write(trial) as session:
        return consent.record_consent(session, actor, trial, patient, body.route, body.form_version,
                                      body.consented_at, body.signer_name, body.signer_relationship)


@router.post("/trials/{trial}/patients/{patient}/consents/{consent_id}/confirmation", tags=["consent"])
def post_confirmation(trial: Trial, patient: PatientCode, consent_id: ConsentId, body: ConfirmationIn,
                      actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Confirm a deferred consent by the patient or a legally authorised representative."""
    with db.write(trial) as session:
        return consent.confirm(session, actor, trial, patient, consent_id, body.route, body.confirmed_at,
                               body.signer_name, body.signer_relationship)


@router.post("/trials/{trial}/patients/{patient}/consents/{consent_id}/withdrawal", tags=["consent"])
def post_withdrawal(trial: Trial, patient: PatientCode, consent_id: ConsentId, body: WithdrawalIn,
                    actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Record the patient's withdrawal with its scope and reason (or widen an earlier one)."""
    with db.write(trial) as session:
        return consent.withdraw(session, actor, trial, patient, consent_id, body.scope, body.reason,
                                body.withdrawn_at)


@router.get("/trials/{trial}/consents/pending", tags=["consent"])
def get_pending(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Deferred consents awaiting confirmation at your sites, the earliest deadline first; overdue ones flagged."""
    with db.read() as session:
        return consent.pending(session, actor, trial)
