"""What every page handler uses: the templates, `render`, and the application's database.

Two filters keep internal codes and UTC off the pages: `label` turns a stored choice into the words the data
dictionary gives it (`{{ s.outcome | label('outcome') }}`), and `at_site` shows a stored UTC time in the site's
time zone with the zone named (`{{ c.due | at_site(s.site) }}`: "2026-11-30 05:02 CST (Asia/Shanghai)").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy import select

from ... import i18n
from ...clinical import VARIABLES
from ...clinical.assessments import ASSESSMENTS
from ...service import adverse_events, serious_adverse_events as sae
from ...store import Database
from ...store.models import Site
from ..csrf import csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
templates.env.add_extension("jinja2.ext.i18n")
# `{% trans %}` and `_()` in the templates read the request's language (i18n.set_language), at render time.
templates.env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
templates.env.globals["protocol_text"] = i18n.protocol_text

# The words for the stored choices of the safety forms, by field.
CHOICE_LABELS: dict[str, Mapping[str, str]] = {
    "criteria": sae.SAE_CRITERIA_LABELS, "seriousness": sae.SAE_CRITERIA_LABELS,
    "outcome": sae.SAE_OUTCOME_LABELS, "relatedness": sae.RELATEDNESS_LABELS, "causality": sae.RELATEDNESS_LABELS,
    "expectedness": sae.EXPECTEDNESS_LABELS, "severity": adverse_events.AE_SEVERITY_LABELS,
    "action_taken": adverse_events.AE_ACTION_LABELS,
}


def choice_label(value: Any, field: str) -> str:
    """A stored choice as people read it, in the page's language: the safety forms' words, a screening variable's
    or a follow-up assessment's label for the choice; a list of choices joined by commas; anything else as it is.
    The words are translated through the catalogs (web/data_words.py lists them)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(choice_label(v, field) for v in value)
    if isinstance(value, bool):
        return i18n.gettext("yes") if value else i18n.gettext("no")
    text = str(value)
    if field in CHOICE_LABELS:
        return i18n.gettext(CHOICE_LABELS[field].get(text, text.replace("_", " ")))
    var = VARIABLES.get(field)
    if var is not None and var.kind in ("category", "grade"):
        return i18n.gettext(next((m.label for m in var.enum_scale() if m.value == text), text))
    assessment = ASSESSMENTS.get(field)
    if assessment is not None and assessment.kind == "category":
        return i18n.gettext(assessment.label_of(text))
    return text


def _moment(value: Any, naive_zone: str | None = None) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        return moment
    # Stored times are UTC; a clock time typed without a zone was the site's wall clock (`naive_zone`).
    return moment.replace(tzinfo=ZoneInfo(naive_zone) if naive_zone else dt.UTC)


def in_zone(value: Any, zone: str | None, seconds: bool = False, wall_clock: bool = False) -> str:
    """A stored time (UTC) in a time zone, with the zone named: "2026-11-30 05:02 CST (Asia/Shanghai)". With
    `wall_clock`, a time without a zone is the site's clock time as typed (screening data)."""
    moment = _moment(value, zone if wall_clock else None)
    if moment is None:
        return "" if value is None else str(value)
    name = zone or "UTC"
    local = moment.astimezone(ZoneInfo(name))
    abbreviation = local.tzname() or name
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if i18n.current() == i18n.CHINESE:  # the zone's Chinese name (CLDR, through Babel) and its offset from UTC
        from babel.dates import get_timezone_name

        words = get_timezone_name(local, width="long", locale="zh_Hans_CN")
        offset = local.strftime("%z")
        return f"{shown} {words} (UTC{offset[:3]}:{offset[3:]})" if offset != "+0000" else f"{shown} {words}"
    return f"{shown} UTC" if name == "UTC" else f"{shown} {abbreviation} ({name})"


def site_date(value: Any, zone: str | None) -> str:
    """A stored time's calendar date at the site."""
    moment = _moment(value)
    if moment is None:
        return "" if value is None else str(value)[:10]
    return moment.astimezone(ZoneInfo(zone or "UTC")).date().isoformat()


@pass_context
def at_site(context: Context, value: Any, site: str | None = None, seconds: bool = False) -> str:
    """`in_zone` in the zone of the site (a code); without one, in the zone of the signed-in user's sites."""
    zones: Mapping[str, str] = context.get("site_zones") or {}
    zone = zones.get(site) if site else context.get("user_zone")
    return in_zone(value, zone, seconds)


@pass_context
def date_at_site(context: Context, value: Any, site: str | None = None) -> str:
    zones: Mapping[str, str] = context.get("site_zones") or {}
    return site_date(value, zones.get(site) if site else context.get("user_zone"))


@pass_context
def clock_help(context: Context, site: str | None = None) -> str:
    """The help of a date-and-time input: typed as the hospital's clock shows it, in the site's time zone."""
    zones: Mapping[str, str] = context.get("site_zones") or {}
    zone = zones.get(site) if site else context.get("user_zone")
    help_text = i18n.gettext("date and time as the hospital clock shows it")
    return help_text + (f" ({zone})" if zone else "")


templates.env.filters["label"] = choice_label
templates.env.globals["clock_help"] = clock_help
templates.env.globals["choice_labels"] = CHOICE_LABELS
templates.env.filters["at_site"] = at_site
templates.env.filters["date_at_site"] = date_at_site


def site_zones(db: Database) -> dict[str, str]:
    """Each site's IANA time zone, by site code."""
    with db.read() as session:
        return {code: zone or "UTC" for code, zone in session.execute(select(Site.code, Site.timezone))}


def common_zone(zones: Mapping[str, str], sites: Iterable[str]) -> str | None:
    """The one time zone of these sites (None when they have several, or none)."""
    found = {zones.get(s, "UTC") for s in sites}
    return found.pop() if len(found) == 1 else None


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from its template, with the form token, the time, the signed-in user (when there is one) and the
    sites' time zones (`site_zones`; `user_zone`: the zone of the user's sites when they share one)."""
    from .. import pages  # the session lifetime is read at each request (tests change it)

    context.setdefault("actor", getattr(request.state, "page_actor", None))
    zones = site_zones(database(request))
    actor = context["actor"]
    context.setdefault("site_zones", zones)
    context.setdefault("user_zone", common_zone(zones, actor.sites) if actor is not None and actor.sites else None)
    language = i18n.current()
    return templates.TemplateResponse(request, template, {"csrf": csrf_token(request), "now": dt.datetime.now(),
                                                          "session_minutes": pages.SESSION_MINUTES,
                                                          "language": language, "lang_tag": i18n.TAGS[language],
                                                          "languages": i18n.LANGUAGES, **context},
                                      status_code=status)


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db
