"""Emergency unblinding: the treating investigator learns one patient's arm, with the clinical reason, always
audited; the DSMB and the admin read the log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol
from ..store import record
from ..store.models import Allocation, Patient, Unblinding
from . import notifications, refusals
from .accounts import Actor
from .blinding import sees_arm
from .errors import Forbidden, Invalid, NotFound
from .roles import PERMISSIONS
from .patients import MAX_REASON, aware, randomized_patient
from .text import plain_text
from .trials import get_trial


def unblind(session: Session, actor: Actor, trial_id: str, code: str, reason: str | None) -> dict[str, Any]:
    """Reveal one patient's arm to the treating investigator in an emergency; always audited."""
    actor.require("emergency unblinding")
    _protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    if not isinstance(reason, str) or len(reason.strip()) < 10:
        raise Invalid(i18n.gettext("emergency unblinding needs the clinical reason (at least 10 characters)"),
                      [{"field": "reason", "value": reason,
                        "message": i18n.gettext("the clinical reason, 10+ characters")}])
    reason = plain_text("reason", reason, MAX_REASON, min_length=10)
    row = Unblinding(patient_id=patient.id, reason=reason.strip(), created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "emergency_unblinding", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=patient.site_code,
           after={"sequence": allocation.sequence, "kit": allocation.kit}, reason=reason.strip())
    notifications.emergency_unblinding(session, _protocol, trial_id, patient, allocation, actor.name, reason.strip())
    return {"unblinding_id": row.id, "patient_id": code, "sequence": allocation.sequence, "kit": allocation.kit,
            "arm": allocation.arm, "unblinded_by": actor.name, "reason": reason.strip()}


def unblind_once(session: Session, actor: Actor, trial_id: str, code: str,
                 reason: str | None) -> tuple[dict[str, Any], bool]:
    """The pages' unblinding: (the record, whether it is new). An investigator who has unblinded this patient
    already gets that record back (a resubmitted form or a reload records nothing), so the arm is revealed and
    notified once per investigator; another investigator unblinds with a reason of their own."""
    actor.require("emergency unblinding")
    _protocol, patient, _allocation = randomized_patient(session, actor, trial_id, code)
    mine = session.execute(select(Unblinding.id).where(Unblinding.patient_id == patient.id,
                                                       Unblinding.created_by == actor.name)
                           .order_by(Unblinding.id)).scalars().first()
    if mine is not None:
        return unblinding_of(session, actor, trial_id, code, mine), False
    return unblind(session, actor, trial_id, code, reason), True


def may_read_patient_unblindings(actor: Actor) -> bool:
    """Who may read a patient's unblindings: the investigators (each sees the arm of their own unblinding only)
    and the roles that read the unblinding log (the arm where blinding.sees_arm lets them)."""
    return actor.may("emergency unblinding") or actor.may("reading the unblinding log")


def _view(actor: Actor, protocol: Protocol, row: Unblinding, patient: Patient,
          allocation: Allocation) -> dict[str, Any]:
    item: dict[str, Any] = {"unblinding_id": row.id, "patient_id": patient.code, "site": patient.site_code,
                            "sequence": allocation.sequence, "kit": allocation.kit, "unblinded_by": row.created_by,
                            "at": aware(row.created_at).isoformat(), "reason": row.reason}
    own = actor.may("emergency unblinding") and row.created_by == actor.name
    if own or (actor.may("reading the unblinding log") and sees_arm(actor.role, protocol.design.masking)):
        item["arm"] = allocation.arm
    return item


def patient_unblindings(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    """One patient's unblindings, oldest first: to the investigators at its site (the arm only of an unblinding
    they made themselves) and to the roles that read the log (the arm only where they see arms)."""
    if not may_read_patient_unblindings(actor):
        raise Forbidden(i18n.gettext("{name} ({role}) may not read unblindings: the unblinding investigator and "
                                     "{roles} may").format(
            name=actor.name, role=refusals.role(actor.role),
            roles=refusals.roles(PERMISSIONS["reading the unblinding log"])))
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    rows = session.execute(select(Unblinding).where(Unblinding.patient_id == patient.id)
                           .order_by(Unblinding.id)).scalars()
    return [_view(actor, protocol, row, patient, allocation) for row in rows]


def unblinding_of(session: Session, actor: Actor, trial_id: str, code: str, unblinding_id: int) -> dict[str, Any]:
    """One recorded unblinding of a patient, as `patient_unblindings` shows it to this actor."""
    found = next((u for u in patient_unblindings(session, actor, trial_id, code)
                  if u["unblinding_id"] == unblinding_id), None)
    if found is None:
        raise NotFound(i18n.gettext("patient {patient} of {trial} has no unblinding {unblinding}").format(
            patient=code, trial=trial_id, unblinding=unblinding_id))
    return found


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
        item = {"unblinding_id": u.id, "patient_id": p.code, "site": p.site_code, "sequence": a.sequence,
                "kit": a.kit,
                "unblinded_by": u.created_by, "at": aware(u.created_at).isoformat(), "reason": u.reason}
        if sees_arm(actor.role, protocol.design.masking):
            item["arm"] = a.arm
        out.append(item)
    return out
