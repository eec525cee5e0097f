"""Investigational product supply (what an IWRS does): the physical kit list, shipments to sites and their
receipt, dispensing at randomization, resupply at the protocol's trigger, kit replacement and reconciliation.

A trial has a physical inventory once its kit list is imported or generated here; until then randomization
keeps the concealed kit list it always had (randomization/lists.py). Each operation is one transaction with its
audit events. Blinding (blinding.sees_kit_arms): the arm of a kit, stock per arm, lots and resupply requests go
to the unblinded pharmacist, the supply manager and whoever may see counts per arm; everyone else sees stock
pooled over the arms and kit numbers alone. The supply manager never learns which patient had which kit.

Kit statuses: in_depot, in_transit, available (on the site's shelf), reserved (set aside for an emergency
envelope), dispensed, damaged, missing, quarantined, returned, destroyed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol
from ..protocol.supply import Supply, SupplyLevels
from ..store import record
from ..store.models import (Allocation, AuditEvent, Patient, ResupplyRequest, SupplyKit, SupplyShipment,
                            SupplySiteLevels)
from .accounts import Actor
from .blinding import sees_arm, sees_kit_arms
from .clock import site_zone
from .errors import Conflict, Invalid, NotFound
from .patients import find_patient
from .text import plain_text
from .trials import get_trial, trial_sites

KIT_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,19}$")
LOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$")
CSV_COLUMNS = ("kit_number", "arm", "lot", "expiry")
MAX_KITS = 20000
ON_SHELF = ("available",)
FINAL = ("returned", "destroyed")
# A kit set apart after a temperature excursion or a recall: from the depot, a site's shelf or an envelope's
# reservation (never one on its way or already given), until it is released with a reason.
QUARANTINABLE = ("in_depot", "available", "reserved")
STATUS_WORDS = {"in_depot": "in the depot", "in_transit": "on its way", "available": "on the shelf",
                "reserved": "reserved for an emergency envelope", "dispensed": "dispensed", "damaged": "damaged",
                "missing": "missing", "quarantined": "quarantined", "returned": "returned",
                "destroyed": "destroyed"}
GENERATED_DIGITS = 6


def status_words(status: str) -> str:
    """A kit's status in words, in the reader's language (STATUS_WORDS, listed for the catalogs in data_words)."""
    return i18n.gettext(STATUS_WORDS.get(status, status))


def _one_of(choices: Iterable[str]) -> str:
    return i18n.gettext("one of {choices}").format(choices=", ".join(choices))


def _a_date() -> str:
    return i18n.gettext("a date, YYYY-MM-DD")


def _lot_rule() -> str:
    return i18n.gettext("1-40 letters, digits, '.', '_', '/' or '-'")


def _returned_or_destroyed() -> str:
    return i18n.gettext("returned or destroyed")


def _not_reserved(kit: SupplyKit) -> Conflict:
    return Conflict(i18n.gettext("kit {kit} is {status}, not reserved").format(kit=kit.kit_number, status=kit.status),
                    kit=kit.kit_number)


# ---- the trial's supply rules and the site's day --------------------------------------------------------------
def supply_protocol(session: Session, actor: Actor, trial_id: str) -> tuple[Protocol, Supply]:
    _trial, protocol = get_trial(session, actor, trial_id)
    if protocol.supply is None:
        raise Conflict(i18n.gettext("{trial} has no `supply` section in its protocol: it dispenses no physical "
                                    "kits").format(trial=trial_id))
    return protocol, protocol.supply


def site_today(session: Session, site: str) -> dt.date:
    return dt.datetime.now(site_zone(session, site)).date()


def has_inventory(session: Session, trial_id: str) -> bool:
    """Whether the trial's kits are physical (a kit list imported or generated here)."""
    return session.execute(select(SupplyKit.id).where(SupplyKit.trial_id == trial_id).limit(1)).first() is not None


def _dispensable(session: Session, supply: Supply, trial_id: str, site: str, arm: str | None = None):
    last_day = site_today(session, site) + dt.timedelta(days=supply.no_dispense_within_days)
    query = select(SupplyKit).where(SupplyKit.trial_id == trial_id, SupplyKit.site_code == site,
                                    SupplyKit.status.in_(ON_SHELF), SupplyKit.expiry > last_day)
    if arm is not None:
        query = query.where(SupplyKit.arm == arm)
    return query.order_by(SupplyKit.expiry, SupplyKit.kit_number)  # first expiry, first out


def _require_site(session: Session, actor: Actor, trial_id: str, site: str) -> None:
    if site not in trial_sites(session, trial_id) or not actor.can_see_site(site):
        raise NotFound(i18n.gettext("no site {site} of {trial} at your sites").format(site=site, trial=trial_id))


def _kit(session: Session, trial_id: str, kit_number: str) -> SupplyKit:
    row = session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id,
                                                  SupplyKit.kit_number == kit_number)).scalar_one_or_none()
    if row is None:
        raise NotFound(i18n.gettext("no kit {kit} in {trial}").format(kit=kit_number, trial=trial_id))
    return row


def _set(kit: SupplyKit, actor: Actor, status: str) -> None:
    kit.status, kit.updated_at, kit.updated_by = status, dt.datetime.now(dt.UTC), actor.name


# ---- the kit list: imported from the packager's CSV, or generated and exported for the packager -----------------
def import_kits(session: Session, actor: Actor, trial_id: str, text: str) -> dict[str, Any]:
    """The packager's kit list (CSV: kit_number, arm, lot, expiry), all or nothing: every bad row is named at once
    (row, field, value, what is allowed) and nothing is stored while any row is bad."""
    actor.require("managing the kit list")
    protocol, _supply = supply_protocol(session, actor, trial_id)
    arms = [a.id for a in protocol.arms]
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        columns = ", ".join(CSV_COLUMNS)
        raise Invalid(i18n.gettext("the kit list needs the columns {columns}; missing {missing}").format(
                          columns=columns, missing=", ".join(missing)),
                      [{"field": "columns", "value": header,
                        "message": i18n.gettext("columns {columns}").format(columns=columns)}])
    stored = set(session.execute(select(SupplyKit.kit_number).where(SupplyKit.trial_id == trial_id)).scalars())
    today = dt.datetime.now(dt.UTC).date()
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    rows: list[tuple[str, str, str, dt.date]] = []
    for n, raw in enumerate(reader, start=2):  # row 1 is the header
        if n - 1 > MAX_KITS:
            errors.append({"row": n, "field": "kit_number", "value": None,
                           "message": i18n.gettext("at most {n} kits").format(n=MAX_KITS)})
            break
        row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in raw.items()}
        problems = _row_problems(row, arms, today, stored, seen, n)
        errors.extend({"row": n, **p} for p in problems)
        if not problems:
            seen[row["kit_number"]] = n
            rows.append((row["kit_number"], row["arm"], row["lot"], dt.date.fromisoformat(row["expiry"])))
    if not rows and not errors:
        raise Invalid(i18n.gettext("the kit list has no kits"),
                      [{"field": "rows", "value": 0, "message": i18n.gettext("at least one kit")}])
    if errors:
        raise Invalid(i18n.gettext("the kit list has {n} bad value(s) in {rows} row(s); nothing was stored: correct "
                                   "them and import the whole list again").format(
                          n=len(errors), rows=len({e['row'] for e in errors})), errors)
    for number, arm, lot, expiry in rows:
        _add_kit(session, actor, trial_id, number, arm, lot, expiry, "import_kit")
    return {"trial": trial_id, "imported": len(rows), "kits": len(stored) + len(rows)}


