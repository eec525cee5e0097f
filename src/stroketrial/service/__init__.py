"""The platform's operations: each takes a session inside a transaction and the acting user.

The web API and the CLI call these; neither holds trial logic of its own. Submodules load when first
used (PEP 562), so `import stroketrial.service.errors` or the role names cost no database or Argon2 import.
"""

from __future__ import annotations

import importlib
from typing import Any

_FROM = {"ROLES": "roles", "ROLE_DESCRIPTIONS": "roles", "SYSTEM": "accounts", "Actor": "accounts",
         "Conflict": "errors", "Forbidden": "errors", "Invalid": "errors", "NotFound": "errors",
         "ServiceError": "errors", "Unauthorized": "errors"}

__all__ = ["accounts", "dose_sheet", "patients", "randomize", "safety", "serious_adverse_events", "trials",
           "unblinding", "visits", *_FROM]


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
