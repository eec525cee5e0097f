"""Randomization when the platform cannot be reached: each site's sealed emergency envelopes.

The unblinded pharmacist (or the trial admin, in a trial where the admin sees arms) makes a site's envelope set
and prints it. A set holds, per stratum, whole permuted blocks in the scheme's own block sizes and ratio (the
protocol's documented fallback list for minimization), drawn from the OS CSPRNG, apart from the concealed online
list, which stays whole. When the link returns the site records each envelope it opened; the allocation joins
the trial (an Allocation row, the randomization state's totals and minimization margins, the `randomize_by_envelope`
event), never as a position of the online list. Refused: an envelope used twice or void, one opened while an
earlier envelope of its site and stratum is still sealed, a wrong check code, an envelope of another stratum
or site, a patient already randomized, not eligible at the time the envelope was opened, or without consent,
and a time in the future.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical import parse_patient
from ..protocol import Protocol
from ..protocol.envelopes import EmergencyRandomization
from ..protocol.schemes import PermutedBlocks, RandomizationScheme
from ..randomization import Allocation as AllocationRecord, ArmSlots, FactorValueError, RandomizationState, \
    Randomizer, SystemDraw
from ..randomization.envelopes import (check_code, envelope_blocks, envelope_label, envelope_strata,
                                       envelope_stratum, same_code, stratum_label)
from ..store import canonical, record
from ..store.models import Allocation, Envelope, EnvelopeSet, Patient, Site
from . import locks, supply
from .accounts import Actor
from .blinding import sees_arm
from .clock import CLOCK_SKEW, as_utc, local_now, site_zone
from .consent import require_consent
from .errors import Conflict, Forbidden, Invalid, NotFound
from .patients import aware, allocation_of, allocation_view, find_patient, validated_screening
from .randomize import require_eligible
from .text import plain_text
from .trials import get_trial, patient_protocol, randomization_state, trial_sites

METHOD_WORDS = {"permuted_blocks": "the trial's permuted blocks, per stratum",
                "fallback_blocks": "the protocol's fallback: a stratified permuted-block list per site"}
MAX_REASON = 2000


def _emergency(protocol: Protocol, trial_id: str) -> tuple[EmergencyRandomization, RandomizationScheme]:
    if protocol.randomization is None or protocol.emergency_randomization is None:
        raise Conflict(i18n.gettext("{trial} keeps no sealed emergency envelopes (its protocol has no "
                                    "emergency_randomization section)").format(trial=trial_id))
    return protocol.emergency_randomization, protocol.randomization


def _key(session: Session) -> bytes:
    """The audit key: the write transaction holds it; a read session asks the keystore."""
    key = session.info.get("audit_key")
    if key is None:
        keystore = session.info.get("keystore")
        if keystore is None or not keystore.exists():  # pragma: no cover - every database has its keystore
            raise Conflict(i18n.gettext("the audit key is not available, so envelope check codes cannot be made or "
                                        "checked"))
        key = keystore.key()
    return bytes(key)


def _allocation_inside(envelope: Envelope) -> str:
    return f"kit {envelope.kit}" if envelope.kit is not None else envelope.arm


def _code(session: Session, envelope: Envelope) -> str:
    return check_code(_key(session), envelope.trial_id, envelope.site_code, envelope.number, envelope.set_id,
                      envelope.stratum, _allocation_inside(envelope))


def _require_exporter(actor: Actor, protocol: Protocol) -> None:
    actor.require("generating emergency envelopes")
    if not sees_arm(actor.role, protocol.design.masking):
        raise Forbidden(i18n.gettext("sealed envelopes hold the allocation; in a {masking} trial only the unblinded "
                                     "pharmacist makes and prints them ({user} is {role})").format(
            masking=i18n.gettext(protocol.design.masking.replace("_", " ")), user=actor.name,
            role=i18n.gettext(actor.role.replace("_", " "))))


def _site(session: Session, actor: Actor, trial_id: str, site: str) -> str:
    if site not in trial_sites(session, trial_id) or not actor.can_see_site(site):
        raise NotFound(i18n.gettext("no site {site} of {trial} at your sites").format(site=repr(site), trial=trial_id),
                       [{"field": "site", "value": site,
                         "message": i18n.gettext("a site of the trial where you work")}])
    return site


# ---- making and printing a set ---------------------------------------------------------------------------------
def generate(session: Session, actor: Actor, trial_id: str, site: str,
             per_stratum: int | None = None) -> dict[str, Any]:
    """Make a site's envelope set (one transaction, `generate_envelopes`); the answer lists the envelopes by
    number and stratum, never what they hold (that is printed only: `set_pdf`)."""
    _trial, protocol = get_trial(session, actor, trial_id)
    _require_exporter(actor, protocol)
    emergency, scheme = _emergency(protocol, trial_id)
    _site(session, actor, trial_id, site)
    locks.refuse_if_locked(session, trial_id)
    if scheme.blinded_kits and (protocol.supply is None or not supply.has_inventory(session, trial_id)):
        raise Conflict(i18n.gettext("{trial} dispenses blinded kits: an envelope holds a kit number, never an arm, "
                                    "and kits are set aside for envelopes from the site's physical stock; import or "
                                    "generate the kit list and ship kits to the site first (the supply page)").format(
            trial=trial_id))
    count = per_stratum if per_stratum is not None else emergency.envelopes_per_stratum
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
        raise Invalid(i18n.gettext("envelopes per stratum is {count}; give 1 to 100").format(count=repr(count)),
                      [{"field": "per_stratum", "value": count,
                        "message": i18n.gettext("a whole number from 1 to 100")}])
    sealed = session.execute(select(Envelope).where(Envelope.trial_id == trial_id, Envelope.site_code == site,
                                                    Envelope.status == "sealed").order_by(Envelope.number)
                             ).scalars().first()
    if sealed is not None:
        raise Conflict(i18n.gettext("site {site} still holds sealed envelopes of set {set} (the first: {first}); use "
                                    "them, or void that set, before making another").format(
            site=site, set=sealed.set_id, first=envelope_label(site, sealed.number)), set=sealed.set_id)
    strata = envelope_strata(scheme, emergency)
    blocks = envelope_blocks(ArmSlots.of(protocol.arms), emergency.block_sizes(scheme), count, strata, SystemDraw())
    number = session.execute(select(func.max(Envelope.number)).where(Envelope.trial_id == trial_id,
                                                                     Envelope.site_code == site)).scalar() or 0
    now = dt.datetime.now(dt.UTC)
    method = "permuted_blocks" if isinstance(scheme, PermutedBlocks) else "fallback_blocks"
    envelope_set = EnvelopeSet(trial_id=trial_id, site_code=site, method=method,
                               count=sum(len(v) for v in blocks.values()), created_by=actor.name, created_at=now,
                               prints=0)
    session.add(envelope_set)
    session.flush()
    for stratum in strata:  # numbered stratum by stratum: a stratum's envelopes are kept together, in order
        for entry in blocks[stratum.key]:
            number += 1
            # A blinded-kit trial's envelope holds a kit of its arm, set aside on the site's shelf (service/supply.py).
            kit = (supply.reserve_kit(session, actor, trial_id, site, entry.arm,
                                      f"emergency envelope {envelope_label(site, number)}")
                   if scheme.blinded_kits else None)
            session.add(Envelope(set_id=envelope_set.id, trial_id=trial_id, site_code=site, number=number,
                                 stratum=stratum.key, block=entry.block, block_size=entry.block_size,
                                 slot=entry.slot, arm=entry.arm, kit=kit, status="sealed"))
    session.flush()
    view = set_view(session, envelope_set)
    record(session, actor.name, "generate_envelopes", "envelope_set", f"{trial_id}/{site}/{envelope_set.id}",
           trial_id=trial_id, site=site,
           after={"set": envelope_set.id, "method": method, "count": envelope_set.count,
                  "envelopes": [{"number": e["number"], "stratum": e["stratum_key"]} for e in view["envelopes"]]})
    return view


def set_view(session: Session, envelope_set: EnvelopeSet, actor: Actor | None = None,
             protocol: Protocol | None = None) -> dict[str, Any]:
    """A set and its envelopes by number, stratum and status; an opened envelope's patient (and, for those who
    see arms, its arm); a sealed envelope's allocation never."""
    rows = session.execute(select(Envelope).where(Envelope.set_id == envelope_set.id).order_by(Envelope.number)
                           ).scalars().all()
    codes = {p.id: p.code for p in session.execute(select(Patient).where(
        Patient.id.in_([r.patient_id for r in rows if r.patient_id is not None]))).scalars()}
    show_arm = actor is not None and protocol is not None and sees_arm(actor.role, protocol.design.masking)
    envelopes = []
    for e in rows:
        item: dict[str, Any] = {"envelope": envelope_label(e.site_code, e.number), "number": e.number,
                                "stratum_key": e.stratum, "stratum": stratum_label(e.stratum), "status": e.status,
                                "patient_id": codes.get(e.patient_id) if e.patient_id is not None else None,
                                "opened_at": aware(e.opened_at).isoformat() if e.opened_at else None,
                                "reconciled_by": e.reconciled_by,
                                "reconciled_at": aware(e.reconciled_at).isoformat() if e.reconciled_at else None}
        if show_arm and e.status == "reconciled":
            item["arm"] = e.arm
        envelopes.append(item)
    return {"set": envelope_set.id, "trial": envelope_set.trial_id, "site": envelope_set.site_code,
            "method": envelope_set.method, "method_words": METHOD_WORDS[envelope_set.method],
            "count": envelope_set.count, "created_by": envelope_set.created_by,
            "created_at": aware(envelope_set.created_at).isoformat(), "prints": envelope_set.prints,
            "voided": envelope_set.voided_at is not None, "void_reason": envelope_set.void_reason,
            "envelopes": envelopes}


