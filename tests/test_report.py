"""The report: `stroketrial demo` writes every file, `stroketrial analyze` reads a CSV or the platform export."""

from __future__ import annotations

import html as html_lib
import io
import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel
from typer.testing import CliRunner

from stroketrial.analysis import ordinal
from stroketrial.analysis.result import Result, format_p
from stroketrial.cli import app
from stroketrial.protocol import resolve
from stroketrial.report.figures import consort, forest, grotta_bars, save
from stroketrial.report.tables import safety_table, table1
from stroketrial.service import demo as demo_data
from stroketrial.service import export
from stroketrial.service.accounts import Actor
from stroketrial.store import Database

from .test_report_document import pdf_pages

runner = CliRunner()
REF = Path(__file__).parent / "reference"
R = pd.read_csv(REF / "r_reference.csv").set_index("name")["value"].to_dict()  # make_reference.R (MASS, stats)
Z95 = 1.959963985
ARMS = {arm.id: arm.name for arm in resolve("amass-2").arms}  # the report names the arms as the protocol does


def result_rows(report_html: str) -> dict[str, dict[str, str]]:
    """The rows of the report's results tables, by the analysis' name in results.json, as printed."""
    rows = {}
    for result, *cells in re.findall(r'<tr data-result="([^"]*)"><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>'
                                     r"<td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", report_html):
        shown, measure, estimate, ci, p, n, _method = (html_lib.unescape(c) for c in cells)
        rows[html_lib.unescape(result)] = {"shown": shown, "measure": measure, "estimate": estimate, "ci": ci,
                                           "p": p, "n": n}
    return rows


def svg_text(path: Path) -> list[str]:
    """Every line of text in a figure (matplotlib writes SVG text as text: svg.fonttype none)."""
    return [html_lib.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())]


