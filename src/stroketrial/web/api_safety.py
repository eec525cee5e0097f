"""The JSON API of safety reporting: a patient's adverse-event log, SAE follow-up reports and the sponsor's
assessment, the trial's SAE list with its reporting clocks, the user's notification inbox, and the trial's
notification recipients. Thin calls into service.adverse_events, serious_adverse_events and notifications; each
write is followed by sending the notifications it stored (after the commit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import Field

from ..service import adverse_events, notifications, serious_adverse_events
from ..service.accounts import Actor
from .api import PatientCode, Trial, _Body, current_actor, database, router

ROW_ID_MAX = 2**31 - 1  # a database integer key
SaeId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="the SAE's id (`GET .../saes`)")]
AeId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="the adverse event's id (`GET .../adverse-events`)")]
NotificationId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="the notification's id (`GET /inbox`)")]


class AdverseEventIn(_Body):
    # Typed loosely on purpose: the service checks every field and names each one refused, in one answer.
    term: Any = Field(None, description="the event, in words (at most 200 characters)")
    coded_term: Any = Field(None, description="optional MedDRA-style preferred term (free text: no licensed "
                                              "dictionary ships)")
    system_organ_class: Any = Field(None, description="optional MedDRA-style system organ class (free text)")
    onset_date: Any = Field(None, description="YYYY-MM-DD")
    severity: Any = Field(None, description="mild, moderate, severe")
    relatedness: Any = Field(None, description="not_related, unlikely, possible, probable, definite")
    action_taken: Any = Field(None, description="none, dose_interrupted, drug_withdrawn, other")
    outcome: Any = Field(None, description="recovered, recovering, not_recovered, recovered_with_sequelae, fatal, "
                                           "unknown")


class AdverseEventCorrection(AdverseEventIn):
    reason: Any = Field(None, description="why the recorded event changes (at most 2000 characters)")


class SaeFollowUpIn(_Body):
    description: Any = Field(None, description="what the follow-up adds, in words (required, at most 4000 "
                                                "characters)")
    awareness_at: Any = Field(None, description="when the site learned it, YYYY-MM-DDTHH:MM (site clock, or with a "
                                                 "UTC offset); default now")
    term: Any = Field(None, description="a better term for the event")
    coded_term: Any = Field(None, description="MedDRA-style preferred term (free text)")
    system_organ_class: Any = Field(None, description="MedDRA-style system organ class (free text)")
    onset_date: Any = Field(None, description="YYYY-MM-DD")
    criteria: Any = Field(None, description="the seriousness criteria now (the whole list)")
    outcome: Any = Field(None, description="the outcome now")
    relatedness: Any = Field(None, description="the investigator's causality now")


class SponsorAssessmentIn(_Body):
    causality: Any = Field(None, description="the sponsor's causality: not_related, unlikely, possible, probable, "
                                             "definite")
    expectedness: Any = Field(None, description="expected or unexpected, against the protocol's reference safety "
                                                "information")
    comment: Any = Field(None, description="the assessment's reasoning (at most 2000 characters)")
    reported_to_authorities_at: Any = Field(None, description="when the SUSAR was submitted to the authorities, "
                                                              "YYYY-MM-DDTHH:MM; stops the SUSAR clock")


class RecipientIn(_Body):
    email: str = Field(description="the address", max_length=254)
    role: str = Field(description="the recipient's role: which notifications it receives, and whether they may "
                                  "name the arm")
    language: str | None = Field(None, description="the language of its emails (en or zh_Hans); none: English "
                                                   "followed by the Chinese text")


def _given(body: _Body) -> dict[str, Any]:
    return body.model_dump(exclude_none=True)


@router.post("/trials/{trial}/patients/{patient}/adverse-events", status_code=201, tags=["safety"])
def post_adverse_event(trial: Trial, patient: PatientCode, body: AdverseEventIn,
                       actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Record a non-serious adverse event (a serious one goes on the SAE form)."""
    with db.write(trial) as session:
        return adverse_events.record_ae(session, actor, trial, patient, _given(body))


@router.get("/trials/{trial}/patients/{patient}/adverse-events", tags=["safety"])
def get_adverse_events(trial: Trial, patient: PatientCode, actor: Actor = Depends(current_actor),
                       db=Depends(database)) -> list[dict[str, Any]]:
    with db.read() as session:
        return adverse_events.list_aes(session, actor, trial, patient)