def _find_set(session: Session, actor: Actor, trial_id: str, set_id: int) -> EnvelopeSet:
    row = session.get(EnvelopeSet, set_id)
    if row is None or row.trial_id != trial_id or not actor.can_see_site(row.site_code):
        raise NotFound(i18n.gettext("no envelope set {set} of {trial} at your sites").format(set=set_id,
                                                                                            trial=trial_id))
    return row


def set_pdf(session: Session, actor: Actor, trial_id: str, set_id: int) -> tuple[bytes, str]:
    """The printable set (PDF bytes, file name): each envelope's outside label and inside sheet. Each print is
    counted, printed on every page and audited (`print_envelope_set`)."""
    from ..report.envelopes import EnvelopeSetDocument, EnvelopeSheet, envelope_set_pdf

    _trial, protocol = get_trial(session, actor, trial_id)
    _require_exporter(actor, protocol)
    emergency, _scheme = _emergency(protocol, trial_id)
    envelope_set = _find_set(session, actor, trial_id, set_id)
    if envelope_set.voided_at is not None:
        raise Conflict(i18n.gettext("envelope set {set} is void ({reason}); print the site's current set").format(
            set=set_id, reason=envelope_set.void_reason))
    envelope_set.prints += 1
    site = session.get(Site, envelope_set.site_code)
    zone = site_zone(session, envelope_set.site_code)
    arms = {a.id: a for a in protocol.arms}
    rows = session.execute(select(Envelope).where(Envelope.set_id == set_id).order_by(Envelope.number)
                           ).scalars().all()
    # The document is in the language of the print (`i18n.use` by the caller; English for the CLI and the API).
    sheets = [EnvelopeSheet(label=envelope_label(e.site_code, e.number),
                            stratum=i18n.gettext(stratum_label(e.stratum)), check_code=_code(session, e),
                            allocation=(i18n.gettext("Kit {kit}").format(kit=e.kit) if e.kit is not None
                                        else i18n.protocol_text(arms[e.arm], "name")),
                            treatment=(i18n.gettext("Give the study drug in kit {kit}.").format(kit=e.kit)
                                       if e.kit is not None else i18n.protocol_text(arms[e.arm], "description")))
              for e in rows]
    now = dt.datetime.now(dt.UTC)
    document = EnvelopeSetDocument(
        acronym=protocol.acronym, title=protocol.title, registry_id=protocol.registry_id,
        site=envelope_set.site_code, site_name=site.name if site is not None else envelope_set.site_code,
        set_id=set_id, method=i18n.gettext(METHOD_WORDS[envelope_set.method]), made_by=envelope_set.created_by,
        made_at=aware(envelope_set.created_at).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        printed_at=now.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"), print_number=envelope_set.prints,
        procedure=i18n.gettext(emergency.procedure), envelopes=sheets)
    pdf = envelope_set_pdf(document)
    record(session, actor.name, "print_envelope_set", "envelope_set",
           f"{trial_id}/{envelope_set.site_code}/{set_id}", trial_id=trial_id, site=envelope_set.site_code,
           after={"set": set_id, "print": envelope_set.prints, "envelopes": len(sheets)})
    return pdf, f"{trial_id}-{envelope_set.site_code}-envelopes-{set_id}-print{envelope_set.prints}.pdf"


