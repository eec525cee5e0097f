"""Informed consent on the pages: the consent card of the patient page (`_consent.html`, with its forms to record,
confirm and withdraw a consent) and the sites' to-do list of deferred consents awaiting confirmation.

Every page calls `service.consent`, as the API does (`web/api_consent.py`), and decides nothing itself; this module
puts times into words and offers each form only to the roles that may use it (roles.PERMISSIONS).

    /trials/{trial}/consents                                         deferred consents to confirm, overdue first
    /trials/{trial}/patients/{patient}/consents                      record a consent (or a re-consent)
    /trials/{trial}/patients/{patient}/consents/{id}/confirmation    confirm a deferred consent
    /trials/{trial}/patients/{patient}/consents/{id}/withdrawal      record a withdrawal
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData

from ... import i18n
from ...protocol import Protocol
from ...service import consent, trials
from ...service.accounts import Actor
from ...service.errors import Invalid
from ...store.models import Patient
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, in_zone, render, site_zones, templates

router: APIRouter = APIRouter(include_in_schema=False)

# A status's badge (a class of app.css) on the card and the to-do list.
BADGES = {"given": "eligible", "confirmed": "eligible", "confirmed_late": "incomplete",
          "awaiting_confirmation": "visit-upcoming", "overdue": "ineligible", "withdrawn": "ineligible",
          "superseded": "visit-upcoming", "none": "incomplete"}


def route_words() -> dict[str, str]:
    """service.consent's ROUTE_LABELS, SCOPE_LABELS and STATUS_LABELS in the page's language, by code."""
    return {"patient": i18n.gettext("the patient"),
            "representative": i18n.gettext("a legally authorised representative"),
            "deferred": i18n.gettext("deferred consent (enrolment first, confirmation later)")}


def scope_words() -> dict[str, str]:
    return {"treatment": i18n.gettext("stop study treatment only (follow-up continues)"),
            "follow_up": i18n.gettext("stop study treatment and follow-up"),
            "data_use": i18n.gettext("stop treatment and follow-up and withdraw the use of their data")}


def status_words() -> dict[str, str]:
    return {"given": i18n.gettext("consent given"),
            "awaiting_confirmation": i18n.gettext("deferred: awaiting confirmation"),
            "overdue": i18n.gettext("deferred: confirmation overdue"),
            "confirmed": i18n.gettext("deferred: confirmed"),
            "confirmed_late": i18n.gettext("deferred: confirmed late"),
            "withdrawn": i18n.gettext("withdrawn"),
            "superseded": i18n.gettext("replaced by a re-consent"),
            "none": i18n.gettext("no consent recorded")}


def when(moment: str | None, zone: str | None = None) -> str:
    """A stored moment as the pages show them: to the minute, in the site's time zone (named)."""
    if not moment:
        return ""
    return in_zone(moment, zone)


def _words(item: dict[str, Any], zone: str | None = None) -> dict[str, Any]:
    routes, scopes, statuses = route_words(), scope_words(), status_words()
    named = {key: words.get(item.get(code) or "", item.get(key)) for key, code, words in (
        ("route_label", "route", routes), ("confirmed_route_label", "confirmed_route", routes),
        ("withdrawal_label", "withdrawal", scopes), ("status_label", "status", statuses)) if key in item}
    return item | named | {"badge": BADGES.get(item["status"], "incomplete"), "when": when(item["consented_at"], zone),
                   "due": when(item["confirmation_due"], zone), "confirmed": when(item["confirmed_at"], zone),
                   "withdrawn": when(item["withdrawn_at"], zone)}