def _row_problems(row: dict[str, Any], arms: Sequence[str], today: dt.date, stored: set[str], seen: dict[str, int],
                  n: int) -> list[dict[str, Any]]:
    problems = []
    number = row.get("kit_number") or ""
    if not KIT_NUMBER.match(number):
        problems.append({"field": "kit_number", "value": number,
                         "message": i18n.gettext("1-20 letters, digits or '-', starting with a letter or digit")})
    elif number in stored:
        problems.append({"field": "kit_number", "value": number,
                         "message": i18n.gettext("already in the trial's kit list")})
    elif number in seen:
        problems.append({"field": "kit_number", "value": number,
                         "message": i18n.gettext("repeated: row {row} has the same kit number").format(
                             row=seen[number])})
    if row.get("arm") not in arms:
        problems.append({"field": "arm", "value": row.get("arm"), "message": _one_of(arms)})
    if not LOT.match(row.get("lot") or ""):
        problems.append({"field": "lot", "value": row.get("lot"), "message": _lot_rule()})
    try:
        expiry = dt.date.fromisoformat(row.get("expiry") or "")
    except ValueError:
        problems.append({"field": "expiry", "value": row.get("expiry"), "message": _a_date()})
    else:
        if expiry <= today:
            problems.append({"field": "expiry", "value": row.get("expiry"),
                             "message": i18n.gettext("expired: a kit must expire after today ({today})").format(
                                 today=today.isoformat())})
    return problems


def _add_kit(session: Session, actor: Actor, trial_id: str, number: str, arm: str, lot: str, expiry: dt.date,
             action: str) -> None:
    now = dt.datetime.now(dt.UTC)
    session.add(SupplyKit(trial_id=trial_id, kit_number=number, arm=arm, lot=lot, expiry=expiry, status="in_depot",
                          created_at=now, created_by=actor.name, updated_at=now, updated_by=actor.name))
    # One event per kit, its arm a top-level key: the audit export drops it for a blinded reader.
    record(session, actor.name, action, "kit", f"{trial_id}/{number}", trial_id=trial_id,
           after={"kit_number": number, "arm": arm, "lot": lot, "expiry": expiry.isoformat(), "status": "in_depot"})


def generate_kits(session: Session, actor: Actor, trial_id: str, kits_per_arm: int, lot: str,
                  expiry: dt.date | str) -> dict[str, Any]:
    """A kit list made here: `kits_per_arm` kits of each arm (times the arm's ratio), numbered from the OS
    CSPRNG without repeats, so neither a number nor the order of numbers tells the arm."""
    actor.require("managing the kit list")
    protocol, _supply = supply_protocol(session, actor, trial_id)
    errors = []
    if not isinstance(kits_per_arm, int) or not 1 <= kits_per_arm <= 5000:
        errors.append({"field": "kits_per_arm", "value": kits_per_arm,
                       "message": i18n.gettext("a whole number, 1-5000")})
    if not isinstance(lot, str) or not LOT.match(lot):
        errors.append({"field": "lot", "value": lot, "message": _lot_rule()})
    try:
        expiry_date = expiry if isinstance(expiry, dt.date) else dt.date.fromisoformat(str(expiry))
    except ValueError:
        errors.append({"field": "expiry", "value": expiry, "message": _a_date()})
    else:
        if expiry_date <= dt.datetime.now(dt.UTC).date():
            errors.append({"field": "expiry", "value": str(expiry), "message": i18n.gettext("after today")})
    if errors:
        raise Invalid(i18n.gettext("cannot generate the kit list: {problems}").format(
                          problems="; ".join(f"{e['field']}: {e['message']}" for e in errors)), errors)
    used = set(session.execute(select(SupplyKit.kit_number).where(SupplyKit.trial_id == trial_id)).scalars())
    wanted = [(a.id, kits_per_arm * a.ratio) for a in protocol.arms]
    capacity = 9 * 10 ** (GENERATED_DIGITS - 1)
    if len(used) + sum(n for _, n in wanted) > capacity // 2:
        raise Invalid(i18n.gettext("too many kits for {digits}-digit kit numbers").format(digits=GENERATED_DIGITS),
                      [{"field": "kits_per_arm", "value": kits_per_arm, "message": i18n.gettext("fewer kits")}])
    made = []
    for arm, n in wanted:
        for _ in range(n):
            while (number := str(10 ** (GENERATED_DIGITS - 1) + secrets.randbelow(capacity))) in used:
                pass
            used.add(number)
            made.append((number, arm))
    for number, arm in sorted(made):  # stored in number order: the row order says nothing of the arm either
        _add_kit(session, actor, trial_id, number, arm, lot, expiry_date, "generate_kit")
    return {"trial": trial_id, "generated": len(made), "kits": len(used)}


def export_kits(session: Session, actor: Actor, trial_id: str) -> str:
    """The kit list as CSV for the packager (kit_number, arm, lot, expiry), by kit number."""
    actor.require("managing the kit list")
    supply_protocol(session, actor, trial_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for k in session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id)
                             .order_by(SupplyKit.kit_number)).scalars():
        writer.writerow([k.kit_number, k.arm, k.lot, k.expiry.isoformat()])
    record(session, actor.name, "export_kit_list", "trial", trial_id, trial_id=trial_id,
           after={"kits": out.getvalue().count("\n") - 1})
    return out.getvalue()