def void_set(session: Session, actor: Actor, trial_id: str, set_id: int, reason: str | None) -> dict[str, Any]:
    """Void a set's sealed envelopes (lost, damaged, replaced), with a reason; opened ones stay as recorded."""
    _trial, protocol = get_trial(session, actor, trial_id)
    _require_exporter(actor, protocol)
    envelope_set = _find_set(session, actor, trial_id, set_id)
    why = plain_text("reason", reason, MAX_REASON)
    if envelope_set.voided_at is not None:
        raise Conflict(i18n.gettext("envelope set {set} is void already").format(set=set_id))
    now = dt.datetime.now(dt.UTC)
    envelope_set.voided_at, envelope_set.voided_by, envelope_set.void_reason = now, actor.name, why
    voided = []
    for e in session.execute(select(Envelope).where(Envelope.set_id == set_id, Envelope.status == "sealed")
                             ).scalars():
        e.status = "void"
        voided.append(e.number)
        if e.kit is not None:  # a blinded-kit trial's envelope: its reserved kit goes back on the shelf
            supply.release_reserved_kit(session, actor, trial_id, e.kit, f"envelope set {set_id} voided: {why}")
    session.flush()
    record(session, actor.name, "void_envelope_set", "envelope_set", f"{trial_id}/{envelope_set.site_code}/{set_id}",
           trial_id=trial_id, site=envelope_set.site_code, after={"set": set_id, "voided": voided}, reason=why)
    return set_view(session, envelope_set, actor, protocol)


