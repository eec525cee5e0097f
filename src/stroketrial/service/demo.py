"""Demo data: the five built-in trials at demo sites, one user per role, and synthetic patients.

Every trial gets randomized patients with a baseline visit; AMASS-2 also gets
screened, eligible patients awaiting randomization, so a newcomer can try the flow
at once. Everything is written through the same operations (and audit trail) as
real use; the patients are synthetic (`stroketrial.cohort`).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import yaml

import datetime as dt
import tempfile
from pathlib import Path
import uuid

from sqlalchemy import select

from ..clinical.record import ATTESTATIONS_KEY
from ..clinical.cohort_records import records_from_frame
from ..cohort import synthesize
from ..cohort.registry import simulate_outcomes, synthesize_registry, write_registry
from ..eligibility import encode_cohort, statuses
from ..protocol import Protocol, load_builtin
from ..store import Database
from ..store.models import Trial
from . import accounts, escalation, patients, randomize, registry, signatures, trials, visits
from .accounts import SYSTEM

DEMO_PASSWORD = "stroke-demo"
# Which trials run at which demo sites, and how far each has got, is data, not code.
_PLATFORM = yaml.safe_load(resources.files(__package__).joinpath("demo_platform.yaml").read_text(encoding="utf-8"))
SITES: dict[str, str] = _PLATFORM["sites"]
TRIAL_SITES: dict[str, list[str]] = {trial: spec["sites"] for trial, spec in _PLATFORM["trials"].items()}
USERS = [("admin", "admin", []), ("investigator", "investigator", ["S1", "S2", "S3"]),
         ("coordinator", "coordinator", ["S1", "S2", "S3"]), ("pharmacist", "unblinded_pharmacist", ["S1", "S2", "S3"]),
         ("statistician", "blinded_statistician", ["S1", "S2", "S3"]),
         ("unblinded_stat", "unblinded_statistician", ["S1", "S2", "S3"]), ("dsmb", "dsmb", ["S1", "S2", "S3"]),
         ("monitor", "monitor", ["S1", "S2", "S3"]), ("assessor", "outcome_assessor", ["S1", "S2", "S3"]),
         ("committee", "safety_review_committee", ["S1", "S2", "S3"]),
         ("data_manager", "data_manager", ["S1", "S2", "S3"]),
         ("pharmacovigilance", "pharmacovigilance", ["S1", "S2", "S3"]),
         ("supply", "supply_manager", ["S1", "S2", "S3"]),
         ("zhang", "coordinator", ["S1", "S2", "S3"])]
# Users whose pages are in another language than their browser's: a Chinese-speaking research coordinator.
USER_LANGUAGES = {"zhang": "zh_Hans"}


def has_data(db: Database) -> bool:
    with db.read() as session:
        return session.execute(select(Trial.id).limit(1)).first() is not None


def load(db: Database, seed: int = 2026, interim_look: bool = True) -> list[dict]:
    """Load the demo; returns the demo logins (name, role, password, token). `interim_look`: the trials with a
    `history` (demo_platform.yaml) get their patients randomized in the past and the DSMB's first interim look
    (demo_interim.py), which takes most of the loading time; tests that need neither leave them out."""
    logins = []
    with db.write() as session:
        for code, name in SITES.items():
            accounts.create_site(session, SYSTEM, code, name)
        for trial_id, sites in TRIAL_SITES.items():
            trials.create_trial(session, SYSTEM, trial_id, sites)
        for name, role, sites in USERS:
            language = USER_LANGUAGES.get(name)
            _, token = accounts.create_user(session, SYSTEM, name, role, sites, password=DEMO_PASSWORD,
                                            language=language)
            logins.append({"name": name, "role": role, "password": DEMO_PASSWORD, "token": token,
                           "sites": sites or "all", **({"language": language} if language else {})})
    with tempfile.TemporaryDirectory() as folder:  # the registry of matched controls, as a site would send it
        path = Path(folder) / "demo-registry.csv"
        write_registry(synthesize_registry(_PLATFORM["registry"], seed), path)
        with db.write() as session:
            registry.import_registry(session, SYSTEM, path)
    coordinator = accounts.Actor("coordinator", "coordinator", frozenset(SITES))
    for k, trial_id in enumerate(TRIAL_SITES):
        later = _enrol(db, coordinator, trial_id, seed + k, interim_look)
        spec = _PLATFORM["trials"][trial_id]
        if "workflow" in spec:
            from .demo_workflow import run_workflow  # the GCP records built on the patients above
            run_workflow(db, trial_id, spec["workflow"], later, DEMO_PASSWORD)
        if interim_look and "history" in spec:
            from .demo_interim import first_look  # the data frozen, the look run, the freeze released
            first_look(db, trial_id, spec["history"], frozenset(SITES))
    from .demo_supply import stock_demo_sites  # kit stock at two sites, one at its trigger with a resupply request
    stock_demo_sites(db, TRIAL_SITES)
    return logins


def patient_code(protocol_acronym: str, number: int) -> str:
    """The demo's patient numbers: the acronym's first word and the place in the trial, from 1."""
    return f"{protocol_acronym.split('-')[0][:5]}-{number:03d}"


def shifted_screening(record: dict, ends: dt.datetime) -> tuple[dict, dict | None]:
    """A synthetic screening record moved in time, its timeline's intervals kept, ending at `ends`; and its
    attestations, apart."""
    attestations = record.pop(ATTESTATIONS_KEY, None)
    record.pop("patient_id", None)
    record.pop("site", None)
    clock = [k for k in ("last_known_well", "arterial_puncture", "recanalization", "randomization")
             if record.get(k)]
    latest = max((dt.datetime.fromisoformat(record[k]) for k in clock), default=None)
    shift = ends - latest.replace(tzinfo=dt.UTC) if latest is not None else dt.timedelta(0)
    for key in clock:
        if key in record:
            moment = dt.datetime.fromisoformat(record[key]).replace(tzinfo=dt.UTC) + shift
            record[key] = moment.isoformat()
    return record, attestations


def register_demo_patient(db: Database, actor: accounts.Actor, trial_id: str, code: str, site: str, record: dict,
                          ends: dt.datetime) -> None:
    """Register a synthetic patient screened just now: the timeline's intervals kept, ending at `ends`."""
    record, attestations = shifted_screening(record, ends)
    with db.write() as session:
        patients.register(session, actor, trial_id, code, site, record, attestations)