# ---- shipments and their receipt -------------------------------------------------------------------------------
def ship(session: Session, actor: Actor, trial_id: str, site: str, kit_numbers: Sequence[str] | None = None,
         kits_per_arm: int | None = None, shipped_on: dt.date | str | None = None,
         expected_on: dt.date | str | None = None, kits_by_arm: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Send kits from the depot to a site: the kits named, or `kits_per_arm` of each arm, or `kits_by_arm` (a
    number per arm), first expiry first out, or (none given) what the site's open resupply requests ask for."""
    actor.require("shipping kits")
    protocol, supply = supply_protocol(session, actor, trial_id)
    _require_site(session, actor, trial_id, site)
    shipped = _date("shipped_on", shipped_on) or dt.datetime.now(dt.UTC).date()
    expected = _date("expected_on", expected_on)
    if expected is not None and expected < shipped:
        raise Invalid(i18n.gettext("expected_on {expected} is before shipped_on {shipped}").format(
                          expected=expected.isoformat(), shipped=shipped.isoformat()),
                      [{"field": "expected_on", "value": expected.isoformat(),
                        "message": i18n.gettext("on or after shipped_on")}])
    if kits_by_arm:
        kits_per_arm = None
        wanted_by_arm = _by_arm(protocol, kits_by_arm)
    requests = list(session.execute(select(ResupplyRequest).where(
        ResupplyRequest.trial_id == trial_id, ResupplyRequest.site_code == site,
        ResupplyRequest.status == "open")).scalars())
    kits = _kits_to_ship(session, supply, trial_id, site, kit_numbers, kits_per_arm, requests, shipped,
                         wanted_by_arm if kits_by_arm else None)
    now = dt.datetime.now(dt.UTC)
    shipment = SupplyShipment(trial_id=trial_id, site_code=site, status="in_transit", shipped_on=shipped,
                              expected_on=expected, created_at=now, created_by=actor.name)
    session.add(shipment)
    session.flush()
    for kit in kits:
        kit.site_code, kit.shipment_id = site, shipment.id
        _set(kit, actor, "in_transit")
    arms_sent = {k.arm for k in kits}
    for request in requests:
        if request.arm in arms_sent:
            request.status, request.shipment_id = "shipped", shipment.id
    numbers = sorted(k.kit_number for k in kits)
    record(session, actor.name, "ship_kits", "shipment", f"{trial_id}/{shipment.id}", trial_id=trial_id, site=site,
           after={"shipment": shipment.id, "site": site, "kits": numbers, "shipped_on": shipped.isoformat(),
                  "expected_on": expected.isoformat() if expected else None})
    return {"shipment": shipment.id, "site": site, "status": "in_transit", "kits": numbers,
            "shipped_on": shipped.isoformat(), "expected_on": expected.isoformat() if expected else None}


def _by_arm(protocol: Protocol, kits_by_arm: Mapping[str, int]) -> dict[str, int]:
    arms = {a.id: i18n.protocol_text(a, "name") for a in protocol.arms}
    errors: list[dict[str, Any]] = []
    for arm, n in kits_by_arm.items():
        if arm not in arms:
            errors.append({"field": "kits_by_arm", "value": arm, "message": _one_of(arms)})
        elif isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 1000:
            errors.append({"field": "kits_by_arm", "value": n,
                           "message": i18n.gettext("{arm}: a whole number, 0-1000").format(arm=arms[arm])})
    if not errors and not any(kits_by_arm.values()):
        errors.append({"field": "kits_by_arm", "value": 0,
                       "message": i18n.gettext("at least one kit of some treatment")})
    if errors:
        raise Invalid(i18n.gettext("the kits per treatment are refused: {problems}").format(
                          problems="; ".join(e["message"] for e in errors)), errors)
    return {arm: n for arm, n in kits_by_arm.items() if n}


def _date(field: str, value: dt.date | str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise Invalid(i18n.gettext("{field} {value} is not a date (YYYY-MM-DD)").format(field=field, value=repr(value)),
                      [{"field": field, "value": value, "message": _a_date()}]) from None


def _kits_to_ship(session: Session, supply: Supply, trial_id: str, site: str, kit_numbers: Sequence[str] | None,
                  kits_per_arm: int | None, requests: Sequence[ResupplyRequest], shipped: dt.date,
                  kits_by_arm: Mapping[str, int] | None = None) -> list[SupplyKit]:
    if kit_numbers:
        kits, errors = [], []
        for number in dict.fromkeys(kit_numbers):
            row = session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id,
                                                          SupplyKit.kit_number == number)).scalar_one_or_none()
            if row is None:
                errors.append({"field": "kits", "value": number,
                               "message": i18n.gettext("no such kit in the trial's kit list")})
            elif row.status != "in_depot":
                errors.append({"field": "kits", "value": number,
                               "message": i18n.gettext("not in the depot ({status})").format(
                                   status=status_words(row.status))})
            else:
                kits.append(row)
        if errors:
            raise Invalid(i18n.gettext("{n} kit(s) cannot be shipped; nothing was shipped").format(n=len(errors)),
                          errors)
        return kits
    if kits_by_arm:
        wanted = dict(kits_by_arm)
    elif kits_per_arm is not None:
        if not isinstance(kits_per_arm, int) or not 1 <= kits_per_arm <= 1000:
            raise Invalid(i18n.gettext("kits_per_arm is a whole number, 1-1000"),
                          [{"field": "kits_per_arm", "value": kits_per_arm, "message": "1-1000"}])
        wanted = {arm: kits_per_arm for arm in _arms(session, trial_id)}
    else:
        wanted = {}
        for r in requests:
            wanted[r.arm] = wanted.get(r.arm, 0) + r.kits
        if not wanted:
            raise Invalid(i18n.gettext("name the kits to ship, or a number per arm: the site has no open resupply "
                                       "request"),
                          [{"field": "kits", "value": None, "message": i18n.gettext("kit numbers, or kits_per_arm")}])
    # A kit shipped must still be dispensable when it arrives and for the treatment after.
    last_day = shipped + dt.timedelta(days=supply.no_dispense_within_days)
    kits = []
    for arm, n in sorted(wanted.items()):
        found = list(session.execute(select(SupplyKit).where(
            SupplyKit.trial_id == trial_id, SupplyKit.status == "in_depot", SupplyKit.arm == arm,
            SupplyKit.expiry > last_day).order_by(SupplyKit.expiry, SupplyKit.kit_number).limit(n)).scalars())
        if len(found) < n:
            raise Conflict(i18n.gettext("the depot holds {available} dispensable kit(s) of {arm}, {n} wanted; import "
                                        "or generate more kits first").format(available=len(found), arm=arm, n=n),
                           arm=arm, available=len(found))
        kits.extend(found)
    return kits


def _arms(session: Session, trial_id: str) -> list[str]:
    return sorted(set(session.execute(select(SupplyKit.arm).where(SupplyKit.trial_id == trial_id)).scalars()))


def receive(session: Session, actor: Actor, trial_id: str, shipment_id: int, received: Sequence[str] = (),
            damaged: Sequence[str] = (), missing: Sequence[str] = ()) -> dict[str, Any]:
    """The site confirms a shipment kit by kit: each of its kits received, damaged or missing (all of them, once)."""
    actor.require("receiving a shipment")
    protocol, supply = supply_protocol(session, actor, trial_id)
    shipment = session.get(SupplyShipment, shipment_id) if isinstance(shipment_id, int) else None
    if shipment is None or shipment.trial_id != trial_id or not actor.can_see_site(shipment.site_code):
        raise NotFound(i18n.gettext("no shipment {shipment} of {trial} to your sites").format(
            shipment=shipment_id, trial=trial_id))
    if shipment.status != "in_transit":
        raise Conflict(i18n.gettext("shipment {shipment} was received already ({by})").format(
            shipment=shipment_id, by=shipment.received_by))
    kits = {k.kit_number: k for k in session.execute(select(SupplyKit).where(SupplyKit.shipment_id == shipment.id,
                                                                             SupplyKit.status == "in_transit"))
            .scalars()}
    marks: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    for status, numbers in (("available", received), ("damaged", damaged), ("missing", missing)):
        for number in numbers:
            if number not in kits:
                errors.append({"field": status, "value": number,
                               "message": i18n.gettext("not a kit of shipment {shipment}").format(
                                   shipment=shipment_id)})
            elif number in marks:
                errors.append({"field": status, "value": number, "message": i18n.gettext("marked twice")})
            else:
                marks[number] = status
    unmarked = sorted(set(kits) - set(marks))
    if unmarked:
        errors.append({"field": "received", "value": unmarked,
                       "message": i18n.gettext("every kit of the shipment is marked received, damaged or missing")})
    if errors:
        raise Invalid(i18n.gettext("shipment {shipment}: {n} problem(s) with the kits marked; nothing was "
                                   "recorded").format(shipment=shipment_id, n=len(errors)), errors)
    for number, status in marks.items():
        _set(kits[number], actor, status)
    shipment.status, shipment.received_at, shipment.received_by = "received", dt.datetime.now(dt.UTC), actor.name
    for request in session.execute(select(ResupplyRequest).where(ResupplyRequest.shipment_id == shipment.id,
                                                                 ResupplyRequest.status == "shipped")).scalars():
        request.status, request.closed_at = "received", shipment.received_at
    by_status = {s: sorted(n for n, m in marks.items() if m == s) for s in ("available", "damaged", "missing")}
    record(session, actor.name, "receive_shipment", "shipment", f"{trial_id}/{shipment.id}", trial_id=trial_id,
           site=shipment.site_code, after={"shipment": shipment.id, "received": by_status["available"],
                                           "damaged": by_status["damaged"], "missing": by_status["missing"]})
    raised = check_levels(session, actor, protocol, supply, trial_id, shipment.site_code)
    out: dict[str, Any] = {"shipment": shipment.id, "site": shipment.site_code, "status": "received",
                           "received": by_status["available"], "damaged": by_status["damaged"],
                           "missing": by_status["missing"]}
    if sees_kit_arms(actor.role, protocol):
        out["resupply_raised"] = raised
    return out


# ---- resupply --------------------------------------------------------------------------------------------------
def site_levels(session: Session, supply: Supply, trial_id: str, site: str) -> SupplyLevels:
    row = session.get(SupplySiteLevels, (trial_id, site))
    if row is None:
        return supply.levels
    return SupplyLevels(trigger_per_arm=row.trigger_per_arm, target_per_arm=row.target_per_arm)


