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
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..analysis.planned_outcomes import events_on_forms
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


def watched_visits(protocol: Protocol) -> set[str]:
    """The visits whose forms can record a death or an sICH (the others change no safety count)."""
    sich = _sich_outcome(protocol)
    imaging = {sich.visit} if sich is not None and sich.visit else set()
    return {v.id for v in protocol.visits if "death" in v.assessments
            or (sich is None and "sich" in v.assessments)} | imaging


def counts_by_arm(session: Session, protocol: Protocol, trial_id: str,
                  admits: Callable[[str], bool] = lambda _site: True) -> dict[str, dict[str, int]]:
    """Randomized, deaths, sICH, patients with an SAE and SAEs, per arm (closed: callers pool or check the reader),
    over the patients of the sites `admits` lets in."""
    # Checked after every visit form and SAE report: only the columns and forms the counts read, and the sICH
    # definition evaluated on all the imaging forms at once.
    rows = [(pid, arm, created) for pid, site, arm, created in session.execute(
        select(Patient.id, Patient.site_code, Allocation.arm, Allocation.created_at)
        .join(Allocation, Allocation.patient_id == Patient.id).where(Patient.trial_id == trial_id)).all()
            if admits(site)]
    counts = {a.id: {"randomized": 0, "deaths": 0, "sich": 0, "patients_with_sae": 0, "saes": 0}
              for a in protocol.arms}
    ids = [pid for pid, _, _ in rows]
    sich = _sich_outcome(protocol)
    sich_terms = _reported_terms(protocol, sich)
    sich_days = next((e.timepoint_days for e in protocol.endpoints if e.analysis is not None
                      and e.analysis.outcome is sich), None)
    watched = watched_visits(protocol)
    dead: set[int] = set()
    sich_by: set[int] = set()
    imaging: list[tuple[int, dict[str, Any]]] = []
    saes_by: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for pid, visit_id, values_json in session.execute(
                select(VisitRecord.patient_id, VisitRecord.visit_id, VisitRecord.values_json)
                .where(VisitRecord.patient_id.in_(ids), VisitRecord.visit_id.in_(watched))).all():
            values = json.loads(values_json)
            if values.get("death"):
                dead.add(pid)
            if sich is not None and visit_id == sich.visit:
                imaging.append((pid, values))
            elif sich is None and values.get("sich") is True:
                sich_by.add(pid)
        if sich is not None:
            sich_by.update(pid for (pid, _), hit in zip(imaging, events_on_forms(sich, [v for _, v in imaging]),
                                                        strict=True) if hit)
        for pid, data_json in session.execute(select(SeriousAdverseEvent.patient_id, SeriousAdverseEvent.data_json)
                                              .where(SeriousAdverseEvent.patient_id.in_(ids))).all():
            saes_by.setdefault(pid, []).append(json.loads(data_json))
    for pid, arm, created in rows:
        c = counts.setdefault(arm, {"randomized": 0, "deaths": 0, "sich": 0, "patients_with_sae": 0, "saes": 0})
        saes = saes_by.get(pid, [])
        c["randomized"] += 1
        c["deaths"] += pid in dead or any(s["outcome"] == "fatal" for s in saes)
        reported = any(reported_within(s, sich_terms, created, sich_days) for s in saes) if sich_terms else False
        c["sich"] += pid in sich_by or reported
        c["patients_with_sae"] += bool(saes)
        c["saes"] += len(saes)
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
