"""Record signatures and data locks on the pages: the casebook's signatures on the patient's page (each valid,
invalidated with why, or changed around the platform) with the investigator's "Sign the casebook" form (the
meaning, and the password entered again, as the committee's signing page does), and the trial's freezes and
locks for the data manager and the admin (set, release with a reason).

Every page calls `service.record_signatures` and `service.locks`, as the API does (`web/api_signatures_locks.py`).

    /trials/{trial}/patients/{patient}/sign     the investigator signs the patient's casebook
    /trials/{trial}/locks                        the trial's freezes and locks; freeze or lock; release
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...protocol import Protocol
from ...service import locks, patients, record_signatures, signatures, trials
from ...service.accounts import Actor
from ...service.errors import Forbidden, NotFound, ServiceError, Unauthorized
from ...service.throttle import TooManyAttempts
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render, templates
from .escalation import when

router: APIRouter = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/management.po); it is translated where it is shown."""
    return message


# The meanings a signature can have (service.record_signatures.MEANINGS) and what the casebook covers, for the
# catalogs: the page shows them translated; the signature keeps the English.
MEANING_WORDS = (
    _("I have reviewed the data of {what} and confirm that they are accurate and complete."),
    _("As the investigator responsible for this patient, I approve the data of {what} as recorded."),
    _("I am the author of the data of {what}, and I confirm that they are accurate and complete."),
    _("this patient's casebook (screening, every visit form and the SAE reports)"),
    _("freeze"), _("lock"),
)
STATE_MARKS = {"valid": ("eligible", "valid"), "invalidated": ("ineligible", "invalidated"),
               "mismatch": ("ineligible", "changed around the platform")}


def _meanings(protocol: Protocol) -> list[dict[str, str]]:
    what = i18n.gettext(record_signatures.CASEBOOK_WORDS)
    return [{"code": code, "text": i18n.gettext(record_signatures.MEANINGS[code]).format(what=what)}
            for code in record_signatures.MEANINGS]


def _covers(protocol: Protocol, lock: dict[str, Any]) -> str:
    """What a freeze or lock covers, in the page's language: the whole trial, a patient, or a form of a patient."""
    if lock["patient_id"] is None:
        return i18n.gettext("the whole trial")
    if lock["form"] is None:
        return i18n.gettext("patient {patient}").format(patient=lock["patient_id"])
    visit = next((v for v in protocol.visits if v.id == lock["form"]), None)
    names = {locks.SCREENING_FORM: i18n.gettext("Screening"), locks.AE_FORM: i18n.gettext("the adverse event log"),
             locks.SAE_FORM: i18n.gettext("the SAE reports")}
    name = i18n.protocol_text(visit, "name") if visit is not None else names.get(lock["form"], lock["form"])
    return i18n.gettext("{form} of patient {patient}").format(form=name, patient=lock["patient_id"])


def _marked(signature: dict[str, Any]) -> dict[str, Any]:
    badge, words = STATE_MARKS[signature["state"]]
    return signature | {"badge": badge, "words": words, "when": when(signature["signed_at"])}


def casebook_panel(request: Request, trial: str, patient: str) -> dict[str, Any] | None:
    """What the patient page's signatures panel shows (None for a user who may not read signatures): the
    signatures with their state, the freezes and locks in force over the patient, and whether to offer signing."""
    actor: Actor | None = getattr(request.state, "page_actor", None)
    if actor is None or not actor.may(record_signatures.READING):
        return None
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        found = record_signatures.list_signatures(session, actor, trial, patient)
        in_force = locks.list_locks(session, actor, trial, patient, in_force_only=True)
    return {"signatures": [_marked(s) for s in found], "locks": in_force,
            "can_sign": actor.may(record_signatures.SIGNING), "meanings": _meanings(protocol),
            "casebook_valid": any(s["form"] == record_signatures.CASEBOOK and s["state"] == "valid" for s in found)}


templates.env.globals["casebook_panel"] = casebook_panel


