"""Randomization when the platform cannot be reached: ANGEL-RESCUE's sealed emergency envelopes (permuted blocks
per site and circulation) and AMASS-2's fallback list (minimization), made by the unblinded pharmacist, opened
offline and recorded when the link returns, with every refusal; blinded roles never see an arm."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from sqlalchemy import select

from stroketrial.randomization import Allocation as Record, RandomizationState, Randomizer
from stroketrial.randomization.envelopes import check_code, envelope_label
from stroketrial.service import export
from stroketrial.service.accounts import Actor
from stroketrial.service.reconcile import reconcile
from stroketrial.service.trials import protocol_of
from stroketrial.store import verify
from stroketrial.store.models import (Allocation, AuditEvent, ConcealedBlockEntry, Envelope, EnvelopeSet,
                                      RandomizationStateRow, Trial)

from ..trials import amass2, angel_rescue, impact_lvo
from .test_api import contains_arm, randomize, register

TRIAL = angel_rescue.TRIAL
PHARMACIST = "unblinded_pharmacist"


def generate(platform, trial=TRIAL, site="S1", role=PHARMACIST, **body):
    """A site's set, made (as the test pretends) the day before: envelopes are opened after their set is made."""
    answer = platform.call("POST", f"/trials/{trial}/envelope-sets", role, json={"site": site, **body})
    if answer.status_code == 201:
        with platform.db.write() as session:
            session.get(EnvelopeSet, answer.json()["set"]).created_at -= dt.timedelta(days=1)
    return answer


def envelopes_of(platform, trial=TRIAL, site="S1") -> list[Envelope]:
    with platform.db.read() as session:
        return list(session.execute(select(Envelope).where(Envelope.trial_id == trial, Envelope.site_code == site)
                                    .order_by(Envelope.number)).scalars())


def code_of(platform, e: Envelope) -> str:
    inside = f"kit {e.kit}" if e.kit else e.arm
    return check_code(platform.db.audit_key(), e.trial_id, e.site_code, e.number, e.set_id, e.stratum, inside)


def opened(platform, e: Envelope, patient: str, trial=TRIAL, minutes_ago=5, role="coordinator", code=None, **extra):
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)).replace(tzinfo=None)
    body = {"envelope": envelope_label(e.site_code, e.number), "check_code": code or code_of(platform, e),
            "patient_id": patient, "opened_at": when.isoformat(timespec="minutes"), **extra}
    return platform.call("POST", f"/trials/{trial}/opened-envelopes", role, json=body)


def concealed_entries(session) -> list[tuple]:
    return [tuple(r) for r in session.execute(
        select(ConcealedBlockEntry.stratum, ConcealedBlockEntry.position, ConcealedBlockEntry.arm)
        .where(ConcealedBlockEntry.trial_id == TRIAL).order_by(ConcealedBlockEntry.stratum,
                                                               ConcealedBlockEntry.position))]


def first_of(envelopes, stratum):
    return [e for e in envelopes if e.stratum == stratum]


def test_a_site_set_holds_whole_balanced_blocks_per_stratum_apart_from_the_online_list(platform):
    with platform.db.read() as session:
        before = concealed_entries(session)
    assert before  # the online list was made with the site
    answer = generate(platform)
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert view["method"] == "permuted_blocks" and view["site"] == "S1"
    assert not any("arm" in e for e in view["envelopes"])  # the allocation is printed, never answered
    rows = envelopes_of(platform)
    assert [e.number for e in rows] == list(range(1, len(rows) + 1))
    strata = Counter(e.stratum for e in rows)
    assert set(strata) == {"circulation=anterior", "circulation=posterior"} and min(strata.values()) >= 4
    for stratum in strata:
        mine = first_of(rows, stratum)
        # whole blocks of the scheme's sizes (2 or 4), 1:1 within each block
        for block in {e.block for e in mine}:
            in_block = [e for e in mine if e.block == block]
            assert len(in_block) == in_block[0].block_size and in_block[0].block_size in (2, 4)
            assert Counter(e.arm for e in in_block) == Counter({a: len(in_block) // 2 for a in {e.arm for e in
                                                                                                 in_block}})
            assert len({e.arm for e in in_block}) == 2
        assert abs(Counter(e.arm for e in mine).most_common()[0][1] * 2 - len(mine)) == 0
    with platform.db.read() as session:  # the concealed online list is untouched
        assert concealed_entries(session) == before
    # a second set while this one holds sealed envelopes is refused
    assert generate(platform).status_code == 409
    printed = platform.call("POST", f"/trials/{TRIAL}/envelope-sets/{view['set']}/print", PHARMACIST)
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
    assert printed.headers["content-type"] == "application/pdf"
    with platform.db.read() as session:
        events = [e.action for e in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()]
        assert "generate_envelopes" in events and "print_envelope_set" in events
        assert verify(session).ok


