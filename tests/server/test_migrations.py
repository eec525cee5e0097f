"""Migrations that rewrite stored data: up and down again on a trial in progress, on both databases."""

from __future__ import annotations

import json
import uuid

from alembic import command
from sqlalchemy import select

from stroketrial.randomization import RandomizationState
from stroketrial.service import randomize
from stroketrial.service.accounts import Actor
from stroketrial.store import verify
from stroketrial.store.db import alembic_config
from stroketrial.store.models import RandomizationStateRow

from .conftest import Platform
from .test_concurrency import _register

COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))


def _randomize(platform: Platform, codes: list[str]) -> None:
    for code in codes:
        with platform.db.write() as session:
            randomize.randomize(session, COORDINATOR, "amass-2", code, str(uuid.uuid4()))


def _state(platform: Platform) -> dict:
    with platform.db.read() as session:
        row = session.execute(select(RandomizationStateRow).where(RandomizationStateRow.trial_id == "amass-2")
                              ).scalar_one()
        return json.loads(row.state_json)


def test_the_state_loses_its_patient_list_and_gets_it_back_on_downgrade(database_url):
    platform = Platform(database_url)
    codes = _register(platform, 6)
    _randomize(platform, codes[:4])
    counts = _state(platform)
    assert "patients" not in counts and counts["allocated"] == 4

    command.downgrade(alembic_config(platform.db.url), "0013")
    old = _state(platform)
    assert old["patients"] == codes[:4]  # in sequence order, as the old state carried them
    assert {k: v for k, v in old.items() if k != "patients"} == counts

    command.upgrade(alembic_config(platform.db.url), "head")
    assert _state(platform) == counts
    RandomizationState.model_validate(_state(platform))
    _randomize(platform, codes[4:])
    assert _state(platform)["allocated"] == 6
    with platform.db.read() as session:
        assert verify(session).ok
    platform.db.dispose()