def set_site_levels(session: Session, actor: Actor, trial_id: str, site: str, trigger_per_arm: int,
                    target_per_arm: int) -> dict[str, Any]:
    """A site's own trigger and target, in place of the protocol's (a large site keeps more)."""
    actor.require("setting a site's supply levels")
    protocol, supply = supply_protocol(session, actor, trial_id)
    _require_site(session, actor, trial_id, site)
    try:
        levels = SupplyLevels(trigger_per_arm=trigger_per_arm, target_per_arm=target_per_arm)
    except ValueError as exc:
        raise Invalid(i18n.gettext("site levels refused: {reason}").format(reason=exc),
                      [{"field": "target_per_arm", "value": target_per_arm,
                        "message": i18n.gettext("above trigger_per_arm; both whole numbers >= 0")}]) from None
    row = session.get(SupplySiteLevels, (trial_id, site))
    before = None if row is None else {"trigger_per_arm": row.trigger_per_arm, "target_per_arm": row.target_per_arm}
    if row is None:
        row = SupplySiteLevels(trial_id=trial_id, site_code=site, trigger_per_arm=0, target_per_arm=1,
                               set_by=actor.name)
        session.add(row)
    row.trigger_per_arm, row.target_per_arm = levels.trigger_per_arm, levels.target_per_arm
    row.set_at, row.set_by = dt.datetime.now(dt.UTC), actor.name
    after = {"trigger_per_arm": levels.trigger_per_arm, "target_per_arm": levels.target_per_arm}
    record(session, actor.name, "set_supply_levels", "site", f"{trial_id}/{site}", trial_id=trial_id, site=site,
           before=before, after=after)
    session.flush()
    raised = check_levels(session, actor, protocol, supply, trial_id, site)
    return {"site": site, **after, "resupply_raised": raised}


def check_levels(session: Session, actor: Actor, protocol: Protocol, supply: Supply, trial_id: str,
                 site: str) -> list[dict[str, Any]]:
    """After a stock change: each arm whose dispensable stock (with kits on their way) is at or below the site's
    trigger gets a resupply request up to the target, once while one is open or shipped."""
    levels = site_levels(session, supply, trial_id, site)
    raised = []
    for arm in (a.id for a in protocol.arms):
        pending = session.execute(select(ResupplyRequest.id).where(
            ResupplyRequest.trial_id == trial_id, ResupplyRequest.site_code == site, ResupplyRequest.arm == arm,
            ResupplyRequest.status.in_(("open", "shipped"))).limit(1)).first()
        if pending is not None:
            continue
        on_shelf = len(list(session.execute(_dispensable(session, supply, trial_id, site, arm)).scalars()))
        coming = _count(session, trial_id, site, arm, "in_transit")
        if on_shelf + coming > levels.trigger_per_arm:
            continue
        raised.append(_raise(session, actor, trial_id, site, arm, levels.target_per_arm - on_shelf - coming, False,
                             f"{on_shelf} dispensable kit(s) on the shelf and {coming} on the way, at or below the "
                             f"trigger of {levels.trigger_per_arm}; resupply to {levels.target_per_arm}"))
    return raised


def _count(session: Session, trial_id: str, site: str, arm: str, status: str) -> int:
    return session.execute(select(func.count(SupplyKit.id)).where(
        SupplyKit.trial_id == trial_id, SupplyKit.site_code == site, SupplyKit.arm == arm,
        SupplyKit.status == status)).scalar_one()


