"""The DSMB's page of a trial: the interim looks with their boundary and what the rule recommends, the DSMB's
signed decision, the safety monitoring rules, and the closed and open reports (generate, download, the archive).

What a user sees follows the service: the looks, the rules and closed reports only for those who see arms, the open
reports for the steering committee and the blinded roles. Every action calls `service.interim_analyses` or
`service.dsmb_reports`, as the API does (`web/api_interim.py`).

    /trials/{trial}/dsmb                              the page
    /trials/{trial}/dsmb/looks                        run the next look (the statistician, on frozen data)
    /trials/{trial}/dsmb/looks/{look}/decision        the DSMB's decision, signed with the password
    /trials/{trial}/dsmb/reports                      generate a closed or open report
    /trials/{trial}/dsmb/reports/{number}.{fmt}       a kept report, as HTML or PDF
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...design import interim
from ...service import dsmb_reports, interim_analyses, safety_monitoring, signatures, trials
from ...service.errors import Forbidden, NotFound, ServiceError, Unauthorized
from ...service.throttle import TooManyAttempts
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render
from .escalation import when

router: APIRouter = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/dsmb.po); it is translated where it is shown."""
    return message


# The DSMB's decisions (interim_analyses.DECISIONS) and the rule's recommendations (design/interim.py) in words.
DECISION_WORDS = {"continue": _("continue"), "modify": _("modify the trial"),
                  "stop for efficacy": _("stop for efficacy"), "stop for harm": _("stop for harm"),
                  "stop for futility": _("stop for futility")}
RECOMMENDATION_WORDS = {**DECISION_WORDS, interim.NOT_SIGNIFICANT: _("final analysis: the boundary was not crossed")}
KIND_WORDS = {"closed": _("closed report (by arm)"), "open": _("open report (all patients pooled)")}
SPENDING_WORDS = {"obf": _("O'Brien-Fleming-type"), "pocock": _("Pocock-type")}
EVENT_WORDS = {"death": _("death"), "sich": _("symptomatic intracranial haemorrhage")}


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _look_row(look: dict[str, Any]) -> dict[str, Any]:
    result = look["look_result"]
    decision = look.get("decision")
    return {"number": look["look"], "patients": look["patients_observed"], "total": look["information_total"],
            "information": _percent(look["information"]), "z": f"{look['z']:.3f}",
            "efficacy_bound": f"{result['efficacy_bound']:.3f}",
            "futility_bound": "" if result.get("futility_bound") is None else f"{result['futility_bound']:.3f}",
            "harm_bound": "" if result.get("harm_bound") is None else f"{result['harm_bound']:.3f}",
            "alpha_spent": f"{result['alpha_spent']:.5f}",
            "cp_planned": _percent(result.get("conditional_power_planned")),
            "cp_trend": _percent(result.get("conditional_power_trend")),
            "pp": _percent(result.get("predictive_probability")),
            "recommendation": i18n.gettext(RECOMMENDATION_WORDS.get(look["recommendation"],
                                                                   look["recommendation"])),
            "run": f"{look['run_by']}, {when(look['run_at'])}",
            "decision": None if decision is None else {
                "words": i18n.gettext(DECISION_WORDS[decision["decision"]]), "reason": decision["reason"],
                "by": decision["decided_by"], "when": when(decision["decided_at"])}}


