"""The JSON API of protocol versions: every version of a trial's protocol, when in force and what changed.
(Amendments are made by the platform's admin on the command line: `stroketrial admin amend-protocol`.)"""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from ..service import amendments
from ..service.accounts import Actor
from .api import Trial, current_actor, database, router


@router.get("/trials/{trial}/protocol/versions", tags=["trials"])
def get_versions(trial: Trial, actor: Actor = Depends(current_actor), db=Depends(database)) -> list[dict[str, Any]]:
    """Each version: in force from, what changed from the one before, patients screened under it, in force now."""
    with db.read() as session:
        return amendments.versions(session, actor, trial)
