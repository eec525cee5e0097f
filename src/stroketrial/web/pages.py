"""Server-rendered pages for site staff, the DSMB and statisticians.

Plain HTML from Jinja2 templates, a little plain JavaScript (live eligibility, one
submit per button), no build step. Signing in (service/signin.py: lockouts, Argon2 off the
event loop) starts a session kept on the server (service/sessions.py); the signed cookie carries
only its random id and the CSRF token. A session ends on signing out, when an admin deactivates the
user or resets the password, after SESSION_MINUTES without activity, and SESSION_MAX_HOURS after it
began. Every form carries a CSRF token tied to the session. Each page calls the same `service`
operations as the JSON API.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import io
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..eligibility import screen
from ..clinical import PatientDataError, parse_patient
from ..eligibility import ScreeningInputError
from ..service import dashboard, export, followup, passwords, patients, randomize, sessions, signin, trials
from ..service.accounts import RANDOMIZERS, SITE_STAFF, Actor, sees_arm
from ..service.errors import Forbidden, Invalid, ServiceError, Unauthorized
from .forms import UNIT_SUFFIX, parse_screening_form, parse_visit_form, screening_fields, visit_fields

SESSION_MINUTES = float(os.environ.get("STROKETRIAL_SESSION_MINUTES", "30"))
SESSION_MAX_HOURS = float(os.environ.get("STROKETRIAL_SESSION_MAX_HOURS", "12"))
passwords.dummy_hash()  # made now, so the first unknown user name costs no more than any other
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    def __init__(self, next_url: str, message: str = ""):
        self.next_url, self.message = next_url, message


# ---- session, actor, CSRF ------------------------------------------------------------------------
def page_actor(request: Request) -> Actor:
    sid = request.session.get("sid")
    if not sid:
        raise LoginRequired(str(request.url.path))
    try:
        return sessions.resolve(request.app.state.db, sid, idle=dt.timedelta(minutes=SESSION_MINUTES),
                                lifetime=dt.timedelta(hours=SESSION_MAX_HOURS))
    except sessions.SessionEnded as exc:
        request.session.clear()
        raise LoginRequired(str(request.url.path), exc.message) from None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise Forbidden("the form's security token is missing or stale (CSRF check); reload the page and retry")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("actor", getattr(request.state, "page_actor", None))
    return templates.TemplateResponse(request, template, {"csrf": csrf_token(request), "now": dt.datetime.now(),
                                                          **context}, status_code=status)


def _actor(request: Request) -> Actor:
    actor = page_actor(request)
    request.state.page_actor = actor
    return actor


def _db(request: Request):
    return request.app.state.db


# ---- sign in and out ------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", message: str = ""):
    return render(request, "login.html", next=next, message=message)


@router.post("/login")
async def login(request: Request):
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    address = request.client.host if request.client else "unknown"
    try:
        sid = await signin.sign_in(_db(request), name, password, address, replaces=request.session.get("sid"))
    except signin.TooManyAttempts as exc:
        response = render(request, "login.html", status=429, next=target, message=exc.message, name=name)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthorized as exc:
        return render(request, "login.html", status=401, next=target, message=exc.message, name=name)
    request.session.clear()
    request.session.update({"sid": sid, "csrf": secrets.token_urlsafe(24)})
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request):
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    sid = request.session.get("sid")
    if sid:
        def end() -> None:
            with _db(request).write() as session:
                sessions.end(session, sid, "signed_out")

        await anyio.to_thread.run_sync(end)
    request.session.clear()
    return RedirectResponse("/login?message=signed+out", status_code=303)


# ---- trials ------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    actor = _actor(request)
    with _db(request).read() as session:
        listed = trials.list_trials(session, actor)
        for t in listed:
            rows = patients.list_patients(session, actor, t["id"])
            t["registered"] = len(rows)
            t["randomized"] = sum(r["randomized"] for r in rows)
            t["awaiting"] = sum(r["status"] == "eligible" and not r["randomized"] for r in rows)
    return render(request, "home.html", trials=listed)


@router.get("/trials/{trial}", response_class=HTMLResponse)
def trial_page(request: Request, trial: str):
    actor = _actor(request)
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        rows = patients.list_patients(session, actor, trial)
    return render(request, "trial.html", protocol=protocol, patients=rows, can_screen=actor.role in SITE_STAFF,
                  shows_arm=sees_arm(actor.role, protocol.design.masking))


# ---- screening ------------------------------------------------------------------------------------------
def _screen_context(protocol, actor: Actor, sites: list[str]) -> dict[str, Any]:
    return {"protocol": protocol, "fields": screening_fields(protocol), "unit_suffix": UNIT_SUFFIX,
            "attestations": [c for c in protocol.criteria if c.attestation is not None],
            "sites": [s for s in sites if actor.can_see_site(s)]}


@router.get("/trials/{trial}/screen", response_class=HTMLResponse)
def screen_page(request: Request, trial: str):
    actor = _actor(request)
    actor.require(*SITE_STAFF, doing="screening")
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sites = trials.trial_sites(session, trial)
    return render(request, "screen.html", values={}, errors={}, result=None,
                  **_screen_context(protocol, actor, sites))


def _preview(protocol, fields, form) -> tuple[Any, dict[str, str]]:
    attestation_ids = [c.id for c in protocol.criteria if c.attestation is not None]
    data, attestations, errors = parse_screening_form(fields, form, attestation_ids)
    if attestations:
        data["attestations"] = attestations
    try:
        return screen(protocol, parse_patient(data)), errors
    except (PatientDataError, ScreeningInputError) as exc:
        errors.update({e.field: e.message for e in exc.errors})
        return None, errors


@router.post("/trials/{trial}/screen/preview", response_class=HTMLResponse)
async def screen_preview(request: Request, trial: str):
    """The live eligibility panel: criteria met, not met or open, as the form fills in (nothing stored)."""
    actor = _actor(request)
    form = await request.form()
    check_csrf(request, request.headers.get("X-CSRF-Token") or form.get("csrf"))
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
    result, errors = _preview(protocol, screening_fields(protocol), form)
    return render(request, "_eligibility.html", result=result, errors=errors)


@router.post("/trials/{trial}/screen", response_class=HTMLResponse)
async def screen_submit(request: Request, trial: str):
    actor = _actor(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sites = trials.trial_sites(session, trial)
    fields = screening_fields(protocol)
    attestation_ids = [c.id for c in protocol.criteria if c.attestation is not None]
    data, attestations, errors = parse_screening_form(fields, form, attestation_ids)
    code, site = str(form.get("patient_id", "")).strip(), str(form.get("site", ""))
    if not code:
        errors["patient_id"] = "give the patient's screening number"
    if not errors:
        try:
            with _db(request).write() as session:
                patients.register(session, actor, trial, code, site, data, attestations)
            return RedirectResponse(f"/trials/{trial}/patients/{code}", status_code=303)
        except ServiceError as exc:
            errors.update({e["field"]: e["message"] for e in exc.errors} or {"form": exc.message})
    result, _ = _preview(protocol, fields, form)
    return render(request, "screen.html", status=422, values=dict(form), errors=errors, result=result,
                  **_screen_context(protocol, actor, sites))


# ---- one patient ------------------------------------------------------------------------------------------
def _patient(request: Request, trial: str, patient: str):
    actor = _actor(request)
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = patients.get_patient(session, actor, trial, patient)
    return actor, protocol, view


@router.get("/trials/{trial}/patients/{patient}", response_class=HTMLResponse)
def patient_page(request: Request, trial: str, patient: str):
    actor, protocol, view = _patient(request, trial, patient)
    return render(request, "patient.html", protocol=protocol, p=view, can_randomize=actor.role in RANDOMIZERS,
                  shows_arm=sees_arm(actor.role, protocol.design.masking))


KEY_FACTS = ("age", "nihss", "aspects", "pc_aspects", "occlusion_site", "etici", "prestroke_mrs", "weight_kg",
             "last_known_well", "randomization")


@router.get("/trials/{trial}/patients/{patient}/randomize", response_class=HTMLResponse)
def confirm_page(request: Request, trial: str, patient: str):
    actor, protocol, view = _patient(request, trial, patient)
    actor.require(*RANDOMIZERS, doing="randomizing")
    if view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)
    facts = [(k, view["data"][k]) for k in KEY_FACTS if k in view["data"]]
    # The key is made here, once per page: a double click or a resubmitted form sends it again
    # and gets the first answer back instead of a second randomization.
    return render(request, "confirm.html", protocol=protocol, p=view, facts=facts, key=str(uuid.uuid4()))


@router.post("/trials/{trial}/patients/{patient}/randomize")
async def randomize_submit(request: Request, trial: str, patient: str):
    actor = _actor(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    if form.get("confirm") != "yes":
        raise Invalid("tick the box to confirm the eligibility facts", [{"field": "confirm", "value": None,
                                                                          "message": "required"}])
    with _db(request).write() as session:
        randomize.randomize(session, actor, trial, patient, str(form.get("key", "")))
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)


@router.get("/trials/{trial}/patients/{patient}/allocation", response_class=HTMLResponse)
def allocation_page(request: Request, trial: str, patient: str):
    _, protocol, view = _patient(request, trial, patient)
    if not view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    arm = next((a for a in protocol.arms if a.id == view["randomization"].get("arm")), None)
    return render(request, "allocation.html", protocol=protocol, p=view, r=view["randomization"], arm=arm)


@router.get("/trials/{trial}/patients/{patient}/dose", response_class=HTMLResponse)
def dose_page(request: Request, trial: str, patient: str):
    actor, protocol, view = _patient(request, trial, patient)
    with _db(request).read() as session:
        sheet = followup.dose(session, actor, trial, patient)
    arm = next((a for a in protocol.arms if a.id == sheet.get("arm")), None)
    return render(request, "dose.html", protocol=protocol, p=view, sheet=sheet, arm=arm)


def _visits(request: Request, trial: str, patient: str, status: int = 200, errors: dict | None = None,
            open_visit: str | None = None, values: dict | None = None) -> HTMLResponse:
    actor, protocol, view = _patient(request, trial, patient)
    with _db(request).read() as session:
        schedule = followup.visits(session, actor, trial, patient)
        saes = followup.list_saes(session, actor, trial, patient)
    forms = {v["visit"]: visit_fields(v["assessments"]) for v in schedule["visits"]}
    return render(request, "visits.html", status=status, protocol=protocol, p=view, schedule=schedule, forms=forms,
                  saes=saes, errors=errors or {}, open_visit=open_visit, values=values,
                  today=dt.date.today().isoformat(), can_enter=actor.role in SITE_STAFF)


@router.get("/trials/{trial}/patients/{patient}/visits", response_class=HTMLResponse)
def visits_page(request: Request, trial: str, patient: str):
    return _visits(request, trial, patient, open_visit=request.query_params.get("visit"))


@router.post("/trials/{trial}/patients/{patient}/visits/{visit}", response_class=HTMLResponse)
async def visit_submit(request: Request, trial: str, patient: str, visit: str):
    actor = _actor(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
    scheduled = next((v for v in protocol.visits if v.id == visit), None)
    fields = visit_fields(scheduled.assessments) if scheduled else []
    values, errors = parse_visit_form(fields, form)
    if not errors:
        try:
            with _db(request).write() as session:
                followup.record_visit(session, actor, trial, patient, visit, str(form.get("visit_date", "")),
                                      values, str(form.get("reason", "")) or None)
            return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#{visit}", status_code=303)
        except ServiceError as exc:
            errors = {e["field"]: e["message"] for e in exc.errors} or {"form": exc.message}
    return _visits(request, trial, patient, status=422, errors=errors, open_visit=visit, values=dict(form))


@router.post("/trials/{trial}/patients/{patient}/sae", response_class=HTMLResponse)
async def sae_submit(request: Request, trial: str, patient: str):
    actor = _actor(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    data = {k: str(form.get(k, "")) for k in ("term", "onset_date", "outcome", "relatedness", "description")}
    data["criteria"] = list(form.getlist("criteria"))
    with _db(request).write() as session:
        followup.report_sae(session, actor, trial, patient, data)
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#saes", status_code=303)


@router.get("/trials/{trial}/patients/{patient}/unblind", response_class=HTMLResponse)
def unblind_page(request: Request, trial: str, patient: str):
    actor, protocol, view = _patient(request, trial, patient)
    actor.require("investigator", doing="emergency unblinding")
    return render(request, "unblind.html", protocol=protocol, p=view, revealed=None)


@router.post("/trials/{trial}/patients/{patient}/unblind", response_class=HTMLResponse)
async def unblind_submit(request: Request, trial: str, patient: str):
    actor = _actor(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with _db(request).write() as session:
        revealed = followup.unblind(session, actor, trial, patient, str(form.get("reason", "")))
    _, protocol, view = _patient(request, trial, patient)
    arm = next(a for a in protocol.arms if a.id == revealed["arm"])
    return render(request, "unblind.html", protocol=protocol, p=view, revealed=revealed, arm=arm)


# ---- dashboards and export ------------------------------------------------------------------------------
@router.get("/trials/{trial}/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, trial: str):
    actor = _actor(request)
    with _db(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        enrolment = dashboard.enrolment(session, actor, trial)
        consort = dashboard.funnel(session, actor, trial)
        balance = dashboard.balance(session, actor, trial)
        safety = followup.safety(session, actor, trial)
    return render(request, "dashboard.html", protocol=protocol, enrolment=enrolment, chart=_enrolment_chart(enrolment),
                  consort=consort, balance=balance, safety=safety)


def _enrolment_chart(enrolment: dict[str, Any]) -> str | None:
    if not enrolment["days"]:
        return None
    # The object API, never pyplot: pyplot's global figure manager is not safe in threaded request handlers.
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    days = [dt.date.fromisoformat(d) for d in enrolment["days"]]
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.subplots()
    if len(days) == 1:
        # One day of enrolment: a step line would be invisible; show the day's count per site.
        sites = list(enrolment["cumulative_by_site"])
        counts = [c[-1] for c in enrolment["cumulative_by_site"].values()]
        ax.barh(sites, counts, color="#0b57a4")
        ax.invert_yaxis()
        ax.set_xlabel(f"patients randomized on {days[0].isoformat()}")
        for i, n in enumerate(counts):
            ax.text(n, i, f" {n}", va="center")
    else:
        start = days[0] - dt.timedelta(days=1)
        for site, cumulative in enrolment["cumulative_by_site"].items():
            ax.step([start, *days], [0, *cumulative], where="post", label=site, lw=2, marker="o", ms=3)
        ax.set_ylabel("patients randomized")
        ax.set_ylim(bottom=0)
        ax.legend(title="site", fontsize=8)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _download(request: Request, make, trial: str | None, media_type: str, filename: str) -> Response:
    actor = _actor(request)
    with _db(request).read() as session:
        content = make(session, actor, trial) if trial else make(session, actor)
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/trials/{trial}/export/csv")
def export_csv(request: Request, trial: str):
    return _download(request, export.csv_zip, trial, "application/zip", f"{trial}-data.zip")


@router.get("/trials/{trial}/export/odm")
def export_odm(request: Request, trial: str):
    return _download(request, export.odm_xml, trial, "application/xml", f"{trial}-odm.xml")


@router.get("/audit.csv")
def export_audit(request: Request):
    return _download(request, export.audit_csv, None, "text/csv", "audit-trail.csv")
