"""Argon2 password hashing that never stalls the server.

A verification costs about 0.1 s of CPU on purpose. Run on the event loop, four clients posting
wrong passwords held every other request behind them; so the web shell awaits `verify_off_loop`,
which runs the hash in a worker thread under a CapacityLimiter of its own: at most
max(1, cores - 1) hashes at once, leaving a core for everything else, and never holding a token of
the default thread limiter that the synchronous API routes share.

A name with no usable hash (unknown, deactivated, no password) is verified against `dummy_hash()`,
made once with the same parameters, so it costs what a real user costs and its answer takes as long.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import weakref

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

hasher = PasswordHasher()
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = \
    weakref.WeakKeyDictionary()


def hash_password(password: str) -> str:
    return hasher.hash(password)


@functools.cache
def dummy_hash() -> str:
    """A hash of a random secret nobody knows, with the hasher's parameters (made once per process)."""
    return hasher.hash(secrets.token_urlsafe(32))


def verify(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; with no hash, the same work is done against the dummy and fails."""
    try:
        return hasher.verify(password_hash or dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def hashing_slots() -> int:
    """How many hashes may run at once: one core is always left for the other requests."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def limiter() -> anyio.CapacityLimiter:
    """The hashing limiter of the running event loop (one per loop: a limiter belongs to its loop)."""
    loop = asyncio.get_running_loop()
    found = _limiters.get(loop)
    if found is None:
        found = _limiters[loop] = anyio.CapacityLimiter(hashing_slots())
    return found


async def verify_off_loop(password_hash: str | None, password: str) -> bool:
    return await anyio.to_thread.run_sync(verify, password_hash, password, limiter=limiter())