def test_two_envelopes_opened_offline_are_recorded_into_the_trial_and_its_trail(platform):
    assert generate(platform).status_code == 201
    rows = envelopes_of(platform)
    anterior = first_of(rows, "circulation=anterior")
    for code in ("E1", "E2", "E3"):
        assert register(platform, trial=TRIAL, code=code).status_code == 201  # an M1 occlusion: anterior
    # one patient randomized online first: the envelope's allocation takes the next sequence number
    assert randomize(platform, trial=TRIAL, code="E3", key="k3").status_code == 201
    first = opened(platform, anterior[0], "E1", minutes_ago=20)
    assert first.status_code == 201, first.text
    assert first.json()["envelope"] == envelope_label("S1", anterior[0].number)
    assert first.json()["arm"] == anterior[0].arm  # the open-label investigator's team sees the arm
    second = opened(platform, anterior[1], "E2", minutes_ago=10, allocation=anterior[1].arm)
    assert second.status_code == 201, second.text
    assert [first.json()["sequence"], second.json()["sequence"]] == [2, 3]
    with platform.db.read() as session:
        allocations = {a.sequence: a for a in session.execute(select(Allocation).where(
            Allocation.trial_id == TRIAL)).scalars()}
        assert allocations[2].arm == anterior[0].arm and allocations[3].arm == anterior[1].arm
        assert json.loads(allocations[2].record_json)["envelope"] == envelope_label("S1", anterior[0].number)
        # the state counts them in the totals and margins, never as positions of the online list
        state = RandomizationState.model_validate_json(session.get(RandomizationStateRow, TRIAL).state_json)
        assert state.allocated == 3 and sum(state.slots.values()) == 3
        assert sum(state.strata.get("site=S1|circulation=anterior", {}).values()) == 1
        protocol = protocol_of(session.get(Trial, TRIAL))
        # the state rebuilt from the allocation history alone equals the one carried forward
        records = [Record.model_validate_json(a.record_json) for a in allocations.values()]
        assert Randomizer.for_protocol(protocol).rebuild(records) == state
        actions = [e.action for e in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()]
        assert actions.count("randomize_by_envelope") == 2
        assert reconcile(session) == []
        assert verify(session).ok
    statuses = {e.number: e.status for e in envelopes_of(platform)}
    assert statuses[anterior[0].number] == statuses[anterior[1].number] == "reconciled"
    # the next online randomization of the stratum takes the online list's next position
    assert register(platform, trial=TRIAL, code="E4").status_code == 201
    assert randomize(platform, trial=TRIAL, code="E4", key="k4").status_code == 201
    # the statistician's export reports the fallback allocations apart
    labels = [envelope_label("S1", anterior[0].number), envelope_label("S1", anterior[1].number)]
    with platform.db.read() as session:
        for role in ("unblinded_statistician_s", "blinded_statistician"):
            actor = Actor(role, role.removesuffix("_s"), frozenset({"S1", "S2"}))
            tables = export.tables(session, actor, TRIAL)
            apart = tables["emergency_envelopes"]
            assert [r["patient_id"] for r in apart] == ["E1", "E2"] and [r["envelope"] for r in apart] == labels
            assert ("arm" in apart[0]) == (actor.role == "unblinded_statistician")
            marked = {r["patient_id"]: r["emergency_envelope"] for r in tables["randomization"]}
            assert marked == {"E1": labels[0], "E2": labels[1], "E3": "", "E4": ""}


