"""The DSMB's safety counts: deaths, sICH and SAEs among randomized patients, per arm for those who may see counts
per arm, else pooled.

A patient counts for sICH when the protocol's definition holds on its form (Heidelberg: haemorrhage, deterioration,
causality), or when an SAE was reported under the term the endpoint names (`outcome.reported_as`, with the reference
safety information's synonyms) with its onset within the endpoint's timepoint of randomization: a reported sICH
counts before its imaging form is entered."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..analysis.planned_outcomes import events_on_forms
from ..protocol import Protocol
from ..protocol.analysis_plan import Outcome
from ..store.models import Allocation, Patient, SaeReport, SeriousAdverseEvent, VisitRecord
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


def watched_visits(protocol: Protocol) -> set[str]:
    """The visits whose forms can record a death or an sICH (the others change no safety count)."""
    sich = _sich_outcome(protocol)
    imaging = {sich.visit} if sich is not None and sich.visit else set()
    return {v.id for v in protocol.visits if "death" in v.assessments
            or (sich is None and "sich" in v.assessments)} | imaging


def _sae_states(session: Session, trial_id: str, ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Each patient's SAEs (of the trial's patients `ids`) as their reports leave them now: the initial report,
    updated by each follow-up (the sponsor's assessment changes no fact of the event), read in two queries."""
    from .serious_adverse_events import SAE_FIELDS  # it checks safety monitoring, which reads this module

    saes = [(sae_id, pid, data_json) for sae_id, pid, data_json in session.execute(
        select(SeriousAdverseEvent.id, SeriousAdverseEvent.patient_id, SeriousAdverseEvent.data_json)
        .where(SeriousAdverseEvent.patient_id.in_(_patients_of(trial_id))).order_by(SeriousAdverseEvent.id)).all()
        if pid in ids]
    reports: dict[int, list[tuple[str, str]]] = {}
    for sae_id, kind, data_json in session.execute(
            select(SaeReport.sae_id, SaeReport.kind, SaeReport.data_json)
            .where(SaeReport.sae_id.in_([s for s, _, _ in saes])).order_by(SaeReport.id)).all() if saes else []:
        reports.setdefault(sae_id, []).append((kind, data_json))
    out: dict[int, list[dict[str, Any]]] = {}
    for sae_id, patient_id, data_json in saes:
        history = reports.get(sae_id, [])
        if not any(kind == "initial" for kind, _ in history):
            history = [("initial", data_json), *history]
        state: dict[str, Any] = {"sae_id": sae_id}
        for kind, text in history:
            if kind != "sponsor_assessment":
                state.update({k: v for k, v in json.loads(text).items() if k in SAE_FIELDS and k != "awareness_at"})
        out.setdefault(patient_id, []).append(state)
    return out


def _patients_of(trial_id: str) -> Select[int]:
    """The trial's patients, as a subquery: a thousand patients' ids are not sent to the database as parameters."""
    return select(Patient.id).where(Patient.trial_id == trial_id)


# Keyed by digests of the definition and of the form's text, not the texts themselves: 100,000 forms of a few
# KB each would otherwise hold hundreds of MB in every server process. The digests never leave this process.
_FACTS: OrderedDict[tuple[bytes, bool, bytes], tuple[bool, bool]] = OrderedDict()
_FACTS_KEPT = 100_000  # forms' facts kept, the least recently asked for dropped first
_FACTS_LOCK = threading.Lock()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def form_facts(sich: Outcome | None, forms: list[tuple[str, str]]) -> list[tuple[bool, bool]]:
    """(death, sICH) on each watched form, given as (visit, the form's stored JSON): a death when the form says
    so; an sICH by the protocol's definition on the imaging visit's form (the forms not known yet evaluated at
    once), or by the form's own sich answer when the plan defines none. A pure function of the definition and the
    form's text, so each form is parsed and judged once per server process, not on every safety count."""
    definition = _digest(sich.model_dump_json() if sich is not None else "")
    keys = [(definition, sich is not None and visit == sich.visit, _digest(text)) for visit, text in forms]
    texts = {key: text for key, (_, text) in zip(keys, forms, strict=True)}
    with _FACTS_LOCK:
        known = {k: _FACTS[k] for k in keys if k in _FACTS}
    missing = [k for k in dict.fromkeys(keys) if k not in known]
    if missing:
        values = [json.loads(texts[key]) for key in missing]
        imaging = [i for i, (_, on_imaging, _) in enumerate(missing) if on_imaging]
        hits = (dict(zip(imaging, events_on_forms(sich, [values[i] for i in imaging]), strict=True))
                if sich is not None and imaging else {})
        for i, key in enumerate(missing):
            known[key] = (bool(values[i].get("death")),
                          bool(hits[i]) if key[1] else sich is None and values[i].get("sich") is True)
    with _FACTS_LOCK:
        for key in keys:
            _FACTS[key] = known[key]
            _FACTS.move_to_end(key)
        while len(_FACTS) > _FACTS_KEPT:
            _FACTS.popitem(last=False)
    return [known[k] for k in keys]


