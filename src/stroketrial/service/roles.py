"""The platform's roles and what each does (no imports: the CLI's help text reads them)."""

ROLES = ("admin", "investigator", "coordinator", "unblinded_pharmacist", "blinded_statistician",
         "unblinded_statistician", "dsmb", "monitor", "outcome_assessor", "safety_review_committee", "data_manager",
         "pharmacovigilance", "supply_manager")
ROLE_DESCRIPTIONS = {
    "admin": "runs the platform: trials, sites, users; sees every site",
    "investigator": "screens, randomizes, enters follow-up and SAEs, may request emergency unblinding",
    "coordinator": "screens, randomizes, enters follow-up and SAEs",
    "unblinded_pharmacist": "prepares study drug; sees the arm behind each kit",
    "blinded_statistician": "reads data, never an arm",
    "unblinded_statistician": "prepares the DSMB's closed reports; sees arms and how allocation ran",
    "dsmb": "reads unblinded safety data",
    "monitor": "reads data and the audit trail for source verification",
    "pharmacovigilance": "the sponsor's safety desk: assesses the causality and expectedness of each SAE and "
                         "submits SUSARs to the authorities; in a blinded trial sees an arm only for a SUSAR "
                         "(unblinded alone, for the expedited report)",
    "data_manager": "raises, closes and re-opens data queries; reads data, never an arm in a blinded trial",
    "outcome_assessor": "blinded: finds a patient's visit and records the assessments the protocol reserves for the "
                        "blinded assessor (the 90-day mRS of a PROBE trial); never an arm, a kit or a dose sheet",
    "safety_review_committee": "confirms each dose-escalation decision (escalate, stay, de-escalate, stop, the MTD) "
                               "with a signature and a reason, or departs from the rule with a reason; reads safety "
                               "data",
    "supply_manager": "manages investigational product supply: imports or generates the kit list, ships kits to "
                      "sites, sees the arm of each kit and the stock per arm; never a patient's record or kit",
}

SITE_STAFF = ("admin", "investigator", "coordinator")
# Only site staff randomize. The admin, who may read strata, block positions and minimization margins
# (blinding.MACHINERY_READERS), must not also choose when the next patient is randomized.
RANDOMIZERS = ("investigator", "coordinator")
# The blinded outcome assessor of a PROBE trial records only what the protocol reserves for it (a visit's
# `assessor_only`), and reads nothing that could tell the arm: no dose sheet, SAE narrative, export or audit trail.
OUTCOME_ASSESSORS = ("outcome_assessor",)
NOT_OUTCOME_ASSESSORS = tuple(role for role in ROLES if role not in OUTCOME_ASSESSORS)
# The supply manager knows which arm each kit holds (service/supply.py), so it must never learn which patient was
# given which kit: no dose sheet, safety listing or export, and no kit number in a patient view (blinding.sees_kit).
SUPPLY_MANAGERS = ("supply_manager",)
PATIENT_DATA_READERS = tuple(role for role in NOT_OUTCOME_ASSESSORS if role not in SUPPLY_MANAGERS)
# Investigational product supply (service/supply.py): the kit list and shipments are the unblinded pharmacist's
# and the supply manager's; site staff confirm receipt of a shipment by kit number (they never see an arm).
SUPPLY_UNBLINDED = ("unblinded_pharmacist", "supply_manager")
# Who freezes and locks data, and releases a freeze: the data manager and the admin.
DATA_MANAGERS = ("data_manager", "admin")

