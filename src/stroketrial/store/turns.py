"""Writers of one trial served in the order they arrived.

threading.Lock promises no order: under a queue of requests for one trial a newcomer can take the lock
before a request that has waited for many turns, and PostgreSQL's row lock, where all of them would
otherwise wait, hands the row to whichever waiter wakes first. Both give a few requests many times the
median wait. The standard library has no first-come, first-served lock, hence this one: each waiter
queues an event and the holder hands the lock to the oldest on release.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType


class Turns:
    """A lock handed to its waiters in the order they asked for it (not reentrant)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # set by the holder's release: the lock is this thread's from then on

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()  # handed over: still held
            else:
                self._held = False


class TurnsByKey:
    """One `Turns` per key (a trial), kept only while a writer holds or waits for it: the keys come from
    requests' URLs, so an unknown trial's id leaves nothing behind."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._turns: dict[str, tuple[Turns, list[int]]] = {}  # key -> (its turns, [writers holding or waiting])

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        with self._guard:
            turns, users = self._turns.setdefault(key, (Turns(), [0]))
            users[0] += 1
        try:
            with turns:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._turns[key]

    def __len__(self) -> int:
        return len(self._turns)
