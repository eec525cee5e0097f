"""Data management pages: the trial's data queries (unresolved ones by site and by days open), a patient's queries
with the forms to raise, answer, close and re-open them, and the monitor's source data verification list with its
verify buttons (50 patients a page, with a patient, site and status filter). Each calls service.queries or
service.verification; each form carries the CSRF token.

The visits page shows a field's unresolved queries beside it (`_field_queries.html`, included by visits.html): the
template asks `field_queries(request, trial, patient)`, a template global defined here that reads the patient's
queries once per request for a user who may read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...protocol import Protocol
from ...service import queries, trials, verification
from ...service.accounts import Actor
from ...service.errors import ServiceError
from ...service.verification import SCREENING, VISIT_DATE
from ..csrf import check_csrf
from ..forms import _field_for, parse_visit_form, visit_fields
from .auth import signed_in
from .base import database, render, templates
from .patients import patient_context

router: APIRouter = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/management.po); it is translated where it is shown."""
    return message


STATUS_LABELS = {"open": _("open"), "answered": _("answered, awaiting review"), "closed": _("closed")}
ORIGIN_LABELS = {"manual": _("raised by a person"), "edit_check": _("edit check")}
# The service's words for forms, fields and ages (service.verification, service.queries), for the catalogs.
SERVICE_WORDS = (_("Screening"), _("whole form"), _("visit date"), _("0-7 days"), _("8-30 days"),
                 _("over 30 days"))


