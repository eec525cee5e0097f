"""A dose-escalation trial as it runs: its cohorts, where the next patient goes, and what waits.

Pure: the platform passes in the patients enrolled (cohort, level, when, DLT assessment) and the safety
review committee's confirmed decisions; this module says which cohort is open, which DLT observations are
outstanding, and the decision the protocol's rule calls for. The rule is the design's own `decide`
(three_plus_three, boin, crm), the code that computes its operating characteristics, so the live trial
and the simulated ones cannot disagree.

A cohort's patients are observed for the protocol's DLT window from the start of their infusion. A patient
is done when a DLT is recorded, or when the window has ended and the investigator has recorded "no DLT":
a window that ended without an assessment is not taken as no DLT, so a DLT not yet entered cannot be
missed. The cohort is complete when every patient is done; then the rule decides, and the decision takes
effect only when the committee confirms it. After a confirmed deviation the 3+3 rule starts again from the
level the committee chose (BOIN and CRM use all the data at every decision, so they need no restart).

What waits and why enrolment is refused are worded in the current language (i18n: English for the CLI and the API,
the reader's on a page); the rule's decision itself stays in English, as it is stored with the committee's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ... import i18n
from ...protocol.model import DoseEscalation
from .decisions import Cohort, Decision, EscalationInputError
from .from_protocol import boin_design, crm_design
from . import three_plus_three

Phase = Literal["escalation", "expansion"]
Status = Literal["enrolling", "observing", "awaiting_confirmation", "expansion", "complete", "stopped"]

STATUS_TEXT = {
    "enrolling": "enrolling",
    "observing": "cohort full: waiting for the DLT observation to end",
    "awaiting_confirmation": "waiting for the safety review committee to confirm the decision",
    "expansion": "expansion cohort enrolling at the MTD",
    "complete": "escalation and expansion complete",
    "stopped": "stopped: no dose level is tolerated",
}


class EnrolmentClosed(EscalationInputError):
    """No patient can be enrolled now (or not where the request asked); the message says why and what waits."""


@dataclass(frozen=True)
class EnrolledPatient:
    code: str
    cohort: int
    level: int
    phase: Phase
    enrolled_at: dt.datetime
    dlt: bool | None = None  # the investigator's assessment; None until recorded


@dataclass(frozen=True)
class Confirmation:
    """The committee's confirmed decision after a cohort: what takes effect (a deviation when it differs from
    the rule's), with the reason and signature kept by the platform."""

    after_cohort: int
    action: Literal["treat", "stop"]
    level: int | None
    mtd: int | None
    deviation: bool = False


@dataclass(frozen=True)
class CohortView:
    number: int
    level: int
    phase: Phase
    capacity: int
    patients: tuple[EnrolledPatient, ...]
    observing: tuple[str, ...]  # patients whose window is open
    unassessed: tuple[str, ...]  # window ended, no DLT assessment yet
    decision: Decision | None = None  # the rule's, once the cohort is complete (escalation cohorts)
    confirmation: Confirmation | None = None

    @property
    def dlts(self) -> int:
        return sum(1 for p in self.patients if p.dlt)

    @property
    def full(self) -> bool:
        return len(self.patients) >= self.capacity

    @property
    def complete(self) -> bool:
        return self.full and not self.observing and not self.unassessed

    def to_json(self) -> dict[str, Any]:
        return {"cohort": self.number, "level": self.level, "phase": self.phase, "capacity": self.capacity,
                "patients": [{"patient_id": p.code, "enrolled_at": p.enrolled_at.isoformat(),
                              "dlt": p.dlt} for p in self.patients],
                "dlts": self.dlts, "complete": self.complete, "observing": list(self.observing),
                "unassessed": list(self.unassessed),
                "decision": self.decision.to_json() if self.decision else None,
                "confirmation": None if self.confirmation is None else {
                    "action": self.confirmation.action, "level": self.confirmation.level,
                    "mtd": self.confirmation.mtd, "deviation": self.confirmation.deviation}}


