"""Safety reporting pages: a patient's adverse-event log, SAE follow-up reports (from the visits page), the trial's
SAE list with its reporting clocks (and the sponsor's assessment), and the user's notification inbox. Each calls
the same service operations as the API; a write that stores notifications is followed by sending them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...service import adverse_events, notifications, serious_adverse_events
from ...service.adverse_events import AE_ACTIONS, AE_FIELDS, AE_OUTCOMES, AE_RELATEDNESS, AE_SEVERITY
from ...service.errors import ServiceError
from ...service.serious_adverse_events import EXPECTEDNESS, SAE_RELATEDNESS
from ...service.trials import get_trial
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render
from .patients import patient_context

router: APIRouter = APIRouter(include_in_schema=False)

RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # a database integer key
AE_CHOICES = {"severity": AE_SEVERITY, "relatedness": AE_RELATEDNESS, "action_taken": AE_ACTIONS,
              "outcome": AE_OUTCOMES}


def _ae_page(request: Request, trial: str, patient: str, status: int = 200, errors: dict[str, str] | None = None,
             values: dict[str, Any] | None = None, open_ae: int | None = None) -> HTMLResponse:
    actor, protocol, view = patient_context(request, trial, patient)
    with database(request).read() as session:
        log = adverse_events.list_aes(session, actor, trial, patient)
    return render(request, "adverse_events.html", status=status, protocol=protocol, p=view, log=log,
                  choices=AE_CHOICES, errors=errors or {}, values=values or {}, open_ae=open_ae,
                  can_record=actor.may("recording an adverse event"))


@router.get("/trials/{trial}/patients/{patient}/adverse-events", response_class=HTMLResponse)
def ae_log_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _ae_page(request, trial, patient)


def _ae_form(form: Any) -> dict[str, Any]:
    return {k: str(form.get(k, "")).strip() for k in AE_FIELDS if str(form.get(k, "")).strip()}


@router.post("/trials/{trial}/patients/{patient}/adverse-events", response_class=HTMLResponse)
async def ae_record(request: Request, trial: str, patient: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    data = _ae_form(form)
    try:
        with database(request).write(trial) as session:
            adverse_events.record_ae(session, actor, trial, patient, data)
    except ServiceError as exc:
        if not exc.errors:
            raise
        return _ae_page(request, trial, patient, status=exc.status, values=data,
                        errors={e["field"]: e["message"] for e in exc.errors})
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/adverse-events", status_code=303)


@router.post("/trials/{trial}/patients/{patient}/adverse-events/{ae}", response_class=HTMLResponse)
async def ae_correct(request: Request, trial: str, patient: str, ae: RowId) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    data = _ae_form(form)
    try:
        with database(request).write(trial) as session:
            adverse_events.correct_ae(session, actor, trial, patient, ae, data, str(form.get("reason", "")))
    except ServiceError as exc:
        if not exc.errors:
            raise
        return _ae_page(request, trial, patient, status=exc.status, open_ae=ae,
                        errors={e["field"]: e["message"] for e in exc.errors})
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/adverse-events#ae-{ae}", status_code=303)


@router.post("/trials/{trial}/patients/{patient}/saes/{sae}/follow-up", response_class=HTMLResponse)
async def sae_follow_up(request: Request, trial: str, patient: str, sae: RowId) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    data: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in ("description", "awareness_at", "outcome",
                                                                       "relatedness") if str(form.get(k, "")).strip()}
    criteria = [str(c) for c in form.getlist("criteria")]
    if criteria:
        data["criteria"] = criteria
    with database(request).write(trial) as session:
        serious_adverse_events.follow_up_sae(session, actor, trial, patient, sae, data)
    notifications.deliver(database(request))
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#sae-{sae}", status_code=303)


def _flag_overdue(request: Request, trial: str | None = None) -> None:
    db = database(request)
    with db.read() as session:
        pending = serious_adverse_events.overdue_unnotified(session, trial)
    if pending:
        with db.write() as session:
            serious_adverse_events.flag_overdue(session, trial)
        notifications.deliver(db)


@router.get("/trials/{trial}/saes", response_class=HTMLResponse)
def sae_list_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = get_trial(session, actor, trial)
        saes = serious_adverse_events.trial_saes(session, actor, trial)
    _flag_overdue(request, trial)
    arms = {a.id: a.name for a in protocol.arms}
    return render(request, "sae_list.html", protocol=protocol, saes=saes, arms=arms, relatedness=SAE_RELATEDNESS,
                  expectedness=EXPECTEDNESS, can_assess=actor.may("assessing an SAE for the sponsor"))


@router.post("/trials/{trial}/patients/{patient}/saes/{sae}/assessment", response_class=HTMLResponse)
async def sae_assessment(request: Request, trial: str, patient: str, sae: RowId) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    data = {k: str(form.get(k, "")).strip() for k in ("causality", "expectedness", "comment",
                                                      "reported_to_authorities_at")
            if str(form.get(k, "")).strip() or k in ("causality", "expectedness")}
    with database(request).write(trial) as session:
        serious_adverse_events.assess_sae(session, actor, trial, patient, sae, data)
    notifications.deliver(database(request))
    return RedirectResponse(f"/trials/{trial}/saes#sae-{sae}", status_code=303)


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request) -> HTMLResponse:
    actor = signed_in(request)
    _flag_overdue(request)
    with database(request).read() as session:
        items = notifications.inbox(session, actor)
    shown = [{**i, "email": email_in_words(i["email"])} for i in items]
    return render(request, "inbox.html", items=shown, unread=sum(not i["read"] for i in items))


def email_in_words(said: str) -> str:
    """What happened to a notification's email (service.notifications.delivery) in the reader's language; a send
    error's own text stays as the mail server gave it."""
    fixed = {"email being sent": i18n.gettext("email being sent"), "email pending": i18n.gettext("email pending"),
             "not emailed: " + notifications.NO_ADDRESSES:
                 i18n.gettext("not emailed: no notification recipients of these roles in this trial"),
             "stored, not emailed: no SMTP server is configured (STROKETRIAL_SMTP_HOST)":
                 i18n.gettext("stored, not emailed: no SMTP server is configured (STROKETRIAL_SMTP_HOST)")}
    if said in fixed:
        return fixed[said]
    if (sent := re.fullmatch(r"emailed to (?P<count>\d+) address(?:es)? at (?P<at>\S+)", said)):
        count = int(sent["count"])
        return i18n.ngettext("emailed to {count} address at {at}", "emailed to {count} addresses at {at}",
                             count).format(count=count, at=sent["at"])
    if said.startswith("email failed: "):
        return i18n.gettext("email failed: {error}").format(error=said.removeprefix("email failed: "))
    return said


@router.post("/inbox/{notification}/read", response_class=HTMLResponse)
async def inbox_read(request: Request, notification: RowId) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write() as session:
        notifications.mark_read(session, actor, notification)
    return RedirectResponse(f"/inbox#n-{notification}", status_code=303)

