"""A real server process under concurrent clients, and killed mid-randomization, on both databases."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import select

from stroketrial.service import patients
from stroketrial.service.accounts import Actor
from stroketrial.store import Database, verify
from stroketrial.store.models import Allocation, ConcealedKit, Patient
from ..process import ServerProcess

from .conftest import Platform
from .test_api import PATIENTS

COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))


def _register(platform: Platform, n: int, trial: str = "amass-2") -> list[str]:
    codes = [f"C{i:04d}" for i in range(n)]
    data = dict(PATIENTS[trial])
    attestations = data.pop("attestations")
    with platform.db.write() as session:
        for code in codes:
            patients.register(session, COORDINATOR, trial, code, "S1", data, attestations)
    return codes


def _allocations(url: str, trial: str = "amass-2") -> list[Allocation]:
    db = Database(url)
    try:
        with db.read() as session:
            return list(session.execute(select(Allocation).where(Allocation.trial_id == trial)
                                        .order_by(Allocation.sequence)).scalars())
    finally:
        db.dispose()


def _chain_ok(url: str) -> bool:
    db = Database(url)
    try:
        with db.read() as session:
            return verify(session).ok
    finally:
        db.dispose()


def test_sixteen_clients_randomizing_at_once_with_retries(database_url, tmp_path):
    platform = Platform(database_url)
    codes = _register(platform, 16 * 6)
    token = platform.tokens["coordinator"]
    platform.db.dispose()
    answers: dict[str, list[dict]] = {}
    lock = threading.Lock()
    with ServerProcess(database_url, log_path=str(tmp_path / "server.log")) as server:
        def client(chunk: list[str]) -> None:
            with httpx.Client(base_url=server.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as http:
                for code in chunk:
                    key = str(uuid.uuid4())
                    path = f"/api/v1/trials/amass-2/patients/{code}/randomization"
                    # the same request twice at once (a double click), then once more (a retry after a lost answer)
                    with ThreadPoolExecutor(2) as pair:
                        first = list(pair.map(lambda _, path=path, key=key: http.post(
                            path, headers={"Idempotency-Key": key}), range(2)))
                    retry = http.post(path, headers={"Idempotency-Key": key})
                    other_key = http.post(path, headers={"Idempotency-Key": key + "-new"})
                    assert other_key.status_code == 409, other_key.text
                    with lock:
                        answers[code] = [r.json() for r in (*first, retry)]
                        assert all(r.status_code == 201 for r in (*first, retry)), [r.text for r in first]

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(client, [codes[i::16] for i in range(16)]))
    assert set(answers) == set(codes)
    for code, bodies in answers.items():
        assert bodies[0] == bodies[1] == bodies[2], code  # every repeat of a key gets the first answer
    stored = _allocations(database_url)
    assert [a.sequence for a in stored] == list(range(1, len(codes) + 1))  # no gap, no duplicate
    assert len({a.patient_id for a in stored}) == len(codes)  # nobody twice
    assert {answers[c][0]["sequence"] for c in codes} == set(range(1, len(codes) + 1))
    assert _chain_ok(database_url)


def test_killing_the_server_loses_no_acknowledged_allocation(database_url, tmp_path):
    platform = Platform(database_url)
    codes = _register(platform, 240)
    token = platform.tokens["coordinator"]
    platform.db.dispose()
    acknowledged: dict[str, dict] = {}
    attempted: dict[str, str] = {}
    lock = threading.Lock()
    queue = list(codes)
    server = ServerProcess(database_url, log_path=str(tmp_path / "server.log")).start()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    code = queue.pop(0)
                    attempted[code] = key = str(uuid.uuid4())
                try:
                    response = http.post(f"/api/v1/trials/amass-2/patients/{code}/randomization",
                                         headers={"Idempotency-Key": key})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 201:
                    with lock:
                        acknowledged[code] = response.json()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    while len(acknowledged) < 40:
        time.sleep(0.01)
    server.kill()  # SIGKILL mid-stream: no shutdown, no flush
    for t in threads:
        t.join(30)
    stored = {a.patient_id: a for a in _allocations(database_url)}
    with Database(database_url).read() as session:
        ids = dict(session.execute(select(Patient.code, Patient.id)).all())
    for code, answer in acknowledged.items():
        allocation = stored.get(ids[code])
        assert allocation is not None, f"acknowledged allocation of {code} was lost"
        assert (allocation.sequence, allocation.arm) == (answer["sequence"], answer["arm"])
    assert sorted(a.sequence for a in stored.values()) == list(range(1, len(stored) + 1))
    assert _chain_ok(database_url)

    # After a restart, clients retry what they never heard back about, with the same keys.
    with ServerProcess(database_url, log_path=str(tmp_path / "server2.log")) as again, \
            httpx.Client(base_url=again.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        for code, key in attempted.items():
            response = http.post(f"/api/v1/trials/amass-2/patients/{code}/randomization",
                                 headers={"Idempotency-Key": key})
            assert response.status_code == 201, response.text
            if code in acknowledged:
                assert response.json() == acknowledged[code]
    final = _allocations(database_url)
    assert [a.sequence for a in final] == list(range(1, len(attempted) + 1))
    assert len({a.patient_id for a in final}) == len(attempted)
    assert _chain_ok(database_url)


def test_several_server_processes_randomize_two_trials_at_once_without_gaps_or_duplicates(database_url, tmp_path):
    """Two `stroketrial serve` on one database, one of them with two worker processes: 16 clients over both
    servers and two trials (AMASS-2 by minimization; IMPACT-LVO by permuted blocks with blinded kits). Each
    trial's sequence runs 1..n with nobody twice, IMPACT-LVO's allocations take the concealed block list's
    entries 0..n-1 of their stratum and each arm's kits in list order, none twice, and every chain verifies."""
    platform = Platform(database_url)
    trials = ("amass-2", "impact-lvo")
    codes = {trial: _register(platform, 48, trial) for trial in trials}
    token = platform.tokens["coordinator"]
    platform.db.dispose()
    keys = {"STROKETRIAL_KEYS": str(platform.db.keystore.folder), "STROKETRIAL_SECRET_KEY": "one-key-for-all"}
    with ServerProcess(database_url, log_path=str(tmp_path / "a.log"), extra_args=("--workers", "2"), env=keys,
                       start_timeout=120) as first, \
            ServerProcess(database_url, log_path=str(tmp_path / "b.log"), env=keys) as second:
        def client(number: int) -> None:
            # even clients on AMASS-2, odd on IMPACT-LVO; within each trial, half the clients on each server
            trial, mate = trials[number % 2], number // 2
            server, chunk = (first, second)[mate % 2], codes[trial][mate::8]
            with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
                for code in chunk:
                    response = http.post(f"/api/v1/trials/{trial}/patients/{code}/randomization",
                                         headers={"Idempotency-Key": str(uuid.uuid4())})
                    assert response.status_code == 201, response.text

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(client, range(16)))
    for trial, registered in codes.items():
        stored = _allocations(database_url, trial)
        assert [a.sequence for a in stored] == list(range(1, len(registered) + 1)), trial
        assert len({a.patient_id for a in stored}) == len(registered)
    records = [json.loads(a.record_json) for a in _allocations(database_url, "impact-lvo")]
    by_stratum: dict[str, list[int]] = {}
    for r in records:
        by_stratum.setdefault(r["stratum"], []).append(r["list_position"])
    for stratum, positions in by_stratum.items():  # in sequence order: the list read from its start, in turn
        assert positions == list(range(len(positions))), stratum
    db = Database(database_url)
    try:
        with db.read() as session:
            listed = list(session.execute(select(ConcealedKit).where(ConcealedKit.trial_id == "impact-lvo")
                                          .order_by(ConcealedKit.position)).scalars())
    finally:
        db.dispose()
    for arm in {r["arm"] for r in records}:
        given = [r["kit"] for r in records if r["arm"] == arm]
        in_list = [k.kit_number for k in listed if k.site == "S1" and k.arm == arm]
        assert given == in_list[:len(given)], arm  # each arm's kits in list order: none skipped, none twice
    assert _chain_ok(database_url)
