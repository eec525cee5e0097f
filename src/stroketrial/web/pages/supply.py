"""A kit trial's supply page: stock per site (per arm for unblinded roles, pooled for everyone else), shipments
with the site's receipt form, resupply requests, expiring lots and quarantined kits (unblinded), the forms of the
unblinded pharmacist and the supply manager (import the kit list, ship, set a site's levels, quarantine and
release, replace a damaged kit, close out kits), the pharmacy instructions for those who see arms, and each site's
reconciliation report. Every page calls `service.supply`, as the API does (`web/api_supply.py`); this module only
reads the forms and puts codes into words. A refusal comes back on the page in words, what was typed kept.

    /trials/{trial}/supply                                 the supply page
    /trials/{trial}/supply/import                          import the packager's kit list (CSV)
    /trials/{trial}/supply/shipments/{shipment}/receipt    the site confirms a shipment, kit by kit
    /trials/{trial}/supply/ship                            ship kits to a site
    /trials/{trial}/supply/levels                          a site's trigger and target
    /trials/{trial}/supply/quarantine                      quarantine kits or a lot, or release them
    /trials/{trial}/supply/replacement                     replace a patient's damaged kit
    /trials/{trial}/supply/close-out                       kits of a site returned or destroyed
    /trials/{trial}/supply/sites/{site}/reconciliation     a site's reconciliation report (printable)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from ... import i18n
from ...protocol import Protocol
from ...service import supply, trials
from ...service.accounts import Actor
from ...service.errors import Forbidden, Invalid, ServiceError
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render

router: APIRouter = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/management.po); it is translated where it is shown."""
    return message


KIT_STATUS = {"in_depot": _("in the depot"), "in_transit": _("on its way"), "available": _("on the shelf"),
              "reserved": _("reserved (emergency envelope)"), "dispensed": _("dispensed"), "damaged": _("damaged"),
              "missing": _("missing"), "quarantined": _("quarantined"), "returned": _("returned"),
              "destroyed": _("destroyed")}
SHIPMENT_STATUS = {"in_transit": _("on its way"), "received": _("received")}
REQUEST_STATUS = {"open": _("open"), "shipped": _("shipped"), "received": _("received")}
WHEN_OUT = {"refuse": _("the randomization is refused until kits of every treatment are on the shelf"),
            "allocate_and_flag": _("the patient is allocated without a kit and an urgent resupply is raised")}
FIELDS = {"kits": _("kit"), "kit_number": _("kit number"), "kits_per_arm": _("kits per treatment"),
          "kits_by_arm": _("kits per treatment"), "shipped_on": _("shipped on"), "expected_on": _("expected on"),
          "site": _("site"), "trigger_per_arm": _("trigger"), "target_per_arm": _("target"), "reason": _("reason"),
          "lot": _("lot"), "outcome": _("outcome"), "done_by": _("returned or destroyed by"),
          "done_on": _("on (date)"), "patient_id": _("patient"), "columns": _("columns"), "rows": _("rows"),
          "arm": _("treatment"), "expiry": _("expiry"), "received": _("received"), "damaged": _("damaged"),
          "missing": _("missing")}
WHERE = (_("depot"),)  # where a kit is: a site's code, or the depot (service.supply)
MAX_UPLOAD = 900_000


def _page(request: Request, trial: str, status: int = 200, message: str | None = None,
          errors: list[dict[str, Any]] | None = None, failed: str | None = None,
          typed: dict[str, Any] | None = None, csv_columns: bool = False) -> HTMLResponse:
    """The supply page; `csv_columns`: the errors name the kit list's columns and arm ids as the CSV has them."""
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = supply.overview(session, actor, trial)
    arm_names = {a.id: i18n.protocol_text(a, "name") for a in protocol.arms}
    words = _in_words(view["arms_shown"] and not csv_columns, arm_names)
    return render(request, "supply.html", status=status, protocol=protocol, view=view, arm_names=arm_names,
                  kit_status=KIT_STATUS, shipment_status=SHIPMENT_STATUS, request_status=REQUEST_STATUS,
                  when_out=WHEN_OUT[view["rules"]["when_out_of_stock"]], message=words(message) if message else None,
                  errors=_errors(errors or [], words, csv_columns), failed=failed, typed=typed or {},
                  sites=[s["site"] for s in view["stock"]])