@router.put("/trials/{trial}/patients/{patient}/adverse-events/{ae}", tags=["safety"])
def put_adverse_event(trial: Trial, patient: PatientCode, ae: AeId, body: AdverseEventCorrection,
                      actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """Correct a recorded adverse event: every field as it should be, and the reason."""
    data = _given(body)
    reason = data.pop("reason", None)
    with db.write(trial) as session:
        return adverse_events.correct_ae(session, actor, trial, patient, ae, data, reason)


@router.post("/trials/{trial}/patients/{patient}/saes/{sae}/follow-ups", status_code=201, tags=["safety"])
def post_sae_follow_up(trial: Trial, patient: PatientCode, sae: SaeId, body: SaeFollowUpIn,
                       actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """A follow-up report by the site; an upgrade (now fatal or life-threatening, or a SUSAR) notifies."""
    with db.write(trial) as session:
        result = serious_adverse_events.follow_up_sae(session, actor, trial, patient, sae, _given(body))
    notifications.deliver(db)
    return result


@router.post("/trials/{trial}/patients/{patient}/saes/{sae}/sponsor-assessment", status_code=201, tags=["safety"])
def post_sponsor_assessment(trial: Trial, patient: PatientCode, sae: SaeId, body: SponsorAssessmentIn,
                            actor: Actor = Depends(current_actor), db=Depends(database)) -> dict[str, Any]:
    """The sponsor's pharmacovigilance assesses causality and expectedness, and records the SUSAR's submission."""
    with db.write(trial) as session:
        result = serious_adverse_events.assess_sae(session, actor, trial, patient, sae, _given(body))
    notifications.deliver(db)
    return result


def flag_overdue(db, trial: str | None = None) -> None:
    """Overdue reports become notifications when someone looks (the platform has no scheduler)."""
    with db.read() as session:
        pending = serious_adverse_events.overdue_unnotified(session, trial)
    if pending:
        with db.write() as session:
            serious_adverse_events.flag_overdue(session, trial)
        notifications.deliver(db)


@router.get("/trials/{trial}/saes", tags=["safety"])
def get_trial_saes(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)
                   ) -> list[dict[str, Any]]:
    """Every SAE of the trial at the user's sites with its reporting clocks: the initial report (24 h from the
    site's awareness) and, for a SUSAR, the report to the authorities (7 days if fatal or life-threatening, else
    15); `overdue` flags each one late or past due."""
    with db.read() as session:
        result = serious_adverse_events.trial_saes(session, actor, trial)
    flag_overdue(db, trial)
    return result


@router.get("/inbox", tags=["notifications"])
def get_inbox(unread: bool = False, actor: Actor = Depends(current_actor), db=Depends(database)
              ) -> list[dict[str, Any]]:
    """The notifications for the user's role at its sites, newest first, with what happened to each email."""
    flag_overdue(db)
    with db.read() as session:
        return notifications.inbox(session, actor, unread_only=unread)


@router.post("/inbox/{notification}/read", tags=["notifications"])
def post_inbox_read(notification: NotificationId, actor: Actor = Depends(current_actor), db=Depends(database)
                    ) -> dict[str, Any]:
    with db.write() as session:
        return notifications.mark_read(session, actor, notification)


@router.get("/trials/{trial}/notification-recipients", tags=["notifications"])
def get_recipients(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)
                   ) -> list[dict[str, Any]]:
    with db.read() as session:
        return notifications.recipients(session, actor, trial)


@router.post("/trials/{trial}/notification-recipients", status_code=201, tags=["notifications"])
def post_recipient(trial: Trial, body: RecipientIn, actor: Actor = Depends(current_actor), db=Depends(database)
                   ) -> dict[str, Any]:
    """The admin adds an address (again: changes its role)."""
    with db.write(trial) as session:
        return notifications.add_recipient(session, actor, trial, body.email, body.role, body.language)


@router.delete("/trials/{trial}/notification-recipients/{email}", status_code=204, tags=["notifications"])
def delete_recipient(trial: Trial, email: str, actor: Actor = Depends(current_actor), db=Depends(database)) -> None:
    with db.write(trial) as session:
        notifications.remove_recipient(session, actor, trial, email)
