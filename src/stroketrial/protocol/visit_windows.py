"""When a protocol's visit falls due: its target date and window, counted from the time of randomization.

A visit on day N is due N days after randomization (day 0 is the day of randomization and treatment), on
the calendar date of the randomization time as given (the service passes UTC). The window opens
`window_before_days` before that target date and closes `window_after_days` after it; both ends are
inside the window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from .model import Visit

VisitStatus = Literal["done", "overdue", "due", "upcoming"]


@dataclass(frozen=True)
class VisitWindow:
    """The dates one visit may happen on: from `opens` to `closes`, both included, around `target`."""

    opens: dt.date
    target: dt.date
    closes: dt.date

    def contains(self, day: dt.date) -> bool:
        """Whether a visit held on `day` is within the protocol's window."""
        return self.opens <= day <= self.closes

    def status(self, today: dt.date, *, done: bool = False) -> VisitStatus:
        """Done once entered; else overdue after the window closes, due while it is open, upcoming before."""
        if done:
            return "done"
        if today > self.closes:
            return "overdue"
        if today >= self.opens:
            return "due"
        return "upcoming"


def visit_window(visit: Visit, randomized_at: dt.datetime) -> VisitWindow:
    """The target date of `visit` for a patient randomized at `randomized_at`, and its window."""
    target = (randomized_at + dt.timedelta(days=visit.day)).date()
    # A date moves by whole days: a fractional window is cut to the day (Python ignores a timedelta's seconds).
    return VisitWindow(opens=target - dt.timedelta(days=visit.window_before_days), target=target,
                       closes=target + dt.timedelta(days=visit.window_after_days))


def visit_schedule(visits: list[Visit], randomized_at: dt.datetime) -> dict[str, VisitWindow]:
    """Every visit's window, by visit id, in the protocol's order."""
    return {v.id: visit_window(v, randomized_at) for v in visits}