def _page(request: Request, trial: str, status: int = 200, message: str | None = None,
          errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _t, protocol = trials.get_trial(session, actor, trial)
        closed = dsmb_reports.may_read(actor, protocol, "closed")
        if not closed and not dsmb_reports.may_read(actor, protocol, "open"):
            actor.require(dsmb_reports.READING["open"])
        looks = interim_analyses.list_looks(session, actor, trial) if closed and protocol.interim else []
        rules = safety_monitoring.status(session, actor, trial) if closed else []
        reports = dsmb_reports.list_reports(session, actor, trial)
    arms = {a.id: a for a in protocol.arms}
    rule_rows = []
    for rule in rules:
        arm = arms.get(rule["arm"]) if rule["arm"] else None
        rule_rows.append({"event": i18n.gettext(EVENT_WORDS[rule["event"]]),
                          "where": i18n.protocol_text(arm, "name") if arm else i18n.gettext("all patients"),
                          "events": f"{rule['events']}/{rule['patients']}", "rate": _percent(rule["rate"]),
                          "expected": _percent(rule["expected_rate"]),
                          "probability": f"{rule['probability_above_expected']:.3f}", "bound": f"{rule['bound']:g}",
                          "crossed": rule["crossed"]})
    rows = [_look_row(look) for look in looks]
    undecided = next((r for r in reversed(rows) if r["decision"] is None), None)
    for r in reports:
        r["kind_words"] = i18n.gettext(KIND_WORDS[r["kind"]])
        r["when"] = when(r["generated_at"])
    return render(request, "dsmb.html", status=status, protocol=protocol, closed=closed, looks=rows,
                  planned=protocol.interim, rules=rule_rows,
                  spending=i18n.gettext(SPENDING_WORDS[protocol.interim.spending]) if protocol.interim else "",
                  reports=reports, undecided=undecided,
                  may_run=closed and actor.may(interim_analyses.RUNNING) and protocol.interim is not None,
                  may_decide=closed and actor.may(interim_analyses.DECIDING),
                  may_generate={k: actor.may(dsmb_reports.GENERATING[k]) and (k == "open" or closed)
                                for k in dsmb_reports.KINDS},
                  decisions=[(d, i18n.gettext(DECISION_WORDS[d])) for d in interim_analyses.DECISIONS],
                  message=message, errors=errors or {}, values=values or {})


@router.get("/trials/{trial}/dsmb", response_class=HTMLResponse)
def dsmb_page(request: Request, trial: str) -> HTMLResponse:
    return _page(request, trial)


@router.post("/trials/{trial}/dsmb/looks", response_class=HTMLResponse)
async def run_look(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    try:
        with database(request).write(trial) as session:
            look = interim_analyses.run_look(session, actor, trial)
    except (Forbidden, NotFound):
        raise
    except ServiceError as exc:
        return _page(request, trial, status=exc.status, message=exc.message)
    return RedirectResponse(f"/trials/{trial}/dsmb#look-{look['look']}", status_code=303)


@router.post("/trials/{trial}/dsmb/looks/{look}/decision", response_class=HTMLResponse)
async def decide(request: Request, trial: str, look: int) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    actor.require(interim_analyses.DECIDING)
    values = {"decision": str(form.get("decision") or ""), "reason": str(form.get("reason") or "")}

    def sign_and_record() -> None:
        signature = signatures.sign(database(request), actor, str(form.get("password") or ""),
                                    request.client.host if request.client else "unknown")
        with database(request).write() as session:
            interim_analyses.record_decision(session, actor, trial, look, values["decision"], values["reason"],
                                             signature)

    errors: dict[str, str] = {}
    if values["decision"] not in interim_analyses.DECISIONS:  # before the password is checked: no guess counted
        errors["decision"] = i18n.gettext("choose the DSMB's decision")
    if not values["reason"].strip():
        errors["reason"] = i18n.gettext("give the reason for the decision")
    if errors:
        return _page(request, trial, status=422, errors=errors, values=values)
    try:
        await anyio.to_thread.run_sync(sign_and_record)  # Argon2, off the event loop (as signing in is)
    except (Forbidden, NotFound):
        raise
    except (Unauthorized, TooManyAttempts) as exc:
        return _page(request, trial, status=exc.status, errors={"password": exc.message}, values=values)
    except ServiceError as exc:
        return _page(request, trial, status=exc.status, message=exc.message, values=values)
    return RedirectResponse(f"/trials/{trial}/dsmb#look-{look}", status_code=303)


@router.post("/trials/{trial}/dsmb/reports", response_class=HTMLResponse)
async def generate(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    kind = str(form.get("kind") or "")

    def make() -> dict[str, Any]:
        with database(request).write() as session:
            return dsmb_reports.generate(session, actor, trial, kind)

    try:
        made = await anyio.to_thread.run_sync(make)  # the analyses and the PDF take seconds: off the event loop
    except (Forbidden, NotFound):
        raise
    except ServiceError as exc:
        return _page(request, trial, status=exc.status, message=exc.message)
    return RedirectResponse(f"/trials/{trial}/dsmb#report-{made['number']}", status_code=303)


@router.get("/trials/{trial}/dsmb/reports/{number}.{fmt}")
def download(request: Request, trial: str, number: int, fmt: Literal["html", "pdf"]) -> Response:
    actor = signed_in(request)
    with database(request).read() as session:
        content, media, name = dsmb_reports.document(session, actor, trial, number, fmt)
    disposition = "inline" if fmt == "html" else "attachment"
    return Response(content, media_type=media, headers={"Content-Disposition": f'{disposition}; filename="{name}"'})
