"""AMASS-1's report: safety by dose level with exact intervals, the escalation history, and efficacy against
matched registry controls, from `stroketrial demo amass-1` (a simulated trial) and from the platform's export
with a registry file (`stroketrial analyze amass-1 export.zip --controls registry.csv`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from stroketrial.analysis.matching import MatchingSpec, match
from stroketrial.analysis.simulated_escalation import simulate_escalation_trial
from stroketrial.cli import app
from stroketrial.dosing.escalation import three_plus_three
from stroketrial.dosing.escalation.decisions import Cohort
from stroketrial.protocol import load_builtin
from stroketrial.report import analyse_escalation
from stroketrial.report.escalation_report import Proportion
from stroketrial.service import demo as demo_data
from stroketrial.service import export
from stroketrial.service.accounts import Actor
from stroketrial.store import Database

from .test_report_document import pdf_pages

runner = CliRunner()
AMASS1 = load_builtin("amass-1")


@pytest.fixture(scope="module")
def simulated():
    return simulate_escalation_trial(AMASS1, seed=4)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("amass1")
    result = runner.invoke(app, ["demo", "amass-1", "--out", str(out), "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_the_simulated_escalation_follows_the_3_3_rule_to_the_mtd(simulated):
    data = simulated.data
    escalating = data[data["phase"] == "escalation"]
    cohorts = [Cohort(int(g["dose_level"].iloc[0]), len(g), int(g["dlt"].sum()))
               for _, g in escalating.groupby("cohort", sort=True)]
    decision = three_plus_three.decide(cohorts, len(AMASS1.dose_escalation.levels))
    assert decision.action == "stop"
    expansion = data[data["phase"] == "expansion"]
    assert len(expansion) == AMASS1.dose_escalation.expansion_min
    assert set(expansion["dose_level"]) == {decision.mtd}


def test_safety_by_level_has_exact_intervals(simulated):
    report = analyse_escalation(AMASS1, simulated.data)
    rows = {r.label: r for r in report.safety_rows}
    everyone = rows["All patients"]
    assert everyone.n == len(simulated.data)
    assert report.safety_columns[0] == "DLT"
    assert "All-cause death within 90 days" in report.safety_columns
    dlt = everyone.cells[0]
    assert dlt.events == int(simulated.data["dlt"].sum())
    low, high = proportion_confint(dlt.events, dlt.n, method="beta")  # statsmodels' Clopper-Pearson
    assert dlt.interval == pytest.approx((low, high), abs=1e-12)
    levels = [r for r in report.safety_rows if r.label.startswith("Level ")]
    assert sum(r.n for r in levels) == int((simulated.data["phase"] == "escalation").sum())
    assert Proportion(0, 3).text() == "0/3 (0 to 71%)"  # the 97.5% one-sided bound: 1 - 0.025^(1/3)


def test_demo_runs_escalation_expansion_matching_and_the_report(demo_report):
    out, summary = demo_report
    assert summary["escalation"] + summary["expansion"] == summary["patients"]
    assert summary["matched"] >= 0.8 * summary["patients"]
    results = json.loads((out / "results.json").read_text())
    assert [m["endpoint"] for m in results["matched_outcomes"]] == AMASS1.analysis_plan.matched_controls.outcomes
    volume = results["matched_outcomes"][0]["results"][0]
    assert volume["measure"] == "ratio of geometric means" and volume["estimate"] < 1  # true ratio 0.7
    for name in ("escalation_history.png", "love_plot.png", "report.pdf", "registry_controls.csv"):
        assert (out / name).stat().st_size > 1000, name
    text = " ".join(pdf_pages(out))
    for words in ("Safety by dose level", "Escalation history", "Balance of the matching variables",
                  "matched registry controls", "occlusion site: MCA M1", "IPW (ATT), sensitivity"):
        assert words in text, words
    assert "occlusion_site[" not in text and "infarct_volume_ml" not in text  # labels, not codes


def test_matching_in_the_report_is_the_plans(simulated):
    report = analyse_escalation(AMASS1, simulated.data, simulated.controls)
    plan = AMASS1.analysis_plan.matched_controls
    assert report.matching is not None and report.matching.spec.caliper == plan.caliper
    assert report.matching.spec.covariates == tuple(plan.covariates)
    sets = report.matching.matched_sets
    assert all(len(controls) == plan.ratio for controls in sets.values())
    # the same matching again from the frame the report built gives the same sets
    again = match(report.matching.data.drop(columns=["propensity", "distance", "matched", "subclass", "weights"]),
                  "treated", MatchingSpec(tuple(plan.covariates), ratio=plan.ratio, caliper=plan.caliper))
    assert again.matched_sets == sets


def test_the_platform_export_and_a_registry_file_make_the_report(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}")
    db.migrate()
    demo_data.load(db)
    with db.read() as session:
        archive = export.csv_zip(session, Actor("dsmb", "dsmb", frozenset({"S1"})), "amass-1")
    db.dispose()
    (tmp_path / "export.zip").write_bytes(archive)
    made = runner.invoke(app, ["registry", "synthesize", "--n", "300", "--seed", "2",
                               "--out", str(tmp_path / "registry.csv")])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["analyze", "amass-1", str(tmp_path / "export.zip"), "--controls",
                                 str(tmp_path / "registry.csv"), "--out", str(tmp_path / "report"), "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert sum(1 for c in results["history"] if c["phase"] == "escalation") == 9
    assert results["mtd"] == 7 and results["matching"]["n_treated"] > 27
    rows = {r["row"]: r for r in results["safety"]}
    assert rows["Dose escalation, all levels"]["DLT"]["events"] == 2  # the demo's two infusion reactions


def test_bad_input_is_named(simulated, tmp_path):
    with pytest.raises(Exception, match="no column 'dose_level'"):
        analyse_escalation(AMASS1, simulated.data.drop(columns="dose_level"))
    with pytest.raises(Exception, match="registry controls have no column 'aspects'"):
        analyse_escalation(AMASS1, simulated.data, simulated.controls.drop(columns="aspects"))
    simulated.data.to_csv(tmp_path / "data.csv", index=False)
    missing = runner.invoke(app, ["analyze", "amass-1", str(tmp_path / "data.csv"), "--controls",
                                  str(tmp_path / "nothing.csv"), "--out", str(tmp_path / "r")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    ratio = runner.invoke(app, ["demo", "amass-1", "--out", str(tmp_path / "d"), "--volume-ratio", "0"])
    assert ratio.exit_code == 2 and "--volume-ratio" in ratio.output
    randomized = runner.invoke(app, ["analyze", "amass-2", str(tmp_path / "data.csv"), "--controls",
                                     str(tmp_path / "data.csv"), "--out", str(tmp_path / "r")])
    assert randomized.exit_code == 2 and "single-arm" in randomized.output


def test_an_outcome_not_yet_recorded_is_said_not_compared(simulated):
    data = simulated.data.assign(mrs_90d=pd.NA, death_90d=np.nan)
    report = analyse_escalation(AMASS1, data, simulated.controls)
    assert [m.endpoint for m in report.matched] == ["infarct_size_24h", "sich"]
    assert any("not recorded for the trial's patients yet" in n for n in report.notes)
