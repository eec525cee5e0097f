"""The DSMB's safety counts: deaths, sICH and SAEs among randomized patients, per arm for those who may see counts
per arm, else pooled.

A patient counts for sICH when the protocol's definition holds on its form (Heidelberg: haemorrhage, deterioration,
causality), or when an SAE was reported under the term the endpoint names (`outcome.reported_as`, with the reference
safety information's synonyms) with its onset within the endpoint's timepoint of randomization: a reported sICH
counts before its imaging form is entered."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..analysis.planned_outcomes import event_on_form
from ..protocol import Protocol
from ..protocol.analysis_plan import Outcome
from ..store.models import Allocation, Patient, SeriousAdverseEvent, VisitRecord
from .accounts import Actor
from .blinding import sees_arm_counts
from .trials import get_trial


def _sich_outcome(protocol: Protocol) -> Outcome | None:
    """The plan's sICH outcome (the endpoint that measures sich, read from a visit form), if it has one."""
    for e in protocol.endpoints:
        if e.measure == "sich" and e.analysis is not None and e.analysis.outcome.visit is not None:
            return e.analysis.outcome
    return None


def _reported_terms(protocol: Protocol, outcome: Outcome | None) -> set[str]:
    if outcome is None or outcome.reported_as is None:
        return set()
    entry = next(r for r in protocol.reference_safety_information if r.term == outcome.reported_as)
    return {entry.term.casefold(), *(s.casefold() for s in entry.synonyms)}


def reported_within(sae: Mapping[str, Any], terms: set[str], randomized: dt.datetime, days: float | None) -> bool:
    """Whether an SAE report names one of these terms, with its onset within `days` of randomization (any time
    when the endpoint gives no timepoint)."""
    names = {str(sae.get(k) or "").strip().casefold() for k in ("term", "coded_term")} - {""}
    if not names & terms:
        return False
    if days is None:
        return True
    try:
        onset = dt.date.fromisoformat(str(sae.get("onset_date"))[:10])
    except ValueError:
        return False
    return onset <= randomized.date() + dt.timedelta(days=math.ceil(days))


@dataclass(frozen=True)
class PatientSafety:
    """One randomized patient's safety record as the DSMB reads it: the day of death and of sICH (when either
    happened), the SAEs as currently reported, and the last day the patient was seen (closed: it holds the arm)."""

    code: str
    site: str
    arm: str
    randomized_on: dt.date
    last_seen: dt.date
    death_on: dt.date | None
    sich_on: dt.date | None
    saes: tuple[dict[str, Any], ...]


def _day(text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def patient_safety(session: Session, protocol: Protocol, trial_id: str,
                   admits: Callable[[str], bool] = lambda _site: True) -> list[PatientSafety]:
    """Every randomized patient of the sites `admits` lets in, with deaths, sICH and SAEs (closed: the arm).

    Death: a visit form saying so (its visit date), or an SAE with a fatal outcome (its onset). sICH: the
    protocol's definition on its form (the visit date), or an SAE reported under the endpoint's term with its
    onset within the endpoint's timepoint. The SAEs are read as their latest follow-up leaves them."""
    from .serious_adverse_events import status_of  # it notifies through safety monitoring, which reads this module

    rows = [(p, a) for p, a in session.execute(select(Patient, Allocation)
                                               .join(Allocation, Allocation.patient_id == Patient.id)
                                               .where(Patient.trial_id == trial_id)
                                               .order_by(Allocation.sequence, Patient.id)).all()
            if admits(p.site_code)]
    ids = [p.id for p, _ in rows]
    sich = _sich_outcome(protocol)
    sich_terms = _reported_terms(protocol, sich)
    sich_days = next((e.timepoint_days for e in protocol.endpoints if e.analysis is not None
                      and e.analysis.outcome is sich), None)
    visits_by: dict[int, list[tuple[dt.date | None, str, dict[str, Any]]]] = {}
    saes_by: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for v in session.execute(select(VisitRecord).where(VisitRecord.patient_id.in_(ids))).scalars():
            visits_by.setdefault(v.patient_id, []).append((_day(v.visit_date), v.visit_id, json.loads(v.values_json)))
        for s in session.execute(select(SeriousAdverseEvent).where(SeriousAdverseEvent.patient_id.in_(ids))
                                 .order_by(SeriousAdverseEvent.id)).scalars():
            saes_by.setdefault(s.patient_id, []).append(
                {"sae_id": s.id, **status_of(session, protocol, s)["state"]})
    out = []
    for p, a in rows:
        randomized = a.created_at.date()
        visits = visits_by.get(p.id, [])
        saes = saes_by.get(p.id, [])
        deaths = [day for day, _visit, values in visits if values.get("death") and day is not None]
        deaths += [day for s in saes if s.get("outcome") == "fatal" and (day := _day(s.get("onset_date")))]
        if sich is not None:
            sich_days_seen = [day for day, visit, values in visits
                              if visit == sich.visit and event_on_form(sich, values) and day is not None]
        else:
            sich_days_seen = [day for day, _visit, values in visits if values.get("sich") is True and day is not None]
        if sich_terms:
            sich_days_seen += [day for s in saes if reported_within(s, sich_terms, a.created_at, sich_days)
                               and (day := _day(s.get("onset_date")))]
        seen = [day for day, _visit, _values in visits if day is not None] + [randomized]
        out.append(PatientSafety(p.code, p.site_code, a.arm, randomized, max(seen), min(deaths, default=None),
                                 min(sich_days_seen, default=None), tuple(saes)))
    return out


def counts_by_arm(session: Session, protocol: Protocol, trial_id: str,
                  admits: Callable[[str], bool] = lambda _site: True) -> dict[str, dict[str, int]]:
    """Randomized, deaths, sICH, patients with an SAE and SAEs, per arm (closed: callers pool or check the reader),
    over the patients of the sites `admits` lets in."""
    counts = {a.id: {"randomized": 0, "deaths": 0, "sich": 0, "patients_with_sae": 0, "saes": 0}
              for a in protocol.arms}
    for patient in patient_safety(session, protocol, trial_id, admits):
        c = counts.setdefault(patient.arm, {"randomized": 0, "deaths": 0, "sich": 0, "patients_with_sae": 0,
                                            "saes": 0})
        c["randomized"] += 1
        c["deaths"] += patient.death_on is not None
        c["sich"] += patient.sich_on is not None
        c["patients_with_sae"] += bool(patient.saes)
        c["saes"] += len(patient.saes)
    return counts


def safety(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Deaths, sICH and SAEs: per arm for those who may see counts per arm (the DSMB), else pooled."""
    actor.require("reading safety data")
    _trial, protocol = get_trial(session, actor, trial_id)
    counts = counts_by_arm(session, protocol, trial_id, actor.can_see_site)
    if sees_arm_counts(actor.role, protocol):
        return {"trial": trial_id, "by_arm": True, "groups": counts}
    pooled = {key: sum(c[key] for c in counts.values()) for key in next(iter(counts.values()))}
    return {"trial": trial_id, "by_arm": False, "groups": {"all": pooled}}
