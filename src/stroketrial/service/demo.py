"""Demo data: the five built-in trials at demo sites, one user per role, and synthetic patients.

Every trial gets randomized patients with a baseline visit; AMASS-2 also gets
screened, eligible patients awaiting randomization, so a newcomer can try the flow
at once. Everything is written through the same operations (and audit trail) as
real use; the patients are synthetic (`stroketrial.cohort`).
"""

from __future__ import annotations

from importlib import resources

import yaml

import datetime as dt
import uuid

from sqlalchemy import select

from ..clinical.record import ATTESTATIONS_KEY
from ..clinical.cohort_records import records_from_frame
from ..cohort import synthesize
from ..eligibility import encode_cohort, statuses
from ..protocol import load_builtin
from ..store import Database
from ..store.models import Trial
from . import accounts, patients, randomize, trials, visits
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
         ("monitor", "monitor", ["S1", "S2", "S3"]), ("assessor", "outcome_assessor", ["S1", "S2", "S3"])]


def has_data(db: Database) -> bool:
    with db.read() as session:
        return session.execute(select(Trial.id).limit(1)).first() is not None


def load(db: Database, seed: int = 2026) -> list[dict]:
    """Load the demo; returns the demo logins (name, role, password, token)."""
    logins = []
    with db.write() as session:
        for code, name in SITES.items():
            accounts.create_site(session, SYSTEM, code, name)
        for trial_id, sites in TRIAL_SITES.items():
            trials.create_trial(session, SYSTEM, trial_id, sites)
        for name, role, sites in USERS:
            _, token = accounts.create_user(session, SYSTEM, name, role, sites, password=DEMO_PASSWORD)
            logins.append({"name": name, "role": role, "password": DEMO_PASSWORD, "token": token,
                           "sites": sites or "all"})
    coordinator = accounts.Actor("coordinator", "coordinator", frozenset(SITES))
    for k, trial_id in enumerate(TRIAL_SITES):
        _enrol(db, coordinator, trial_id, seed + k)
    return logins


def _enrol(db: Database, actor: accounts.Actor, trial_id: str, seed: int) -> None:
    protocol = load_builtin(trial_id)
    sites = TRIAL_SITES[trial_id]
    spec = _PLATFORM["trials"][trial_id]
    n_randomized, n_waiting = spec.get("randomized", 0), spec.get("awaiting", 0)
    frame = synthesize(6000, seed, protocol)
    status = statuses(protocol, encode_cohort(protocol, frame))
    if protocol.randomization is not None:
        fields = [f.field for f in protocol.randomization.factors if f.field != "site"]
        complete = frame[fields].notna().all(axis=1).to_numpy()
    else:
        complete = status == status
    eligible = frame[(status == "eligible") & complete].head(n_randomized + n_waiting)
    ineligible = frame[status == "ineligible"].head(4)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for i, record in enumerate(records_from_frame(eligible) + records_from_frame(ineligible)):
        code = f"{protocol.acronym.split('-')[0][:5]}-{i + 1:03d}"
        site = sites[i % len(sites)]
        attestations = record.pop(ATTESTATIONS_KEY, None)
        record.pop("patient_id", None)
        record.pop("site", None)
        # Screening happens today; keep the timeline's intervals, ending now.
        clock = [k for k in ("last_known_well", "arterial_puncture", "recanalization", "randomization")
                 if record.get(k)]
        latest = max((dt.datetime.fromisoformat(record[k]) for k in clock), default=None)
        shift = now - latest.replace(tzinfo=dt.UTC) if latest is not None else dt.timedelta(0)
        for key in clock:
            if key in record:
                moment = dt.datetime.fromisoformat(record[key]).replace(tzinfo=dt.UTC) + shift
                record[key] = moment.isoformat()
        with db.write() as session:
            patients.register(session, actor, trial_id, code, site, record, attestations)
        if i < n_randomized and protocol.randomization is not None and i < len(eligible):
            with db.write() as session:
                randomize.randomize(session, actor, trial_id, code, str(uuid.uuid4()))
            with db.write() as session:
                baseline = protocol.visits[0]
                values: dict[str, bool | int] = {a: True for a in baseline.assessments
                                                 if a in ("vital_signs", "labs", "mri")}
                if "nihss" in baseline.assessments and record.get("nihss") is not None:
                    values["nihss"] = int(record["nihss"])
                visits.record_visit(session, actor, trial_id, code, baseline.id, now.date().isoformat(), values)