def test_refusals_reused_out_of_order_wrong_code_wrong_stratum_future_and_randomized(platform):
    assert generate(platform).status_code == 201
    rows = envelopes_of(platform)
    anterior = first_of(rows, "circulation=anterior")
    posterior = first_of(rows, "circulation=posterior")
    for code in ("R1", "R2", "R3", "R4"):
        assert register(platform, trial=TRIAL, code=code).status_code == 201
    # out of order: an earlier envelope of the same site and stratum is still sealed (409 naming it)
    skipped = opened(platform, anterior[1], "R1")
    assert skipped.status_code == 409
    assert envelope_label("S1", anterior[0].number) in skipped.json()["detail"]
    # a wrong check code
    wrong = opened(platform, anterior[0], "R1", code="AAAA-AAAA")
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "check_code"
    # another stratum's envelope (the patient has an anterior occlusion)
    assert opened(platform, posterior[0], "R1").status_code == 409
    # a time in the future
    assert opened(platform, anterior[0], "R1", minutes_ago=-60).status_code == 422
    # the inside sheet says another arm
    other = next(a.id for a in protocol_of_trial(platform).arms if a.id != anterior[0].arm)
    assert opened(platform, anterior[0], "R1", allocation=other).status_code == 409
    assert opened(platform, anterior[0], "R1").status_code == 201
    # the same envelope again, for another patient: used twice
    reused = opened(platform, anterior[0], "R2")
    assert reused.status_code == 409 and "used already" in reused.json()["detail"]
    # a patient randomized already
    assert randomize(platform, trial=TRIAL, code="R3", key="k-r3").status_code == 201
    assert opened(platform, anterior[1], "R3").status_code == 409
    # nothing partial was stored by the refusals
    with platform.db.read() as session:
        assert session.execute(select(Allocation).where(Allocation.trial_id == TRIAL)).scalars().all().__len__() == 2
        assert reconcile(session) == []


def protocol_of_trial(platform, trial=TRIAL):
    with platform.db.read() as session:
        return protocol_of(session.get(Trial, trial))


def test_an_ineligible_patient_is_refused(platform):
    assert generate(platform).status_code == 201
    anterior = first_of(envelopes_of(platform), "circulation=anterior")
    assert register(platform, trial=TRIAL, code="X1", age=17).status_code == 201
    refused = opened(platform, anterior[0], "X1")
    assert refused.status_code == 422 and "ineligible" in refused.json()["detail"]


@pytest.mark.parametrize("role", ["coordinator", "investigator", "blinded_statistician", "monitor", "dsmb",
                                  "outcome_assessor"])
def test_only_the_pharmacist_and_admin_make_and_print_a_set(platform, role):
    assert generate(platform, role=role).status_code == 403
    answer = generate(platform)
    assert platform.call("POST", f"/trials/{TRIAL}/envelope-sets/{answer.json()['set']}/print",
                         role).status_code == 403


def test_blinded_roles_see_no_arm_of_an_opened_envelope(platform):
    set_id = generate(platform).json()["set"]
    anterior = first_of(envelopes_of(platform), "circulation=anterior")
    assert register(platform, trial=TRIAL, code="B1").status_code == 201
    assert opened(platform, anterior[0], "B1").status_code == 201
    for role in ("blinded_statistician", "coordinator", "investigator"):
        listed = platform.call("GET", f"/trials/{TRIAL}/envelope-sets", role)
        assert listed.status_code == 200, (role, listed.text)
        envelopes = listed.json()[0]["envelopes"]
        shown = [e for e in envelopes if "arm" in e]
        if role == "blinded_statistician":
            arms = [a.id for a in protocol_of_trial(platform).arms]
            assert not shown and not contains_arm(listed.json(), arms)
        else:  # an open-label trial's team sees the opened envelope's arm, never a sealed one's
            assert all(e["status"] == "reconciled" for e in shown)
    assert platform.call("GET", f"/trials/{TRIAL}/envelope-sets", "outcome_assessor").status_code == 403
    assert platform.call("POST", f"/trials/{TRIAL}/envelope-sets/{set_id}/void", "coordinator",
                         json={"reason": "lost"}).status_code == 403


def test_a_voided_set_allocates_no_one_and_a_new_set_continues_the_numbers(platform):
    first = generate(platform).json()
    assert register(platform, trial=TRIAL, code="V1").status_code == 201
    rows = envelopes_of(platform)
    void = platform.call("POST", f"/trials/{TRIAL}/envelope-sets/{first['set']}/void", PHARMACIST,
                         json={"reason": "the box was found open"})
    assert void.status_code == 200, void.text
    assert opened(platform, first_of(rows, "circulation=anterior")[0], "V1").status_code == 409
    second = generate(platform)
    assert second.status_code == 201
    assert min(e["number"] for e in second.json()["envelopes"]) == len(rows) + 1


