"""Protocol amendments on the platform: a new version checked against the one before it, in force from a date.

Patients keep the version they were screened under (their eligibility, corrections and the re-check at
randomization use it); everything else (screening of new patients, the visit schedule, forms, the analysis
plan) follows the version in force. Version 1 is the protocol the trial was created with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import ProtocolError, resolve
from ..protocol.amendments import AmendmentRefused, compare
from ..store import record
from ..store.models import Patient, ProtocolVersion
from .accounts import Actor
from .errors import Conflict, Invalid
from .patients import aware
from .trials import get_trial, protocol_in_force, stored_protocol


def _effective(effective: dt.date, last: dt.datetime | None) -> dt.datetime:
    today = dt.datetime.now(dt.UTC).date()
    if effective < today:
        raise Invalid(i18n.gettext("effective date {effective} is in the past; an amendment comes into force today "
                                   "({today}) or later, never for patients already screened").format(
            effective=effective.isoformat(), today=today.isoformat()),
            [{"field": "effective", "value": effective.isoformat(), "message": i18n.gettext("today or later")}])
    # in force from the start of that day, or from now when that is today: never before it was applied, so that
    # no patient screened earlier today is counted under a version that did not yet exist
    now = dt.datetime.now(dt.UTC)
    start = max(dt.datetime.combine(effective, dt.time(), tzinfo=dt.UTC), now)
    if last is not None and start <= last:
        raise Conflict(i18n.gettext("the latest amendment comes into force on {day}; this one must come after").format(
            day=last.date().isoformat()))
    return start


def amend_protocol(session: Session, actor: Actor, trial_id: str, path: str | Path, effective: dt.date,
                   apply: bool = True) -> dict[str, Any]:
    """Check the protocol file against the latest version and, with `apply`, record it as the next version in
    force from `effective` (00:00 UTC; from now when it is today). Returns the version, its date and what changes."""
    actor.require("amending a protocol")
    trial, _ = get_trial(session, actor, trial_id)
    latest = session.execute(select(ProtocolVersion).where(ProtocolVersion.trial_id == trial_id)
                             .order_by(ProtocolVersion.version.desc()).limit(1)).scalar_one_or_none()
    current_version, current = protocol_in_force(session, trial, dt.datetime.max.replace(tzinfo=dt.UTC))
    try:
        new = resolve(str(path))
    except ProtocolError as exc:
        raise Invalid(i18n.gettext("the amended protocol is not valid: {problem}").format(problem=exc),
                      [{"field": "protocol", "value": str(path), "message": str(exc)}]) from None
    try:
        changes = compare(current, new)
    except AmendmentRefused as exc:
        raise Invalid(i18n.gettext("version {version} may not be an amendment of {trial}: {problem}").format(
            version=current_version + 1, trial=trial_id, problem=exc),
                      [{"field": "protocol", "value": str(path), "message": p} for p in exc.problems]) from None
    if changes.empty:
        raise Invalid(i18n.gettext("{path} is the same as version {version}: nothing to amend").format(
            path=path, version=current_version),
            [{"field": "protocol", "value": str(path), "message": i18n.gettext("no change")}])
    start = _effective(effective, aware(latest.effective_from) if latest else None)
    body = {"trial": trial_id, "version": current_version + 1, "previous_version": current_version,
            "effective_from": start.isoformat(), "changes": changes.to_json(), "applied": apply,
            "protocol_sha256": hashlib.sha256(new.model_dump_json().encode("utf-8")).hexdigest()}
    if not apply:
        return body
    session.add(ProtocolVersion(trial_id=trial_id, version=current_version + 1, protocol_json=stored_protocol(new),
                                effective_from=start, changes_json=json.dumps(changes.to_json(), sort_keys=True),
                                created_by=actor.name))
    session.flush()
    record(session, actor.name, "amend_protocol", "trial", trial_id, trial_id=trial_id, after=body)
    return body


def versions(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    """Every version of the trial's protocol: when in force, what changed, how many patients were screened under
    it, and which is in force now."""
    trial, _ = get_trial(session, actor, trial_id)
    in_force, _ = protocol_in_force(session, trial)
    screened: dict[int, int] = {}
    for version in session.execute(select(Patient.protocol_version).where(Patient.trial_id == trial_id)).scalars():
        screened[version or 1] = screened.get(version or 1, 0) + 1
    out = [{"version": 1, "effective_from": aware(trial.created_at).isoformat(), "changes": {},
            "patients_screened": screened.get(1, 0), "in_force": in_force == 1}]
    for row in session.execute(select(ProtocolVersion).where(ProtocolVersion.trial_id == trial_id)
                               .order_by(ProtocolVersion.version)).scalars():
        out.append({"version": row.version, "effective_from": aware(row.effective_from).isoformat(),
                    "changes": json.loads(row.changes_json), "patients_screened": screened.get(row.version, 0),
                    "in_force": in_force == row.version, "amended_by": row.created_by})
    return out