def _named(protocol: Protocol, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each query's or form's visit named in the protocol's words, in the page's language."""
    visits = {v.id: v for v in protocol.visits}
    return [r | {"form_name": i18n.protocol_text(visits[r["form"]], "name")} if r.get("form") in visits else r
            for r in rows]


def field_queries(request: Request, trial: str, patient: str) -> dict[str, list[dict[str, Any]]]:
    """The patient's unresolved queries by 'form/field', for the visits page (empty for a role that reads none)."""
    cached = getattr(request.state, "field_queries", None)
    if cached is not None:
        return cached
    actor: Actor | None = getattr(request.state, "page_actor", None)  # the page's user, signed in by its handler
    found: dict[str, list[dict[str, Any]]] = {}
    if actor is not None and actor.may("reading data queries"):
        with database(request).read() as session:
            for q in queries.patient_queries(session, actor, trial, patient):
                if q["status"] != "closed":
                    found.setdefault(f"{q['form']}/{q['field']}", []).append(q)
    request.state.field_queries = found
    return found


templates.env.globals["field_queries"] = field_queries


def _patient_page(request: Request, trial: str, patient: str, status: int = 200, error: str | None = None,
                  errors: dict[str, str] | None = None) -> HTMLResponse:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("reading data queries")
    with database(request).read() as session:
        listed = queries.patient_queries(session, actor, trial, patient)
        forms = queries.query_targets(session, actor, trial, patient)
    form_fields = {form: [(f, verification.field_label(protocol, form, f)) for f in fields]
                   for form, fields in forms.items()}
    visits = {v.id: v for v in protocol.visits}
    form_names = {f: i18n.protocol_text(visits[f], "name") if f in visits else verification.form_name(protocol, f)
                  for f in forms}
    return render(request, "data_queries_patient.html", status=status, protocol=protocol, p=view,
                  queries=_named(protocol, listed), form_fields=form_fields, form_names=form_names,
                  statuses=STATUS_LABELS, origins=ORIGIN_LABELS, error=error, errors=errors or {},
                  can_raise=actor.may("raising a data query"), can_answer=actor.may("answering a data query"),
                  can_close=actor.may("closing a data query"))


@router.get("/trials/{trial}/patients/{patient}/queries", response_class=HTMLResponse)
def patient_queries_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _patient_page(request, trial, patient)


def _back(trial: str, patient: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/queries{anchor}", status_code=303)


@router.post("/trials/{trial}/patients/{patient}/queries", response_class=HTMLResponse)
async def raise_submit(request: Request, trial: str, patient: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    target = str(form.get("target", ""))
    form_id, _, field = target.partition("/")
    try:
        with database(request).write(trial) as session:
            raised = queries.raise_query(session, actor, trial, patient, form_id, field, str(form.get("text", "")))
        return _back(trial, patient, f"#query-{raised['id']}")
    except ServiceError as exc:
        if exc.status == 403:
            raise
        return _patient_page(request, trial, patient, exc.status, exc.message,
                             {e["field"]: e["message"] for e in exc.errors})


def _correction(query: dict[str, Any], raw: str) -> tuple[Any, str | None]:
    """The corrected value typed on the page, as the form's field takes it."""
    if query["field"] == VISIT_DATE:
        return raw, None
    fields = [_field_for(query["field"], ())] if query["form"] == SCREENING else visit_fields([query["field"]])
    values, errors = parse_visit_form(fields, {query["field"]: raw})
    return values.get(query["field"]), errors.get(query["field"])


@router.post("/trials/{trial}/queries/{query_id}/{action}", response_class=HTMLResponse)
async def query_action(request: Request, trial: str, query_id: int, action: str) -> Response:
    """answer (with an explanation or a correction), close, reopen."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    patient = str(form.get("patient", ""))
    with database(request).read() as session:
        query = next((q for q in queries.patient_queries(session, actor, trial, patient) if q["id"] == query_id), None)
    if query is None or action not in ("answer", "close", "reopen"):
        return _patient_page(request, trial, patient, 404, i18n.gettext("no data query {query} for {patient}").format(
            query=query_id, patient=patient))
    try:
        with database(request).write(trial) as session:
            if action == "answer":
                raw = str(form.get("value", "")).strip()
                correct = form.get("correct") == "yes"
                value, problem = _correction(query, raw) if correct else (None, None)
                if problem:
                    return _patient_page(request, trial, patient, 422,
                                         i18n.gettext("query {query}: {problem}").format(query=query_id,
                                                                                        problem=problem),
                                         {f"value-{query_id}": problem})
                queries.answer_query(session, actor, trial, query_id, str(form.get("answer", "")), correct, value)
            elif action == "close":
                queries.close_query(session, actor, trial, query_id, str(form.get("note", "")) or None)
            else:
                queries.reopen_query(session, actor, trial, query_id, str(form.get("reason", "")))
        return _back(trial, patient, f"#query-{query_id}")
    except ServiceError as exc:
        if exc.status == 403:
            raise
        return _patient_page(request, trial, patient, exc.status,
                             i18n.gettext("query {query}: {problem}").format(query=query_id, problem=exc.message))


@router.get("/trials/{trial}/queries", response_class=HTMLResponse)
def trial_queries_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    status = request.query_params.get("status") or None
    site = request.query_params.get("site") or None
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        listed = queries.trial_queries(session, actor, trial, status=status, site=site)
    listed = listed | {"queries": _named(protocol, listed["queries"])}
    return render(request, "data_queries.html", protocol=protocol, listed=listed, chosen_status=status, site=site,
                  statuses=STATUS_LABELS, origins=ORIGIN_LABELS)


@router.get("/trials/{trial}/verification", response_class=HTMLResponse)
def verification_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        listed = verification.verification_list(session, actor, trial)
    chosen = _sdv_filters(request.query_params)
    shown, page, pages, total = _sdv_page(listed["patients"], chosen)
    sites = sorted({pt["site"] for pt in listed["patients"]})
    listed = listed | {"patients": [pt | {"forms": _named(protocol, pt["forms"])} for pt in shown]}
    form_names = list(dict.fromkeys(f["form_name"] for pt in listed["patients"] for f in pt["forms"]))
    links = {n: "?" + urlencode({k: v for k, v in (chosen | {"page": str(n)}).items() if v})
             for n in (page - 1, page + 1)}
    return render(request, "verification.html", protocol=protocol, listed=listed, form_names=form_names,
                  can_verify=actor.may("verifying source data"), chosen=chosen, sdv_statuses=SDV_STATUSES,
                  sites=sites, page=page, pages=pages, total=total, first=(page - 1) * SDV_PAGE + 1,
                  links=links, back=urlencode({k: v for k, v in (chosen | {"page": str(page)}).items() if v}))


SDV_PAGE = 50  # patients a page: a monitor's visit covers a site's few dozen patients
SDV_STATUSES = {"never": _("never verified"), "cleared": _("changed since: verify again"), "verified": _("verified")}


def _sdv_filters(params: Mapping[str, str]) -> dict[str, str]:
    """The verification list's filters from a query string: a patient (part of the number), a site, a status, the
    page; anything else is dropped."""
    status = params.get("status") or ""
    return {"patient": (params.get("patient") or "").strip(), "site": (params.get("site") or "").strip(),
            "status": status if status in SDV_STATUSES else "", "page": params.get("page") or ""}


def _sdv_page(patients: list[dict[str, Any]], chosen: dict[str, str]) -> tuple[list[dict[str, Any]], int, int, int]:
    """(the patients on the chosen page, the page, the number of pages, the patients matching the filters): a
    patient matches a status when one of its forms has it."""
    wanted = chosen["patient"].casefold()
    matching = [pt for pt in patients if wanted in pt["patient_id"].casefold()
                and (not chosen["site"] or pt["site"] == chosen["site"])
                and (not chosen["status"] or any(f["status"] == chosen["status"] for f in pt["forms"]))]
    pages = max(1, -(-len(matching) // SDV_PAGE))
    asked = chosen["page"]
    # isascii: "²" is a digit to str.isdigit but not to int()
    page = min(max(int(asked) if asked.isascii() and asked.isdigit() and len(asked) < 8 else 1, 1), pages)
    return matching[(page - 1) * SDV_PAGE:page * SDV_PAGE], page, pages, len(matching)


@router.post("/trials/{trial}/patients/{patient}/verify", response_class=HTMLResponse)
async def verify_submit(request: Request, trial: str, patient: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write(trial) as session:
        verification.verify_form(session, actor, trial, patient, str(form.get("form", "")),
                                 str(form.get("field", "")) or None)
    back = urlencode({k: v for k, v in _sdv_filters(dict(parse_qsl(str(form.get("back", ""))))).items() if v})
    return RedirectResponse(f"/trials/{trial}/verification{'?' + back if back else ''}#{patient}", status_code=303)
