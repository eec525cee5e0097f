"""Randomization during the procedure, in two steps (ANGEL-RESCUE: after failed thrombectomy passes).

Before the procedure the site registers the patient with everything then known (arrival, imaging, labs): the
patient waits for the procedure when no criterion has failed and only the protocol's during-procedure criteria are
open. At the angiography table the site gives the remaining fields (passes, devices, eTICI); the patient is screened
in full and, when eligible, randomized in the same transaction. The Idempotency-Key the page carries makes a double
submit return the first allocation.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical import VARIABLES, parse_patient
from ..clinical.record import ATTESTATIONS_KEY
from ..protocol import Protocol
from ..protocol.procedure import DuringProcedure
from ..store import canonical, record
from ..store.models import Allocation
from . import locks, record_signatures
from .accounts import Actor
from .clock import PLANNED_FIELD, local_now, site_zone
from .errors import Conflict, Invalid
from .patients import allocation_of, find_patient, patient_view, register, validated_screening
from .randomize import MAX_KEY, randomize
from .trials import get_trial, patient_protocol

WAITING = "waiting for the procedure"


def during_procedure(protocol: Protocol) -> DuringProcedure:
    during = protocol.during_procedure
    if during is None:
        raise Conflict(i18n.gettext("{trial} does not randomize during the procedure: register and randomize the "
                                    "patient as usual").format(trial=protocol.id))
    return during


def asked_during_procedure(protocol: Protocol, criterion_id: str) -> bool:
    """Whether a criterion can only be decided during the procedure: it reads a during-procedure field or is a
    during-procedure attestation."""
    during = protocol.during_procedure
    if during is None:
        return False
    if criterion_id in during.attestations:
        return True
    criterion = next((c for c in protocol.criteria if c.id == criterion_id), None)
    if criterion is None:
        return False
    reads = {real for name in criterion.fields() for real in (VARIABLES[name].derived_from or (name,))}
    return bool(reads & set(during.fields))


def open_before_procedure(protocol: Protocol, screening: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The open criteria (a screening result's) that the site could decide before the procedure."""
    return [c for c in screening["criteria"] if c["status"] in ("missing_data", "needs_attestation")
            and not asked_during_procedure(protocol, c["id"])]


def waiting_for_procedure(protocol: Protocol, view: Mapping[str, Any]) -> bool:
    """A patient (as patient_view shows them) recorded before the procedure: not randomized, no criterion failed,
    and only the during-procedure criteria open."""
    return (protocol.during_procedure is not None and not view["randomized"] and view["status"] == "incomplete"
            and not open_before_procedure(protocol, view["screening"]))


def procedure_step_open(protocol: Protocol, view: Mapping[str, Any]) -> bool:
    """Whether the procedure step can be taken for a patient (as patient_view shows them): not randomized, and no
    criterion failed but those decided during the procedure (a pass more may change them)."""
    return (protocol.during_procedure is not None and not view["randomized"]
            and all(asked_during_procedure(protocol, c) for c in view["failing"]))


def _missing_fields(protocol: Protocol, data: Mapping[str, Any], criteria: list[dict[str, Any]]) -> list[dict]:
    """Each open criterion as the fields (or the attestation) it waits on, for an Invalid's errors."""
    by_id = {c.id: c for c in protocol.criteria}
    errors: list[dict[str, Any]] = []
    for c in criteria:
        criterion = by_id.get(c["id"])
        if criterion is not None and criterion.attestation is not None:
            errors.append({"field": f"{ATTESTATIONS_KEY}.{c['id']}", "value": None,
                           "message": i18n.gettext("answer: {question}").format(
                               question=i18n.protocol_text(criterion, "attestation"))})
            continue
        reads = criterion.fields() if criterion is not None else set()
        names = sorted({real for name in reads for real in (VARIABLES[name].derived_from or (name,))
                        if data.get(real) is None})
        errors.extend({"field": name, "value": None, "message": i18n.gettext("required ({criterion}: {reason})").format(
                           criterion=c["id"], reason=c["reason"])}
                      for name in names or [c["id"]])
    return errors


def register_before_procedure(session: Session, actor: Actor, trial_id: str, code: str, site: str,
                              data: Mapping[str, Any], attestations: Mapping[str, Any] | None = None
                              ) -> dict[str, Any]:
    """Register a patient before the procedure, with everything known then; refused (nothing stored) when
    something the site could give now is missing, each named, so that the procedure asks only what is new."""
    _trial, protocol = get_trial(session, actor, trial_id)
    during_procedure(protocol)
    view = register(session, actor, trial_id, code, site, data, attestations)
    if view["status"] == "incomplete" and (still := open_before_procedure(protocol, view["screening"])):
        raise Invalid(i18n.gettext("patient {patient} cannot wait for the procedure yet: {criteria}").format(
                          patient=code, criteria="; ".join(f"{c['id']} ({c['reason']})" for c in still)),
                      _missing_fields(protocol, view["data"], still))
    return view | {"waiting_for_procedure": waiting_for_procedure(protocol, view)}