def _raise(session: Session, actor: Actor, trial_id: str, site: str, arm: str, kits: int, urgent: bool,
           reason: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    row = ResupplyRequest(trial_id=trial_id, site_code=site, arm=arm, kits=max(kits, 1), urgent=urgent,
                          status="open", reason=reason, raised_at=now, raised_by=actor.name)
    session.add(row)
    session.flush()
    after = {"request": row.id, "site": site, "arm": arm, "kits": row.kits, "urgent": urgent, "reason": reason}
    record(session, actor.name, "raise_resupply", "resupply", f"{trial_id}/{row.id}", trial_id=trial_id, site=site,
           after=after)
    return after


# ---- dispensing at randomization -------------------------------------------------------------------------------
def before_randomizing(session: Session, protocol: Protocol, trial_id: str, site: str) -> Literal["kit", "flag"] | None:
    """Asked before the allocation is made. None: the trial has no physical inventory (its concealed kit list
    serves). "kit": a dispensable kit of every arm is at the site. Otherwise the protocol decides: refuse now,
    before anything is stored, or "flag" (allocate without a kit, raise an urgent resupply). The answer depends on
    the stock of every arm, never on the arm the next patient would get, so a refusal tells nothing of it."""
    supply = protocol.supply
    if supply is None or protocol.randomization is None or not has_inventory(session, trial_id):
        return None
    short = [a.id for a in protocol.arms
             if session.execute(_dispensable(session, supply, trial_id, site).where(SupplyKit.arm == a.id)
                                .limit(1)).first() is None]
    if not short:
        return "kit"
    if supply.when_out_of_stock == "allocate_and_flag":
        return "flag"
    pooled = len(list(session.execute(_dispensable(session, supply, trial_id, site)).scalars()))
    raise Conflict(i18n.gettext(
        "site {site} cannot randomize now: it holds {pooled} dispensable kit(s) but not one of every treatment, and a "
        "patient must be able to receive whichever kit the randomization gives (kits expiring within {days} days, "
        "damaged, quarantined or reserved are not dispensed). Nothing was stored. Ask the unblinded pharmacist or "
        "the supply manager for an urgent shipment, and confirm receipt of any shipment on its way (the supply "
        "page).").format(site=site, pooled=pooled, days=supply.no_dispense_within_days),
        site=site, dispensable_kits=pooled)


def pick_kit(session: Session, protocol: Protocol, trial_id: str, site: str, arm: str) -> str | None:
    """The kit the patient would get: of the arm, on the site's shelf, first expiry first out."""
    if protocol.supply is None:  # pragma: no cover - asked only after before_randomizing said "kit"
        return None
    row = session.execute(_dispensable(session, protocol.supply, trial_id, site, arm).limit(1)).scalar_one_or_none()
    return row.kit_number if row is not None else None


def dispense_at_randomization(session: Session, actor: Actor, protocol: Protocol, trial_id: str, patient: Patient,
                              kit_number: str | None, arm: str) -> None:
    """Mark the allocated kit dispensed (or, allocated without a kit, raise the urgent resupply), then check the
    site's levels. The randomize event already carries the kit; the kit's own event names the patient."""
    supply = protocol.supply
    if supply is None:  # pragma: no cover - only for a trial with a physical inventory
        return
    site = patient.site_code
    if kit_number is None:
        for a in protocol.arms:
            if session.execute(_dispensable(session, supply, trial_id, site, a.id).limit(1)).first() is None:
                _raise(session, actor, trial_id, site, a.id, site_levels(session, supply, trial_id, site)
                       .target_per_arm, True, f"urgent: patient {patient.code} was allocated without a kit "
                       "(the protocol allows it); dispense a kit as soon as one arrives")
    else:
        _dispense(session, actor, trial_id, _kit(session, trial_id, kit_number), patient, "dispense_kit")
    check_levels(session, actor, protocol, supply, trial_id, site)


def _dispense(session: Session, actor: Actor, trial_id: str, kit: SupplyKit, patient: Patient, action: str,
              replaces: str | None = None) -> None:
    now = dt.datetime.now(dt.UTC)
    kit.patient_id, kit.dispensed_at, kit.dispensed_by, kit.replaces = patient.id, now, actor.name, replaces
    _set(kit, actor, "dispensed")
    after = {"kit_number": kit.kit_number, "patient": patient.code, "status": "dispensed", "arm": kit.arm}
    if replaces:
        after["replaces"] = replaces
    record(session, actor.name, action, "kit", f"{trial_id}/{kit.kit_number}", trial_id=trial_id,
           site=patient.site_code, after=after)


# ---- for emergency envelopes (service/envelopes.py) ------------------------------------------------------------
def reserve_kit(session: Session, actor: Actor, trial_id: str, site: str, arm: str, purpose: str) -> str:
    """Set aside a dispensable kit of the arm at the site (status reserved, audited; first expiry first out), for
    an emergency envelope. Conflict when the site has none. Reserved kits are never dispensed at randomization."""
    _protocol, supply = supply_protocol(session, actor, trial_id)
    kit = session.execute(_dispensable(session, supply, trial_id, site, arm).limit(1)).scalar_one_or_none()
    if kit is None:
        raise Conflict(i18n.gettext("site {site} holds no dispensable kit of {arm} to reserve; ship kits to it "
                                    "first").format(site=site, arm=arm), site=site)
    purpose = plain_text("purpose", purpose, 200)
    kit.note = purpose
    _set(kit, actor, "reserved")
    record(session, actor.name, "reserve_kit", "kit", f"{trial_id}/{kit.kit_number}", trial_id=trial_id, site=site,
           after={"kit_number": kit.kit_number, "arm": arm, "status": "reserved", "purpose": purpose})
    return kit.kit_number


def dispense_reserved_kit(session: Session, actor: Actor, trial_id: str, kit_number: str,
                          patient: Patient | str) -> None:
    """Give a reserved kit to the patient whose envelope it was set aside for (a Patient row, or its code)."""
    row = patient if isinstance(patient, Patient) else find_patient(session, actor, trial_id, patient)
    kit = _kit(session, trial_id, kit_number)
    if kit.status != "reserved":
        raise _not_reserved(kit)
    if kit.site_code != row.site_code:
        raise Conflict(i18n.gettext("kit {kit} is at site {site}, the patient at {patient_site}").format(
            kit=kit_number, site=kit.site_code, patient_site=row.site_code))
    _dispense(session, actor, trial_id, kit, row, "dispense_reserved_kit")


def release_reserved_kit(session: Session, actor: Actor, trial_id: str, kit_number: str, reason: str) -> None:
    """Put a kit reserved for an envelope back on the site's shelf (the envelope was voided), audited."""
    kit = _kit(session, trial_id, kit_number)
    if kit.status == "quarantined":  # it stays apart; released from quarantine, it goes back on the shelf
        record(session, actor.name, "release_reserved_kit", "kit", f"{trial_id}/{kit.kit_number}",
               trial_id=trial_id, site=kit.site_code,
               after={"kit_number": kit.kit_number, "arm": kit.arm, "status": "quarantined"}, reason=reason)
        return
    if kit.status != "reserved":
        raise _not_reserved(kit)
    kit.note = None
    _set(kit, actor, "available")
    record(session, actor.name, "release_reserved_kit", "kit", f"{trial_id}/{kit.kit_number}", trial_id=trial_id,
           site=kit.site_code, after={"kit_number": kit.kit_number, "arm": kit.arm, "status": "available"},
           reason=reason)


# ---- replacement and reconciliation ----------------------------------------------------------------------------
def replace_kit(session: Session, actor: Actor, trial_id: str, code: str, reason: str) -> dict[str, Any]:
    """A dispensed kit found damaged: it is marked so (still the patient's), and another kit of the same arm from
    the site's shelf is dispensed to the patient, first expiry first out."""
    actor.require("replacing a damaged kit")
    protocol, supply = supply_protocol(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    reason = plain_text("reason", reason, 2000, min_length=5)
    old = session.execute(select(SupplyKit).where(SupplyKit.patient_id == patient.id,
                                                  SupplyKit.status == "dispensed")
                          .order_by(SupplyKit.dispensed_at.desc()).limit(1)).scalar_one_or_none()
    if old is None:
        raise Conflict(i18n.gettext("patient {patient} holds no dispensed kit to replace").format(patient=code))
    new = session.execute(_dispensable(session, supply, trial_id, patient.site_code, old.arm)
                          .limit(1)).scalar_one_or_none()
    if new is None:
        raise Conflict(i18n.gettext("site {site} holds no dispensable kit of {arm} to replace kit {kit}; ask for an "
                                    "urgent shipment").format(site=patient.site_code, arm=old.arm, kit=old.kit_number),
                       site=patient.site_code)
    old.note = reason
    _set(old, actor, "damaged")
    record(session, actor.name, "kit_damaged", "kit", f"{trial_id}/{old.kit_number}", trial_id=trial_id,
           site=patient.site_code, after={"kit_number": old.kit_number, "patient": code, "status": "damaged"},
           reason=reason)
    _dispense(session, actor, trial_id, new, patient, "replace_kit", replaces=old.kit_number)
    raised = check_levels(session, actor, protocol, supply, trial_id, patient.site_code)
    return {"patient_id": code, "damaged_kit": old.kit_number, "kit": new.kit_number, "arm": new.arm,
            "resupply_raised": raised}


def dispense_late(session: Session, actor: Actor, trial_id: str, code: str) -> dict[str, Any]:
    """A patient allocated without a kit (the protocol's allocate_and_flag) is given one of the allocated arm
    from the site's shelf once the urgent resupply has arrived (the unblinded pharmacist)."""
    actor.require("replacing a damaged kit")
    protocol, supply = supply_protocol(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    allocation = session.execute(select(Allocation).where(Allocation.patient_id == patient.id)).scalar_one_or_none()
    if allocation is None:
        raise Conflict(i18n.gettext("patient {patient} is not randomized yet").format(patient=code))
    if allocation.kit is not None or current_kit(session, patient) is not None:
        raise Conflict(i18n.gettext("patient {patient} was given a kit already").format(patient=code))
    kit = session.execute(_dispensable(session, supply, trial_id, patient.site_code, allocation.arm)
                          .limit(1)).scalar_one_or_none()
    if kit is None:
        raise Conflict(i18n.gettext("site {site} still holds no dispensable kit of {arm}").format(
            site=patient.site_code, arm=allocation.arm), site=patient.site_code)
    _dispense(session, actor, trial_id, kit, patient, "dispense_kit_late")
    raised = check_levels(session, actor, protocol, supply, trial_id, patient.site_code)
    return {"patient_id": code, "kit": kit.kit_number, "arm": kit.arm, "resupply_raised": raised}


def current_kit(session: Session, patient: Patient) -> str | None:
    """The kit a patient holds now (a replacement, after a damaged kit), or None without a physical inventory."""
    return session.execute(select(SupplyKit.kit_number).where(SupplyKit.patient_id == patient.id,
                                                              SupplyKit.status == "dispensed")
                           .order_by(SupplyKit.dispensed_at.desc()).limit(1)).scalar_one_or_none()


def close_out_kit(session: Session, actor: Actor, trial_id: str, kit_number: str,
                  outcome: Literal["returned", "destroyed"], reason: str | None = None, done_by: str | None = None,
                  done_on: dt.date | str | None = None) -> dict[str, Any]:
    """At site close-out: a kit (dispensed, on the shelf, damaged, expired) returned to the depot or destroyed;
    `done_by` who returned or destroyed it (and any witness), `done_on` the day (default today at the site)."""
    actor.require("reconciling kits at close-out")
    supply_protocol(session, actor, trial_id)
    if outcome not in FINAL:
        raise Invalid(i18n.gettext("outcome {outcome} is not one of {choices}").format(
                          outcome=repr(outcome), choices=", ".join(FINAL)),
                      [{"field": "outcome", "value": outcome, "message": _returned_or_destroyed()}])
    kit = _kit(session, trial_id, kit_number)
    if kit.site_code is None or not actor.can_see_site(kit.site_code):
        raise NotFound(i18n.gettext("no kit {kit} of {trial} at your sites").format(kit=kit_number, trial=trial_id))
    if kit.status in ("in_depot", "in_transit", *FINAL):
        raise Conflict(i18n.gettext("kit {kit} is {status}: only a kit at the site is returned or destroyed").format(
            kit=kit_number, status=status_words(kit.status)), kit=kit_number)
    return _close_out(session, actor, trial_id, kit, outcome, *_close_out_details(session, kit.site_code, reason,
                                                                                  done_by, done_on))


def _close_out_details(session: Session, site: str, reason: str | None, done_by: str | None,
                       done_on: dt.date | str | None) -> tuple[str | None, str | None, dt.date]:
    note = plain_text("reason", reason, 2000, required=False)
    who = plain_text("done_by", done_by, 200, required=False)
    today = site_today(session, site)
    day = _date("done_on", done_on) or today
    if day > today:
        raise Invalid(i18n.gettext("done_on {day} is in the future (today at site {site} is {today})").format(
                          day=day.isoformat(), site=site, today=today.isoformat()),
                      [{"field": "done_on", "value": day.isoformat(),
                        "message": i18n.gettext("in the future: today at site {site} is {today}, or earlier").format(
                            site=site, today=today.isoformat())}])
    return note, who, day


def _close_out(session: Session, actor: Actor, trial_id: str, kit: SupplyKit, outcome: str, note: str | None,
               who: str | None, day: dt.date) -> dict[str, Any]:
    before = kit.status
    kit.note = "; ".join(x for x in (f"{outcome} on {day.isoformat()}", f"by {who}" if who else None, note) if x)
    _set(kit, actor, outcome)
    record(session, actor.name, f"kit_{outcome}", "kit", f"{trial_id}/{kit.kit_number}", trial_id=trial_id,
           site=kit.site_code, before={"status": before},
           after={"kit_number": kit.kit_number, "status": outcome, "on": day.isoformat(), "by": who}, reason=note)
    return {"kit": kit.kit_number, "status": outcome, "was": before, "on": day.isoformat(), "by": who}


def close_out_kits(session: Session, actor: Actor, trial_id: str, site: str, kit_numbers: Sequence[str],
                   outcome: str, reason: str | None = None, done_by: str | None = None,
                   done_on: dt.date | str | None = None) -> dict[str, Any]:
    """Several kits of one site returned or destroyed at once, all or nothing: every kit that cannot be is named
    (unknown, at another site, not at the site yet, closed out already) and none is closed out."""
    actor.require("reconciling kits at close-out")
    supply_protocol(session, actor, trial_id)
    _require_site(session, actor, trial_id, site)
    errors: list[dict[str, Any]] = []
    if outcome not in FINAL:
        errors.append({"field": "outcome", "value": outcome, "message": _returned_or_destroyed()})
    numbers = list(dict.fromkeys(n.strip() for n in kit_numbers if n and n.strip()))
    if not numbers:
        errors.append({"field": "kits", "value": None, "message": i18n.gettext("at least one kit number")})
    kits = []
    for number in numbers:
        kit = session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id,
                                                      SupplyKit.kit_number == number)).scalar_one_or_none()
        if kit is None or kit.site_code is None or not actor.can_see_site(kit.site_code):
            errors.append({"field": "kits", "value": number, "message": i18n.gettext("no such kit at your sites")})
        elif kit.site_code != site:
            errors.append({"field": "kits", "value": number, "message": i18n.gettext(
                "a kit of site {kit_site}, not {site}").format(kit_site=kit.site_code, site=site)})
        elif kit.status in ("in_transit", *FINAL):
            errors.append({"field": "kits", "value": number, "message": i18n.gettext(
                "{status}: only a kit at the site is returned or destroyed").format(status=status_words(kit.status))})
        else:
            kits.append(kit)
    try:
        details = _close_out_details(session, site, reason, done_by, done_on)
    except Invalid as exc:
        errors.extend(exc.errors)
    if errors:
        raise Invalid(i18n.gettext("{n} problem(s); no kit was closed out").format(n=len(errors)), errors)
    done = [_close_out(session, actor, trial_id, kit, outcome, *details) for kit in kits]
    return {"site": site, "outcome": outcome, "kits": [d["kit"] for d in done], "on": details[2].isoformat(),
            "by": details[1]}


# ---- quarantine: a temperature excursion or a recall ------------------------------------------------------------
def quarantine(session: Session, actor: Actor, trial_id: str, kit_numbers: Sequence[str] | None = None,
               lot: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """Set kits apart (the kits named, or every kit of a lot in the depot, on a shelf or reserved), with a reason:
    a quarantined kit is never shipped, dispensed or reserved, and a site's resupply check counts it out (a
    quarantine that drops a site to its trigger raises a resupply). All or nothing for kits named."""
    actor.require("quarantining kits")
    protocol, supply = supply_protocol(session, actor, trial_id)
    kits = _quarantine_targets(session, actor, trial_id, kit_numbers, lot, reason, release=False)
    why = plain_text("reason", reason, 2000, min_length=5)
    for kit in kits:
        before = {"status": kit.status, "note": kit.note}
        kit.note = why
        _set(kit, actor, "quarantined")
        record(session, actor.name, "quarantine_kit", "kit", f"{trial_id}/{kit.kit_number}", trial_id=trial_id,
               site=kit.site_code, before=before, after={"kit_number": kit.kit_number, "status": "quarantined"},
               reason=why)
    session.flush()
    raised = []
    for site in sorted({k.site_code for k in kits if k.site_code is not None}):
        raised += check_levels(session, actor, protocol, supply, trial_id, site)
    return {"trial": trial_id, "quarantined": sorted(k.kit_number for k in kits), "lot": lot or None,
            "resupply_raised": raised}


def release_quarantine(session: Session, actor: Actor, trial_id: str, kit_numbers: Sequence[str] | None = None,
                       lot: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """Release quarantined kits (named, or every quarantined kit of a lot), with a reason: each goes back where it
    was (the depot, the shelf, its envelope's reservation)."""
    actor.require("quarantining kits")
    supply_protocol(session, actor, trial_id)
    kits = _quarantine_targets(session, actor, trial_id, kit_numbers, lot, reason, release=True)
    why = plain_text("reason", reason, 2000, min_length=5)
    released = {}
    for kit in kits:
        status, note = _before_quarantine(session, trial_id, kit)
        kit.note = note
        _set(kit, actor, status)
        released[kit.kit_number] = status
        record(session, actor.name, "release_quarantine", "kit", f"{trial_id}/{kit.kit_number}", trial_id=trial_id,
               site=kit.site_code, before={"status": "quarantined"},
               after={"kit_number": kit.kit_number, "status": status}, reason=why)
    return {"trial": trial_id, "released": dict(sorted(released.items())), "lot": lot or None}


def _quarantine_targets(session: Session, actor: Actor, trial_id: str, kit_numbers: Sequence[str] | None,
                        lot: str | None, reason: str | None, release: bool) -> list[SupplyKit]:
    numbers = list(dict.fromkeys(n.strip() for n in kit_numbers or () if n and n.strip()))
    lot = (lot or "").strip() or None
    if bool(numbers) == bool(lot):
        raise Invalid(i18n.gettext("name the kits or a lot (one of the two)"),
                      [{"field": "kits", "value": numbers or None, "message": i18n.gettext("kit numbers, or a lot")}])
    plain_text("reason", reason, 2000, min_length=5)
    if lot is not None:
        return _lot_targets(session, actor, trial_id, lot, release)
    errors = []
    kits = []
    for number in numbers:
        kit = session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id,
                                                      SupplyKit.kit_number == number)).scalar_one_or_none()
        if kit is None or (kit.site_code is not None and not actor.can_see_site(kit.site_code)):
            errors.append({"field": "kits", "value": number,
                           "message": i18n.gettext("no such kit in the trial's kit list")})
        elif release and kit.status != "quarantined":
            errors.append({"field": "kits", "value": number, "message": i18n.gettext(
                "not quarantined ({status})").format(status=status_words(kit.status))})
        elif not release and kit.status == "quarantined":
            errors.append({"field": "kits", "value": number, "message": i18n.gettext("already quarantined")})
        elif not release and kit.status not in QUARANTINABLE:
            errors.append({"field": "kits", "value": number, "message": i18n.gettext(
                "{status}: only a kit in the depot, on a site's shelf or reserved is quarantined").format(
                    status=status_words(kit.status))})
        else:
            kits.append(kit)
    if errors:
        refused = (i18n.gettext("{n} kit(s) refused; nothing was released") if release
                   else i18n.gettext("{n} kit(s) refused; nothing was quarantined"))
        raise Invalid(refused.format(n=len(errors)), errors)
    return kits


def _lot_targets(session: Session, actor: Actor, trial_id: str, lot: str, release: bool) -> list[SupplyKit]:
    rows = [k for k in session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id, SupplyKit.lot == lot)
                                       .order_by(SupplyKit.kit_number)).scalars()
            if k.site_code is None or actor.can_see_site(k.site_code)]
    if not rows:
        raise Invalid(i18n.gettext("no lot {lot} in the trial's kit list").format(lot=lot),
                      [{"field": "lot", "value": lot, "message": i18n.gettext("no such lot in the trial's kit list")}])
    wanted = ("quarantined",) if release else QUARANTINABLE
    kits = [k for k in rows if k.status in wanted]
    if not kits:
        counts: dict[str, int] = {}
        for k in rows:
            counts[STATUS_WORDS.get(k.status, k.status)] = counts.get(STATUS_WORDS.get(k.status, k.status), 0) + 1
        held = ", ".join(f"{n} {i18n.gettext(w)}" for w, n in sorted(counts.items()))
        refused = (i18n.gettext("no kit of lot {lot} is quarantined: its kits are {held}") if release else
                   i18n.gettext("no kit of lot {lot} can be quarantined (in the depot, on a shelf or reserved): its "
                                "kits are {held}"))
        raise Conflict(refused.format(lot=lot, held=held), lot=lot)
    return kits


