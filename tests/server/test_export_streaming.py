"""The streamed exports are the files the whole-in-memory build made, byte for byte; the set-based page queries
(patient list and counts, CONSORT funnel, the trial's SAEs and their overdue count, the unresolved queries'
counts) answer what the record-by-record ones did.

On the demo (its five trials: minimization, blocks, dose escalation, kits, consent routes, envelopes), for readers
who see arms and readers who do not, at all sites and at one; the exports read in chunks of a few patients, so that
every table runs over several chunks."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections import Counter

import pytest
from sqlalchemy import select

from stroketrial.service import demo, export, patients, queries, serious_adverse_events
from stroketrial.service.accounts import Actor
from stroketrial.service.dashboard import funnel
from stroketrial.service.trials import get_trial
from stroketrial.store import Database
from stroketrial.service.errors import Forbidden
from stroketrial.store.models import Allocation, Patient, SeriousAdverseEvent

from . import export_reference

NOW = dt.datetime(2026, 11, 30, 9, 15, 42, tzinfo=dt.UTC)
ALL_SITES = frozenset(demo.SITES)
READERS = [Actor("statistician", "blinded_statistician", ALL_SITES), Actor("dsmb", "dsmb", ALL_SITES),
           Actor("admin", "admin", frozenset()), Actor("monitor", "monitor", frozenset({"S1"})),
           Actor("coordinator", "coordinator", frozenset({"S2"}))]


def _listed_before(session, actor: Actor, trial: str) -> list[dict]:
    """The patient list as it was built before: whole records, each screening result parsed."""
    _trial, protocol = get_trial(session, actor, trial)
    rows = session.execute(select(Patient, Allocation).outerjoin(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial).order_by(Patient.id)).all()
    return [patients.patient_view(session, actor, protocol, p, a, with_data=False, look_up=False)
            for p, a in rows if actor.can_see_site(p.site_code)]


def _saes_before(session, actor: Actor, trial: str) -> list[dict]:
    """The trial's SAEs as they were built before: each SAE's reports read on their own."""
    _trial, protocol = get_trial(session, actor, trial)
    rows = session.execute(select(SeriousAdverseEvent, Patient, Allocation)
                           .join(Patient, Patient.id == SeriousAdverseEvent.patient_id)
                           .outerjoin(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial)
                           .order_by(SeriousAdverseEvent.id.desc())).all()
    return [serious_adverse_events._view(actor, protocol, p, s,
                                         serious_adverse_events.status_of(session, protocol, s, NOW), session, a)
            for s, p, a in rows if actor.can_see_site(p.site_code)]


def test_streamed_exports_and_set_based_pages_answer_as_before(database_url):
    db = Database(database_url)
    db.migrate()
    demo.load(db, interim_look=False)
    checked = 0
    with db.read() as session:
        for trial in demo.TRIAL_SITES:
            for actor in READERS:
                if not actor.is_admin and not actor.sites & set(demo.TRIAL_SITES[trial]):
                    # refused when asked, before a byte is sent (not when the first piece is read)
                    for make in (export.csv_zip_stream, export.odm_xml_stream):
                        with pytest.raises(Forbidden):
                            make(session, actor, trial, NOW)
                    continue
                for chunk in (3, export.CHUNK):
                    streamed = b"".join(export.csv_zip_stream(session, actor, trial, NOW, chunk=chunk))
                    assert streamed == export_reference.csv_zip(session, actor, trial, NOW), (trial, actor, chunk)
                    streamed = b"".join(export.odm_xml_stream(session, actor, trial, NOW, chunk=chunk))
                    assert streamed == export_reference.odm_xml(session, actor, trial, NOW), (trial, actor, chunk)
                    checked += 1
                assert export.tables(session, actor, trial) == export_reference.tables(session, actor, trial)
                assert patients.list_patients(session, actor, trial) == _listed_before(session, actor, trial)
                if actor.may("reading safety data"):
                    listed_saes = serious_adverse_events.trial_saes(session, actor, trial, NOW)
                    assert listed_saes == _saes_before(session, actor, trial)
                    assert (serious_adverse_events.overdue_count(session, actor, trial, NOW)
                            == sum(s["overdue"] for s in listed_saes))
                if actor.may("reading data queries"):
                    assert (queries.query_counts(session, actor, trial)
                            == queries.trial_queries(session, actor, trial)["summary"])
                listed, counts = _listed_before(session, actor, trial), funnel(session, actor, trial)
                assert patients.patient_counts(session, actor, trial) == {
                    "registered": len(listed), "randomized": sum(p["randomized"] for p in listed),
                    "awaiting": sum(p["status"] == "eligible" and not p["randomized"] for p in listed)}
                assert counts["assessed"] == len(listed)
                assert counts["randomized"] == sum(p["randomized"] for p in listed) == sum(counts["allocated"].values())
                for status in ("eligible", "incomplete"):
                    assert counts[status] == sum(p["status"] == status for p in listed)
                assert counts["awaiting_randomization"] == sum(p["status"] == "eligible" and not p["randomized"]
                                                               for p in listed)
                assert counts["excluded_by"] == dict(Counter(p["failing"][0] for p in listed
                                                             if p["status"] == "ineligible").most_common())
        archive = zipfile.ZipFile(io.BytesIO(export.csv_zip(session, READERS[0], "amass-2")))
        assert archive.testzip() is None and "amass-2/screening.csv" in archive.namelist()
    assert checked >= 2 * len(demo.TRIAL_SITES) * (len(READERS) - 1)
    db.dispose()


def _records(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_streamed_audit_trail_is_the_in_memory_one_with_each_events_number_in_its_chain(database_url):
    """With the DSMB's interim look (closed records withheld from most readers) and allocations projected for the
    blinded: for each reader, read a few events at a time or many, the streamed trail is the one built whole in
    memory; the admin's has each event's chain and number in it, which, left out, give the trail as it was
    before; a reader scoped to sites gets the trail as it was before."""
    db = Database(database_url)
    db.migrate()
    demo.load(db)
    with db.read() as session:
        for actor in [*READERS, Actor("unblinded", "unblinded_statistician", ALL_SITES),
                      Actor("monitor", "monitor", ALL_SITES)]:
            if not actor.may("reading the audit trail"):
                with pytest.raises(Forbidden):  # refused when asked, before a byte is sent
                    export.audit_csv_stream(session, actor)
                continue
            expected = export_reference.audit_csv(session, actor)
            for chunk in (7, 1000):
                assert b"".join(export.audit_csv_stream(session, actor, chunk=chunk)).decode("utf-8") == expected
            assert export.audit_csv(session, actor) == expected
            before = export_reference.audit_csv(session, actor, chain_seq=False)
            header = _records(expected)[0]
            if not actor.is_admin:  # scoped to sites: the gaps in a chain's numbers would count other sites' events
                assert expected == before and "chain_seq" not in header
                continue
            assert header[:3] == ["seq", "chain", "chain_seq"]
            assert [r[:1] + r[3:] for r in _records(expected)] == _records(before)
            trails = {}
            for record in csv.DictReader(io.StringIO(expected)):  # each chain numbered 1, 2, 3, ... without gaps
                trails.setdefault(record["chain"], []).append(int(record["chain_seq"]))
            assert set(trails) >= {"platform", "amass-2"}
            assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in trails.values())
    db.dispose()