def _in_words(arms_shown: bool, arm_names: dict[str, str]) -> Callable[[str], str]:
    """A service message with arm ids named (for those who see arms; the others are never told an arm)."""
    def words(text: str) -> str:
        if arms_shown:
            for arm, name in arm_names.items():
                # An id between Chinese characters has no \b around it: only a Latin letter or digit joins it.
                text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(arm)}(?![A-Za-z0-9_])", name, text)
        return text
    return words


def _errors(errors: list[dict[str, Any]], words: Callable[[str], str], csv_columns: bool) -> list[dict[str, str]]:
    out = []
    for e in errors:
        value = e.get("value")
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        field = str(e.get("field", ""))
        out.append({"row": str(e["row"]) if e.get("row") else "", "field": field if csv_columns else
                    i18n.gettext(FIELDS.get(field, field)),
                    "value": "" if value is None else words(str(value)), "message": words(str(e.get("message", "")))})
    return out


def _kit_numbers(text: str) -> list[str]:
    return [n for n in re.split(r"[\s,;]+", text.strip()) if n]


def _whole(field: str, value: str, required: bool = True) -> int | None:
    value = value.strip()
    if not value and not required:
        return None
    if not re.fullmatch(r"\d{1,6}", value):
        raise Invalid(i18n.gettext("{field}: {value} is not a whole number").format(
            field=i18n.gettext(FIELDS.get(field, field)), value=value or i18n.gettext("nothing")),
                      [{"field": field, "value": value, "message": i18n.gettext("a whole number, 0 or more")}])
    return int(value)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _submit(request: Request, trial: str, name: str, fields: tuple[str, ...],
                  act: Callable[[Session, Actor, FormData], str]) -> Response:
    """Read the form, run the operation in one write transaction, and show the page: a notice on success, the
    refusal in words (and what was typed) otherwise. Forbidden goes to the error page: the form is not offered."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    typed = {k: _text(form, k) for k in fields}
    typed.update({k: _text(form, k) for k in form if k.startswith("arm:")})
    try:
        with database(request).write(trial) as session:
            notice = act(session, actor, form)
    except Forbidden:
        raise
    except ServiceError as exc:
        return _page(request, trial, exc.status, exc.message, exc.errors, name, typed)
    return _done(request, trial, notice)


NOTICE = "supply_notice"


def _done(request: Request, trial: str, notice: str) -> RedirectResponse:
    """Post/redirect/get, so that a reload never ships, quarantines or closes out twice. What the form did is
    carried to the page in the signed session (a crafted link cannot put words on the page)."""
    request.session[NOTICE] = notice[:1500]
    return RedirectResponse(f"/trials/{trial}/supply", status_code=303)


@router.get("/trials/{trial}/supply", response_class=HTMLResponse)
def supply_page(request: Request, trial: str) -> HTMLResponse:
    return _page(request, trial, message=request.session.pop(NOTICE, None))


@router.post("/trials/{trial}/supply/import", response_class=HTMLResponse)
async def import_submit(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    upload = form.get("file")
    text = str(form.get("csv") or "")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_UPLOAD + 1)
        problem = (i18n.gettext("the file is over {size} kB: split the kit list").format(size=MAX_UPLOAD // 1000)
                   if len(raw) > MAX_UPLOAD else None)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = i18n.gettext("the file is not UTF-8 text (byte {byte}): save the kit list as CSV in "
                                   "UTF-8").format(byte=exc.start + 1)
        if problem is not None:
            return _page(request, trial, 422,
                         i18n.gettext("kit list refused: {problem}; nothing was imported").format(problem=problem),
                         [{"field": "file", "value": upload.filename, "message": problem}], "import",
                         csv_columns=True)
    try:
        with database(request).write(trial) as session:
            result = supply.import_kits(session, actor, trial, text)
    except Forbidden:
        raise
    except ServiceError as exc:
        return _page(request, trial, exc.status, exc.message, exc.errors, "import",
                     {"csv": str(form.get("csv") or "")}, csv_columns=True)
    return _done(request, trial, i18n.gettext("{imported} kits imported; the kit list holds {kits}.").format(
        imported=result["imported"], kits=result["kits"]))


@router.post("/trials/{trial}/supply/shipments/{shipment}/receipt", response_class=HTMLResponse)
async def receipt_submit(request: Request, trial: str, shipment: int) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    marks: dict[str, list[str]] = {"received": [], "damaged": [], "missing": []}
    for key, value in form.multi_items():
        if key.startswith("kit:") and str(value) in marks:
            marks[str(value)].append(key[4:])
    try:
        with database(request).write(trial) as session:
            supply.receive(session, actor, trial, shipment, marks["received"], marks["damaged"], marks["missing"])
    except Forbidden:
        raise
    except ServiceError as exc:
        return _page(request, trial, exc.status, exc.message, exc.errors)
    return _done(request, trial, i18n.gettext("The receipt is recorded: the kits received are on the site's shelf."))


def _resupply_words(raised: list[dict[str, Any]], protocol: Protocol) -> str:
    if not raised:
        return ""
    names = {a.id: i18n.protocol_text(a, "name") for a in protocol.arms}
    return " " + i18n.gettext("Resupply raised: {requests}.").format(requests="; ".join(
        i18n.gettext("{site}, {kits} kit(s) of {treatment}").format(
            site=r["site"], kits=r["kits"], treatment=names.get(r["arm"], r["arm"])) for r in raised))


@router.post("/trials/{trial}/supply/ship", response_class=HTMLResponse)
async def ship_submit(request: Request, trial: str) -> Response:
    def act(session: Session, actor: Actor, form: FormData) -> str:
        numbers = _kit_numbers(_text(form, "kits"))
        by_arm = {key[4:]: _whole("kits_by_arm", _text(form, key), required=False) for key in form
                  if key.startswith("arm:")}
        counts = {arm: n for arm, n in by_arm.items() if n is not None}
        if numbers and any(counts.values()):
            raise Invalid(i18n.gettext("name the kits or give a number per treatment, not both"),
                          [{"field": "kits", "value": ", ".join(numbers),
                            "message": i18n.gettext("kit numbers, or numbers per treatment")}])
        result = supply.ship(session, actor, trial, _text(form, "site"), numbers or None, None,
                             _text(form, "shipped_on") or None, _text(form, "expected_on") or None,
                             counts if any(counts.values()) else None)
        shipped = i18n.gettext("Shipment {shipment} to {site}: {n} kit(s) on their way ({kits}), shipped {on}").format(
            shipment=result["shipment"], site=result["site"], n=len(result["kits"]), kits=", ".join(result["kits"]),
            on=result["shipped_on"])
        expected = (", " + i18n.gettext("expected {on}").format(on=result["expected_on"])
                    if result["expected_on"] else "")
        return shipped + expected + "."
    return await _submit(request, trial, "ship", ("site", "kits", "shipped_on", "expected_on"), act)


@router.post("/trials/{trial}/supply/levels", response_class=HTMLResponse)
async def levels_submit(request: Request, trial: str) -> Response:
    def act(session: Session, actor: Actor, form: FormData) -> str:
        trigger = _whole("trigger_per_arm", _text(form, "trigger"))
        target = _whole("target_per_arm", _text(form, "target"))
        assert trigger is not None and target is not None
        result = supply.set_site_levels(session, actor, trial, _text(form, "site"), trigger, target)
        _, protocol = trials.get_trial(session, actor, trial)
        return (i18n.gettext("Site {site}: resupply at {trigger} kit(s) of a treatment or fewer, up to {target}.")
                .format(site=result["site"], trigger=result["trigger_per_arm"], target=result["target_per_arm"])
                + _resupply_words(result["resupply_raised"], protocol))
    return await _submit(request, trial, "levels", ("site", "trigger", "target"), act)


@router.post("/trials/{trial}/supply/quarantine", response_class=HTMLResponse)
async def quarantine_submit(request: Request, trial: str) -> Response:
    def act(session: Session, actor: Actor, form: FormData) -> str:
        numbers = _kit_numbers(_text(form, "kits")) or None
        lot, reason = _text(form, "lot") or None, _text(form, "reason")
        if _text(form, "action") == "release":
            released = supply.release_quarantine(session, actor, trial, numbers, lot, reason)["released"]
            return i18n.gettext("{n} kit(s) released from quarantine: {kits}.").format(
                n=len(released), kits=", ".join(f"{n} ({i18n.gettext(KIT_STATUS.get(s, s))})"
                                                for n, s in released.items()))
        result = supply.quarantine(session, actor, trial, numbers, lot, reason)
        _, protocol = trials.get_trial(session, actor, trial)
        return (i18n.gettext("{n} kit(s) quarantined: {kits}.").format(
            n=len(result["quarantined"]), kits=", ".join(result["quarantined"]))
                + _resupply_words(result["resupply_raised"], protocol))
    return await _submit(request, trial, "quarantine", ("action", "kits", "lot", "reason"), act)


@router.post("/trials/{trial}/supply/replacement", response_class=HTMLResponse)
async def replacement_submit(request: Request, trial: str) -> Response:
    def act(session: Session, actor: Actor, form: FormData) -> str:
        result = supply.replace_kit(session, actor, trial, _text(form, "patient"), _text(form, "reason"))
        _, protocol = trials.get_trial(session, actor, trial)
        names = {a.id: i18n.protocol_text(a, "name") for a in protocol.arms}
        return (i18n.gettext("Patient {patient}: kit {damaged} marked damaged, kit {kit} ({treatment}) dispensed in "
                             "its place.").format(patient=result["patient_id"], damaged=result["damaged_kit"],
                                                  kit=result["kit"], treatment=names.get(result["arm"], result["arm"]))
                + _resupply_words(result["resupply_raised"], protocol))
    return await _submit(request, trial, "replacement", ("patient", "reason"), act)


@router.post("/trials/{trial}/supply/close-out", response_class=HTMLResponse)
async def close_out_submit(request: Request, trial: str) -> Response:
    def act(session: Session, actor: Actor, form: FormData) -> str:
        result = supply.close_out_kits(session, actor, trial, _text(form, "site"), _kit_numbers(_text(form, "kits")),
                                       _text(form, "outcome"), _text(form, "reason") or None,
                                       _text(form, "by") or None, _text(form, "on") or None)
        outcome = {"returned": i18n.gettext("returned"), "destroyed": i18n.gettext("destroyed")}
        done = (i18n.gettext("{n} kit(s) of {site} {outcome} on {on} by {by}: {kits}.") if result["by"]
                else i18n.gettext("{n} kit(s) of {site} {outcome} on {on}: {kits}."))
        return done.format(n=len(result["kits"]), site=result["site"],
                           outcome=outcome.get(result["outcome"], result["outcome"]), on=result["on"],
                           by=result["by"], kits=", ".join(result["kits"]))
    return await _submit(request, trial, "close-out", ("site", "kits", "outcome", "by", "on", "reason"), act)


@router.get("/trials/{trial}/supply/sites/{site}/reconciliation", response_class=HTMLResponse)
def reconciliation_page(request: Request, trial: str, site: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        report = supply.reconciliation(session, actor, trial, site)
    return render(request, "supply_reconciliation.html", protocol=protocol, report=report, kit_status=KIT_STATUS,
                  now=dt.datetime.now(dt.UTC))
