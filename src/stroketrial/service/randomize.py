"""Randomizing a patient: once, in one transaction with the state and the audit event.

Runs inside `Database.write()`, which holds the write lock, so the state read here
cannot change before this transaction commits: sequence numbers have no gaps or
repeats however many requests arrive at once. The Idempotency-Key makes a retried
request (its response lost) return the first answer instead of randomizing again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, aliased

from .. import i18n
from ..clinical import PatientRecord, parse_patient
from ..protocol import Protocol
from ..protocol.schemes import PermutedBlocks
from ..randomization import (Allocation as AllocationRecord, Draw, FactorValueError, ListExhausted, RandomizationState,
                             Randomizer, SystemDraw)
from ..store import canonical, record
from ..store.rows import insert_row, update_row
from ..store.models import Allocation, Patient, RandomizationStateRow, Site
from .accounts import Actor
from .clock import local_now, site_zone
from . import supply
from .concealed_lists import StoredBlockList, StoredKitList
from .consent import require_consent
from .errors import Conflict, Invalid
from .patients import allocation_view, patient_not_found, validated_screening
from ..randomization.lists import LIST_LENGTH_PER_STRATUM, RESUPPLY_KITS, kit_block_sizes
from .trials import get_trial, patient_protocol, randomization_state

MAX_KEY = 200


def randomize(session: Session, actor: Actor, trial_id: str, code: str, idempotency_key: str | None, *,
              now: dt.datetime | None = None) -> tuple[dict[str, Any], bool]:
    """(the allocation as this actor may see it, whether it was created now). `now` stands for the server's clock
    (the demo's patients randomized in the past); real use leaves it None."""
    actor.require("randomizing")
    if not idempotency_key or not idempotency_key.strip() or len(idempotency_key) > MAX_KEY:
        raise Invalid(i18n.gettext("randomization needs an Idempotency-Key header (1-200 characters, new for each "
                                   "request, the same when retrying)"),
                      [{"field": "Idempotency-Key", "value": idempotency_key,
                        "message": i18n.gettext("1-200 characters")}])
    _trial, protocol = get_trial(session, actor, trial_id)
    if protocol.randomization is None:
        raise Conflict(i18n.gettext("{trial} is not randomized ({design})").format(
            trial=trial_id, design=i18n.gettext(protocol.design.model.replace("_", " "))))
    patient, existing, key_patient, zone, state_row = _patient_to_randomize(session, actor, trial_id, code,
                                                                            idempotency_key)
    if key_patient is not None and key_patient != patient.id:
        raise Conflict(i18n.gettext("this Idempotency-Key was used for another patient; use a new key for each "
                                    "patient"))
    if key_patient is not None and existing is not None:
        return allocation_view(actor, protocol, existing) | {"patient_id": code}, False
    if existing is not None:
        raise Conflict(i18n.gettext("patient {patient} was randomized already (sequence {sequence}); a patient is "
                                    "randomized once").format(patient=code, sequence=existing.sequence),
                       sequence=existing.sequence)
    require_eligible(patient)
    require_consent(session, protocol, patient, "randomized")
    # Nothing read here depends on what this write changes (the patient's time of randomization, the allocation,
    # the state): those are sent as Core statements (`store.rows`), and the two events go in one INSERT at the end.
    with session.no_autoflush:
        record_now = screen_at_server_time(session, actor, patient_protocol(session, trial_id,
                                                                           patient.protocol_version),
                                           patient, now=now, zone=zone)
        randomizer = Randomizer.for_protocol(protocol)
        try:
            levels = randomizer.levels(record_now)
        except FactorValueError as exc:
            raise Invalid(i18n.gettext("cannot randomize {patient}: {problem}").format(patient=code, problem=exc),
                          [{"field": "randomization factors", "value": None, "message": str(exc)}]) from None
        # A trial with physical kits: whether a kit of every arm is on the site's shelf is asked before the
        # allocation is made, so a refusal (or an allocation without a kit) never depends on the next arm.
        dispensing = supply.before_randomizing(session, protocol, trial_id, patient.site_code)
        state_row = state_row or randomization_state(session, trial_id)  # that one refuses a trial without state
        state = RandomizationState.model_validate_json(state_row.state_json)
        blocks, kits = StoredBlockList(session, trial_id), StoredKitList(session, trial_id)
        draw = SystemDraw()
        for _ in range(3):
            try:
                allocation, new_state = randomizer.allocate(
                    state, code, levels, draw, block_list=blocks, kit_list=kits, site=patient.site_code,
                    choose_kit=None if dispensing is None else
                    (lambda arm: supply.pick_kit(session, protocol, trial_id, patient.site_code, arm)
                     if dispensing == "kit" else None))
                break
            except ListExhausted:
                # Concealed lists are extended, never shown, from the OS CSPRNG, inside this transaction.
                _resupply(randomizer, protocol, state, levels, patient.site_code, blocks, kits, draw)
        else:  # pragma: no cover - a resupply always makes room
            raise Conflict(i18n.gettext("the concealed lists could not be extended"))
    now = now or dt.datetime.now(dt.UTC)
    record_json = allocation.model_dump_json()
    row = Allocation(trial_id=trial_id, patient_id=patient.id, sequence=allocation.sequence, arm=allocation.arm,
                     kit=allocation.kit, record_json=record_json, idempotency_key=idempotency_key,
                     created_at=now, created_by=actor.name)
    insert_row(session, row)
    update_row(session, state_row, state_json=new_state.model_dump_json())
    record(session, actor.name, "randomize", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=patient.site_code, after=json.loads(record_json))
    if dispensing is not None:
        supply.dispense_at_randomization(session, actor, protocol, trial_id, patient, allocation.kit, allocation.arm)
    return allocation_view(actor, protocol, row) | {"patient_id": code}, True


_first_use = aliased(Allocation)
# Built once (bound per call): building a statement costs more Python than running it on every allocation.
_PATIENT_TO_RANDOMIZE = (
    select(Patient, Allocation,
           select(_first_use.patient_id).where(_first_use.trial_id == bindparam("trial"),
                                               _first_use.idempotency_key == bindparam("key")).scalar_subquery(),
           Site.timezone, RandomizationStateRow)
    .outerjoin(Allocation, Allocation.patient_id == Patient.id)
    .outerjoin(Site, Site.code == Patient.site_code)
    .outerjoin(RandomizationStateRow, RandomizationStateRow.trial_id == Patient.trial_id)
    .where(Patient.trial_id == bindparam("trial"), Patient.code == bindparam("code")))


def _patient_to_randomize(session: Session, actor: Actor, trial_id: str, code: str, idempotency_key: str
                          ) -> tuple[Patient, Allocation | None, int | None, ZoneInfo, RandomizationStateRow | None]:
    """In one query: the patient (404 unless at the actor's sites), the patient's allocation if any, the patient
    the Idempotency-Key was first used for (None: a new key), the site's time zone, and the trial's allocation
    state (the write holds the trial's lock, so it is the state this allocation must read)."""
    found = session.execute(_PATIENT_TO_RANDOMIZE, {"trial": trial_id, "code": code, "key": idempotency_key}
                            ).one_or_none()
    if found is None or not actor.can_see_site(found[0].site_code):
        raise patient_not_found(trial_id, code)
    patient, allocation, key_patient, timezone, state = found
    return patient, allocation, key_patient, ZoneInfo(timezone or "UTC"), state


def screen_at_server_time(session: Session, actor: Actor, protocol, patient: Patient,
                          now: dt.datetime | None = None, zone: ZoneInfo | None = None) -> PatientRecord:
    """Windows that end at randomization are measured to the server's clock, not to a time typed on the form:
    the planned time of randomization is replaced by now (in the site's zone: read here unless given) and the
    patient screened again. Answers with the patient's record as now stored."""
    zone = zone or site_zone(session, patient.site_code)
    data = json.loads(patient.data_json)
    typed = parse_patient(data)
    like = next((v for v in typed.values.values() if isinstance(v, dt.datetime)), None)
    local = local_now(zone, like, now)
    document = {**data, "randomization": local.isoformat()}
    record_now, result = validated_screening(protocol, document)
    if result.status != "eligible":
        problems = [c for c in result.criteria if c.excludes or c.status in ("missing_data", "needs_attestation")]
        raise Invalid(i18n.gettext("patient {patient} is not eligible at the time of randomization by the server's "
                                   "clock ({now}, {zone}): {reasons}").format(
            patient=patient.code, now=local.isoformat(timespec="minutes"), zone=zone.key,
            reasons="; ".join(c.reason for c in problems)),
                      [{"field": c.id, "value": c.status, "message": c.reason} for c in problems],
                      status=result.status)
    stored = record_now.to_json()
    if stored != data:
        screening = canonical(result.to_json())
        # an unchanged screening is not sent: PostgreSQL would compress and store its 5 KB again
        update_row(session, patient, data_json=canonical(stored),
                   **({} if screening == patient.screening_json else {"screening_json": screening}))
        record(session, actor.name, "set_randomization_time", "patient", f"{patient.trial_id}/{patient.code}",
               trial_id=patient.trial_id, site=patient.site_code, before=data, after=stored,
               reason="time of randomization: the server's clock")
    return record_now


def require_eligible(patient: Patient) -> None:
    if patient.status == "eligible":
        return
    screening = json.loads(patient.screening_json)
    failing = [c for c in screening["criteria"] if c.get("excludes")]
    outstanding = [c for c in screening["criteria"] if c["status"] in ("missing_data", "needs_attestation")]
    problems = failing if patient.status == "ineligible" else outstanding
    raise Invalid(i18n.gettext("patient {patient} is {status} and cannot be randomized").format(
        patient=patient.code, status=i18n.gettext(patient.status)),
                  [{"field": c["id"], "value": c["status"], "message": c["reason"]} for c in problems],
                  status=patient.status)


def _resupply(randomizer: Randomizer, protocol: Protocol, state: RandomizationState, levels: Mapping[str, str],
              site: str, blocks: StoredBlockList, kits: StoredKitList, draw: Draw) -> None:
    scheme = protocol.randomization
    if scheme is None:  # pragma: no cover - randomize() refuses a trial that is not randomized
        return
    # A block design always has a stratum (one list when unstratified); other designs have none.
    if isinstance(scheme, PermutedBlocks) and (stratum := randomizer.stratum(levels)) is not None:
        used = sum(state.strata.get(stratum, {}).values())
        if used >= blocks.length(stratum):
            blocks.extend(randomizer.arms, scheme.block_sizes, stratum, used + LIST_LENGTH_PER_STRATUM, draw)
    if scheme.blinded_kits:
        kits.add(randomizer.arms, [site], RESUPPLY_KITS, kit_block_sizes(scheme, randomizer.arms), draw)


def allocation_records(session: Session, trial_id: str) -> list[AllocationRecord]:
    rows = session.execute(select(Allocation).where(Allocation.trial_id == trial_id)
                           .order_by(Allocation.sequence)).scalars()
    return [AllocationRecord.model_validate_json(r.record_json) for r in rows]
