"""Times checked against the server's clock, read in the site's time zone.

Staff type clock times as the hospital's wall clock shows them (no zone): they are read
in the site's time zone (`sites.timezone`, IANA name; STROKETRIAL_TIMEZONE or UTC when a
site is created without one). A time with a zone is taken as given. Nothing typed may lie
in the future beyond a small allowance for unsynchronised clocks; the planned time of
randomization may lie a little ahead, and is replaced by the server's time when the
patient is randomized (windows that end at randomization are checked then, by the server).
"""

from __future__ import annotations

import datetime as dt
import re
import os
from typing import Any
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from .. import i18n
from ..clinical import VARIABLES
from ..store.models import Site
from .errors import Invalid

CLOCK_SKEW = dt.timedelta(minutes=10)  # wall clocks in an angiography suite are not NTP-synchronised
PLANNED_AHEAD = dt.timedelta(hours=1)  # the planned time of randomization, typed at screening
PLANNED_FIELD = "randomization"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_timezone() -> str:
    return os.environ.get("STROKETRIAL_TIMEZONE", "UTC")


def valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        examples = ", ".join(z for z in ("Asia/Shanghai", "Europe/Paris", "UTC") if z in available_timezones())
        raise Invalid(i18n.gettext("time zone {name} is not an IANA time zone name (for example {examples})").format(
            name=repr(name), examples=examples),
            [{"field": "timezone", "value": name, "message": i18n.gettext("an IANA time zone name")}]) from None
    return name


def calendar_date(value: object) -> dt.date | None:
    """A calendar date written YYYY-MM-DD, or None. Python's fromisoformat also takes 20250301 and
    2025-W10-1, which a date field must not store as typed; one spelling keeps exports and the trail plain."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def site_zone(session: Session, site: str) -> ZoneInfo:
    row = session.get(Site, site)
    return ZoneInfo(row.timezone if row is not None and row.timezone else "UTC")


def as_utc(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)).astimezone(dt.UTC)


def local_now(zone: ZoneInfo, like: dt.datetime | None, now: dt.datetime | None = None) -> dt.datetime:
    """The server's time as the site's wall clock shows it: without a zone when the record's times have none."""
    moment = (now or utcnow()).astimezone(zone).replace(microsecond=0)
    return moment.replace(tzinfo=None) if like is None or like.tzinfo is None else moment


def future_times(values: Mapping[str, Any], zone: ZoneInfo, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Field errors for clock times later than the server's time (plus the allowances above)."""
    now = now or utcnow()
    errors = []
    for name, value in values.items():
        if not isinstance(value, dt.datetime) or VARIABLES[name].kind != "timestamp":
            continue
        allowance = PLANNED_AHEAD if name == PLANNED_FIELD else CLOCK_SKEW
        if as_utc(value, zone) > now + allowance:
            shown = local_now(zone, value, now).isoformat(timespec="minutes")
            errors.append({"field": name, "value": value.isoformat(),
                           "message": i18n.gettext("{label} {value} is in the future: it is now {now} at this site "
                                                   "({zone})").format(label=i18n.gettext(VARIABLES[name].label),
                                                                      value=value.isoformat(timespec="minutes"),
                                                                      now=shown, zone=zone.key)})
    return errors