def _enrol(db: Database, actor: accounts.Actor, trial_id: str, seed: int, interim_look: bool = False) -> list[dict]:
    """The trial's demo patients; returns the screening records of the eligible patients kept for later (the
    workflow's `later` count: screened after a demo amendment, for instance)."""
    protocol = load_builtin(trial_id)
    sites = TRIAL_SITES[trial_id]
    spec = _PLATFORM["trials"][trial_id]
    cohorts = spec.get("escalation_dlts", [])
    n_escalation = len(cohorts) * (protocol.dose_escalation.cohort_size if protocol.dose_escalation else 0)
    n_randomized = spec.get("randomized", 0) + n_escalation + spec.get("expansion", 0)
    n_waiting = spec.get("awaiting", 0)
    frame = synthesize(6000, seed, protocol)
    status = statuses(protocol, encode_cohort(protocol, frame))
    if protocol.randomization is not None:
        fields = [f.field for f in protocol.randomization.factors if f.field != "site"]
        complete = frame[fields].notna().all(axis=1).to_numpy()
    else:
        complete = status == status
    n_later = spec.get("workflow", {}).get("later", 0)
    n_past = spec["history"]["randomized"] if interim_look and "history" in spec else 0
    kept = frame[(status == "eligible") & complete].head(n_past + n_randomized + n_waiting + n_later)
    if n_past:  # the patients randomized in the past come first in the trial's numbering
        from .demo_interim import enrol_history
        past, kept = kept.head(n_past), kept.iloc[n_past:]
        assert len(past) == n_past, f"{trial_id}: {len(past)} eligible synthetic patients, not {n_past}"
        enrol_history(db, actor, trial_id, spec["history"], past, sites, seed,
                      [patient_code(protocol.acronym, i + 1) for i in range(n_past)])
    eligible, later = kept.head(n_randomized + n_waiting), kept.iloc[n_randomized + n_waiting:]
    ineligible = frame[status == "ineligible"].head(4)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    enrolment = (_EscalationRun(db, actor, trial_id, spec, now, simulate_outcomes(
        eligible, np.random.default_rng(seed), volume_ratio=0.7)) if protocol.dose_escalation else None)
    for i, record in enumerate(records_from_frame(eligible) + records_from_frame(ineligible)):
        code = patient_code(protocol.acronym, n_past + i + 1)
        ends = enrolment.moment(i) if enrolment and i < n_randomized else now
        register_demo_patient(db, actor, trial_id, code, sites[i % len(sites)], record, ends)
        if i >= n_randomized or i >= len(eligible):
            continue
        if enrolment is not None:
            enrolment.enrol(i, code)
        elif protocol.randomization is not None:
            with db.write() as session:
                randomize.randomize(session, actor, trial_id, code, str(uuid.uuid4()))
        else:
            continue
        record_baseline(db, actor, trial_id, code, record, enrolment.moment(i) if enrolment is not None else now)
        if enrolment is not None:
            enrolment.follow_up(i, code, record)
    return records_from_frame(later)

def baseline_values(protocol: Protocol, record: dict) -> dict[str, bool | int]:
    """The first visit of the schedule, filled from the screening record (NIHSS) and done (vital signs, labs)."""
    baseline = protocol.visits[0]
    values: dict[str, bool | int] = {a: True for a in baseline.assessments if a in ("vital_signs", "labs", "mri")}
    if "nihss" in baseline.assessments and record.get("nihss") is not None:
        values["nihss"] = int(record["nihss"])
    return values


