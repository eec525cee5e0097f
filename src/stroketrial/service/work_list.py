"""A trial's to-do list for the signed-in user, at their sites: what waits on the GCP workflow, each with its count
and the page where it is done. Only the parts the user's role may read are there; every count comes from the
service that owns it (consent, queries, SAE clocks, source verification, locks, protocol versions), so the list
says nothing a user could not read on those pages.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import i18n
from . import consent, locks, queries, serious_adverse_events, verification
from .accounts import Actor
from .trials import get_trial, protocol_in_force


def _item(count: int, what: str, urgent: int, urgent_words: str, page: str) -> dict[str, Any]:
    return {"count": count, "what": what, "urgent": urgent, "urgent_words": urgent_words, "page": page}


def work_list(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """{"items": [{"count", "what", "urgent", "urgent_words", "page"}], "lock": the trial's lock in force (in
    words) or None, "protocol_version": the version in force}."""
    trial, protocol = get_trial(session, actor, trial_id)
    items: list[dict[str, Any]] = []
    if protocol.consent is not None and actor.may("reading consent records"):
        pending = consent.pending(session, actor, trial_id)
        if pending["pending"]:
            items.append(_item(len(pending["pending"]), i18n.ngettext(
                "deferred consent awaiting confirmation", "deferred consents awaiting confirmation",
                len(pending["pending"])), pending["overdue"], i18n.gettext("overdue"), "consents"))
    counts = queries.query_counts(session, actor, trial_id)
    if counts is not None and counts["open"] + counts["answered"]:
        waiting = counts["open"] + counts["answered"]
        items.append(_item(waiting, i18n.ngettext(
            "data query open (the site answers) or answered (the monitor closes)",
            "data queries open (the site answers) or answered (the monitor closes)", waiting),
            counts["open"], i18n.gettext("open"), "queries"))
    if actor.may("reading safety data"):
        overdue = serious_adverse_events.overdue_count(session, actor, trial_id)
        if overdue:
            items.append(_item(overdue, i18n.ngettext("SAE with a report overdue or made late",
                                                     "SAEs with a report overdue or made late", overdue),
                               overdue, i18n.gettext("overdue"), "saes"))
    if actor.may("verifying source data"):
        cleared = verification.verification_list(session, actor, trial_id)["counts"]["cleared"]
        if cleared:
            items.append(_item(cleared, i18n.ngettext("form changed after it was verified, to verify again",
                                                     "forms changed after they were verified, to verify again",
                                                     cleared), 0, "", "verification"))
    lock = None
    if actor.may(locks.READING):
        found = locks.trial_lock_in_force(session, trial_id)
        lock = None if found is None else locks.describe(found, None)
    return {"items": items, "lock": lock, "protocol_version": protocol_in_force(session, trial)[0]}
