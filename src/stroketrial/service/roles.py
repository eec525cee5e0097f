"""The platform's roles and what each does (no imports: the CLI's help text reads them)."""

ROLES = ("admin", "investigator", "coordinator", "unblinded_pharmacist", "blinded_statistician",
         "unblinded_statistician", "dsmb", "monitor")
ROLE_DESCRIPTIONS = {
    "admin": "runs the platform: trials, sites, users; sees every site",
    "investigator": "screens, randomizes, enters follow-up and SAEs, may request emergency unblinding",
    "coordinator": "screens, randomizes, enters follow-up and SAEs",
    "unblinded_pharmacist": "prepares study drug; sees the arm behind each kit",
    "blinded_statistician": "reads data, never an arm",
    "unblinded_statistician": "prepares the DSMB's closed reports; sees arms and how allocation ran",
    "dsmb": "reads unblinded safety data",
    "monitor": "reads data and the audit trail for source verification",
}

SITE_STAFF = ("admin", "investigator", "coordinator")
# Only site staff randomize. The admin, who may read strata, block positions and minimization margins
# (blinding.MACHINERY_READERS), must not also choose when the next patient is randomized.
RANDOMIZERS = ("investigator", "coordinator")

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
    "reporting a serious adverse event": SITE_STAFF,
    "emergency unblinding": ("investigator",),
    "reading the unblinding log": ("dsmb", "admin"),
    "reading the audit trail": ("admin", "monitor"),
    "checking the audit trail": ("admin", "monitor"),
}