def _sign_form(request: Request, trial: str, patient: str, status: int = 200, errors: dict[str, str] | None = None,
               values: dict[str, str] | None = None) -> HTMLResponse:
    actor = signed_in(request)
    actor.require(record_signatures.SIGNING)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = patients.get_patient(session, actor, trial, patient)
    return render(request, "record_sign.html", status=status, protocol=protocol, p=view,
                  panel=casebook_panel(request, trial, patient), what=record_signatures.CASEBOOK_WORDS,
                  meanings=_meanings(protocol), errors=errors or {}, values=values or {})


@router.get("/trials/{trial}/patients/{patient}/sign", response_class=HTMLResponse)
def sign_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _sign_form(request, trial, patient)


@router.post("/trials/{trial}/patients/{patient}/sign", response_class=HTMLResponse)
async def sign_submit(request: Request, trial: str, patient: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    actor.require(record_signatures.SIGNING)
    values = {"meaning": str(form.get("meaning") or "")}

    def sign() -> None:
        signature = signatures.sign(database(request), actor, str(form.get("password") or ""),
                                    request.client.host if request.client else "unknown")
        with database(request).write() as session:
            record_signatures.sign_record(session, actor, trial, patient, None, values["meaning"] or None, signature)

    status, errors = 422, {}
    try:
        if values["meaning"] not in record_signatures.MEANINGS:  # before the password is checked: no guess counted
            errors = {"meaning": i18n.gettext("choose what your signature means")}
        else:
            await anyio.to_thread.run_sync(sign)  # Argon2, off the event loop (as signing in is)
            return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    except (Forbidden, NotFound):
        raise
    except (Unauthorized, TooManyAttempts) as exc:  # a wrong password, or too many of them
        status, errors = exc.status, {"password": exc.message}
    except ServiceError as exc:
        status, errors = exc.status, {e["field"]: str(e["message"]) for e in exc.errors} or {"form": exc.message}
    return _sign_form(request, trial, patient, status=status, errors=errors, values=values)


def _locks_page(request: Request, trial: str, status: int = 200, message: str | None = None,
                values: dict[str, str] | None = None) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        found = locks.list_locks(session, actor, trial)
    for lock in found:
        lock["when"] = when(lock["locked_at"])
        lock["released_when"] = when(lock["released_at"]) if lock["released_at"] else ""
        lock["releasable"] = lock["in_force"] and actor.may(locks.RELEASING[lock["level"]])
        lock["covers_words"] = _covers(protocol, lock)
    forms = [(locks.SCREENING_FORM, i18n.gettext("Screening")), (locks.AE_FORM, i18n.gettext("Adverse event log")),
             (locks.SAE_FORM, i18n.gettext("SAE reports (a lock marks later reports; they are never refused)")),
             *((v.id, i18n.protocol_text(v, "name")) for v in protocol.visits if v.arms is None)]
    return render(request, "locks.html", status=status, protocol=protocol, locks=found, message=message,
                  can_lock=actor.may(locks.SETTING), forms=forms, values=values or {})


@router.get("/trials/{trial}/locks", response_class=HTMLResponse)
def locks_page(request: Request, trial: str) -> HTMLResponse:
    signed_in(request).require(locks.READING)
    return _locks_page(request, trial)


@router.post("/trials/{trial}/locks", response_class=HTMLResponse)
async def lock_submit(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    values = {k: str(form.get(k) or "").strip() for k in ("level", "reason", "patient_id", "form")}
    try:
        with database(request).write(trial) as session:
            locks.lock(session, actor, trial, values["level"], values["reason"], values["patient_id"] or None,
                       values["form"] or None)
    except Forbidden:
        raise
    except ServiceError as exc:
        return _locks_page(request, trial, status=exc.status, message=exc.message, values=values)
    return RedirectResponse(f"/trials/{trial}/locks", status_code=303)


@router.post("/trials/{trial}/locks/{lock_id}/release", response_class=HTMLResponse)
async def release_submit(request: Request, trial: str, lock_id: int) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    try:
        with database(request).write(trial) as session:
            locks.release(session, actor, trial, lock_id, str(form.get("reason") or ""))
    except Forbidden:
        raise
    except ServiceError as exc:
        return _locks_page(request, trial, status=exc.status, message=exc.message)
    return RedirectResponse(f"/trials/{trial}/locks", status_code=303)