def _key(idempotency_key: str | None) -> str:
    if not idempotency_key or not idempotency_key.strip() or len(idempotency_key) > MAX_KEY:
        raise Invalid(i18n.gettext("randomization needs an Idempotency-Key (1-200 characters, new for each request, "
                                   "the same when retrying)"),
                      [{"field": "Idempotency-Key", "value": idempotency_key,
                        "message": i18n.gettext("1-200 characters")}])
    return idempotency_key


def _only_asked(during: DuringProcedure, data: Any, attestations: Any) -> None:
    """Refuse what the procedure step does not ask, naming each field: the rest is corrected on the screening
    data, with a reason."""
    if not isinstance(data, Mapping):
        raise Invalid(i18n.gettext("data must be an object of field: value"),
                      [{"field": "data", "value": data, "message": i18n.gettext("an object")}])
    if attestations is not None and not isinstance(attestations, Mapping):
        raise Invalid(i18n.gettext("attestations must be an object of criterion: true/false"),
                      [{"field": "attestations", "value": attestations, "message": i18n.gettext("an object")}])
    asked = ", ".join(during.fields)
    errors = [{"field": name, "value": value,
               "message": i18n.gettext("not asked during the procedure (only {asked}); correct the screening data "
                                       "instead").format(asked=asked)}
              for name, value in data.items() if name not in during.fields]
    errors += [{"field": f"{ATTESTATIONS_KEY}.{name}", "value": value,
                "message": i18n.gettext("not asked during the procedure (only {asked})").format(
                    asked=", ".join(during.attestations) or i18n.gettext("none"))}
               for name, value in (attestations or {}).items() if name not in during.attestations]
    if errors:
        raise Invalid(i18n.gettext("the procedure step takes only the during-procedure fields: {fields} "
                                   "refused").format(
            fields=", ".join(e["field"] for e in errors)), errors)


def randomize_during_procedure(session: Session, actor: Actor, trial_id: str, code: str, data: Any,
                               attestations: Any, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """(the patient as this actor may see them, whether randomized now). The during-procedure fields are recorded
    (audited), the patient screened in full; eligible, the patient is randomized at once. Ineligible, the data are
    kept and nothing is randomized: the answer names the failed criteria. A retry with the same key answers as
    the first time."""
    actor.require("randomizing")
    key = _key(idempotency_key)
    _trial, protocol = get_trial(session, actor, trial_id)
    during = during_procedure(protocol)
    row = find_patient(session, actor, trial_id, code)
    retried = session.execute(select(Allocation).where(Allocation.trial_id == trial_id,
                                                       Allocation.idempotency_key == key)).scalar_one_or_none()
    if retried is not None:
        _, created = randomize(session, actor, trial_id, code, key)  # the first answer, or 409 for another patient
        return patient_view(session, actor, protocol, row), created
    _only_asked(during, data, attestations)
    if (existing := allocation_of(session, row)) is not None:
        raise Conflict(i18n.gettext("patient {patient} was randomized already (sequence {sequence}); a patient is "
                                    "randomized once").format(patient=code, sequence=existing.sequence),
                       sequence=existing.sequence)
    locks.refuse_if_locked(session, row, locks.SCREENING_FORM)
    screened_under = patient_protocol(session, trial_id, row.protocol_version)
    zone = site_zone(session, row.site_code)
    before = json.loads(row.data_json)
    document = {**before, **dict(data), "patient_id": row.code, "site": row.site_code}
    document[ATTESTATIONS_KEY] = {**(before.get(ATTESTATIONS_KEY) or {}), **dict(attestations or {})}
    like = next((v for v in parse_patient(before).values.values() if isinstance(v, dt.datetime)), None)
    document[PLANNED_FIELD] = local_now(zone, like).isoformat()  # randomized now; the server's clock decides
    document = {k: v for k, v in document.items() if v is not None}
    patient, result = validated_screening(screened_under, document, zone)
    if result.status == "incomplete":
        still = [c for c in result.to_json()["criteria"] if c["status"] in ("missing_data", "needs_attestation")]
        raise Invalid(i18n.gettext("patient {patient} cannot be screened in full yet: {criteria}").format(
                          patient=code, criteria="; ".join(f"{c['id']} ({c['reason']})" for c in still)),
                      _missing_fields(screened_under, patient.to_json(), still), status="incomplete")
    after = patient.to_json()
    row.data_json, row.status, row.screening_json = canonical(after), result.status, canonical(result.to_json())
    record(session, actor.name, "record_procedure_screening", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=row.site_code, before=before, after=after)
    record_signatures.after_change(session, actor, row, locks.SCREENING_FORM)
    if result.status != "eligible":
        return patient_view(session, actor, protocol, row), False
    _, created = randomize(session, actor, trial_id, code, key)
    return patient_view(session, actor, protocol, row), created