def record_baseline(db: Database, actor: accounts.Actor, trial_id: str, code: str, record: dict,
                    day: dt.datetime) -> None:
    protocol = load_builtin(trial_id)
    with db.write() as session:
        visits.record_visit(session, actor, trial_id, code, protocol.visits[0].id, day.date().isoformat(),
                            baseline_values(protocol, record))


class _EscalationRun:
    """A dose-escalation trial as far as the demo takes it: each cohort enrolled a week after the one before,
    its DLTs recorded by the investigator, the rule's decision confirmed by the safety review committee, the
    MTD declared and the expansion cohort begun, through the same operations (and audit trail) as real use."""

    def __init__(self, db: Database, actor: accounts.Actor, trial_id: str, spec: dict, now: dt.datetime,
                 outcomes: pd.DataFrame):
        self.protocol = load_builtin(trial_id)
        assert self.protocol.dose_escalation is not None
        self.db, self.actor, self.trial_id = db, actor, trial_id
        self.dlts: list[int] = spec["escalation_dlts"]
        self.dlt_criterion, self.dlt_event = spec["dlt"]["criterion"], spec["dlt"]["event"]
        self.size = self.protocol.dose_escalation.cohort_size
        self.start = now - dt.timedelta(days=7 * len(self.dlts) + 2 * spec.get("expansion", 0) + 3)
        self.outcomes = outcomes.reset_index(drop=True)
        self.had_dlt: set[str] = set()
        self.now = now
        self.investigator = accounts.Actor("investigator", "investigator", actor.sites)
        self.committee = accounts.Actor("committee", "safety_review_committee", actor.sites)

    def moment(self, i: int) -> dt.datetime:
        cohort, place = divmod(i, self.size)
        if cohort >= len(self.dlts):  # the expansion cohort: from a week after the last cohort, every other day
            return self.start + dt.timedelta(days=7 * len(self.dlts) + 2 * (i - self.size * len(self.dlts)))
        return self.start + dt.timedelta(days=7 * cohort, hours=4 * place)

    def enrol(self, i: int, code: str) -> None:
        moment = self.moment(i)
        with self.db.write() as session:
            escalation.enrol(session, self.actor, self.trial_id, code, str(uuid.uuid4()), now=moment)
        cohort, place = divmod(i, self.size)
        if cohort >= len(self.dlts):
            return
        with self.db.write() as session:
            dlt = place < self.dlts[cohort]
            if dlt:
                self.had_dlt.add(code)
            escalation.record_dlt(session, self.investigator, self.trial_id, code, dlt,
                                  self.dlt_criterion if dlt else None, self.dlt_event if dlt else None,
                                  moment.date().isoformat() if dlt else None)
        if place == self.size - 1:
            signature = signatures.sign(self.db, self.committee, DEMO_PASSWORD, "demo")
            with self.db.write() as session:
                state = escalation.current_state(session, self.trial_id, escalation.escalation_of(
                    load_builtin(self.trial_id), self.trial_id))
                pending = state.pending
                assert pending is not None, state.waiting
                escalation.confirm_decision(session, self.committee, self.trial_id, cohort + 1, pending.action,
                                            pending.level, pending.mtd, "no safety concern beyond the rule's "
                                            "count; the committee follows the rule", signature)

    def follow_up(self, i: int, code: str, record: dict) -> None:
        """Every follow-up form whose day has come, filled from the synthetic outcomes of this patient."""
        enrolled = self.moment(i).date()
        today = self.now.date()
        outcome = self.outcomes.iloc[i]
        for visit in self.protocol.visits[1:]:
            day = enrolled + dt.timedelta(days=visit.day)
            if day > today:
                continue
            values = {a: v for a in visit.assessments
                      if (v := _demo_value(a, visit.day, record, outcome, code in self.had_dlt)) is not None}
            with self.db.write() as session:
                visits.record_visit(session, self.actor, self.trial_id, code, visit.id, day.isoformat(), values)


def _demo_value(assessment: str, day: float, record: dict, outcome: pd.Series, dlt: bool) -> object:
    """A plausible value of one follow-up assessment for the demo (None: left blank)."""
    nihss = int(record.get("nihss") or 10)
    mrs = int(outcome["mrs_90d"])
    values: dict[str, object] = {
        "nihss": max(0, round(nihss * (0.7 if day <= 1 else 0.5))), "ct_or_mri": "ct",
        "infarct_volume_ml": float(outcome["infarct_volume_ml"]), "sich": bool(outcome["sich"]), "dlt": dlt,
        "infusion_completed": True, "infusion_minutes": 30.0, "sbp_max_mmhg": 150, "heart_rate_max": 88,
        "temperature_max_c": 38.1 if dlt else 37.0, "infusion_reaction": dlt, "sae": mrs == 6,
        "mrs": mrs, "death": mrs == 6}
    return values.get(assessment)