def patient_safety(session: Session, protocol: Protocol, trial_id: str,
                   admits: Callable[[str], bool] = lambda _site: True) -> list[PatientSafety]:
    """Every randomized patient of the sites `admits` lets in, with deaths, sICH and SAEs (closed: the arm).

    Death: a visit form saying so (its visit date), or an SAE with a fatal outcome (its onset). sICH: the
    protocol's definition on its form (the visit date), or an SAE reported under the endpoint's term with its
    onset within the endpoint's timepoint. The SAEs are read as their latest follow-up leaves them. Checked after
    every watched visit form and SAE report: only the forms that can hold a death or an sICH are read, and each is
    judged once (`form_facts`)."""
    rows = [(pid, code, site, arm, created) for pid, code, site, arm, created in session.execute(
        select(Patient.id, Patient.code, Patient.site_code, Allocation.arm, Allocation.created_at)
        .join(Allocation, Allocation.patient_id == Patient.id).where(Patient.trial_id == trial_id)
        .order_by(Allocation.sequence, Patient.id)).all() if admits(site)]
    ids = {pid for pid, *_ in rows}
    sich = _sich_outcome(protocol)
    sich_terms = _reported_terms(protocol, sich)
    sich_days = next((e.timepoint_days for e in protocol.endpoints if e.analysis is not None
                      and e.analysis.outcome is sich), None)
    deaths: dict[int, list[dt.date]] = {}
    sich_seen: dict[int, list[dt.date]] = {}
    last_seen: dict[int, dt.date | None] = {}
    saes_by: dict[int, list[dict[str, Any]]] = {}
    if ids:
        forms = [(pid, visit_id, _day(visit_date), values_json) for pid, visit_id, visit_date, values_json
                 in session.execute(select(VisitRecord.patient_id, VisitRecord.visit_id, VisitRecord.visit_date,
                                           VisitRecord.values_json)
                                    .where(VisitRecord.patient_id.in_(_patients_of(trial_id)),
                                           VisitRecord.visit_id.in_(watched_visits(protocol)))).all()
                 if pid in ids]
        facts = form_facts(sich, [(visit, text) for _, visit, _, text in forms])
        for (pid, _visit, day, _text), (death, haemorrhage) in zip(forms, facts, strict=True):
            if death and day is not None:
                deaths.setdefault(pid, []).append(day)
            if haemorrhage and day is not None:
                sich_seen.setdefault(pid, []).append(day)
        last_seen = {pid: _day(day) for pid, day in session.execute(
            select(VisitRecord.patient_id, func.max(VisitRecord.visit_date))
            .where(VisitRecord.patient_id.in_(_patients_of(trial_id))).group_by(VisitRecord.patient_id)).all()
            if pid in ids}
        saes_by = _sae_states(session, trial_id, ids)
    out = []
    for pid, code, site, arm, created in rows:
        randomized = created.date()
        saes = saes_by.get(pid, [])
        # an SAE's onset dates its death or sICH (the day of randomization if the report has none)
        died = deaths.get(pid, []) + [_day(s.get("onset_date")) or randomized for s in saes
                                      if s.get("outcome") == "fatal"]
        bled = sich_seen.get(pid, []) + [_day(s.get("onset_date")) or randomized for s in saes
                                         if sich_terms and reported_within(s, sich_terms, created, sich_days)]
        seen = max(d for d in (last_seen.get(pid), randomized) if d is not None)
        out.append(PatientSafety(code, site, arm, randomized, seen, min(died, default=None), min(bled, default=None),
                                 tuple(saes)))
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
