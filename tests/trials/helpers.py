"""Build patients with times given as intervals, the way a protocol states its windows."""

import datetime as dt

LKW = dt.datetime(2026, 3, 1, 8, 0)


def times(lkw_to_puncture_h: float = 4, puncture_to_recanalization_min: float = 45,
          recanalization_to_randomization_min: float = 10, lkw_to_randomization_h: float | None = None) -> dict:
    puncture = LKW + dt.timedelta(hours=lkw_to_puncture_h)
    recanalization = puncture + dt.timedelta(minutes=puncture_to_recanalization_min)
    randomization = (LKW + dt.timedelta(hours=lkw_to_randomization_h) if lkw_to_randomization_h is not None
                     else recanalization + dt.timedelta(minutes=recanalization_to_randomization_min))
    return {"last_known_well": LKW.isoformat(), "arterial_puncture": puncture.isoformat(),
            "recanalization": recanalization.isoformat(), "randomization": randomization.isoformat()}


def mg_dl(value: float) -> dict:
    return {"value": value, "unit": "mg/dL"}


ONE_MINUTE_H = 1 / 60


CLOCK_TIMES = ("last_known_well", "arterial_puncture", "recanalization", "randomization")


def happening_now(record: dict) -> dict:
    """The same patient screened today: every clock time moved so that the planned randomization is now (UTC,
    the test sites' zone), since the platform measures windows that end at randomization to its own clock."""
    if "randomization" not in record:
        return dict(record)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
    shift = now - dt.datetime.fromisoformat(record["randomization"])
    return {k: (dt.datetime.fromisoformat(v) + shift).isoformat() if k in CLOCK_TIMES and v else v
            for k, v in record.items()}


def saved_over_warnings(client, url: str, data: dict):
    """Post a visit form (with its csrf) whose values the protocol's edit checks warn about: the first answer
    (422) lists the warnings; the user confirms those very warnings with a reason, as the page asks."""
    import html
    import re

    first = client.post(url, data=data, follow_redirects=False)
    if first.status_code != 422:
        return first  # nothing to confirm (or refused outright: the caller looks)
    shown = [html.unescape(m) for m in re.findall(r'name="confirmed" value="([^"]*)"', first.text)]
    if not shown:
        return first
    confirmed = {"confirm": "yes", "confirm_reason": "as the source says", "confirmed": shown}
    return client.post(url, data={**data, **confirmed}, follow_redirects=False)
