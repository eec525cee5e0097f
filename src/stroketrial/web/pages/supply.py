"""A kit trial's supply page: stock per site (per arm for unblinded roles, pooled for everyone else), shipments
with the site's receipt form, resupply requests and expiring lots (unblinded), the kit list's import form, and the
pharmacy instructions for those who see arms. Every page calls `service.supply`, as the API does
(`web/api_supply.py`); this module only puts codes into words.

    /trials/{trial}/supply                               the supply page
    /trials/{trial}/supply/import                        import the packager's kit list (CSV)
    /trials/{trial}/supply/shipments/{shipment}/receipt  the site confirms a shipment, kit by kit
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from ...service import supply, trials
from ...service.errors import Forbidden, ServiceError
from ..csrf import check_csrf
from .auth import signed_in
from .base import database, render

router: APIRouter = APIRouter(include_in_schema=False)

KIT_STATUS = {"in_depot": "in the depot", "in_transit": "on its way", "available": "on the shelf",
              "reserved": "reserved (emergency envelope)", "dispensed": "dispensed", "damaged": "damaged",
              "missing": "missing", "quarantined": "quarantined", "returned": "returned", "destroyed": "destroyed"}
SHIPMENT_STATUS = {"in_transit": "on its way", "received": "received"}
REQUEST_STATUS = {"open": "open", "shipped": "shipped", "received": "received"}
WHEN_OUT = {"refuse": "the randomization is refused until kits of every treatment are on the shelf",
            "allocate_and_flag": "the patient is allocated without a kit and an urgent resupply is raised"}
MAX_UPLOAD = 900_000


def _page(request: Request, trial: str, status: int = 200, message: str | None = None,
          errors: list[dict[str, Any]] | None = None) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = supply.overview(session, actor, trial)
    arm_names = {a.id: a.name for a in protocol.arms}
    return render(request, "supply.html", status=status, protocol=protocol, view=view, arm_names=arm_names,
                  kit_status=KIT_STATUS, shipment_status=SHIPMENT_STATUS, request_status=REQUEST_STATUS,
                  when_out=WHEN_OUT[view["rules"]["when_out_of_stock"]], message=message, errors=errors or [])


@router.get("/trials/{trial}/supply", response_class=HTMLResponse)
def supply_page(request: Request, trial: str) -> HTMLResponse:
    return _page(request, trial)


@router.post("/trials/{trial}/supply/import", response_class=HTMLResponse)
async def import_submit(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    upload = form.get("file")
    text = str(form.get("csv") or "")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_UPLOAD + 1)
        text = raw[:MAX_UPLOAD].decode("utf-8", errors="replace")
    try:
        with database(request).write() as session:
            result = supply.import_kits(session, actor, trial, text)
    except Forbidden:
        raise
    except ServiceError as exc:
        return _page(request, trial, exc.status, exc.message, exc.errors)
    return _page(request, trial, 200, f"{result['imported']} kits imported; the kit list holds {result['kits']}.")


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
        with database(request).write() as session:
            supply.receive(session, actor, trial, shipment, marks["received"], marks["damaged"], marks["missing"])
    except Forbidden:
        raise
    except ServiceError as exc:
        return _page(request, trial, exc.status, exc.message, exc.errors)
    return RedirectResponse(f"/trials/{trial}/supply", status_code=303)
