"""The platform's operations: each takes a session inside a transaction and the acting user.

The web API and the CLI call these; neither holds trial logic of its own.
"""

from . import accounts, followup, patients, randomize, trials
from .accounts import ROLES, SYSTEM, Actor
from .errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unauthorized

__all__ = ["accounts", "followup", "patients", "randomize", "trials", "ROLES", "SYSTEM", "Actor", "Conflict",
           "Forbidden", "Invalid", "NotFound", "ServiceError", "Unauthorized"]
