"""The demo's records of a trial run under GCP, so that each page has something to show on the first visit: data
queries open, answered and closed; forms verified against the source; a signed casebook; an AE in the log; an
SAE reported late (its 24-hour clock overdue); and a demo protocol amendment with a patient enrolled under
deferred consent whose confirmation is pending; a site's sealed emergency envelopes.

What is done to which patient is data (`workflow:` of a trial in demo_platform.yaml); everything is written
through the same operations, roles and audit trail as real use. Patients are named by their place in the trial
(1 = the first registered), as the demo numbers them.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from ..clinical.record import ATTESTATIONS_KEY
from ..protocol import load_builtin
from ..store import Database
from ..store.models import Patient
from . import (adverse_events, amendments, consent, envelopes, queries, randomize, record_signatures,
               serious_adverse_events, signatures, trials, verification)
from .accounts import SYSTEM, Actor
from .demo import SITES, TRIAL_SITES, patient_code, record_baseline, register_demo_patient


def _actor(name: str, role: str) -> Actor:
    return Actor(name, role, frozenset(SITES))


MONITOR, DATA_MANAGER = _actor("monitor", "monitor"), _actor("data_manager", "data_manager")
COORDINATOR, INVESTIGATOR = _actor("coordinator", "coordinator"), _actor("investigator", "investigator")
PHARMACIST = _actor("pharmacist", "unblinded_pharmacist")


def run_workflow(db: Database, trial_id: str, spec: dict[str, Any], later: list[dict], password: str) -> None:
    acronym = load_builtin(trial_id).acronym
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def code(number: int) -> str:
        return patient_code(acronym, number)

    for q in spec.get("queries", []):
        raiser = DATA_MANAGER if q.get("by") == "data_manager" else MONITOR
        with db.write() as session:
            raised = queries.raise_query(session, raiser, trial_id, code(q["patient"]), q["form"], q["field"],
                                         q["text"])
        if "answer" in q:
            with db.write() as session:
                queries.answer_query(session, COORDINATOR, trial_id, raised["id"], q["answer"])
        if "close" in q:
            with db.write() as session:
                queries.close_query(session, raiser, trial_id, raised["id"], q["close"])
    if "verified" in spec:
        for form in spec["verified"]["forms"]:
            with db.write() as session:
                verification.verify_form(session, MONITOR, trial_id, code(spec["verified"]["patient"]), form)
    if "adverse_event" in spec:
        ae = spec["adverse_event"]
        data = {**ae["data"], "onset_date": (now - dt.timedelta(days=ae["onset_days_ago"])).date().isoformat()}
        with db.write() as session:
            adverse_events.record_ae(session, COORDINATOR, trial_id, code(ae["patient"]), data)
    if "signed_casebook" in spec:
        signature = signatures.sign(db, INVESTIGATOR, password, "demo")
        with db.write() as session:
            record_signatures.sign_record(session, INVESTIGATOR, trial_id, code(spec["signed_casebook"]), None,
                                          "approval", signature)
    if "late_sae" in spec:
        sae = spec["late_sae"]
        data = {**sae["data"], "onset_date": (now - dt.timedelta(days=sae["onset_days_ago"])).date().isoformat(),
                "awareness_at": (now - dt.timedelta(hours=sae["awareness_hours_ago"])).isoformat()}
        with db.write() as session:
            serious_adverse_events.report_sae(session, COORDINATOR, trial_id, code(sae["patient"]), data)
    for site in spec.get("envelope_sets", []):  # sealed emergency envelopes for when the server cannot be reached
        with db.write() as session:
            envelopes.generate(session, PHARMACIST, trial_id, site)
    if "amendment" in spec:
        _amend(db, trial_id, spec["amendment"])
    with db.read() as session:
        registered = session.execute(select(func.count()).select_from(Patient).where(Patient.trial_id == trial_id)
                                     ).scalar_one()
    for k, record in enumerate(later):
        _enrol_under_deferred_consent(db, trial_id, code(registered + k + 1), record, now)


def _amend(db: Database, trial_id: str, changes: dict[str, Any]) -> None:
    """The built-in protocol with `changes` merged into its sections, applied as version 2 from today."""
    raw = yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", f"{trial_id}.yaml")
                         .read_text(encoding="utf-8"))
    for section, change in changes.items():
        raw[section] = {**raw[section], **change} if isinstance(change, dict) else change
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{trial_id}-demo-amendment.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
        with db.write() as session:
            amendments.amend_protocol(session, SYSTEM, trial_id, path, dt.datetime.now(dt.UTC).date())


def _enrol_under_deferred_consent(db: Database, trial_id: str, code: str, record: dict, now: dt.datetime) -> None:
    """A patient who cannot consent and has no representative at hand: registered with the consent criterion
    unanswered, enrolled under deferred consent (which answers it), randomized; the confirmation is pending."""
    with db.read() as session:
        policy = trials.get_trial(session, SYSTEM, trial_id)[1].consent  # the version in force: the amended one
    assert policy is not None and "deferred" in policy.routes, "the demo's deferred consent needs the amendment"
    attestations = {k: v for k, v in (record.get(ATTESTATIONS_KEY) or {}).items() if k != policy.criterion}
    register_demo_patient(db, COORDINATOR, trial_id, code, TRIAL_SITES[trial_id][0],
                          {**record, ATTESTATIONS_KEY: attestations}, now)
    with db.write() as session:
        consent.record_consent(session, COORDINATOR, trial_id, code, "deferred", policy.current_form, now.isoformat())
    with db.write() as session:
        randomize.randomize(session, COORDINATOR, trial_id, code, str(uuid.uuid4()))
    record_baseline(db, COORDINATOR, trial_id, code, record, now)

