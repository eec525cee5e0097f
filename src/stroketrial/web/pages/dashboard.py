"""A trial's dashboard: enrolment (with its chart), the CONSORT funnel, balance and safety counts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ... import i18n
from ...clinical import VARIABLES
from ...service import dashboard, safety, trials
from ..charts import enrolment_chart
from .auth import signed_in
from .base import database, render
from .screening_words import arm_words

router = APIRouter(include_in_schema=False)


@router.get("/trials/{trial}/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        enrolment = dashboard.enrolment(session, actor, trial)
        consort = dashboard.funnel(session, actor, trial)
        balance = dashboard.balance(session, actor, trial)
        safety_counts = safety.safety(session, actor, trial) if actor.may("reading safety data") else None
    # Criteria and factor levels by their words, never their codes.
    criteria = {c.id: i18n.protocol_text(c, "text") for c in protocol.criteria}
    factors = protocol.randomization.factors if protocol.randomization is not None else ()
    factor_fields = {f.name: f.field for f in factors}
    factor_labels = {f.name: VARIABLES[f.field].label if f.field in VARIABLES else f.name.replace("_", " ")
                     for f in factors}
    return render(request, "dashboard.html", protocol=protocol, enrolment=enrolment, chart=enrolment_chart(enrolment),
                  consort=consort, balance=balance, safety=safety_counts, criteria=criteria,
                  factor_fields=factor_fields, factor_labels=factor_labels, arm_words=arm_words(protocol))
