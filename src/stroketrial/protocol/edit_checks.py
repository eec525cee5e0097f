"""The protocol's edit checks run on one visit form: pure, from the form's date and values and the time of
randomization. Which query opens or closes is the service's matter (service/edit_checks.py).

A check runs on a form when the form is its `form` (or it names none) and the visit schedules every assessment it
reads; it is decided only when every value it reads is recorded. A missing value is no edit check's finding: a
form entered in two parts (site staff, then the blinded outcome assessor) is not queried half-way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..clinical.assessments import ASSESSMENTS
from .model import EditCheck, Visit
from .visit_windows import visit_window

VISIT_DATE = "visit_date"  # the field a timing check queries


@dataclass(frozen=True)
class CheckResult:
    """One check decided on one form: the field a query goes on, whether it passed, and what a query says."""

    check: EditCheck
    field: str
    passed: bool
    message: str


def applies(check: EditCheck, visit: Visit) -> bool:
    """Whether the check runs on this visit's form."""
    return check.form in (None, visit.id) and all(a in visit.assessments for a in check.reads)


def shown(assessment: str, value: Any) -> str:
    """A recorded value as a form shows it: yes/no, a category's label, a number without trailing zeros."""
    a = ASSESSMENTS.get(assessment)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if a is not None and a.kind == "category":
        return a.label_of(str(value))
    if a is not None and a.kind == "grade":
        return f"eTICI {value}"
    if isinstance(value, float):
        return f"{value:g}" + (f" {a.unit}" if a is not None and a.unit else "")
    return str(value) + (f" {a.unit}" if a is not None and a.unit else "")


def label(assessment: str) -> str:
    a = ASSESSMENTS.get(assessment)
    return a.label if a is not None else assessment


def run_check(check: EditCheck, visit: Visit, visit_date: dt.date, values: Mapping[str, Any],
              randomized_at: dt.datetime) -> CheckResult | None:
    """The check on this form; None where it does not apply or a value it reads is not recorded."""
    if not applies(check, visit) or any(values.get(a) is None for a in check.reads):
        return None
    if check.kind == "range":
        key = str(check.assessment)
        value = values[key]
        low, high = float(check.low or 0), float(check.high or 0)
        message = f"{check.text} ({label(key)} is {shown(key, value)}; plausible {low:g} to {high:g})"
        return CheckResult(check, key, low <= value <= high, message)
    if check.kind == "cross_field" and check.if_ is not None and check.then is not None:
        first, then = check.if_, check.then
        holds = values[first.assessment] != first.is_ or values[then.assessment] == then.is_
        message = (f"{check.text} ({label(first.assessment)} is {shown(first.assessment, values[first.assessment])} "
                   f"and {label(then.assessment)} is {shown(then.assessment, values[then.assessment])})")
        return CheckResult(check, then.assessment, holds, message)
    randomized_on = randomized_at.date()
    if check.kind == "before_randomization":
        return CheckResult(check, VISIT_DATE, visit_date >= randomized_on,
                           f"{check.text} (visit date {visit_date}; randomized on {randomized_on})")
    window = visit_window(visit, randomized_at)
    return CheckResult(check, VISIT_DATE, window.contains(visit_date),
                       f"{check.text} ({visit.name} dated {visit_date}, day {(visit_date - randomized_on).days}; "
                       f"window {window.opens} to {window.closes})")


def run_checks(checks: list[EditCheck], visit: Visit, visit_date: dt.date, values: Mapping[str, Any],
               randomized_at: dt.datetime) -> list[CheckResult]:
    """Every check the protocol declares that is decided on this form, in the protocol's order."""
    results = (run_check(c, visit, visit_date, values, randomized_at) for c in checks)
    return [r for r in results if r is not None]