def list_sets(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    actor.require("reading emergency envelopes")
    _trial, protocol = get_trial(session, actor, trial_id)
    _emergency(protocol, trial_id)
    sets = session.execute(select(EnvelopeSet).where(EnvelopeSet.trial_id == trial_id)
                           .order_by(EnvelopeSet.site_code, EnvelopeSet.id)).scalars()
    return [set_view(session, s, actor, protocol) for s in sets if actor.can_see_site(s.site_code)]


# ---- the site's procedure --------------------------------------------------------------------------------------
def next_envelopes(session: Session, trial_id: str, site: str) -> dict[str, str]:
    """Per stratum key, the site's next sealed envelope (the lowest number)."""
    out: dict[str, str] = {}
    for e in session.execute(select(Envelope).where(Envelope.trial_id == trial_id, Envelope.site_code == site,
                                                    Envelope.status == "sealed").order_by(Envelope.number)
                             ).scalars():
        out.setdefault(e.stratum, envelope_label(site, e.number))
    return out


def procedure_for_patient(session: Session, actor: Actor, trial_id: str, code: str) -> dict[str, Any] | None:
    """What the site does for this patient if the platform cannot be reached: the next envelope of the patient's
    stratum (None when the trial keeps no envelopes)."""
    _trial, protocol = get_trial(session, actor, trial_id)
    if protocol.randomization is None or protocol.emergency_randomization is None:
        return None
    emergency, scheme = protocol.emergency_randomization, protocol.randomization
    patient = find_patient(session, actor, trial_id, code)
    try:
        levels = Randomizer.for_protocol(protocol).levels(parse_patient(json.loads(patient.data_json)))
        stratum = envelope_stratum(scheme, emergency, levels)
    except FactorValueError:
        return {"procedure": emergency.procedure, "stratum": None, "envelope": None, "site": patient.site_code}
    return {"procedure": emergency.procedure, "stratum": stratum.label(), "stratum_key": stratum.key,
            "envelope": next_envelopes(session, trial_id, patient.site_code).get(stratum.key),
            "site": patient.site_code}


def randomization_status(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Whether the platform can take a randomization in this trial now (the database answered a write lock before
    this is asked: `database_writable`), and what the site does when it cannot."""
    _trial, protocol = get_trial(session, actor, trial_id)
    reasons = []
    if protocol.randomization is None:
        reasons.append(f"{trial_id} is not randomized")
    lock = locks.trial_lock_in_force(session, trial_id)
    if lock is not None:
        reasons.append(locks.describe(lock, None))
    emergency = protocol.emergency_randomization
    sites = [s for s in trial_sites(session, trial_id) if actor.can_see_site(s)]
    return {"trial": trial_id, "can_randomize": not reasons, "trial_locked": lock is not None, "reasons": reasons,
            "procedure": emergency.procedure if emergency is not None and protocol.randomization is not None
            else None,
            "next_envelopes": ({s: {stratum_label(k): v for k, v in next_envelopes(session, trial_id, s).items()}
                                for s in sites} if emergency is not None else {})}


# ---- recording an opened envelope ------------------------------------------------------------------------------
def _parse_label(label: str) -> tuple[str, int]:
    site, _, number = str(label).strip().rpartition("-")
    if not site or not number.isdigit():
        raise Invalid(i18n.gettext("envelope {envelope} is not an envelope number as printed (SITE-NUMBER, e.g. "
                                   "S1-004)").format(envelope=repr(label)),
                      [{"field": "envelope", "value": label,
                        "message": i18n.gettext("SITE-NUMBER as printed on the envelope")}])
    return site, int(number)


def _opened_moment(value: str, zone: Any, now: dt.datetime) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise Invalid(i18n.gettext("opened_at {value} is not a date and time (YYYY-MM-DDTHH:MM, the site's "
                                   "clock)").format(value=repr(value)),
                      [{"field": "opened_at", "value": value, "message": "YYYY-MM-DDTHH:MM"}]) from None
    opened = as_utc(moment, zone)
    if opened > now + CLOCK_SKEW:
        shown = local_now(zone, moment, now).isoformat(timespec="minutes")
        raise Invalid(i18n.gettext("opened_at {moment} is in the future: it is now {now} at this site ({zone})").format(
                          moment=moment.isoformat(timespec="minutes"), now=shown, zone=zone.key),
                      [{"field": "opened_at", "value": value, "message": i18n.gettext("not in the future")}])
    return opened


def record_opened(session: Session, actor: Actor, trial_id: str, envelope: str, code: str, patient_code: str,
                  opened_at: str, allocation: str | None = None) -> dict[str, Any]:
    """Register an envelope the site opened while the platform could not be reached: the allocation joins the
    trial (`randomize_by_envelope`); the answer is the allocation as this user may see it."""
    actor.require("recording an opened envelope")
    _trial, protocol = get_trial(session, actor, trial_id)
    emergency, scheme = _emergency(protocol, trial_id)
    site, number = _parse_label(envelope)
    row = session.execute(select(Envelope).where(Envelope.trial_id == trial_id, Envelope.site_code == site,
                                                 Envelope.number == number)).scalar_one_or_none()
    label = envelope_label(site, number)
    if row is None or not actor.can_see_site(site):
        raise NotFound(i18n.gettext("no envelope {envelope} of {trial} at your sites").format(envelope=label,
                                                                                             trial=trial_id))
    if not same_code(str(code or ""), _code(session, row)):
        raise Invalid(i18n.gettext("the check code {code} is not envelope {envelope}'s: check the code printed on "
                                   "the envelope; an envelope whose code does not match was not made by the platform "
                                   "for this number (keep it and report it to the trial's unblinded "
                                   "pharmacist)").format(code=repr(code), envelope=label),
                      [{"field": "check_code", "value": code,
                        "message": i18n.gettext("the code printed on envelope {envelope}").format(envelope=label)}])
    patient = find_patient(session, actor, trial_id, patient_code)
    _refuse_used(session, row, label)
    if patient.site_code != site:
        raise Conflict(i18n.gettext("envelope {envelope} is site {site}'s; patient {patient} is at site "
                                    "{patient_site}").format(envelope=label, site=site, patient=patient.code,
                                                             patient_site=patient.site_code))
    existing = allocation_of(session, patient)
    if existing is not None:
        raise Conflict(i18n.gettext("patient {patient} was randomized already (sequence {sequence}); a patient is "
                                    "randomized once").format(patient=patient.code, sequence=existing.sequence),
                       sequence=existing.sequence)
    locks.refuse_if_locked(session, patient)
    now = dt.datetime.now(dt.UTC)
    zone = site_zone(session, site)
    opened = _opened_moment(opened_at, zone, now)
    envelope_set = session.get(EnvelopeSet, row.set_id)
    if envelope_set is not None and opened < aware(envelope_set.created_at):
        raise Invalid(i18n.gettext("opened_at {opened} is before envelope set {set} was made").format(
            opened=opened_at, set=row.set_id), [
            {"field": "opened_at", "value": opened_at, "message": i18n.gettext("after the set was made")}])
    randomizer = Randomizer.for_protocol(protocol)
    try:
        levels = randomizer.levels(parse_patient(json.loads(patient.data_json)))
    except FactorValueError as exc:
        raise Invalid(i18n.gettext("cannot randomize {patient}: {reason}").format(patient=patient.code, reason=exc),
                      [{"field": "randomization factors", "value": None, "message": str(exc)}]) from None
    stratum = envelope_stratum(scheme, emergency, levels)
    if stratum.key != row.stratum:
        right = next_envelopes(session, trial_id, site).get(stratum.key)
        wrong = (i18n.gettext("envelope {envelope} is for {stratum}; patient {patient} is in {patient_stratum} (the "
                              "next envelope of that stratum is {right})") if right else
                 i18n.gettext("envelope {envelope} is for {stratum}; patient {patient} is in {patient_stratum}"))
        raise Conflict(wrong.format(envelope=label, stratum=stratum_label(row.stratum), patient=patient.code,
                                    patient_stratum=stratum.label(), right=right), envelope=label)
    earlier = session.execute(select(Envelope).where(
        Envelope.trial_id == trial_id, Envelope.site_code == site, Envelope.stratum == row.stratum,
        Envelope.status == "sealed", Envelope.number < number).order_by(Envelope.number).limit(1)).scalar_one_or_none()
    if earlier is not None:
        raise Conflict(i18n.gettext("envelope {envelope} is out of order: envelope {earlier} of {stratum} is still "
                                    "sealed; envelopes of a stratum are opened in number order (record the earlier "
                                    "one first if it was opened)").format(
            envelope=label, earlier=envelope_label(site, earlier.number), stratum=stratum_label(row.stratum)),
                       envelope=label, earlier=envelope_label(site, earlier.number))
    if allocation is not None and allocation.strip() and allocation.strip() not in (row.arm, row.kit):
        raise Conflict(i18n.gettext("the allocation recorded ({allocation}) is not the one envelope {envelope} holds: "
                                    "the envelope's inside sheet was changed; nothing was recorded (report it to the "
                                    "trial's unblinded pharmacist)").format(allocation=allocation.strip(),
                                                                            envelope=label), envelope=label)
    require_eligible(patient)
    require_consent(session, protocol, patient, "randomized")
    _screen_at(session, actor, patient_protocol(session, trial_id, patient.protocol_version), patient, opened, label)
    state_row = randomization_state(session, trial_id)
    state = RandomizationState.model_validate_json(state_row.state_json)
    arms = randomizer.arms
    allocation_record = AllocationRecord(
        sequence=state.allocated + 1, patient_id=patient.code, arm=row.arm, slot=row.slot, method=randomizer.method,
        levels=levels, site=site, stratum=randomizer.stratum(levels), kit=row.kit,
        probabilities={a: float(a == row.arm) for a in arms.arms}, envelope=label)
    new_state = randomizer.advance(state, allocation_record)
    allocation_row = Allocation(trial_id=trial_id, patient_id=patient.id, sequence=allocation_record.sequence,
                                arm=row.arm, kit=row.kit, record_json=allocation_record.model_dump_json(),
                                idempotency_key=f"envelope {label}", created_at=opened, created_by=actor.name)
    session.add(allocation_row)
    state_row.state_json = new_state.model_dump_json()
    row.status, row.patient_id, row.opened_at = "reconciled", patient.id, opened
    row.reconciled_by, row.reconciled_at = actor.name, now
    session.flush()
    if row.kit is not None:  # the kit set aside for the envelope is the patient's
        supply.dispense_reserved_kit(session, actor, trial_id, row.kit, patient)
    record(session, actor.name, "randomize_by_envelope", "patient", f"{trial_id}/{patient.code}", trial_id=trial_id,
           site=site, after=json.loads(allocation_record.model_dump_json()),
           reason=f"sealed envelope {label} opened at {opened.isoformat()} while the platform could not be reached")
    return allocation_view(actor, protocol, allocation_row) | {"patient_id": patient.code, "envelope": label,
                                                               "opened_at": opened.isoformat()}


def _refuse_used(session: Session, row: Envelope, label: str) -> None:
    """409 for an envelope used already (naming its patient) or void."""
    if row.status == "reconciled":
        used_by = session.get(Patient, row.patient_id) if row.patient_id is not None else None
        raise Conflict(i18n.gettext("envelope {envelope} was used already, for patient {patient} (opened {opened}); "
                                    "an envelope is opened for one patient only").format(
            envelope=label, patient=used_by.code if used_by else "?",
            opened=aware(row.opened_at).isoformat(timespec="minutes") if row.opened_at else "?"), envelope=label)
    if row.status == "void":
        reason = session.get(EnvelopeSet, row.set_id)
        raise Conflict(i18n.gettext("envelope {envelope} is void (its set {set} was voided: {reason}); it allocates "
                                    "no one").format(envelope=label, set=row.set_id,
                                                     reason=reason.void_reason if reason else "?"), envelope=label)


def _screen_at(session: Session, actor: Actor, protocol: Protocol, patient: Patient, opened: dt.datetime,
               label: str) -> None:
    """As randomization screens at the server's time: windows that end at randomization are measured to the time
    the envelope was opened, which becomes the patient's time of randomization."""
    zone = site_zone(session, patient.site_code)
    data = json.loads(patient.data_json)
    typed = parse_patient(data)
    like = next((v for v in typed.values.values() if isinstance(v, dt.datetime)), None)
    moment = local_now(zone, like, opened)
    document = {**data, "randomization": moment.isoformat()}
    record_then, result = validated_screening(protocol, document)
    if result.status != "eligible":
        problems = [c for c in result.criteria if c.excludes or c.status in ("missing_data", "needs_attestation")]
        raise Invalid(i18n.gettext("patient {patient} was not eligible when envelope {envelope} was opened ({moment}, "
                                   "{zone}): {reasons}").format(
                          patient=patient.code, envelope=label, moment=moment.isoformat(timespec="minutes"),
                          zone=zone.key, reasons="; ".join(c.reason for c in problems)),
                      [{"field": c.id, "value": c.status, "message": c.reason} for c in problems],
                      status=result.status)
    stored = record_then.to_json()
    if stored != data:
        patient.data_json, patient.screening_json = canonical(stored), canonical(result.to_json())
        record(session, actor.name, "set_randomization_time", "patient", f"{patient.trial_id}/{patient.code}",
               trial_id=patient.trial_id, site=patient.site_code, before=data, after=stored,
               reason=f"time of randomization: sealed envelope {label} opened")


# ---- for the statistician --------------------------------------------------------------------------------------
def export_rows(session: Session, trial_id: str, show_arm: bool, codes: dict[int, str]) -> list[dict[str, Any]]:
    """The allocations made from sealed envelopes, for the statistician (export: emergency_envelopes.csv), of the
    patients in `codes` (the exporter's sites)."""
    rows = session.execute(select(Envelope, Allocation).join(Allocation, Allocation.patient_id == Envelope.patient_id)
                           .where(Envelope.trial_id == trial_id, Envelope.status == "reconciled")
                           .order_by(Allocation.sequence)).all()
    out = []
    for e, a in rows:
        if e.patient_id not in codes:
            continue
        item = {"patient_id": codes[e.patient_id], "site": e.site_code,
                "envelope": envelope_label(e.site_code, e.number),
                "envelope_set": e.set_id, "stratum": e.stratum, "sequence": a.sequence,
                "opened_at": aware(e.opened_at).isoformat() if e.opened_at else "",
                "recorded_at": aware(e.reconciled_at).isoformat() if e.reconciled_at else "",
                "recorded_by": e.reconciled_by or ""}
        if show_arm:
            item["arm"] = e.arm
        out.append(item)
    return out
