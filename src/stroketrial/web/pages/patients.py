"""One patient: the patient's page, randomization (confirm, then submit once) and the allocation."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...protocol import Protocol
from ...service import envelopes, patients, randomize, trials
from ...service.accounts import Actor, sees_arm
from ...service.errors import Invalid
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render

router = APIRouter(include_in_schema=False)

KEY_FACTS = ("age", "nihss", "aspects", "pc_aspects", "occlusion_site", "etici", "prestroke_mrs", "weight_kg",
             "last_known_well", "randomization")


def patient_context(request: Request, trial: str, patient: str) -> tuple[Actor, Protocol, dict[str, Any]]:
    """(the signed-in user, the trial's protocol, the patient as this user may see it)."""
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = patients.get_patient(session, actor, trial, patient)
    return actor, protocol, view


@router.get("/trials/{trial}/patients/{patient}", response_class=HTMLResponse)
def patient_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    from .escalation import escalation_table_for  # here: escalation.py builds on this module

    actor, protocol, view = patient_context(request, trial, patient)
    return render(request, "patient.html", protocol=protocol, p=view, can_randomize=actor.may("randomizing"),
                  shows_arm=sees_arm(actor.role, protocol.design.masking),
                  escalation=escalation_table_for(request, actor, trial, protocol))


@router.get("/trials/{trial}/patients/{patient}/randomize", response_class=HTMLResponse)
def confirm_page(request: Request, trial: str, patient: str) -> Response:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("randomizing")
    if view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)
    facts = [(k, view["data"][k]) for k in KEY_FACTS if k in view["data"]]
    # The key is made here, once per page: a double click or a resubmitted form sends it again
    # and gets the first answer back instead of a second randomization.
    with database(request).read() as session:  # the site's envelope procedure, should the link fail
        envelope = envelopes.procedure_for_patient(session, actor, trial, patient)
    return render(request, "confirm.html", protocol=protocol, p=view, facts=facts, key=str(uuid.uuid4()),
                  envelope=envelope)


@router.post("/trials/{trial}/patients/{patient}/randomize")
async def randomize_submit(request: Request, trial: str, patient: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    if form.get("confirm") != "yes":
        raise Invalid("tick the box to confirm the eligibility facts", [{"field": "confirm", "value": None,
                                                                          "message": "required"}])
    with database(request).write() as session:
        randomize.randomize(session, actor, trial, patient, str(form.get("key", "")))
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)


@router.get("/trials/{trial}/patients/{patient}/allocation", response_class=HTMLResponse)
def allocation_page(request: Request, trial: str, patient: str) -> Response:
    _, protocol, view = patient_context(request, trial, patient)
    if not view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    arm = next((a for a in protocol.arms if a.id == view["randomization"].get("arm")), None)
    return render(request, "allocation.html", protocol=protocol, p=view, r=view["randomization"], arm=arm)
