"""The building blocks every validated, frozen part of a protocol or an allocation is made of."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class FrozenModel(BaseModel):
    """Validated once, never changed after: unknown keys are refused, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")