def common_or(data: pd.DataFrame, treatment: str, adjust: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """The common OR for a lower mRS with its Wald interval, fitted here by statsmodels (complete cases)."""
    complete = data.dropna(subset=["mrs_90d", *adjust])
    exog = pd.concat([(complete["arm"] == treatment).astype(float).rename("treated"),
                      complete[list(adjust)].astype(float)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = OrderedModel(complete["mrs_90d"].astype(int), exog, distr="logit").fit(method="bfgs", disp=False,
                                                                                       maxiter=2000)
    beta, se = fit.params["treated"], fit.bse["treated"]  # on P(mRS > j): a better mRS is -beta
    return float(np.exp(-beta)), float(np.exp(-beta - Z95 * se)), float(np.exp(-beta + Z95 * se))


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
    text = html_lib.unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))  # the page's text, tags removed
    for heading in ("Flow of patients (CONSORT)", "Table 1. Baseline characteristics", "Functional independence",
                    "ordinal shift (mRS), adjusted", "win odds", "Symptomatic intracranial haemorrhage", "Subgroups",
                    "Safety", "Methods"):
        assert heading in text, heading
    assert "data:image/png;base64," in html and "<script" not in html  # self-contained, nothing to fetch
    results = json.loads((out / "results.json").read_text())
    assert summary["truth"]["common_or"] == 1.5
    # The numbers in the report are those of the dataset it wrote: n per arm, CONSORT, the common OR.
    data = pd.read_csv(out / "dataset.csv")
    per_arm = data["arm"].value_counts()
    assert results["n"] == len(data) == 160
    assert all(f"{ARMS[arm]} (n={per_arm[arm]})" in html for arm in ("albumin", "control"))
    flow = svg_text(out / "consort.svg")
    assert f"Randomized (n = {len(data)})" in flow
    for arm in ("albumin", "control"):
        at = flow.index(f"Allocated to {ARMS[arm]}")
        assert flow[at + 1] == f"(n = {per_arm[arm]})"
        missing = int(data.loc[data["arm"] == arm, "mrs_90d"].isna().sum())
        assert f"primary outcome missing: {missing}" in flow[at:at + 8]
        assert f"n = {per_arm[arm] - missing}" in flow[at:at + 8]
    estimate, low, high = common_or(data, "albumin")
    unadjusted = result_rows(html)["ordinal shift (mRS), unadjusted"]
    assert unadjusted["estimate"] == f"{estimate:#.3g}"
    assert unadjusted["n"] == str(int(data["mrs_90d"].notna().sum()))
    assert f"{estimate:.2f} ({low:.2f}-{high:.2f})" in svg_text(out / "forest_subgroups.svg")  # Overall
    # The interval printed beside it is the profile-likelihood one stroketrial.analysis computes from the same
    # data, whose model is the one fitted above (the same Wald interval).
    fit = ordinal.proportional_odds(data, "mrs_90d", "arm", "albumin", "control")
    assert fit.details["wald_ci"] == pytest.approx([low, high], rel=1e-4)
    assert unadjusted["ci"] == f"{fit.ci_low:#.3g} to {fit.ci_high:#.3g}"
    assert unadjusted["p"] == format_p(fit.p_value)
    # report.pdf prints the same row: name, measure, estimate, 95% CI, p and n, cell by cell
    assert (f"ordinal shift (mRS), unadjusted common odds ratio {unadjusted['estimate']} {unadjusted['ci']} "
            f"{unadjusted['p']} {unadjusted['n']} ") in " ".join(pdf_pages(out))
    # The Grotta bars: n with a 90-day mRS per arm, and each segment's share of it in percent
    bars = svg_text(out / "grotta_bars.svg")
    expected = []
    for arm in ("albumin", "control"):
        mrs = data.loc[data["arm"] == arm, "mrs_90d"].dropna().astype(int)
        assert f"(n={len(mrs)})" in bars
        share = 100 * np.bincount(mrs, minlength=7) / len(mrs)
        expected += [f"{width:.0f}" for width in share if width >= 3.5]
    last_arm = f"(n={int(data.loc[data['arm'] == 'control', 'mrs_90d'].notna().sum())})"
    assert bars[bars.index(last_arm) + 1:bars.index("Modified Rankin Scale at 90 days")] == expected


@pytest.fixture(scope="module")
def reference_report(tmp_path_factory):
    """The full report of the committed dataset that tests/reference/make_reference.R analysed with R."""
    out = tmp_path_factory.mktemp("reference")
    result = runner.invoke(app, ["analyze", "amass-2", str(REF / "amass2_trial.csv"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_the_report_prints_what_r_computes_from_the_same_dataset(reference_report):
    out = reference_report
    rows = result_rows((out / "report.html").read_text())
    # MASS::polr, profile-likelihood interval; polr's beta is for a worse mRS, the report's OR for a better one
    for name, key in (("ordinal shift (mRS), unadjusted", "polr"), ("ordinal shift (mRS), adjusted", "polr_adj")):
        assert rows[name]["estimate"] == f"{np.exp(-R[f'{key}_beta']):#.3g}", name
        assert rows[name]["ci"] == (f"{np.exp(-R[f'{key}_profile_beta_high']):#.3g} to "
                                    f"{np.exp(-R[f'{key}_profile_beta_low']):#.3g}"), name
    # fisher.test on mRS 0-2: the conditional MLE odds ratio, its exact interval and p
    exact = rows["mrs_90d_0_2: odds ratio (exact)"]
    assert (exact["estimate"], exact["ci"], exact["p"]) == (
        f"{R['fisher_or']:#.3g}", f"{R['fisher_or_low']:#.3g} to {R['fisher_or_high']:#.3g}", f"{R['fisher_p']:.3f}")
    assert rows["Wilcoxon-Mann-Whitney"]["p"] == f"{R['wilcox_p']:.3f}"  # wilcox.test, continuity corrected
    assert rows["infarct_volume_ml: log-scale ANCOVA"]["estimate"] == f"{np.exp(R['lm_beta']):#.3g}"  # lm
    # results.json carries the same results unrounded
    results = {r["name"]: r for s in json.loads((out / "results.json").read_text())["sections"]
               for r in s["results"]}
    assert results["ordinal shift (mRS), unadjusted"]["estimate"] == pytest.approx(np.exp(-R["polr_beta"]), abs=1e-4)
    assert results["mrs_90d_0_2: odds ratio (exact)"]["ci_high"] == pytest.approx(R["fisher_or_high"], abs=1e-4)
    # the forest plot's overall line: polr's Wald interval (its standard error from R)
    overall = [np.exp(-R["polr_beta"] + k * Z95 * R["polr_se"]) for k in (0, -1, 1)]
    forest_text = svg_text(out / "forest_subgroups.svg")
    assert forest_text[forest_text.index("Overall") + 1:].count("{:.2f} ({:.2f}-{:.2f})".format(*overall)) == 1


def test_table1_and_consort_count_the_dataset(reference_report):
    out = reference_report
    data = pd.read_csv(REF / "amass2_trial.csv")
    report_html = (out / "report.html").read_text()
    for arm, group in data.groupby("arm"):
        assert f"<th>{ARMS[arm]} (n={len(group)})</th>" in report_html
    bridging = {arm: int(g["bridging_thrombolysis"].sum()) for arm, g in data.groupby("arm")}
    row = re.search(r"<td>bridging intravenous thrombolysis, n \(%\)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>",
                    report_html)
    assert row is not None
    n_arm = data["arm"].value_counts()
    assert row.group(1) == f"{bridging['albumin']} ({100 * bridging['albumin'] / n_arm['albumin']:.1f})"
    assert row.group(2) == f"{bridging['control']} ({100 * bridging['control'] / n_arm['control']:.1f})"
    age = re.search(r"<td>age, years, median \(IQR\)</td>\s*<td>(.*?)</td>", report_html).group(1)
    q1, median, q3 = data.loc[data["arm"] == "albumin", "age"].quantile([0.25, 0.5, 0.75])
    assert age == f"{median:.4g} ({q1:.4g}-{q3:.4g})"
    flow = svg_text(out / "consort.svg")
    assert f"Randomized (n = {len(data)})" in flow and f"Assessed for eligibility (n = {len(data)})" in flow
    for arm in ("albumin", "control"):
        part = data[data["arm"] == arm]
        at = flow.index(f"Allocated to {ARMS[arm]}")
        missing = int(part["mrs_90d"].isna().sum())
        assert flow[at:at + 8] == [
            f"Allocated to {ARMS[arm]}", f"(n = {len(part)})",
            f"received as allocated: {int((part['treated_arm'] == arm).sum())}",
            "Follow-up", f"primary outcome missing: {missing}",
            f"crossed over: {int((part['treated_arm'] != arm).sum())}",
            "Analysed (intention to treat)", f"n = {len(part) - missing}"]


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
    # The report counts the export's randomized patients and describes them from the export's screening form
    archive = zipfile.ZipFile(tmp_path / "unblinded.zip")
    forms = {Path(name).stem: pd.read_csv(io.BytesIO(archive.read(name))) for name in archive.namelist()
             if name.endswith(".csv")}
    randomized = forms["randomization"]
    per_arm = randomized["arm"].value_counts()
    assert set(per_arm.index) == {"albumin", "control"}
    report_html = (tmp_path / "r" / "report.html").read_text()
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["n"] == len(randomized)
    for arm in ("albumin", "control"):
        assert f"<th>{ARMS[arm]} (n={per_arm[arm]})</th>" in report_html
    screened = forms["screening"].merge(randomized[["patient_id", "arm"]], on="patient_id")
    age = re.search(r"<td>age, years, median \(IQR\)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", report_html)
    assert age is not None
    for arm, printed in zip(("albumin", "control"), age.groups(), strict=True):
        q1, median, q3 = screened.loc[screened["arm"] == arm, "age"].quantile([0.25, 0.5, 0.75])
        assert printed == f"{median:.4g} ({q1:.4g}-{q3:.4g})"
    flow = svg_text(tmp_path / "r" / "consort.svg")
    assert f"Randomized (n = {len(randomized)})" in flow
    for arm in ("albumin", "control"):
        assert flow[flow.index(f"Allocated to {ARMS[arm]}") + 1] == f"(n = {per_arm[arm]})"
    # The demo platform holds no 90-day visit yet: nothing is analysed, and each analysis says why
    assert forms["visit_d90"].empty
    assert all(not s["results"] and s["notes"] for s in results["sections"])
    refused = runner.invoke(app, ["analyze", "impact-lvo", str(tmp_path / "blinded.zip"), "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "made by a blinded user" in refused.output


def test_analyze_one_analysis_as_json(demo_report):
    out, _ = demo_report
    data = pd.read_csv(out / "dataset.csv")
    result = runner.invoke(app, ["analyze", "ordinal", str(out / "dataset.csv"), "--outcome", "mrs_90d", "--arm",
                                 "arm", "--treatment", "albumin", "--control", "control", "--adjust",
                                 "age,nihss,aspects", "--json"])
    assert result.exit_code == 0, result.output
    shift = json.loads(result.stdout)
    # the adjusted shift the report printed for the same dataset ...
    report = {r["name"]: r for s in json.loads((out / "results.json").read_text())["sections"] for r in s["results"]}
    keys = ("estimate", "ci_low", "ci_high", "p_value", "n")
    assert [shift[k] for k in keys] == pytest.approx([report["ordinal shift (mRS), adjusted"][k] for k in keys])
    # ... which is the model statsmodels fits here, on the complete cases
    adjust = ("age", "nihss", "aspects")
    estimate, low, high = common_or(data, "albumin", adjust)
    assert shift["estimate"] == pytest.approx(estimate, rel=1e-4)
    assert shift["details"]["wald_ci"] == pytest.approx([low, high], rel=1e-4)
    assert shift["n"] == len(data.dropna(subset=["mrs_90d", *adjust]))
    result = runner.invoke(app, ["analyze", "binary", str(out / "dataset.csv"), "--outcome", "death_90d",
                                 "--treatment", "albumin", "--control", "control", "--measure", "odds_ratio_exact",
                                 "--json"])
    assert result.exit_code == 0, result.output
    exact = json.loads(result.stdout)
    # the conditional MLE odds ratio of death, albumin against control, with its exact interval and Fisher's p
    known = data.dropna(subset=["death_90d"])
    table = [[int(d.sum()), int(len(d) - d.sum())] for d in (known.loc[known["arm"] == a, "death_90d"]
                                                            for a in ("albumin", "control"))]
    reference = stats.contingency.odds_ratio(table, kind="conditional")
    ci = reference.confidence_interval(0.95)
    assert [exact[k] for k in ("estimate", "ci_low", "ci_high", "p_value", "n")] == pytest.approx(
        [reference.statistic, ci.low, ci.high, stats.fisher_exact(table).pvalue, len(known)])


@pytest.mark.parametrize("args, message", [
    (("analyze", "ordinal", "DATA", "--treatment", "albumin", "--control", "control", "--outcome", "mrs90"),
     "no column 'mrs90'"),
    (("analyze", "ordinal", "DATA", "--treatment", "albumin"), "give --treatment and --control"),
    (("analyze", "binary", "DATA", "--treatment", "albumin", "--control", "control", "--outcome", "mrs_90d"),
     "a binary outcome is 0 or 1"),
    (("analyze", "amass-2", "DATA", "--out", "OUT", "--population", "xx"), "population 'xx'"),
    (("analyze", "amass-2", "missing.csv", "--out", "OUT"), "no such file"),
    (("demo", "amass-1", "--out", "OUT", "--controls", "5"), "--controls 5 is not allowed"),
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
    bars = svg_text(paths[1])
    assert {"albumin", "(n=50)", "control", "(n=52)"} <= set(bars)
    # each segment prints its share of the arm: 10/50 = 20%, 12/50 = 24%, ... and 6/52 = 11.5% -> "12"
    segments = bars[bars.index("(n=52)") + 1:bars.index("Modified Rankin Scale at 90 days")]
    assert segments == ["20", "24", "18", "16", "12", "4", "6", "12", "17", "19", "17", "15", "8", "12"]
    data = pd.DataFrame({"arm": ["a", "b"] * 10, "age": range(60, 80), "sex": ["female", "male"] * 10,
                         "death_90d": [0, 1] * 10})
    t1 = table1(data, "arm", ["a", "b"])
    assert list(t1.columns) == ["characteristic", "a (n=10)", "b (n=10)"]
    # arm a: ages 60, 62, ..., 78: median 69, quartiles 64.5 and 73.5 (linear interpolation, as numpy and R type 7)
    assert t1.iloc[0].tolist() == ["age, years, median (IQR)", "69 (64.5-73.5)", "70 (65.5-74.5)"]
    assert t1.set_index("characteristic").loc["    female"].tolist() == ["10 (100.0)", "0 (0.0)"]
    safety = safety_table(data, "arm", ["a", "b"], {"death_90d": "Death"})
    # Fisher's exact test of 0/10 against 10/10: p = 2 / C(20, 10) = 1.1e-5
    assert safety.iloc[0].tolist() == ["Death", "0/10 (0.0%)", "10/10 (100.0%)", "0.000"]
    flow_boxes = {"assessed": 120, "excluded": 11, "incomplete": 4, "excluded_by": {"nihss": 7, "age": 4},
                  "randomized": 100, "arms": ["albumin", "control"],
                  "by_arm": {"albumin": {"allocated": 51, "received": 50, "crossed": 1, "missing": 2, "analysed": 49},
                             "control": {"allocated": 49, "received": 49, "crossed": 0, "missing": 3,
                                         "analysed": 46}}}
    flow = consort(flow_boxes)
    text = svg_text(save(flow, tmp_path / "consort")[1])
    assert text[:6] == ["Assessed for eligibility (n = 120)", "Excluded (n = 20)", "  not meeting criteria: 11",
                        "      nihss: 7", "      age: 4", "  screening data incomplete: 4"]
    assert "  eligible, not randomized: 5" in text and "Randomized (n = 100)" in text
    assert text[text.index("Allocated to control"):][:8] == [
        "Allocated to control", "(n = 49)", "received as allocated: 49", "Follow-up",
        "primary outcome missing: 3", "crossed over: 0", "Analysed (intention to treat)", "n = 46"]
    as_treated = svg_text(save(consort({**flow_boxes, "population": "as treated"}), tmp_path / "at")[1])
    assert "Analysed (as treated)" in as_treated and "Analysed (intention to treat)" not in as_treated
    young = Result("Age: under 70", 1.5, 1.1, 2.05, 0.01, "po", 150, "common odds ratio",
                   {"subgroup": "Age", "interaction_p": 0.04})
    old = Result("Age: 70 or older", 0.8, 0.5, 1.28, 0.35, "po", 140, "common odds ratio",
                 {"subgroup": "Age", "interaction_p": 0.04})
    overall = Result("overall", 1.2, 0.95, 1.52, 0.12, "po", 290, "common odds ratio", {})
    text = svg_text(save(forest([young, old], overall), tmp_path / "forest")[1])
    assert [t for t in text if t.startswith(("Age", "Overall"))] == [
        "Age: under 70  (interaction p = 0.040)", "Age: 70 or older", "Overall"]
    assert [t for t in text if "(" in t and "-" in t and t[0].isdigit()] == [
        "1.50 (1.10-2.05)", "0.80 (0.50-1.28)", "1.20 (0.95-1.52)"]
