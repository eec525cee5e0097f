"""What the dashboards show: enrolment per site over time, the screening funnel, balance per factor."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from ..randomization import ArmSlots
from ..store.models import Allocation, Patient, VisitRecord
from .accounts import Actor
from .blinding import sees_arm_counts
from .patients import aware
from .queries import query_counts
from .trials import get_trial


def enrolment(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Randomized patients per site per week (ISO week), cumulative."""
    get_trial(session, actor, trial_id)
    query = (select(Patient.site_code, Allocation.created_at).join(Allocation, Allocation.patient_id == Patient.id)
             .where(Patient.trial_id == trial_id))
    rows = [(site, aware(at)) for site, at in session.execute(query).all() if actor.can_see_site(site)]
    by_site: dict[str, Counter] = defaultdict(Counter)
    for site, at in rows:
        by_site[site][at.date().isoformat()] += 1
    days = sorted({d for c in by_site.values() for d in c})
    series = {}
    for site, counts in sorted(by_site.items()):
        total, cumulative = 0, []
        for day in days:
            total += counts.get(day, 0)
            cumulative.append(total)
        series[site] = cumulative
    return {"days": days, "cumulative_by_site": series, "total": len(rows)}


def funnel(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """CONSORT-style counts: registered (assessed), excluded by first failing criterion, incomplete,
    eligible, randomized (per arm where the user may see arms), 90-day visit done."""
    _trial, protocol = get_trial(session, actor, trial_id)
    # Columns, not whole records; an outer join: a patient not randomized yet comes with no arm. Only an ineligible
    # patient's screening result is read (for the criterion that excluded them).
    query = (select(Patient.id, Patient.site_code, Patient.status,
                    case((Patient.status == "ineligible", Patient.screening_json), else_=None),
                    Allocation.id.is_not(None), Allocation.arm)
             .outerjoin(Allocation, Allocation.patient_id == Patient.id).where(Patient.trial_id == trial_id))
    rows = [(pid, status, screening, randomized, arm)
            for pid, site, status, screening, randomized, arm in session.execute(query).all()
            if actor.can_see_site(site)]
    excluded: Counter = Counter()
    for _, status, screening, _, _ in rows:
        if status == "ineligible":
            first = next(c["id"] for c in json.loads(screening)["criteria"] if c.get("excludes"))
            excluded[first] += 1
    n_randomized = sum(bool(randomized) for *_, randomized, _ in rows)
    last_visit = protocol.visits[-1].id
    followed = set(session.execute(select(VisitRecord.patient_id).where(VisitRecord.visit_id == last_visit)).scalars())
    by_arm = sees_arm_counts(actor.role, protocol)
    groups = [a.id for a in protocol.arms] if by_arm else ["all"]
    allocated = {g: 0 for g in groups}
    completed = {g: 0 for g in groups}
    for pid, _, _, randomized, arm in rows:
        if not randomized:
            continue
        g = arm if by_arm else "all"
        allocated[g] += 1
        completed[g] += pid in followed
    return {"assessed": len(rows), "excluded": sum(excluded.values()), "excluded_by": dict(excluded.most_common()),
            "incomplete": sum(status == "incomplete" for _, status, *_ in rows),
            "eligible": sum(status == "eligible" for _, status, *_ in rows), "randomized": n_randomized,
            "awaiting_randomization": sum(status == "eligible" and not randomized
                                          for _, status, _, randomized, _ in rows),
            "by_arm": by_arm, "allocated": allocated, "completed_last_visit": completed,
            "last_visit": protocol.visits[-1].name,
            "queries": query_counts(session, actor, trial_id)}  # unresolved data queries by site and age


@lru_cache(maxsize=50_000)
def _levels(record_json: str) -> tuple[tuple[str, str], ...]:
    """An allocation's factor levels from its stored record: a pure function of the text, so each allocation is
    parsed once per server process, not on every dashboard."""
    return tuple(json.loads(record_json).get("levels", {}).items())


def balance(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Allocations per factor level per arm at the user's sites (level totals only for those who may not
    see counts per arm). Counted from the allocations the user may see, never from the trial-wide state:
    a one-site user learns nothing of other sites' patients as they are randomized."""
    _trial, protocol = get_trial(session, actor, trial_id)
    if protocol.randomization is None:
        return {"factors": [], "by_arm": False, "arms": []}
    rows = session.execute(select(Patient.site_code, Allocation.arm, Allocation.record_json)
                           .join(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial_id)).all()
    arms = ArmSlots.of(protocol.arms)
    counts: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for site, arm, record_json in rows:
        if actor.can_see_site(site):
            for name, level in _levels(record_json):
                counts[name][level][arm] += 1
    by_arm = sees_arm_counts(actor.role, protocol)
    factors = []
    for factor in protocol.randomization.factors:
        levels = counts.get(factor.name, {})
        order = factor.levels or sorted(levels)
        if factor.field == "site" and not actor.is_admin:
            order = [s for s in order if s in actor.sites]
        table = []
        for level in order:
            by = {arm: levels.get(level, Counter()).get(arm, 0) for arm in arms.arms}
            table.append({"level": level, "total": sum(by.values()), **({"arms": by} if by_arm else {})})
        factors.append({"factor": factor.name, "field": factor.field, "levels": table})
    return {"factors": factors, "by_arm": by_arm, "arms": list(arms.arms) if by_arm else []}
