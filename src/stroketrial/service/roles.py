"""The platform's roles and what each does (no imports: the CLI's help text reads them)."""

ROLES = ("admin", "investigator", "coordinator", "unblinded_pharmacist", "blinded_statistician",
         "unblinded_statistician", "dsmb", "monitor", "outcome_assessor", "safety_review_committee")
ROLE_DESCRIPTIONS = {
    "admin": "runs the platform: trials, sites, users; sees every site",
    "investigator": "screens, randomizes, enters follow-up and SAEs, may request emergency unblinding",
    "coordinator": "screens, randomizes, enters follow-up and SAEs",
    "unblinded_pharmacist": "prepares study drug; sees the arm behind each kit",
    "blinded_statistician": "reads data, never an arm",
    "unblinded_statistician": "prepares the DSMB's closed reports; sees arms and how allocation ran",
    "dsmb": "reads unblinded safety data",
    "monitor": "reads data and the audit trail for source verification",
    "outcome_assessor": "blinded: finds a patient's visit and records the assessments the protocol reserves for the "
                        "blinded assessor (the 90-day mRS of a PROBE trial); never an arm, a kit or a dose sheet",
    "safety_review_committee": "confirms each dose-escalation decision (escalate, stay, de-escalate, stop, the MTD) "
                               "with a signature and a reason, or departs from the rule with a reason; reads safety "
                               "data",
}

SITE_STAFF = ("admin", "investigator", "coordinator")
# Only site staff randomize. The admin, who may read strata, block positions and minimization margins
# (blinding.MACHINERY_READERS), must not also choose when the next patient is randomized.
RANDOMIZERS = ("investigator", "coordinator")
# The blinded outcome assessor of a PROBE trial records only what the protocol reserves for it (a visit's
# `assessor_only`), and reads nothing that could tell the arm: no dose sheet, SAE narrative, export or audit trail.
OUTCOME_ASSESSORS = ("outcome_assessor",)
NOT_OUTCOME_ASSESSORS = tuple(role for role in ROLES if role not in OUTCOME_ASSESSORS)

# Who may do what: every operation the platform guards, and the roles allowed to do it. The service
# checks these, and the pages and templates ask the same table whether to offer the button.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "creating a site": ("admin",),
    "creating a user": ("admin",),
    "creating a trial": ("admin",),
    "adding a site to a trial": ("admin",),
    "deactivating a user": ("admin",),
    "revoking API tokens": ("admin",),
    "resetting a password": ("admin",),
    "unlocking a user": ("admin",),
    "registering a patient": SITE_STAFF,
    "screening": SITE_STAFF,
    "correcting screening data": SITE_STAFF,
    "randomizing": RANDOMIZERS,
    "entering follow-up data": SITE_STAFF,
    "recording blinded outcome assessments": OUTCOME_ASSESSORS,
    "reading a dose sheet": NOT_OUTCOME_ASSESSORS,
    "reading safety data": NOT_OUTCOME_ASSESSORS,
    "exporting trial data": NOT_OUTCOME_ASSESSORS,
    "reporting a serious adverse event": SITE_STAFF,
    "emergency unblinding": ("investigator",),
    "reading the unblinding log": ("dsmb", "admin"),
    "enrolling in a dose-escalation cohort": RANDOMIZERS,
    # Whether an event is a dose-limiting toxicity is the investigator's medical judgement.
    "recording a DLT assessment": ("investigator",),
    "confirming an escalation decision": ("safety_review_committee",),
    "reading the audit trail": ("admin", "monitor"),
    "checking the audit trail": ("admin", "monitor"),
}