# Who may do what: every operation the platform guards, and the roles allowed to do it. The service
# checks these, and the pages and templates ask the same table whether to offer the button.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "creating a site": ("admin",),
    "creating a user": ("admin",),
    "creating a trial": ("admin",),
    "amending a protocol": ("admin",),
    "adding a site to a trial": ("admin",),
    "deactivating a user": ("admin",),
    "changing a user's role or sites": ("admin",),
    "revoking API tokens": ("admin",),
    "resetting a password": ("admin",),
    "unlocking a user": ("admin",),
    "registering a patient": SITE_STAFF,
    "screening": SITE_STAFF,
    "correcting screening data": SITE_STAFF,
    "randomizing": RANDOMIZERS,
    "entering follow-up data": SITE_STAFF,
    "recording blinded outcome assessments": OUTCOME_ASSESSORS,
    "reading a dose sheet": PATIENT_DATA_READERS,
    "reading safety data": PATIENT_DATA_READERS,
    "exporting trial data": PATIENT_DATA_READERS,
    "reporting a serious adverse event": SITE_STAFF,
    "emergency unblinding": ("investigator",),
    "reading the unblinding log": ("dsmb", "admin"),
    "enrolling in a dose-escalation cohort": RANDOMIZERS,
    # Whether an event is a dose-limiting toxicity is the investigator's medical judgement.
    "recording a DLT assessment": ("investigator",),
    "confirming an escalation decision": ("safety_review_committee",),
    "reading the audit trail": ("admin", "monitor"),
    # Adverse events, expedited SAE reporting, notifications (service/adverse_events.py, notifications.py).
    "recording an adverse event": SITE_STAFF,
    "assessing an SAE for the sponsor": ("pharmacovigilance",),
    "managing notification recipients": ("admin",),
    "checking the audit trail": ("admin", "monitor"),
    # Informed consent (service/consent.py): taken, confirmed and withdrawn at the bedside by site staff.
    "recording consent": RANDOMIZERS,
    "confirming deferred consent": RANDOMIZERS,
    "recording a consent withdrawal": RANDOMIZERS,
    "reading consent records": ("investigator", "coordinator", "monitor", "admin"),
    # Data queries and source data verification (service/queries.py, service/verification.py): monitors and data
    # managers raise and close queries, the site answers them; only the monitor verifies against the source.
    "raising a data query": ("monitor", "data_manager"),
    "answering a data query": ("investigator", "coordinator"),
    "closing a data query": ("monitor", "data_manager"),
    "reading data queries": ("admin", "investigator", "coordinator", "monitor", "data_manager"),
    "verifying source data": ("monitor",),
    "reading source data verification": ("admin", "monitor", "data_manager"),
    # Record signatures (21 CFR 11) and data freeze/lock (service/record_signatures.py, service/locks.py).
    "signing a record": ("investigator",),
    "reading record signatures": NOT_OUTCOME_ASSESSORS,
    "freezing or locking data": DATA_MANAGERS,
    "releasing a freeze": DATA_MANAGERS,
    "releasing a lock": ("admin",),  # a database lock is released by the admin alone, with a reason
    "reading data locks": NOT_OUTCOME_ASSESSORS,
    # Sealed emergency envelopes (service/envelopes.py): made and printed only by those who see arms (and, in a
    # trial where the admin does not, by the unblinded pharmacist alone: the service asks blinding.sees_arm too);
    # recorded by the site staff who randomize; listed, never with a sealed envelope's allocation, to the readers.
    "generating emergency envelopes": ("unblinded_pharmacist", "admin"),
    "recording an opened envelope": RANDOMIZERS,
    "reading emergency envelopes": ("admin", "investigator", "coordinator", "unblinded_pharmacist", "monitor",
                                    "unblinded_statistician", "blinded_statistician", "dsmb", "data_manager"),
    # Investigational product supply (service/supply.py).
    "managing the kit list": SUPPLY_UNBLINDED,
    "shipping kits": SUPPLY_UNBLINDED,
    "receiving a shipment": (*SITE_STAFF, "unblinded_pharmacist"),
    "reading kit stock": tuple(role for role in NOT_OUTCOME_ASSESSORS if role != "pharmacovigilance"),
    "setting a site's supply levels": SUPPLY_UNBLINDED,
    "replacing a damaged kit": ("unblinded_pharmacist",),
    "reconciling kits at close-out": SUPPLY_UNBLINDED,
    # A temperature excursion or a recall: kits (or a whole lot) set apart until released, never dispensed.
    "quarantining kits": SUPPLY_UNBLINDED,
    # Interim analyses (service/interim_analyses.py): closed; the independent statistician runs a look on frozen
    # data, the DSMB reads it and records its decision (the service asks blinding.sees_arm too).
    "running an interim analysis": ("unblinded_statistician", "dsmb"),
    "reading interim analyses": ("unblinded_statistician", "dsmb"),
    "recording a DSMB decision": ("dsmb",),
    # The DSMB's reports (service/dsmb_reports.py): the closed report by arm (the service asks blinding.sees_arm
    # too), the open report pooled for the steering committee (the investigators) and the blinded roles.
    "generating a closed DSMB report": ("unblinded_statistician", "dsmb"),
    "reading closed DSMB reports": ("unblinded_statistician", "dsmb"),
    "generating an open DSMB report": ("unblinded_statistician", "blinded_statistician", "dsmb"),
    "reading open DSMB reports": ("admin", "investigator", "blinded_statistician", "unblinded_statistician", "dsmb",
                                  "data_manager", "monitor"),
}
