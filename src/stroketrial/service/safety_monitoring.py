"""The protocol's safety monitoring rules on the live data: each watched rate's posterior probability of exceeding
the rate expected (protocol/safety_monitoring.py), and an alert to the DSMB, once per rule, when it passes the
bound. Checked after each SAE report and each visit form (`check`), and shown to the DSMB on request (`status`).

A rule on one arm is closed: its alert goes to the DSMB alone, and the audit trail shows other readers only that a
closed message was sent (audit_trail.py), nothing of the rule or its numbers.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from scipy import stats
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol
from ..protocol.safety_monitoring import SafetyRule
from ..store.models import Trial
from . import notifications, refusals
from .accounts import Actor
from .blinding import sees_arm
from .errors import Forbidden
from .safety import counts_by_arm
from .trials import get_trial, protocol_in_force

KIND = "safety_rule"
READING = "reading interim analyses"  # the DSMB and its statistician (roles.py)
EVENT_KEY = {"death": "deaths", "sich": "sich"}
EVENT_WORDS = {"death": "death", "sich": "symptomatic intracranial haemorrhage"}  # translated where shown


def exceedance(events: int, patients: int, expected: float, prior: tuple[float, float] = (1.0, 1.0)) -> float:
    """P(rate > expected | events among patients), the rate's posterior Beta(a + events, b + patients - events)."""
    a, b = prior
    return float(stats.beta.sf(expected, a + events, b + patients - events))


def _evaluate(protocol: Protocol, rule: SafetyRule, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    groups = [counts[rule.arm]] if rule.arm is not None else list(counts.values())
    patients = sum(g["randomized"] for g in groups)
    events = sum(g[EVENT_KEY[rule.event]] for g in groups)
    probability = exceedance(events, patients, rule.expected_rate, rule.prior)
    arm = next((a.name for a in protocol.arms if a.id == rule.arm), None)
    return {"rule": rule.id, "event": rule.event, "arm": rule.arm, "arm_name": arm, "patients": patients,
            "events": events, "rate": events / patients if patients else None, "expected_rate": rule.expected_rate,
            "probability_above_expected": probability, "bound": rule.probability,
            "minimum_patients": rule.minimum_patients,
            "crossed": patients >= rule.minimum_patients and probability > rule.probability}


def status(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    """Every rule of the trial with its numbers now: for the DSMB and its statistician."""
    _trial, protocol = get_trial(session, actor, trial_id)
    actor.require(READING)
    if not sees_arm(actor.role, protocol.design.masking):
        raise Forbidden(i18n.gettext("safety monitoring is closed: {name} ({role}) does not see arms").format(
            name=actor.name, role=refusals.role(actor.role)))
    counts = counts_by_arm(session, protocol, trial_id)
    return [_evaluate(protocol, rule, counts) for rule in protocol.safety_monitoring]


def check(session: Session, trial_id: str) -> list[dict[str, Any]]:
    """Evaluate the rules now (inside the write that changed the data) and alert the DSMB of each rule newly
    crossed; returns the rules crossed now for the first time."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        return []
    protocol = protocol_in_force(session, trial)[1]
    if not protocol.safety_monitoring:
        return []
    counts = counts_by_arm(session, protocol, trial_id)
    alerted = []
    for rule in protocol.safety_monitoring:
        result = _evaluate(protocol, rule, counts)
        about = f"{KIND}/{rule.id}"
        if not result["crossed"] or notifications.exists(session, trial_id, about):
            continue
        subject, body, translations = notifications.composed(partial(_alert, protocol, trial_id, rule, result))
        notifications.notify(session, trial_id, KIND, subject, body, ["dsmb"], about=about,
                             carries_arm=rule.arm is not None, translations=translations)
        alerted.append(result)
    return alerted


def _alert(protocol: Protocol, trial_id: str, rule: SafetyRule, result: dict[str, Any]) -> tuple[str, str]:
    """The DSMB's alert, worded in the current language (notifications.composed calls it once per language)."""
    _ = i18n.gettext
    arm = next((a for a in protocol.arms if a.id == rule.arm), None)
    watched = (_("the {arm} arm").format(arm=i18n.protocol_text(arm, "name")) if arm is not None
               else _("all patients"))
    event = _(EVENT_WORDS[rule.event])
    body = "\n".join([
        _("Trial: {acronym} ({trial})").format(acronym=protocol.acronym, trial=trial_id),
        _("Safety monitoring rule {rule}: {event} in {watched}").format(rule=rule.id, event=event, watched=watched),
        _("{events} of {patients} patients ({rate}); expected {expected}").format(
            events=result["events"], patients=result["patients"], rate=f"{result['rate']:.1%}",
            expected=f"{rule.expected_rate:.1%}"),
        _("Posterior probability that the rate exceeds the expected one: {probability} (bound {bound}; Beta{prior} "
          "prior)").format(probability=f"{result['probability_above_expected']:.3f}", bound=rule.probability,
                           prior=rule.prior),
        _("The DSMB's page: /trials/{trial}/dsmb").format(trial=trial_id)])
    return _("[{acronym}] Closed: a message for the DSMB").format(acronym=protocol.acronym), body
