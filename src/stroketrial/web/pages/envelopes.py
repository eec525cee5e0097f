"""Sealed emergency envelopes on the pages: the site's procedure when the platform cannot be reached, each site's
sets with the next envelope of each stratum, making and printing a set (unblinded pharmacist, or the admin of a
trial where the admin sees arms), and recording an envelope the site opened, once the link returns.

    /trials/{trial}/envelopes                  the procedure, the sets, the forms
    /trials/{trial}/envelopes/opened    POST   record an opened envelope (then the patient's allocation)
    /trials/{trial}/envelopes/sets      POST   make a site's set
    /trials/{trial}/envelopes/sets/{id}/print  POST   the set as a PDF to print
    /trials/{trial}/envelopes/sets/{id}/void   POST   void a set's sealed envelopes, with the reason
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...service import envelopes, trials
from ...service.blinding import sees_arm
from ...service.errors import Invalid
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render

router: APIRouter = APIRouter(include_in_schema=False)


@router.get("/trials/{trial}/envelopes", response_class=HTMLResponse)
def envelopes_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sets = envelopes.list_sets(session, actor, trial)
        status = envelopes.randomization_status(session, actor, trial)
        sites = [s for s in trials.trial_sites(session, trial) if actor.can_see_site(s)]
    return render(request, "envelopes.html", protocol=protocol, sets=sets, platform=status, sites=sites,
                  arm_names={a.id: i18n.protocol_text(a, "name") for a in protocol.arms},
                  can_generate=actor.may("generating emergency envelopes")
                  and sees_arm(actor.role, protocol.design.masking),
                  can_record=actor.may("recording an opened envelope"),
                  kits=protocol.randomization is not None and protocol.randomization.blinded_kits)


@router.post("/trials/{trial}/envelopes/opened")
async def record_opened(request: Request, trial: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    patient = str(form.get("patient_id", "")).strip()
    with database(request).write(trial) as session:
        envelopes.record_opened(session, actor, trial, str(form.get("envelope", "")), str(form.get("check_code", "")),
                                patient, str(form.get("opened_at", "")), str(form.get("allocation", "")) or None)
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)


@router.post("/trials/{trial}/envelopes/sets")
async def generate_set(request: Request, trial: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    per_stratum = str(form.get("per_stratum", "")).strip()
    if per_stratum and not per_stratum.isdigit():
        raise Invalid(i18n.gettext("envelopes per stratum {value} is not a whole number").format(
            value=repr(per_stratum)), [{"field": "per_stratum", "value": per_stratum,
                                        "message": i18n.gettext("a whole number from 1 to 100")}])
    with database(request).write(trial) as session:
        envelopes.generate(session, actor, trial, str(form.get("site", "")), int(per_stratum) if per_stratum else None)
    return RedirectResponse(f"/trials/{trial}/envelopes", status_code=303)


@router.post("/trials/{trial}/envelopes/sets/{set_id}/print")
async def print_set(request: Request, trial: str, set_id: int) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    # The set is printed in the language chosen on the page (a site's nurses may read Chinese), else the page's.
    language = str(form.get("language") or i18n.current())
    with i18n.use(language), database(request).write(trial) as session:
        pdf, filename = envelopes.set_pdf(session, actor, trial, set_id)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/trials/{trial}/envelopes/sets/{set_id}/void")
async def void_set(request: Request, trial: str, set_id: int) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write(trial) as session:
        envelopes.void_set(session, actor, trial, set_id, str(form.get("reason", "")))
    return RedirectResponse(f"/trials/{trial}/envelopes", status_code=303)
