"""The thrombectomy registry (matched controls): import all-or-nothing with every bad cell named, reading it
back typed, the CLI, and the synthetic registry's size, ranges and outcomes.

The database tests run on SQLite and on PostgreSQL (STROKETRIAL_TEST_PG), with the platform tests' fixture.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.clinical import parse_patient, units
from stroketrial.clinical.registry_columns import (BASELINE, OUTCOMES, RECORDED, REGISTRY_VARIABLES,
                                                   frame_from_records, read_registry, registry_records,
                                                   registry_table)
from stroketrial.cohort import synthesize
from stroketrial.cohort.registry import (REGISTRY_SITES, SUCCESSFUL_REPERFUSION, simulate_outcomes, synthesize_registry,
                                        write_registry)
from stroketrial.service import SYSTEM, Actor, Conflict, Forbidden, Invalid
from stroketrial.service.registry import import_registry, registry_frame, registry_summary
from stroketrial.store import Database
from stroketrial.store.models import AuditEvent, AuditHead, RegistryPatient

from .server import conftest as platform_fixtures

database_url = platform_fixtures.database_url  # a fresh database per test, on each backend


def pytest_generate_tests(metafunc):
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", platform_fixtures.BACKENDS, indirect=True)


runner = CliRunner()

GOOD = """patient_id,site,age,sex,nihss,aspects,occlusion_site,etici,last_known_well,recanalization,creatinine_mg_dl,\
bridging_thrombolysis,infarct_volume_ml,mrs_90d,death_90d,sich
R-001,H1,71,female,18,8,m1,2b67,2026-02-01T07:10,2026-02-01T11:45,1.2,yes,24.5,2,0,0
R-002,H1,58,male,12,9,m2,3,2026-02-03T22:00,2026-02-04T02:30,,no,,6,1,1
R-003,H2,,male,20,,tandem_ica_m1,2b,,,0.9,,310,,1,
"""


@pytest.fixture
def db(database_url, tmp_path):
    database = Database(database_url, keys=tmp_path / "keys")
    database.migrate()
    yield database
    database.dispose()


def _import(db: Database, data: bytes | str, name: str = "registry.csv", actor: Actor = SYSTEM) -> dict:
    with db.write() as session:
        return import_registry(session, actor, data.encode() if isinstance(data, str) else data, name)


def _frame(db: Database) -> pd.DataFrame:
    with db.read() as session:
        return registry_frame(session, SYSTEM)


def _state(db: Database) -> tuple[int, int, int]:
    """(registry patients, registry_import events, audit head) — what a refused import must leave alone."""
    with db.read() as session:
        patients = session.execute(select(func.count()).select_from(RegistryPatient)).scalar_one()
        events = session.execute(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "registry_import")).scalar_one()
        head = session.execute(select(AuditHead.seq)).scalar_one()
    return patients, events, head


def _refused(db: Database, data: bytes | str, name: str = "registry.csv", error=Invalid):
    """The error refusing a file, after checking that nothing was stored and no event recorded."""
    before = _state(db)
    with pytest.raises(error) as caught:
        _import(db, data, name)
    assert _state(db) == before, "a refused file stores nothing and records no event"
    return caught.value


# ---- import -----------------------------------------------------------------------------------------------------
def test_a_good_file_round_trips_typed_with_one_audit_event(db):
    result = _import(db, GOOD)
    assert result["rows"] == 3 and result["registry_patients"] == 3
    assert result["sha256"] == hashlib.sha256(GOOD.encode()).hexdigest()
    frame = _frame(db)
    assert list(frame["patient_id"]) == ["R-001", "R-002", "R-003"]
    assert list(frame.columns) == [c for c in REGISTRY_VARIABLES if c in frame.columns]  # dictionary order
    assert set(OUTCOMES) <= set(frame.columns)
    first = frame.iloc[0]
    assert first["age"] == 71 and first["nihss"] == 18 and first["occlusion_site"] == "m1" and first["etici"] == "2b67"
    assert first["creatinine_umol_l"] == pytest.approx(1.2 * units.factor("creatinine", "mg/dL"))  # canonical unit
    assert bool(first["bridging_thrombolysis"]) and first["infarct_volume_ml"] == 24.5 and first["mrs_90d"] == 2
    assert not first["death_90d"] and not first["sich"]
    assert first["recanalization"] == pd.Timestamp("2026-02-01T11:45")
    assert first["lkw_to_recanalization_h"] == pytest.approx(4 + 35 / 60)  # derived from the times, not stored
    assert frame["etici"].iloc[2] == "2b"  # the older mTICI grade, kept as recorded
    assert frame["mrs_90d"].isna().iloc[2] and bool(frame["death_90d"].iloc[2])  # death known, mRS not
    assert frame["age"].isna().iloc[2] and frame["infarct_volume_ml"].iloc[2] == 310
    assert frame.dtypes["age"] == "Int64" and frame.dtypes["sich"] == "boolean"
    with db.read() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "registry_import")).scalar_one()
        stored = [json.loads(d) for d in session.execute(select(RegistryPatient.data_json)
                                                         .order_by(RegistryPatient.id)).scalars()]
    after = json.loads(event.after_json)
    assert event.entity_id == result["sha256"] and after["sha256"] == result["sha256"]
    assert after["rows"] == 3 and after["file"] == "registry.csv" and "creatinine_mg_dl" in after["columns"]
    assert "lkw_to_recanalization_h" not in stored[0]
    # the baseline part of each stored document is a patient record the platform's parser accepts
    for document in stored:
        parse_patient({k: v for k, v in document.items() if k in BASELINE})


def test_three_bad_cells_are_each_named_with_row_column_value_and_what_is_allowed(db):
    _import(db, GOOD)
    header = GOOD.splitlines()[0]
    rows = [
        "R-010,H1,70,male,abc,8,m1,3,,,,,,,,",  # nihss not a number
        "R-011,H1,70,male,10,8,m1,3,,,,,,7,0,",  # mRS 7
        "R-012,H1,70,male,10,8,m1,3,,,,,,3,1,",  # death with mRS 3
        "R-013,H1,70,male,10,8,m1,3,,,,,,6,1,",
    ]
    refused = _refused(db, "\n".join([header, *rows]) + "\n")
    message = str(refused)
    assert "nothing imported; 3 problems" in message
    assert "row 1 (patient_id R-010): nihss: 'abc' is not a number; NIHSS is a whole number from 0 to 42" in message
    assert "row 2 (patient_id R-011): mrs_90d: 7 is out of range; mRS is a whole number from 0 to 6" in message
    assert "row 3 (patient_id R-012): death_90d: " in message and "disagrees with mrs_90d 3" in message
    assert [e["field"] for e in refused.errors] == ["row 1 (patient_id R-010): nihss",
                                                         "row 2 (patient_id R-011): mrs_90d",
                                                         "row 3 (patient_id R-012): death_90d"]
    assert [e["value"] for e in refused.errors] == ["abc", 7, 1]
    assert "death_90d 1 (dead) disagrees with mrs_90d 3; death_90d is 1 exactly when mrs_90d is 6" in message
    assert len(_frame(db)) == 3


def test_the_error_lists_fifty_problems_and_counts_the_rest(db):
    header = "patient_id,nihss,mrs_90d"
    rows = [f"P/{i},x,z" for i in range(40)]  # three bad cells a row (a slash in an id): 120 problems
    refused = _refused(db, "\n".join([header, *rows]))
    assert refused.message.count(": nihss:") == 5  # the cohort table's five per column, then a count
    assert refused.message.count(": patient_id:") == 40  # each bad id named, up to fifty problems in all
    assert len(refused.errors) == 50 and refused.message.endswith("(and 70 more)")
    assert refused.extra["more"] == 70


def test_duplicate_codes_in_the_file_or_the_registry_are_named(db):
    message = str(_refused(db, GOOD + "R-002,H2,60,male,10,8,m1,3,,,,,,,,\n"))
    assert "rows 2, 4: patient_id: 'R-002' appears 2 times in the file" in message
    _import(db, GOOD)
    again = "patient_id,nihss\nR-100,5\nR-001,7\n"
    message = str(_refused(db, again, "second.csv"))
    assert "row 2 (patient_id R-001): patient_id: 'R-001' is in the registry already" in message
    assert "R-100" not in message
    many = "patient_id,nihss\n" + "".join(f"R-{i:03d},5\n" for i in range(1, 40))  # all 3 known ones, and more
    _import(db, "patient_id\n" + "".join(f"R-{i:03d}\n" for i in range(4, 20)), "third.csv")
    refused = _refused(db, many, "fourth.csv")
    assert "19 patients are in the registry already (imported earlier): R-001 (row 1), R-002 (row 2)" in str(refused)
    assert "and 9 more" in str(refused) and len(refused.errors) == 1


def test_the_same_file_twice_is_refused_naming_when_it_came(db):
    _import(db, GOOD, "first.csv")
    message = str(_refused(db, GOOD, "first-again.csv", error=Conflict))
    assert "was imported already" in message and hashlib.sha256(GOOD.encode()).hexdigest() in message


def test_a_second_file_adds_patients_and_the_summary_lists_both_files(db):
    _import(db, GOOD, "first.csv")
    second = "patient_id,age,mrs_90d\nR-101,80,4\nR-102,66,\n"
    assert _import(db, second, "second.csv")["registry_patients"] == 5
    assert list(_frame(db)["patient_id"]) == ["R-001", "R-002", "R-003", "R-101", "R-102"]
    with db.read() as session:
        summary = registry_summary(session, SYSTEM)
    assert summary["patients"] == 5
    assert [(f["file"], f["rows"]) for f in summary["files"]] == [("first.csv", 3), ("second.csv", 2)]
    assert summary["files"][1]["sha256"] == hashlib.sha256(second.encode()).hexdigest()
    assert summary["missing"]["mrs_90d"] == {"missing": 2, "percent": 40.0}
    assert summary["missing"]["age"]["missing"] == 1 and "infarct_volume_ml" in summary["columns"]


@pytest.mark.parametrize("data, name, expected", [
    (b"", "registry.csv", "the file is empty"),
    (b"patient_id,nihss\n", "registry.csv", "the table has no rows"),
    (b"PK\x03\x04\x00\x00binary", "registry.csv", "not a CSV text file"),
    (b"\xff\xfe\x00p\x00a", "registry.csv", "not a CSV text file"),
    (b"id;nihss\nA;5\n", "registry.csv", "no patient_id column"),
    (b"patient_id,nihss\nA,5\n", "registry.xlsx", "a registry file is a .csv or .parquet table"),
    (b"patient_id,nihss\nA,5\n", "registry.parquet", "cannot read the table"),
    (b"patient_id,nihs,lkw_to_puncture_h\nA,5,3\n", "registry.csv", "did you mean 'nihss'?"),
    (b"patient_id,nihss\nA B,5\n,4\n", "registry.csv", "row 2: patient_id: required"),
])
def test_a_file_that_is_not_a_registry_table_is_refused(db, data, name, expected):
    assert expected in str(_refused(db, data, name))


def test_importing_is_for_the_admin_and_reading_for_those_who_may_export(db):
    coordinator = Actor("wang", "coordinator", frozenset({"S1"}))
    with pytest.raises(Forbidden, match="creating a trial is for admin"):
        _import(db, GOOD, actor=coordinator)
    _import(db, GOOD)
    with db.read() as session:
        assert len(registry_frame(session, Actor("stat", "blinded_statistician", frozenset({"S1"})))) == 3
        with pytest.raises(Forbidden):
            registry_summary(session, Actor("assessor", "outcome_assessor", frozenset({"S1"})))


def test_times_with_a_zone_are_kept_in_utc_and_files_that_differ_keep_their_times():
    zoned = registry_table(read_registry(b"patient_id,last_known_well,recanalization\n"
                                         b"A,2026-02-01T07:10+01:00,2026-02-01T09:40+01:00\n", "zoned.csv"))
    assert zoned["recanalization"].iloc[0] == pd.Timestamp("2026-02-01T08:40", tz="UTC")
    assert zoned["lkw_to_recanalization_h"].iloc[0] == 2.5
    plain = registry_table(read_registry(b"patient_id,last_known_well\nB,2026-02-01T07:10\n", "plain.csv"))
    both = frame_from_records(registry_records(zoned) + registry_records(plain))
    assert both["last_known_well"].tolist() == [pd.Timestamp("2026-02-01T06:10", tz="UTC"),
                                                pd.Timestamp("2026-02-01T07:10")]
    assert "lkw_to_recanalization_h" not in both.columns  # no interval between a zoned and an unzoned time


# ---- the synthetic registry ------------------------------------------------------------------------------------
def test_the_synthetic_registry_is_anterior_successfully_reperfused_and_in_range():
    frame = synthesize_registry(600, seed=1)
    assert len(frame) == 600 and frame["patient_id"].is_unique
    assert set(frame["occlusion_site"]) <= {s.value for s in REGISTRY_SITES}
    assert set(frame["etici"]) <= {g.value for g in SUCCESSFUL_REPERFUSION}
    assert frame["infarct_volume_ml"].dropna().between(0, 1000).all()
    assert frame["mrs_90d"].dropna().between(0, 6).all()
    known = frame["mrs_90d"].notna()
    assert (frame.loc[known, "death_90d"] == (frame.loc[known, "mrs_90d"] == 6)).all()
    recorded = frame[[c for c in frame.columns if c in RECORDED]]  # the columns a file carries
    pd.testing.assert_frame_equal(registry_table(recorded), frame)  # valid as an imported file, typed the same
    pd.testing.assert_frame_equal(synthesize_registry(600, seed=1), frame)
    assert not synthesize_registry(600, seed=2).equals(frame)
    with pytest.raises(Exception, match="at least 1 patient"):
        synthesize_registry(0, seed=1)


def test_the_synthetic_registry_outcomes_look_like_thrombectomy_trials():
    frame = synthesize_registry(5000, seed=3)
    mrs = frame["mrs_90d"].dropna().astype(int)
    assert 0.40 <= (mrs <= 2).mean() <= 0.52  # HERMES thrombectomy arms: 46%
    assert 0.13 <= frame["death_90d"].mean() <= 0.20  # HERMES: 15%
    assert 0.035 <= frame["sich"].dropna().astype(float).mean() <= 0.065
    volume = frame["infarct_volume_ml"].astype(float)
    assert 28 <= volume.median() <= 42
    # larger with NIHSS, smaller with ASPECTS and with fuller reperfusion, larger with time to recanalization
    nihss, aspects = frame["nihss"].astype(float), frame["aspects"].astype(float)
    hours = (frame["recanalization"] - frame["last_known_well"]).dt.total_seconds()
    assert volume.corr(nihss, method="spearman") > 0.1 and volume.corr(aspects, method="spearman") < -0.1
    assert volume.corr(hours, method="spearman") > 0.03
    by_grade = volume.groupby(frame["etici"]).median()
    assert by_grade["2b50"] > by_grade["2b67"] > by_grade["3"]
    assert mrs.groupby(frame.loc[mrs.index, "age"] >= 75).mean()[True] > mrs.groupby(
        frame.loc[mrs.index, "age"] >= 75).mean()[False]


def test_the_outcome_model_serves_any_thrombectomy_patients_with_a_treatment_effect_on_volume():
    cohort = synthesize(3000, seed=5)  # every occlusion and eTICI grade, blanks included
    control = simulate_outcomes(cohort, np.random.default_rng(1))
    treated = simulate_outcomes(cohort, np.random.default_rng(1), volume_ratio=0.7)
    assert list(control.columns) == list(OUTCOMES) and control.index.equals(cohort.index)
    assert control.notna().all().all() and (control["death_90d"] == (control["mrs_90d"] == 6)).all()
    by_grade = control["infarct_volume_ml"].astype(float).groupby(cohort["etici"]).median()
    assert by_grade["0"] > by_grade["2a"] > by_grade["3"]  # failed reperfusion, larger infarcts
    ratio = treated["infarct_volume_ml"].astype(float) / control["infarct_volume_ml"].astype(float)
    assert ratio.median() == pytest.approx(0.7, abs=0.01)
    assert (treated["mrs_90d"] <= 2).mean() > (control["mrs_90d"] <= 2).mean()
    assert len(simulate_outcomes(cohort[["age", "nihss"]], np.random.default_rng(2))) == 3000  # typical values
    with pytest.raises(Exception, match="must be above 0"):
        simulate_outcomes(cohort, np.random.default_rng(1), volume_ratio=0)


def test_the_synthetic_registrys_csv_imports_and_exports_unchanged(db, tmp_path):
    frame = synthesize_registry(600, seed=1)
    path = tmp_path / "registry.csv"
    write_registry(frame, path)
    with db.write() as session:
        result = import_registry(session, SYSTEM, path)
    assert result["rows"] == 600
    stored = _frame(db)
    pd.testing.assert_frame_equal(stored, frame, check_exact=True)
    for name in ("export.csv", "export.parquet"):  # what `registry export` writes, read back unchanged
        exported = tmp_path / name
        write_registry(stored, exported)
        pd.testing.assert_frame_equal(registry_table(read_registry(exported.read_bytes(), name)), frame)


# ---- the command line ------------------------------------------------------------------------------------------
def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_cli_imports_summarises_and_exports(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the PostgreSQL keystore
    path = tmp_path / "registry.csv"
    synthesized = run("registry", "synthesize", "--n", 120, "--seed", 4, "--out", path, "--json")
    assert synthesized.exit_code == 0, synthesized.output
    assert json.loads(synthesized.stdout)["patients"] == 120
    imported = run("registry", "import", path, "--db", database_url, "--json")
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    summary = run("registry", "summary", "--db", database_url, "--json")
    assert summary.exit_code == 0 and json.loads(summary.stdout)["patients"] == 120
    assert "120 registry patients" in run("registry", "summary", "--db", database_url).stdout
    exported = tmp_path / "export.csv"
    assert run("registry", "export", exported, "--db", database_url).exit_code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("registry", "import", exported, "--db", other).exit_code == 0
    pd.testing.assert_frame_equal(_frame_at(other), synthesize_registry(120, seed=4))


def _frame_at(url: str) -> pd.DataFrame:
    db = Database(url)
    try:
        return _frame(db)
    finally:
        db.dispose()


def test_the_cli_refuses_a_bad_file_with_exit_code_2_and_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,nihss,mrs_90d\nA,50,3\nB,5,x\n")
    result = run("registry", "import", bad, "--db", url)
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if "nothing imported" in line)
    assert "row 1 (patient_id A): nihss: 50 is out of range" in line
    assert "row 2 (patient_id B): mrs_90d: 'x' is not a number" in line
    missing = run("registry", "import", tmp_path / "absent.csv", "--db", url)
    assert missing.exit_code == 2 and "absent.csv: no such file" in missing.output
    assert run("registry", "export", tmp_path / "out.txt", "--db", url).exit_code == 2
    assert run("registry", "synthesize", "--out", tmp_path / "r.xlsx").exit_code == 2


def test_a_registry_row_changed_around_the_platform_is_named(tmp_path):
    from sqlalchemy import text

    from stroketrial.cohort.registry import synthesize_registry, write_registry
    from stroketrial.service import registry
    from stroketrial.service.accounts import SYSTEM
    from stroketrial.service.reconcile import reconcile
    from stroketrial.store import Database

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    write_registry(synthesize_registry(50, 1), tmp_path / "registry.csv")
    with db.write() as session:
        registry.import_registry(session, SYSTEM, tmp_path / "registry.csv")
    with db.read() as session:
        assert reconcile(session) == []
    with db.write() as session:
        session.execute(text("UPDATE registry_patients SET data_json = replace(data_json, :was, :now)"),
                        {"was": '"sich":true', "now": '"sich":false'})
        session.execute(text("DELETE FROM registry_patients WHERE id = 3"))
    with db.read() as session:
        problems = reconcile(session)
    assert problems == [f"registry file {tmp_path / 'registry.csv'}: its 49 rows differ from the 50 the audit trail "
                        "recorded (changed unseen)"]
    db.dispose()
