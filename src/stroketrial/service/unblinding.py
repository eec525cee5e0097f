"""Emergency unblinding: the treating investigator learns one patient's arm, with the clinical reason, always
audited; the DSMB and the admin read the log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import record
from ..store.models import Allocation, Patient, Unblinding
from . import notifications
from .accounts import Actor
from .blinding import sees_arm
from .errors import Invalid
from .patients import MAX_REASON, aware, randomized_patient
from .text import plain_text
from .trials import get_trial


def unblind(session: Session, actor: Actor, trial_id: str, code: str, reason: str | None) -> dict[str, Any]:
    """Reveal one patient's arm to the treating investigator in an emergency; always audited."""
    actor.require("emergency unblinding")
    _protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    if not isinstance(reason, str) or len(reason.strip()) < 10:
        raise Invalid("emergency unblinding needs the clinical reason (at least 10 characters)",
                      [{"field": "reason", "value": reason, "message": "the clinical reason, 10+ characters"}])
    reason = plain_text("reason", reason, MAX_REASON, min_length=10)
    row = Unblinding(patient_id=patient.id, reason=reason.strip(), created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "emergency_unblinding", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=patient.site_code,
           after={"sequence": allocation.sequence, "kit": allocation.kit}, reason=reason.strip())
    notifications.emergency_unblinding(session, _protocol, trial_id, patient, allocation, actor.name, reason.strip())
    return {"patient_id": code, "sequence": allocation.sequence, "kit": allocation.kit, "arm": allocation.arm,
            "unblinded_by": actor.name, "reason": reason.strip()}


def unblindings(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    """The unblinding log of a trial, at the actor's sites; arms only for those who may see them."""
    actor.require("reading the unblinding log")
    _trial, protocol = get_trial(session, actor, trial_id)
    rows = session.execute(select(Unblinding, Patient, Allocation).join(Patient, Unblinding.patient_id == Patient.id)
                           .join(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial_id).order_by(Unblinding.id)).all()
    out = []
    for u, p, a in rows:
        if not actor.can_see_site(p.site_code):
            continue
        item = {"patient_id": p.code, "site": p.site_code, "sequence": a.sequence, "kit": a.kit,
                "unblinded_by": u.created_by, "at": aware(u.created_at).isoformat(), "reason": u.reason}
        if sees_arm(actor.role, protocol.design.masking):
            item["arm"] = a.arm
        out.append(item)
    return out
