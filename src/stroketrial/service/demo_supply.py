"""The demo's investigational product supply: every demo trial whose protocol has a `supply` section gets a
generated kit list, a full shipment to its first site and a small one to its second, both received; the second
site is left at its trigger, so its resupply request shows on the supply page."""

from __future__ import annotations

import datetime as dt

from ..store import Database
from . import supply
from .accounts import Actor
from .trials import protocol_of
from ..store.models import Trial


def stock_demo_sites(db: Database, trial_sites: dict[str, list[str]]) -> None:
    sites = frozenset(s for listed in trial_sites.values() for s in listed)
    pharmacist = Actor("pharmacist", "unblinded_pharmacist", sites)
    coordinator = Actor("coordinator", "coordinator", sites)
    expiry = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=540)
    for trial_id, listed in trial_sites.items():
        with db.read() as session:
            trial = session.get(Trial, trial_id)
            protocol = protocol_of(trial) if trial is not None else None
        if protocol is None or protocol.supply is None or not listed:
            continue
        levels = protocol.supply.levels
        with db.write() as session:
            supply.generate_kits(session, pharmacist, trial_id, 4 * levels.target_per_arm, "DEMO-2026-01", expiry)
        # the first site stocked to its target; the second (when there is one) only to its trigger
        for site, per_arm in zip(listed[:2], (levels.target_per_arm, max(levels.trigger_per_arm, 1)), strict=False):
            with db.write() as session:
                shipment = supply.ship(session, pharmacist, trial_id, site, kits_per_arm=per_arm)
            with db.write() as session:
                supply.receive(session, coordinator, trial_id, shipment["shipment"], shipment["kits"])
