"""A trial's writers in one server process take their turns in the order they arrived (store/turns.py)."""

from __future__ import annotations

import threading
import time

from stroketrial.store.turns import Turns, TurnsByKey


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_waiting_writers_are_served_first_come_first_served():
    turns, served, threads = Turns(), [], []
    turns.__enter__()  # a write in progress

    def writer(i: int) -> None:
        with turns:
            served.append(i)

    for i in range(12):
        thread = threading.Thread(target=writer, args=(i,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=i + 1: len(turns._waiting) == n)  # queued behind the ones before it
    turns.__exit__(None, None, None)
    for thread in threads:
        thread.join(10)
    assert served == list(range(12))
    assert not turns._held and not turns._waiting


def test_one_writer_at_a_time_and_a_failed_write_passes_its_turn_on():
    turns, inside, most, done = Turns(), [0], [0], []
    guard = threading.Lock()

    def writer(i: int) -> None:
        try:
            with turns:
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.001)
                with guard:
                    inside[0] -= 1
                if i % 3 == 0:
                    raise ValueError("this write fails")
        except ValueError:
            pass
        done.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(done) == list(range(30)) and most[0] == 1


def test_trials_do_not_wait_for_each_other_and_leave_nothing_behind():
    by_trial = TurnsByKey()
    holding_a, release_a = threading.Event(), threading.Event()

    def trial_a() -> None:
        with by_trial("amass-2"):
            holding_a.set()
            release_a.wait(10)

    thread = threading.Thread(target=trial_a)
    thread.start()
    assert holding_a.wait(10)
    started = time.monotonic()
    with by_trial("impact-lvo"):  # another trial's write goes ahead at once
        assert time.monotonic() - started < 1
    assert len(by_trial) == 1  # impact-lvo's turns are gone once no one holds or waits for them
    release_a.set()
    thread.join(10)
    assert len(by_trial) == 0
    for unknown in ("no-such-trial-1", "no-such-trial-2"):  # ids from URLs keep nothing in memory
        with by_trial(unknown):
            pass
    assert len(by_trial) == 0