@dataclass(frozen=True)
class EscalationState:
    status: Status
    cohorts: tuple[CohortView, ...]
    open_cohort: int | None = None  # where the next patient goes
    open_level: int | None = None
    open_phase: Phase | None = None
    free_places: int = 0
    pending: Decision | None = None  # the decision awaiting confirmation
    pending_after: int | None = None
    mtd: int | None = None
    waiting: tuple[str, ...] = field(default_factory=tuple)  # what stands in the way, in the reader's words

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "status_text": STATUS_TEXT[self.status], "open_cohort": self.open_cohort,
                "open_level": self.open_level, "open_phase": self.open_phase, "free_places": self.free_places,
                "pending": self.pending.to_json() if self.pending else None, "pending_after_cohort": self.pending_after,
                "mtd": self.mtd, "waiting": list(self.waiting), "cohorts": [c.to_json() for c in self.cohorts]}

    def place(self, cohort: int | None = None, level: int | None = None) -> tuple[int, int, Phase]:
        """(cohort, level, phase) for the next patient; EnrolmentClosed when none is open or it is not the
        cohort or level the request named (a page read before the escalation moved on)."""
        if self.open_cohort is None or self.open_level is None or self.open_phase is None:
            raise EnrolmentClosed(i18n.gettext("enrolment is closed: {why}").format(
                why="; ".join(self.waiting or (i18n.gettext(STATUS_TEXT[self.status]),))))
        if cohort is not None and cohort != self.open_cohort:
            raise EnrolmentClosed(i18n.gettext("cohort {cohort} is not open; enrolment is open in cohort {open} (level "
                                               "{level})").format(cohort=cohort, open=self.open_cohort,
                                                                  level=self.open_level))
        if level is not None and level != self.open_level:
            raise EnrolmentClosed(i18n.gettext("level {level} is closed; enrolment is open at level {open} (cohort "
                                               "{cohort})").format(level=level, open=self.open_level,
                                                                   cohort=self.open_cohort))
        return self.open_cohort, self.open_level, self.open_phase


def observation_ends(escalation: DoseEscalation, enrolled_at: dt.datetime) -> dt.datetime:
    return enrolled_at + dt.timedelta(hours=escalation.dlt_window_hours)


def escalation_state(escalation: DoseEscalation, patients: Sequence[EnrolledPatient],
                     confirmations: Sequence[Confirmation], now: dt.datetime) -> EscalationState:
    """Where the trial stands at `now`."""
    confirmed = {c.after_cohort: c for c in confirmations}
    numbers = sorted({p.cohort for p in patients})
    if numbers != list(range(1, len(numbers) + 1)):
        raise EscalationInputError(f"cohorts must be numbered 1, 2, ... without gaps (got {numbers})")
    views: list[CohortView] = []
    history: list[CohortView] = []  # completed escalation cohorts, for the rule
    for number in numbers:
        members = tuple(sorted((p for p in patients if p.cohort == number), key=lambda p: p.enrolled_at))
        view = _cohort(escalation, number, members, now)
        if view.phase == "expansion":
            views.append(view)
            continue
        if not view.complete:
            views.append(view)
            continue
        history.append(view)
        decision = _decide(escalation, history, [confirmed[c.number] for c in history[:-1] if c.number in confirmed])
        view = replace(view, decision=decision, confirmation=confirmed.get(number))
        views.append(view)
    return _where_next(escalation, views)


def _cohort(escalation: DoseEscalation, number: int, members: tuple[EnrolledPatient, ...],
            now: dt.datetime) -> CohortView:
    levels = {p.level for p in members}
    phases = {p.phase for p in members}
    if len(levels) != 1 or len(phases) != 1:
        raise EscalationInputError(f"cohort {number} mixes levels {sorted(levels)} or phases {sorted(phases)}")
    phase: Phase = members[0].phase
    capacity = escalation.expansion_size if phase == "expansion" else escalation.cohort_size
    observing = tuple(p.code for p in members if not p.dlt and observation_ends(escalation, p.enrolled_at) > now)
    unassessed = tuple(p.code for p in members if p.dlt is None and p.code not in observing)
    return CohortView(number, members[0].level, phase, capacity, members, observing, unassessed)


def _decide(escalation: DoseEscalation, history: Sequence[CohortView],
            earlier: Sequence[Confirmation]) -> Decision:
    """The rule's decision after the completed escalation cohorts in `history`, given the confirmations of
    all but the last."""
    k = len(escalation.levels)
    if escalation.design == "3+3":
        deviations = [c for c in earlier if c.deviation]
        start, since = 1, 0
        if deviations:
            last = deviations[-1]
            start = last.level if last.level is not None else 1
            since = last.after_cohort
        segment = [Cohort(c.level, len(c.patients), c.dlts) for c in history if c.number > since]
        return three_plus_three.decide(segment, k, escalation.expansion_size, start_level=start)
    counts: dict[int, tuple[int, int]] = {}
    for c in history:
        dlt, n = counts.get(c.level, (0, 0))
        counts[c.level] = (dlt + c.dlts, n + len(c.patients))
    last_cohort = history[-1]
    if escalation.design == "boin":
        return boin_design(escalation).decide(counts, last_cohort.level, k)
    return crm_design(escalation).decide(counts, k, last_cohort.level, last_cohort.dlts)


