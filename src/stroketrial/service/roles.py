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
