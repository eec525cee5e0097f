"""The DSMB's interim analyses on the live database: a look run on frozen or locked data, and the DSMB's signed
decision after it.

A look reads the analysis dataset as the unblinded statistician's export would (`export.tables`, then
analysis/platform_dataset.py), counts the patients whose primary outcome is observed against the plan's full
information, runs the primary analysis and applies the plan's boundaries at the fractions observed at this and
the earlier looks (design/interim.py). Everything a look computes is closed: only roles that see arms run or read
it, and the audit trail shows other readers the look's number and information alone (audit_trail.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..analysis.platform_dataset import dataset_from_tables
from ..design import interim
from ..protocol import Protocol
from ..protocol.interim_plan import InterimPlan
from ..store import record
from ..store.models import DsmbDecision, InterimLook
from . import export, locks, refusals
from .accounts import Actor
from .blinding import sees_arm
from .errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from .signatures import Signature
from .trials import get_trial

RUNNING = "running an interim analysis"
READING = "reading interim analyses"
DECIDING = "recording a DSMB decision"
DECISIONS = ("continue", "modify", "stop for efficacy", "stop for harm", "stop for futility")
# What a reader who may not see arms sees of a look's audit event: nothing computed from the arms.
OPEN_KEYS = ("look", "patients_observed", "information", "information_total", "lock")
_ = i18n.gettext


def _closed(actor: Actor, protocol: Protocol, operation: str) -> None:
    actor.require(operation)
    if not sees_arm(actor.role, protocol.design.masking):
        raise Forbidden(_("{operation} is closed: {name} ({role}) does not see arms in {acronym}").format(
            operation=refusals.operation(operation), name=actor.name, role=refusals.role(actor.role),
            acronym=protocol.acronym))


def _plan(protocol: Protocol) -> InterimPlan:
    if protocol.interim is None:
        raise Conflict(_("{acronym} declares no interim analysis (the protocol's `interim` plan)").format(
            acronym=protocol.acronym))
    return protocol.interim


def primary_arms(protocol: Protocol) -> tuple[str, str]:
    """(experimental, control): the two arms an interim look compares."""
    experimental = [a.id for a in protocol.arms if a.role == "experimental"]
    control = [a.id for a in protocol.arms if a.role != "experimental"]
    if len(experimental) != 1 or len(control) != 1:
        raise Conflict(_("{acronym}: an interim analysis compares one experimental arm with one control").format(
            acronym=protocol.acronym))
    return experimental[0], control[0]


def look_dataset(session: Session, actor: Actor, protocol: Protocol) -> pd.DataFrame:
    """The analysis dataset as the live database holds it now, read as this (unblinded) actor's export would be."""
    tables = {name: pd.DataFrame(rows) for name, rows in export.tables(session, actor, protocol.id).items()}
    return dataset_from_tables(tables, protocol, f"{protocol.acronym} database")


def _sha256(data: pd.DataFrame) -> str:
    ordered = data.reindex(sorted(data.columns), axis=1).sort_values("patient_id")
    return hashlib.sha256(ordered.to_csv(index=False).encode("utf-8")).hexdigest()


def primary_statistic(protocol: Protocol, data: pd.DataFrame) -> dict[str, Any]:
    """The primary analysis at a look and its z (positive favours the experimental arm), on the plan's primary
    population (randomized patients, analysed as allocated)."""
    from ..analysis.ordinal import proportional_odds

    primary = next((e for e in protocol.endpoints if e.role == "primary" and e.analysis is not None), None)
    if primary is None or primary.analysis is None:
        raise Conflict(_("{acronym}: no primary endpoint with an analysis in the plan").format(
            acronym=protocol.acronym))
    if primary.analysis.method != "ordinal_shift":
        raise Conflict(_("{acronym}: an interim z for the primary analysis by {method} is not available yet "
                         "(ordinal_shift is)").format(acronym=protocol.acronym, method=primary.analysis.method))
    column = primary.analysis.outcome.column
    observed = int(data[column].notna().sum()) if column in data.columns else 0
    treatment, control = primary_arms(protocol)
    adjust = list(protocol.analysis_plan.adjust) if protocol.analysis_plan else []
    arms = set(data.loc[data[column].notna(), "arm"]) if observed else set()
    if {treatment, control} - arms:
        missing = [a for a in protocol.arms if a.id in {treatment, control} - arms]
        raise Conflict(_("{acronym}: no patient of {arms} has the primary outcome ({endpoint}) yet").format(
            acronym=protocol.acronym, arms=", ".join(sorted(i18n.protocol_text(a, "name") for a in missing)),
            endpoint=i18n.protocol_text(primary, "name")))
    result = proportional_odds(data, column, "arm", treatment, control, adjust=adjust, profile=False)
    z = result.details["log_or"] / result.details["se_log_or"]
    return {"endpoint": primary.id, "endpoint_name": primary.name, "outcome": column, "patients_observed": observed,
            "method": result.method, "common_odds_ratio": result.estimate,
            "ci95": [result.ci_low, result.ci_high], "p": result.p_value, "z": float(z),
            "n_treatment": result.details["n_treatment"], "n_control": result.details["n_control"]}


def _look_json(protocol: Protocol, row: InterimLook, decision: DsmbDecision | None) -> dict[str, Any]:
    body = json.loads(row.result_json)
    return {"trial": protocol.id, "look": row.number, "patients_observed": row.patients_observed,
            "information": row.information, "z": row.z, "recommendation": row.recommendation,
            "data_sha256": row.data_sha256, "lock": row.lock_id, "run_by": row.run_by,
            "run_at": row.run_at.isoformat() if row.run_at else None, **body,
            "decision": None if decision is None else {
                "decision": decision.decision, "reason": decision.reason, "decided_by": decision.decided_by,
                "decided_at": decision.decided_at.isoformat()}}