def test_minimization_keeps_a_fallback_list_and_its_allocations_join_the_margins(platform):
    trial = amass2.TRIAL
    answer = generate(platform, trial=trial)
    assert answer.status_code == 201, answer.text
    assert answer.json()["method"] == "fallback_blocks"
    rows = envelopes_of(platform, trial=trial)
    assert {e.stratum for e in rows} == {"nihss_band=6-15", "nihss_band=>=16"}
    assert register(platform, trial=trial, code="M1").status_code == 201
    patient_stratum = "nihss_band=6-15" if amass2.ELIGIBLE["nihss"] < 16 else "nihss_band=>=16"
    first = first_of(rows, patient_stratum)[0]
    recorded = opened(platform, first, "M1", trial=trial)
    assert recorded.status_code == 201, recorded.text
    with platform.db.read() as session:
        state = RandomizationState.model_validate_json(session.get(RandomizationStateRow, trial).state_json)
        assert state.allocated == 1 and sum(state.margins["nihss_band"][first.stratum.split("=", 1)[1]].values()) == 1
        assert reconcile(session) == []
    assert register(platform, trial=trial, code="M2").status_code == 201
    assert randomize(platform, trial=trial, code="M2", key="m2").json()["sequence"] == 2


def test_a_blinded_kit_trial_refuses_envelopes_without_kits_on_the_site_shelf(platform):
    refused = generate(platform, trial=impact_lvo.TRIAL)
    assert refused.status_code == 409 and "kit" in refused.json()["detail"]


def test_a_blinded_kit_trials_envelope_holds_a_reserved_kit_never_an_arm(platform):
    from . import test_supply

    trial = impact_lvo.TRIAL
    test_supply.stocked(platform, per_arm=6)
    # the admin of a double-blind trial sees no arm: only the unblinded pharmacist makes the set
    assert generate(platform, trial=trial, role="admin").status_code == 403
    answer = generate(platform, trial=trial, per_stratum=2)
    assert answer.status_code == 201, answer.text
    rows = envelopes_of(platform, trial=trial)
    assert rows and all(e.kit for e in rows)
    shelf = test_supply.kits(platform)
    assert all(shelf[e.kit].status == "reserved" and shelf[e.kit].arm == e.arm for e in rows)
    printed = platform.call("POST", f"/trials/{trial}/envelope-sets/{answer.json()['set']}/print", PHARMACIST)
    assert printed.status_code == 200
    test_supply.register(platform, "K1")
    recorded = opened(platform, rows[0], "K1", trial=trial)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["kit"] == rows[0].kit and "arm" not in recorded.json()  # the coordinator is blinded
    assert test_supply.kits(platform)[rows[0].kit].status == "dispensed"
    # the set is voided (a box found open): the sealed envelopes' kits go back on the shelf, the opened one stays
    void = platform.call("POST", f"/trials/{trial}/envelope-sets/{answer.json()['set']}/void", PHARMACIST,
                         json={"reason": "the box was found open"})
    assert void.status_code == 200, void.text
    shelf = test_supply.kits(platform)
    assert shelf[rows[0].kit].status == "dispensed"
    assert all(shelf[e.kit].status == "available" for e in rows[1:])
    with platform.db.read() as session:
        assert reconcile(session) == []


def test_the_randomization_status_says_whether_the_platform_takes_a_randomization(platform):
    generate(platform)
    status = platform.call("GET", f"/trials/{TRIAL}/randomization-status", "coordinator")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["can_randomize"] and body["database_writable"] and not body["trial_locked"]
    assert body["procedure"] and set(body["next_envelopes"]["S1"]) == {"circulation: anterior",
                                                                      "circulation: posterior"}
    locked = platform.call("POST", f"/trials/{TRIAL}/locks", "admin", json={"level": "lock", "reason": "final"})
    assert locked.status_code == 201, locked.text
    body = platform.call("GET", f"/trials/{TRIAL}/randomization-status", "coordinator").json()
    assert not body["can_randomize"] and body["trial_locked"]
    health = platform.call("GET", "/health", "coordinator").json()
    assert (health["status"], health["randomization"]) == ("ok", "available")


def test_the_health_endpoint_says_randomization_is_unavailable_when_the_database_cannot_be_reached(tmp_path,
                                                                                                    monkeypatch):
    """A real server whose PostgreSQL is not there (nothing listens on the port): the health endpoint still answers,
    and says what the sites do."""
    from fastapi.testclient import TestClient

    from stroketrial.store import Database
    from stroketrial.web import create_app

    monkeypatch.setenv("STROKETRIAL_KEYS", str(tmp_path / "keys"))
    down = Database("postgresql+psycopg://postgres@127.0.0.1:9/stroketrial?connect_timeout=2")
    answer = TestClient(create_app(down)).get("/api/v1/health")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["randomization"]) == ("degraded", "unavailable")
    assert "sealed emergency envelopes" in body["what_to_do"]