def _before_quarantine(session: Session, trial_id: str, kit: SupplyKit) -> tuple[str, str | None]:
    """Where a quarantined kit was (and its note), from the trail: a reserved kit whose envelope set was voided
    meanwhile goes back on the shelf."""
    events = session.execute(select(AuditEvent.action, AuditEvent.before_json).where(
        AuditEvent.entity == "kit", AuditEvent.entity_id == f"{trial_id}/{kit.kit_number}",
        AuditEvent.action.in_(("quarantine_kit", "release_reserved_kit"))).order_by(AuditEvent.seq)).all()
    status, note = ("in_depot" if kit.site_code is None else "available"), None
    for action, before_json in events:
        if action == "quarantine_kit" and before_json:
            before = json.loads(before_json)
            status, note = before.get("status", status), before.get("note")
        elif action == "release_reserved_kit" and status == "reserved":
            status, note = "available", None
    if status not in QUARANTINABLE:  # pragma: no cover - only these are quarantined
        status = "in_depot" if kit.site_code is None else "available"
    return status, note


def reconciliation(session: Session, actor: Actor, trial_id: str, site: str) -> dict[str, Any]:
    """A site's kits at close-out: how many were shipped, received, dispensed, returned, destroyed, damaged,
    missing; and each discrepancy named (a kit not yet returned or destroyed, a missing kit, a dispensed kit that
    disagrees with the allocation). Patients are named to the unblinded pharmacist only."""
    actor.require("reconciling kits at close-out")
    _protocol, _supply = supply_protocol(session, actor, trial_id)
    _require_site(session, actor, trial_id, site)
    kits = list(session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id, SupplyKit.site_code == site)
                                .order_by(SupplyKit.kit_number)).scalars())
    names_patients = actor.role == "unblinded_pharmacist"
    codes = dict(session.execute(select(Patient.id, Patient.code).where(Patient.trial_id == trial_id)).all())
    allocated = {a.patient_id: a.kit for a in session.execute(
        select(Allocation).join(Patient, Patient.id == Allocation.patient_id)
        .where(Allocation.trial_id == trial_id, Patient.site_code == site)).scalars()}
    counts: dict[str, int] = {}
    for k in kits:
        counts[k.status] = counts.get(k.status, 0) + 1
    ever_dispensed = [k for k in kits if k.patient_id is not None]
    discrepancies = []
    for k in kits:
        if k.status == "missing":
            discrepancies.append(i18n.gettext("kit {kit}: missing from its shipment, never received").format(
                kit=k.kit_number))
        elif k.status not in FINAL:
            status = i18n.gettext(k.status.replace("_", " "))
            if names_patients and k.patient_id:
                discrepancies.append(i18n.gettext("kit {kit} (patient {patient}): {status}, neither returned nor "
                                                  "destroyed").format(kit=k.kit_number,
                                                                      patient=codes.get(k.patient_id), status=status))
            else:
                discrepancies.append(i18n.gettext("kit {kit}: {status}, neither returned nor destroyed").format(
                    kit=k.kit_number, status=status))
        if k.patient_id is not None and k.patient_id not in allocated:
            discrepancies.append(i18n.gettext("kit {kit}: dispensed to a patient with no allocation").format(
                kit=k.kit_number))
    given = {k.kit_number for k in ever_dispensed}
    for patient_id, kit in allocated.items():
        if kit is not None and kit not in given and _is_physical(session, trial_id, kit):
            discrepancies.append(
                i18n.gettext("kit {kit} of patient {patient}: allocated but not recorded as dispensed").format(
                    kit=kit, patient=codes.get(patient_id)) if names_patients else
                i18n.gettext("kit {kit}: allocated but not recorded as dispensed").format(kit=kit))
    closed = {(e.entity_id.split("/", 1)[1], e.action): e for e in session.execute(
        select(AuditEvent).where(AuditEvent.trial_id == trial_id, AuditEvent.site_code == site,
                                 AuditEvent.entity == "kit", AuditEvent.action.in_(("kit_returned", "kit_destroyed"))
                                 ).order_by(AuditEvent.seq)).scalars()}
    listing = []
    for k in kits:
        event = closed.get((k.kit_number, f"kit_{k.status}"))
        row: dict[str, Any] = {"kit_number": k.kit_number, "status": k.status, "note": k.note,
                               "updated_at": k.updated_at.isoformat(timespec="minutes"), "updated_by": k.updated_by,
                               "replaces": k.replaces}
        if event is not None:
            after = json.loads(event.after_json or "{}")
            row["recorded_by"], row["by"], row["on"] = event.actor, after.get("by"), after.get("on")
        if names_patients and k.patient_id is not None:
            row["patient"] = codes.get(k.patient_id)
        listing.append(row)
    return {"site": site, "kits": len(kits), "by_status": dict(sorted(counts.items())),
            "shipped": sum(1 for k in kits if k.shipment_id is not None),
            "received": sum(1 for k in kits if k.status not in ("in_transit", "missing")),
            "dispensed": len(ever_dispensed),
            **{name: counts.get(status, 0) for name, status in (
                ("returned", "returned"), ("destroyed", "destroyed"), ("damaged", "damaged"), ("missing", "missing"),
                ("on_shelf", "available"), ("quarantined", "quarantined"), ("reserved", "reserved"),
                ("in_transit", "in_transit"), ("still_dispensed", "dispensed"))},
            "kit_list": listing, "discrepancies": discrepancies, "complete": not discrepancies}