def _looks(session: Session, trial_id: str) -> list[InterimLook]:
    return list(session.execute(select(InterimLook).where(InterimLook.trial_id == trial_id)
                                .order_by(InterimLook.number)).scalars())


def run_look(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Run the next planned look on the data frozen or locked now; stored and audited (closed)."""
    _trial, protocol = get_trial(session, actor, trial_id)
    _closed(actor, protocol, RUNNING)
    plan = _plan(protocol)
    lock = locks.trial_lock_in_force(session, trial_id)
    if lock is None:
        raise Conflict(_("an interim analysis runs on frozen or locked data: freeze {acronym}'s data first (a "
                         "trial-wide freeze or lock)").format(acronym=protocol.acronym))
    earlier = _looks(session, trial_id)
    if earlier and earlier[-1].information >= 1.0:
        raise Conflict(_("{acronym}: the final analysis (look {look}) has been run").format(
            acronym=protocol.acronym, look=earlier[-1].number))
    data = look_dataset(session, actor, protocol)
    statistic = primary_statistic(protocol, data)
    fraction = statistic["patients_observed"] / plan.information_total
    if earlier and fraction <= earlier[-1].information:
        raise Conflict(_("{acronym}: no new information since look {look} ({before} patients with the primary "
                         "outcome; now {now})").format(acronym=protocol.acronym, look=earlier[-1].number,
                                                      before=earlier[-1].patients_observed,
                                                      now=statistic["patients_observed"]))
    alpha = protocol.analysis_plan.alpha if protocol.analysis_plan else 0.05
    sided = protocol.analysis_plan.sided if protocol.analysis_plan else 2
    effect = plan.planned_effect
    drift = interim.planned_drift_for_odds_ratio(effect.common_odds_ratio, plan.information_total,
                                                 effect.control_mrs)
    look = interim.analyse_look([r.information for r in earlier] + [fraction], statistic["z"], plan.looks, alpha,
                                sided, plan.spending, planned_drift=drift, futility=plan.futility)
    body = {"look_result": look.to_json(), "primary_analysis": statistic, "information_total": plan.information_total,
            "planned_looks": plan.looks, "spending": plan.spending, "alpha": alpha, "sided": sided,
            "planned_drift": drift, "prior": plan.prior, "lock_reason": lock.reason}
    row = InterimLook(trial_id=trial_id, number=look.look, patients_observed=statistic["patients_observed"],
                      information=look.information, z=look.z, recommendation=look.recommendation,
                      result_json=json.dumps(body, sort_keys=True), data_sha256=_sha256(data), lock_id=lock.id,
                      run_by=actor.name, run_at=dt.datetime.now(dt.UTC))
    session.add(row)
    session.flush()
    record(session, actor.name, "run", "interim_look", f"{trial_id}/{row.number}", trial_id=trial_id,
           after={"look": row.number, "patients_observed": row.patients_observed, "information": row.information,
                  "information_total": plan.information_total, "lock": lock.id, "z": row.z,
                  "recommendation": row.recommendation, "data_sha256": row.data_sha256})
    return _look_json(protocol, row, None)


def list_looks(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    _trial, protocol = get_trial(session, actor, trial_id)
    _closed(actor, protocol, READING)
    decisions = {d.look_id: d for d in session.execute(select(DsmbDecision).join(
        InterimLook, InterimLook.id == DsmbDecision.look_id).where(InterimLook.trial_id == trial_id)).scalars()}
    return [_look_json(protocol, row, decisions.get(row.id)) for row in _looks(session, trial_id)]


def record_decision(session: Session, actor: Actor, trial_id: str, number: int, decision: str, reason: str,
                    signature: Signature) -> dict[str, Any]:
    """The DSMB's recommendation after look `number`, with its reason; `signature` (signatures.sign: the password
    entered again) is the proof. One decision per look."""
    _trial, protocol = get_trial(session, actor, trial_id)
    _closed(actor, protocol, DECIDING)
    if signature.name != actor.name:
        raise Unauthorized(_("the signature is {signer}'s, not {name}'s").format(signer=signature.name,
                                                                                  name=actor.name))
    if decision not in DECISIONS:
        raise Invalid(_("decision {decision} is not one of {choices}").format(decision=repr(decision),
                                                                              choices=", ".join(DECISIONS)),
                      [{"field": "decision", "value": decision,
                        "message": _("one of {choices}").format(choices=", ".join(DECISIONS))}])
    reason = (reason or "").strip()
    if not reason or len(reason) > 4000:
        raise Invalid(_("the DSMB's decision needs its reason (1-4000 characters)"),
                      [{"field": "reason", "value": reason[:80], "message": _("1-4000 characters")}])
    row = session.execute(select(InterimLook).where(InterimLook.trial_id == trial_id,
                                                    InterimLook.number == number)).scalar_one_or_none()
    if row is None:
        raise NotFound(_("{acronym} has no interim look {look}").format(acronym=protocol.acronym, look=number))
    if session.execute(select(DsmbDecision).where(DsmbDecision.look_id == row.id)).scalar_one_or_none():
        raise Conflict(_("the DSMB's decision after look {look} of {acronym} is recorded already").format(
            look=number, acronym=protocol.acronym))
    made = DsmbDecision(look_id=row.id, decision=decision, reason=reason, decided_by=actor.name,
                        decided_at=signature.at)
    session.add(made)
    session.flush()
    record(session, actor.name, "decide", "dsmb_decision", f"{trial_id}/{number}", trial_id=trial_id,
           after={"look": number, "decision": decision, "reason": reason, "signed_at": signature.at.isoformat()})
    return _look_json(protocol, row, made)
