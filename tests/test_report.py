"""The report: `stroketrial demo` writes every file, `stroketrial analyze` reads a CSV or the platform export."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.protocol import load_builtin
from stroketrial.report.figures import consort, forest, grotta_bars, save
from stroketrial.report.tables import safety_table, table1
from stroketrial.service import demo as demo_data
from stroketrial.service import export
from stroketrial.service.accounts import Actor
from stroketrial.store import Database

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo", "amass-2", "--out", str(out), "--n", "160", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_demo_writes_the_report_the_dataset_and_every_figure(demo_report):
    out, summary = demo_report
    for name in ("report.html", "report.pdf", "dataset.csv", "results.json", "grotta_bars.png", "grotta_bars.svg",
                 "consort.png", "consort.svg", "forest_subgroups.png", "forest_subgroups.svg"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    html = (out / "report.html").read_text()
    for heading in ("Flow of patients (CONSORT)", "Baseline characteristics (Table 1)", "Functional independence",
                    "ordinal shift (mRS), adjusted", "win odds", "Symptomatic intracranial haemorrhage", "Subgroups",
                    "Safety", "Methods"):
        assert heading in html, heading
    assert "data:image/png;base64," in html and "<script" not in html  # self-contained, nothing to fetch
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 160 and summary["truth"]["common_or"] == 1.5


def test_analyze_reads_the_platform_export(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    demo_data.load(db)
    dsmb = Actor("dsmb", "dsmb", frozenset({"S1", "S2", "S3"}))
    coordinator = Actor("coordinator", "coordinator", frozenset({"S1", "S2", "S3"}))
    with db.read() as session:
        (tmp_path / "unblinded.zip").write_bytes(export.csv_zip(session, dsmb, "amass-2"))
        (tmp_path / "blinded.zip").write_bytes(export.csv_zip(session, coordinator, "impact-lvo"))
    db.dispose()
    result = runner.invoke(app, ["analyze", "amass-2", str(tmp_path / "unblinded.zip"), "--out", str(tmp_path / "r"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").exists()
    refused = runner.invoke(app, ["analyze", "impact-lvo", str(tmp_path / "blinded.zip"), "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "made by a blinded user" in refused.output


def test_analyze_one_analysis_as_json(demo_report):
    out, _ = demo_report
    result = runner.invoke(app, ["analyze", "ordinal", str(out / "dataset.csv"), "--outcome", "mrs_90d", "--arm",
                                 "arm", "--treatment", "albumin", "--control", "control", "--adjust",
                                 "age,nihss,aspects", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"estimate", "ci_low", "ci_high", "p_value", "method", "n"} <= set(data)
    assert data["ci_low"] < data["estimate"] < data["ci_high"]
    result = runner.invoke(app, ["analyze", "binary", str(out / "dataset.csv"), "--outcome", "death_90d",
                                 "--treatment", "albumin", "--control", "control", "--measure", "odds_ratio_exact",
                                 "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["method"].startswith("conditional")


@pytest.mark.parametrize("args, message", [
    (("analyze", "ordinal", "DATA", "--treatment", "albumin", "--control", "control", "--outcome", "mrs90"),
     "no column 'mrs90'"),
    (("analyze", "ordinal", "DATA", "--treatment", "albumin"), "give --treatment and --control"),
    (("analyze", "binary", "DATA", "--treatment", "albumin", "--control", "control", "--outcome", "mrs_90d"),
     "a binary outcome is 0 or 1"),
    (("analyze", "amass-2", "DATA", "--out", "OUT", "--population", "xx"), "population 'xx'"),
    (("analyze", "amass-2", "missing.csv", "--out", "OUT"), "no such file"),
    (("demo", "amass-1", "--out", "OUT"), "not randomized"),
])
def test_bad_analysis_input_exits_2(demo_report, tmp_path, args, message):
    out, _ = demo_report
    args = [str(out / "dataset.csv") if a == "DATA" else str(tmp_path / "o") if a == "OUT" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_figures_and_tables_directly(tmp_path):
    paths = save(grotta_bars({"albumin": [10, 12, 9, 8, 6, 2, 3], "control": [6, 9, 10, 9, 8, 4, 6]}),
                 tmp_path / "grotta")
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"] and all(p.stat().st_size for p in paths)
    data = pd.DataFrame({"arm": ["a", "b"] * 10, "age": range(60, 80), "sex": ["female", "male"] * 10,
                         "death_90d": [0, 1] * 10})
    t1 = table1(data, "arm", ["a", "b"])
    assert t1.iloc[0, 0] == "age, years, median (IQR)" and t1.columns[1] == "a (n=10)"
    safety = safety_table(data, "arm", ["a", "b"], {"death_90d": "Death"})
    assert safety.iloc[0]["b"] == "10/10 (100.0%)" and safety.iloc[0]["Fisher p"] == "0.000"
    assert load_builtin("amass-2").acronym == "AMASS-2" and consort and forest
