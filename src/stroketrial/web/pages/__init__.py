"""Server-rendered pages for site staff, the DSMB and statisticians.

Plain HTML from Jinja2 templates (`base.render`), a little plain JavaScript (live eligibility, one
submit per button), no build step. Each page calls the same `service` operations as the JSON API and
holds no trial logic. Every form carries a CSRF token tied to the session (`web/csrf.py`).

    auth.py       signing in and out, the session's user (`signed_in`), LoginRequired
    base.py       the templates, `render`, the application's database
    trials.py     the trials list, a trial's patients, screening with live eligibility
    patients.py   one patient, randomization, the allocation
    followup.py   dose sheet, visits, SAEs, emergency unblinding
    escalation.py a dose-escalation trial: the escalation table, enrolment, DLTs, the committee's decision
    signatures_locks.py  the casebook's signatures on the patient page, signing it; the trial's freezes and locks
    consent.py    the patient page's consent card (record, confirm, withdraw) and deferred consents to confirm
    data_management.py  data queries (a trial's, a patient's with their forms) and source data verification
    safety_reporting.py  a patient's AE log, SAE follow-ups, the trial's SAEs with their clocks, the inbox
    amendments.py the protocol's versions and what each amendment changed
    supply.py     a kit trial's stock, shipments and their receipt, resupply requests, the kit list's import
    envelopes.py  sealed emergency envelopes: the site's procedure, sets made and printed, opened ones recorded
    procedure.py  randomization during the procedure: a patient saved before it, the page at the angiography table
    dashboard.py  enrolment, funnel, balance and safety of a trial
    exports.py    CSV, ODM and audit-trail downloads

The session lifetimes are set here and read at each request (`auth.page_actor`): a session ends after
SESSION_MINUTES without activity and SESSION_MAX_HOURS after it began.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends

from ..uploads import close_posted_files

from . import auth, dashboard, escalation, exports, followup, patients, trials
from . import consent
from . import signatures_locks
from . import data_management
from . import safety_reporting
from . import amendments
from . import supply
from . import envelopes
from . import procedure
from . import dsmb

SESSION_MINUTES = float(os.environ.get("STROKETRIAL_SESSION_MINUTES", "30"))
SESSION_MAX_HOURS = float(os.environ.get("STROKETRIAL_SESSION_MAX_HOURS", "12"))

router = APIRouter(include_in_schema=False, dependencies=[Depends(close_posted_files)])
for _group in (auth, trials, patients, followup, escalation, dashboard, exports):
    router.include_router(_group.router)
router.include_router(consent.router)  # informed consent: the card's forms, the to-do list
router.include_router(signatures_locks.router)  # record signatures, freezes and locks
router.include_router(data_management.router)  # data queries and source data verification
router.include_router(safety_reporting.router)  # the AE log, SAE follow-up and clocks, the inbox
router.include_router(amendments.router)  # the protocol's versions
router.include_router(supply.router)  # investigational product supply: stock, shipments, receipt, kit list
router.include_router(envelopes.router)  # sealed emergency envelopes (randomization when offline)
router.include_router(dsmb.router)  # the DSMB: interim looks, its decision, closed and open reports
router.include_router(procedure.router)  # randomization during the procedure: saved before it, randomized at the table

__all__ = ["SESSION_MAX_HOURS", "SESSION_MINUTES", "router"]