def _where_next(escalation: DoseEscalation, views: list[CohortView]) -> EscalationState:
    cohorts = tuple(views)
    escalating = [v for v in views if v.phase == "escalation"]
    expansion = next((v for v in views if v.phase == "expansion"), None)
    if not escalating:
        return EscalationState("enrolling", cohorts, 1, 1, "escalation", escalation.cohort_size)
    last = escalating[-1]
    if not last.full:
        return EscalationState("enrolling", cohorts, last.number, last.level, "escalation",
                               last.capacity - len(last.patients))
    if not last.complete:
        waiting = []
        if last.observing:
            waiting.append(i18n.gettext("DLT observation of {patients} in cohort {cohort} (the window is {hours} h "
                                        "from the start of the infusion)").format(
                patients=", ".join(last.observing), cohort=last.number, hours=escalation.dlt_window_hours))
        if last.unassessed:
            waiting.append(i18n.gettext("the investigator's DLT assessment of {patients}").format(
                patients=", ".join(last.unassessed)))
        return EscalationState("observing", cohorts, waiting=tuple(waiting))
    assert last.decision is not None
    if last.confirmation is None:
        return EscalationState("awaiting_confirmation", cohorts, pending=last.decision, pending_after=last.number,
                               waiting=(i18n.gettext("the safety review committee's confirmation of the decision "
                                                     "after cohort {cohort}: {rule}").format(
                                   cohort=last.number, rule=i18n.gettext(last.decision.text)),))
    return _after_confirmation(escalation, cohorts, last, last.confirmation, expansion)


def _after_confirmation(escalation: DoseEscalation, cohorts: tuple[CohortView, ...], last: CohortView,
                        confirmation: Confirmation, expansion: CohortView | None) -> EscalationState:
    if confirmation.action == "treat":
        assert confirmation.level is not None
        return EscalationState("enrolling", cohorts, last.number + 1, confirmation.level, "escalation",
                               escalation.cohort_size)
    if confirmation.mtd is None:
        return EscalationState("stopped", cohorts, waiting=(i18n.gettext("no dose level is tolerated"),))
    size = escalation.expansion_size
    if size == 0:
        return EscalationState("complete", cohorts, mtd=confirmation.mtd)
    enrolled = len(expansion.patients) if expansion else 0
    if enrolled >= size:
        return EscalationState("complete", cohorts, mtd=confirmation.mtd)
    return EscalationState("expansion", cohorts, last.number + 1, confirmation.mtd, "expansion", size - enrolled,
                           mtd=confirmation.mtd)


def check_confirmation(escalation: DoseEscalation, state: EscalationState, action: str, level: int | None,
                       mtd: int | None) -> Confirmation:
    """The committee's decision on the pending one, checked: the same as the rule's, or a deviation the
    protocol's safety rules still allow (never an untested level skipped, never an MTD above what was tried)."""
    pending, after = state.pending, state.pending_after
    if pending is None or after is None:
        raise EnrolmentClosed(i18n.gettext("no escalation decision is waiting for confirmation ({status})").format(
            status=i18n.gettext(STATUS_TEXT[state.status])))
    k = len(escalation.levels)
    tried = [c.level for c in state.cohorts if c.phase == "escalation"]
    if action == "treat":
        if level is None or not 1 <= level <= k:
            raise EscalationInputError(i18n.gettext("level {level}: the next cohort's level must be one of 1 to "
                                                    "{top}").format(level=level, top=k))
        if level > max(tried) + 1:
            raise EscalationInputError(i18n.gettext("level {level} would skip level {skipped}, which no patient has "
                                                    "received; escalation is one level at a time").format(
                level=level, skipped=max(tried) + 1))
        mtd = None
    elif action == "stop":
        if mtd is not None and not (1 <= mtd <= k and mtd in tried):
            raise EscalationInputError(i18n.gettext("MTD level {mtd} was not given to any patient; it must be a level "
                                                    "tried ({tried}) or none").format(
                mtd=mtd, tried=", ".join(str(t) for t in sorted(set(tried)))))
        level = None
    else:
        raise EscalationInputError(i18n.gettext("decision {action} is not one of treat, stop").format(
            action=repr(action)))
    deviation = (action, level, mtd) != (pending.action, pending.level, pending.mtd)
    return Confirmation(after, "treat" if action == "treat" else "stop", level, mtd, deviation)