def consent_card(request: Request, actor: Actor | None, protocol: Protocol, code: str) -> dict[str, Any] | None:
    """The patient page's consent card (a template global, so the patient page needs no change): None for a trial
    without a consent section or a user who may not read consent records."""
    if actor is None or protocol.consent is None or not actor.may("reading consent records"):
        return None
    with database(request).read() as session:
        view = consent.history(session, actor, protocol.id, code)
        site = session.scalar(select(Patient.site_code).where(Patient.trial_id == protocol.id, Patient.code == code))
    zone = site_zones(database(request)).get(site or "")
    rows = [_words(c, zone) for c in view["consents"]]
    current = next((c for c in rows if c["id"] == view["current"]), None)
    policy = view["policy"]
    versions = policy["form_versions"]
    newer = versions if current is None or current["form_version"] not in versions else \
        versions[versions.index(current["form_version"]) + 1:]
    recordable = current is None or (current["status"] != "withdrawn" and bool(newer))
    scopes = consent.SCOPES
    widenable = [w for w in policy["withdrawals"]
                 if current is not None and (current["withdrawal"] is None
                                             or scopes.index(w["scope"]) > scopes.index(current["withdrawal"]))]
    routes, scope_names = route_words(), scope_words()
    return view | {"rows": rows, "current_row": current, "badge": BADGES[view["status"]],
                   "status_label": status_words().get(view["status"], view.get("status_label")),
                   "may_record": actor.may("recording consent") and recordable,
                   "reconsent": current is not None, "versions": newer if current is not None else versions,
                   "routes": [r | {"label": routes.get(r["route"], r["label"])} for r in policy["routes"]
                              if current is None or r["route"] != "deferred"],
                   "may_confirm": actor.may("confirming deferred consent") and current is not None
                   and current["status"] in ("awaiting_confirmation", "overdue"),
                   "confirm_routes": [{"route": r, "label": routes.get(r, consent.ROUTE_LABELS[r])}
                                      for r in consent.CONFIRMATION_ROUTES],
                   "may_withdraw": actor.may("recording a consent withdrawal") and bool(widenable),
                   "widenable": [w | {"label": scope_names.get(w["scope"], w["label"])} for w in widenable],
                   "has_deferred": policy["deferred_confirmation_hours"] is not None}


templates.env.globals["consent_card"] = consent_card


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{name} must be text", [{"field": name, "value": None, "message": "text"}])
    return value.strip() if value and value.strip() else None


def _consent_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 9:
        raise Invalid(f"consent {raw!r} is not a consent id", [{"field": "consent", "value": raw,
                                                                "message": "a whole number"}])
    return int(raw)


def _back(trial: str, patient: str, saved: str) -> RedirectResponse:
    return RedirectResponse(f"/trials/{trial}/patients/{patient}?consent={saved}#consent", status_code=303)


@router.post("/trials/{trial}/patients/{patient}/consents")
async def record_submit(request: Request, trial: str, patient: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write(trial) as session:
        consent.record_consent(session, actor, trial, patient, _text(form, "route"), _text(form, "form_version"),
                               _text(form, "consented_at"), _text(form, "signer_name"),
                               _text(form, "signer_relationship"))
    return _back(trial, patient, "recorded")


@router.post("/trials/{trial}/patients/{patient}/consents/{consent_id}/confirmation")
async def confirm_submit(request: Request, trial: str, patient: str, consent_id: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write(trial) as session:
        consent.confirm(session, actor, trial, patient, _consent_id(consent_id), _text(form, "route"),
                        _text(form, "confirmed_at"), _text(form, "signer_name"), _text(form, "signer_relationship"))
    return _back(trial, patient, "confirmed")


@router.post("/trials/{trial}/patients/{patient}/consents/{consent_id}/withdrawal")
async def withdraw_submit(request: Request, trial: str, patient: str, consent_id: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write(trial) as session:
        consent.withdraw(session, actor, trial, patient, _consent_id(consent_id), _text(form, "scope"),
                         _text(form, "reason"), _text(form, "withdrawn_at"))
    return _back(trial, patient, "withdrawn")


@router.get("/trials/{trial}/consents", response_class=HTMLResponse)
def pending_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = consent.pending(session, actor, trial)
    zones = site_zones(database(request))
    items = [_words(i, zones.get(i.get("site") or "")) for i in view["pending"]]
    return render(request, "consents.html", protocol=protocol, t=view, items=items)
