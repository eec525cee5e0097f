"""Where the randomness comes from.

Live allocations draw from the operating system's cryptographically secure
generator (`SystemDraw`), so nobody can reproduce or anticipate the sequence from
a seed. Simulations and tests draw from a seeded NumPy generator (`SeededDraw`),
reproducible to the allocation. Every rule consumes uniforms in [0, 1) one at a
time through `random()`, so the two are interchangeable.
"""

from __future__ import annotations

import secrets
from typing import Protocol
from collections.abc import Iterable

import numpy as np


class Draw(Protocol):
    def random(self) -> float: ...


class SystemDraw:
    """Uniforms from os.urandom (53 random bits each), for production allocations."""

    def __init__(self) -> None:
        self._source = secrets.SystemRandom()

    def random(self) -> float:
        return self._source.random()


class SeededDraw:
    """Uniforms from numpy's PCG64 with a seed, for simulations and tests."""

    def __init__(self, seed: int | np.random.SeedSequence | np.random.Generator):
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def random(self) -> float:
        return float(self._rng.random())


class ArrayDraw:
    """Uniforms given in advance, in order (to replay a simulated trial one patient at a time)."""

    def __init__(self, values: Iterable[float]):
        self._values = iter(values)

    def random(self) -> float:
        try:
            return float(next(self._values))
        except StopIteration:
            raise RuntimeError("ArrayDraw ran out of uniforms") from None