def _is_physical(session: Session, trial_id: str, kit_number: str) -> bool:
    return session.execute(select(SupplyKit.id).where(SupplyKit.trial_id == trial_id,
                                                      SupplyKit.kit_number == kit_number)).first() is not None


# ---- what the supply page shows ------------------------------------------------------------------------------
def overview(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Stock per site (per arm for those who may see it, pooled otherwise), shipments, resupply requests and
    expiring lots (unblinded), and the pharmacy instructions (for those who see arms)."""
    actor.require("reading kit stock")
    protocol, supply = supply_protocol(session, actor, trial_id)
    unblinded = sees_kit_arms(actor.role, protocol)
    sites = [s for s in trial_sites(session, trial_id) if actor.can_see_site(s)]
    arms = [a.id for a in protocol.arms]
    stock = [_site_stock(session, supply, trial_id, site, arms, unblinded) for site in sites]
    shipments = [_shipment_view(session, s) for s in session.execute(
        select(SupplyShipment).where(SupplyShipment.trial_id == trial_id, SupplyShipment.site_code.in_(sites))
        .order_by(SupplyShipment.id.desc())).scalars()]
    body: dict[str, Any] = {
        "trial": trial_id, "inventory": has_inventory(session, trial_id), "arms_shown": unblinded,
        "rules": {"no_dispense_within_days": supply.no_dispense_within_days,
                  "expiry_warning_days": supply.expiry_warning_days, "when_out_of_stock": supply.when_out_of_stock,
                  "assumption": supply.assumption},
        "stock": stock, "shipments": shipments}
    if unblinded:
        body["arms"] = [{"id": a.id, "name": a.name} for a in protocol.arms]
        body["depot"] = {arm: _depot(session, trial_id, arm) for arm in arms}
        body["depot_quarantined"] = {arm: _depot(session, trial_id, arm, "quarantined") for arm in arms}
        body["quarantined"] = [
            {"kit_number": k.kit_number, "arm": k.arm, "lot": k.lot, "expiry": k.expiry.isoformat(),
             "where": k.site_code or "depot", "reason": k.note,
             "since": k.updated_at.isoformat(timespec="minutes"), "by": k.updated_by}
            for k in session.execute(select(SupplyKit).where(SupplyKit.trial_id == trial_id,
                                                             SupplyKit.status == "quarantined")
                                     .order_by(SupplyKit.kit_number)).scalars()
            if k.site_code is None or k.site_code in sites]
        lots: dict[str, dict[str, Any]] = {}
        for lot, arm, expiry, n in session.execute(
                select(SupplyKit.lot, SupplyKit.arm, func.min(SupplyKit.expiry), func.count(SupplyKit.id))
                .where(SupplyKit.trial_id == trial_id).group_by(SupplyKit.lot, SupplyKit.arm)
                .order_by(SupplyKit.lot, SupplyKit.arm)).all():
            entry = lots.setdefault(lot, {"lot": lot, "arms": [], "expiry": expiry.isoformat(), "kits": 0})
            entry["arms"].append(arm)
            entry["kits"] += n
            entry["expiry"] = min(entry["expiry"], expiry.isoformat())
        body["lots"] = list(lots.values())  # a lot may hold kits of several arms (one packaging run)
        body["requests"] = [_request_view(r) for r in session.execute(
            select(ResupplyRequest).where(ResupplyRequest.trial_id == trial_id,
                                          ResupplyRequest.site_code.in_(sites))
            .order_by(ResupplyRequest.status != "open", ResupplyRequest.id.desc())).scalars()]
        body["expiring_lots"] = _expiring_lots(session, supply, trial_id, sites)
        body["levels"] = {s: _levels_view(site_levels(session, supply, trial_id, s)) for s in sites}
    if sees_arm(actor.role, protocol.design.masking) and supply.pharmacy_instructions:
        body["pharmacy_instructions"] = supply.pharmacy_instructions
    return body


def _levels_view(levels: SupplyLevels) -> dict[str, int]:
    return {"trigger_per_arm": levels.trigger_per_arm, "target_per_arm": levels.target_per_arm}


def _site_stock(session: Session, supply: Supply, trial_id: str, site: str, arms: Iterable[str],
                unblinded: bool) -> dict[str, Any]:
    warn_by = site_today(session, site) + dt.timedelta(days=supply.expiry_warning_days)
    per_arm = {}
    for arm in arms:
        dispensable = len(list(session.execute(_dispensable(session, supply, trial_id, site, arm)).scalars()))
        on_shelf = _count(session, trial_id, site, arm, "available")
        expiring = session.execute(select(func.count(SupplyKit.id)).where(
            SupplyKit.trial_id == trial_id, SupplyKit.site_code == site, SupplyKit.arm == arm,
            SupplyKit.status.in_(ON_SHELF), SupplyKit.expiry <= warn_by)).scalar_one()
        per_arm[arm] = {"dispensable": dispensable, "on_shelf": on_shelf, "expiring_soon": expiring,
                        "in_transit": _count(session, trial_id, site, arm, "in_transit"),
                        "reserved": _count(session, trial_id, site, arm, "reserved"),
                        "quarantined": _count(session, trial_id, site, arm, "quarantined")}
    pooled = {key: sum(v[key] for v in per_arm.values())
              for key in ("dispensable", "on_shelf", "expiring_soon", "in_transit", "reserved", "quarantined")}
    out: dict[str, Any] = {"site": site, **pooled}
    if unblinded:
        out["per_arm"] = per_arm
        out["below_trigger"] = sorted(a for a, v in per_arm.items()
                                      if v["dispensable"] <= site_levels(session, supply, trial_id, site)
                                      .trigger_per_arm)
    return out


def _depot(session: Session, trial_id: str, arm: str, status: str = "in_depot") -> int:
    return session.execute(select(func.count(SupplyKit.id)).where(
        SupplyKit.trial_id == trial_id, SupplyKit.arm == arm, SupplyKit.site_code.is_(None),
        SupplyKit.status == status)).scalar_one()


def _shipment_view(session: Session, s: SupplyShipment) -> dict[str, Any]:
    """A shipment as site staff see it: kit numbers and their status, never an arm, a lot or an expiry."""
    kits = session.execute(select(SupplyKit.kit_number, SupplyKit.status).where(SupplyKit.shipment_id == s.id)
                           .order_by(SupplyKit.kit_number)).all()
    return {"shipment": s.id, "site": s.site_code, "status": s.status, "shipped_on": s.shipped_on.isoformat(),
            "expected_on": s.expected_on.isoformat() if s.expected_on else None,
            "received_by": s.received_by, "kits": [{"kit_number": n, "status": st} for n, st in kits]}


def _request_view(r: ResupplyRequest) -> dict[str, Any]:
    return {"request": r.id, "site": r.site_code, "arm": r.arm, "kits": r.kits, "urgent": r.urgent,
            "status": r.status, "reason": r.reason, "raised_at": r.raised_at.isoformat(timespec="minutes"),
            "shipment": r.shipment_id}


def _expiring_lots(session: Session, supply: Supply, trial_id: str, sites: Sequence[str]) -> list[dict[str, Any]]:
    """Lots with kits not yet dispensed (in the depot, on their way or on a shelf) that expire within the
    protocol's warning days."""
    warn_by = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=supply.expiry_warning_days)
    rows = session.execute(select(SupplyKit.lot, SupplyKit.arm, SupplyKit.expiry, SupplyKit.site_code,
                                  func.count(SupplyKit.id))
                           .where(SupplyKit.trial_id == trial_id,
                                  SupplyKit.status.in_(("in_depot", "in_transit", "available", "reserved")),
                                  SupplyKit.expiry <= warn_by)
                           .group_by(SupplyKit.lot, SupplyKit.arm, SupplyKit.expiry, SupplyKit.site_code)
                           .order_by(SupplyKit.expiry, SupplyKit.lot)).all()
    return [{"lot": lot, "arm": arm, "expiry": expiry.isoformat(), "where": site or "depot", "kits": n}
            for lot, arm, expiry, site, n in rows if site is None or site in sites]

