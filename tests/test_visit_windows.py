"""Visit windows read off the built-in protocols: the day-90 visit of AMASS-2 and IMPACT-LVO is due 90 days after
randomization, give or take 14 days, both ends included."""

import datetime as dt

import pytest

from stroketrial.protocol import load_builtin
from stroketrial.protocol.visit_windows import VisitWindow, visit_schedule, visit_window

RANDOMIZED_AT = dt.datetime(2025, 3, 1, 14, 30, tzinfo=dt.UTC)  # 1 March + 90 days = 30 May


def visit(trial: str, visit_id: str):
    return next(v for v in load_builtin(trial).visits if v.id == visit_id)


@pytest.mark.parametrize("trial", ["amass-2", "impact-lvo"])
def test_the_day_90_visit_is_due_on_day_90_within_14_days_either_side(trial):
    d90 = visit(trial, "d90")
    assert (d90.day, d90.window_before_days, d90.window_after_days) == (90, 14, 14)
    assert visit_window(d90, RANDOMIZED_AT) == VisitWindow(opens=dt.date(2025, 5, 16), target=dt.date(2025, 5, 30),
                                                           closes=dt.date(2025, 6, 13))


def test_a_day_90_visit_is_in_its_window_from_day_76_to_day_104_and_no_further():
    window = visit_window(visit("amass-2", "d90"), RANDOMIZED_AT)
    on_day = {n: RANDOMIZED_AT.date() + dt.timedelta(days=n) for n in (75, 76, 90, 104, 105)}
    assert [window.contains(on_day[n]) for n in (75, 76, 90, 104, 105)] == [False, True, True, True, False]
    assert [window.status(on_day[n]) for n in (75, 76, 90, 104, 105)] == \
        ["upcoming", "due", "due", "due", "overdue"]
    assert window.status(on_day[105], done=True) == "done"


def test_the_24_hour_visit_is_due_the_next_day_or_the_day_after():
    window = visit_window(visit("amass-2", "h24"), RANDOMIZED_AT)
    assert window == VisitWindow(opens=dt.date(2025, 3, 2), target=dt.date(2025, 3, 2), closes=dt.date(2025, 3, 3))


def test_days_count_from_the_randomization_date_in_utc_whatever_the_hour():
    late = dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.UTC)
    early = dt.datetime(2025, 3, 1, 0, 0, tzinfo=dt.UTC)
    d90 = visit("impact-lvo", "d90")
    assert visit_window(d90, late) == visit_window(d90, early) == visit_window(d90, RANDOMIZED_AT)


def test_the_schedule_has_every_visit_of_the_protocol_in_order():
    protocol = load_builtin("impact-lvo")
    schedule = visit_schedule(protocol.visits, RANDOMIZED_AT)
    assert list(schedule) == ["baseline", "h24", "d3", "d7", "d90"]
    assert schedule["baseline"] == VisitWindow(*[dt.date(2025, 3, 1)] * 3)
    assert (schedule["d7"].opens, schedule["d7"].closes) == (dt.date(2025, 3, 7), dt.date(2025, 3, 9))
