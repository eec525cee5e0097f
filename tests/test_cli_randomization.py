"""`stroketrial randomization`: compare methods, make concealed lists, run a cohort; exit 2 on bad input."""

import csv
import json

import pytest
from typer.testing import CliRunner

from stroketrial.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("trial", ["amass-2", "impact-lvo", "isis-hermes", "angel-rescue"])
def test_compare_runs_every_method_for_each_randomized_trial(trial):
    result = run("randomization", "compare", trial, "--trials", "40", "--seed", "1", "--patients", "60", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"method", "mean_final_imbalance", "max_final_imbalance", "ratio_reached", "predictability"} <= set(rows[0])
    assert sum(r["protocol_method"] for r in rows) == 1
    methods = [r["method"] for r in rows]
    assert "simple" in methods and any(m.startswith("minimization") for m in methods)
    target = 2 / 3 if trial == "isis-hermes" else 0.5
    assert all(abs(r["ratio_reached"] - target) < 0.1 for r in rows)
    assert all(0.3 < r["predictability"] <= 1 for r in rows)


def test_compare_is_reproducible_and_seed_dependent():
    args = ("randomization", "compare", "amass-2", "--trials", "30", "--patients", "50", "--json")
    first = json.loads(run(*args, "--seed", "7").stdout)
    assert first == json.loads(run(*args, "--seed", "7").stdout)
    assert first != json.loads(run(*args, "--seed", "8").stdout)


def test_compare_ranks_methods_as_the_literature_does():
    rows = {r["method"]: r for r in json.loads(run("randomization", "compare", "amass-2", "--trials", "300",
                                                   "--seed", "1", "--json").stdout)}
    simple = rows["simple"]
    protocol = rows["minimization range p=0.8 (protocol)"]
    deterministic = rows["minimization range p=1"]
    assert protocol["mean_final_imbalance"] < simple["mean_final_imbalance"] / 5
    assert deterministic["mean_final_imbalance"] < protocol["mean_final_imbalance"]
    assert deterministic["predictability"] > protocol["predictability"] > simple["predictability"]
    assert abs(simple["predictability"] - 0.5) < 0.02  # a fair coin cannot be guessed
    assert rows["big stick b=3"]["max_final_imbalance"] <= 3
    assert rows["minimization range p=0.8 mti=3"]["max_final_imbalance"] <= 3


def test_compare_shows_the_naive_two_to_one_drift(tmp_path):
    rows = {r["method"]: r for r in json.loads(run("randomization", "compare", "isis-hermes", "--trials", "4000",
                                                   "--seed", "1", "--json").stdout)}
    assert abs(rows["minimization range p=0.8 (protocol)"]["ratio_reached"] - 2 / 3) < 0.005
    assert rows["minimization range p=0.8 naive ratio weights"]["ratio_reached"] < 2 / 3 - 0.008


def test_compare_table_and_plot(tmp_path):
    figure = tmp_path / "balance.png"
    result = run("randomization", "compare", "angel-rescue", "--trials", "50", "--seed", "2", "--plot", str(figure))
    assert result.exit_code == 0, result.output
    assert "blocks 2,4 by site" in result.stdout and figure.stat().st_size > 20_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (("compare", "amass-1"), "amass-1 is not randomized"),
    (("compare", "amass-3"), "unknown trial 'amass-3'"),
    (("compare", "amass-2", "--trials", "0"), "--trials is 0; allowed: 1 to 1000000"),
    (("compare", "amass-2", "--patients", "1"), "--patients is 1; allowed: 2 to 100000"),
    (("compare", "amass-2", "--plot", "x.gif"), "written as .png, .svg or .pdf"),
    (("list", "amass-2", "--out", "x.csv"), "randomizes by minimization"),
    (("list", "angel-rescue", "--out", "x.csv"), "give each site with --site"),
    (("kits", "amass-2", "--site", "S1", "--out", "x.csv"), "dispenses no blinded kits"),
    (("kits", "impact-lvo", "--site", "S1", "--per-site", "0", "--out", "x.csv"), "--per-site is 0"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = run("randomization", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_list_writes_whole_blocks_for_every_stratum(tmp_path):
    path = tmp_path / "list.csv"
    result = run("randomization", "list", "angel-rescue", "--site", "S1", "--site", "S2", "--per-stratum", "20",
                 "--out", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["strata"] == 4  # 2 sites x anterior/posterior
    rows = list(csv.DictReader(path.read_text().splitlines()))
    strata = {r["stratum"] for r in rows}
    assert strata == {"site=S1|circulation=anterior", "site=S1|circulation=posterior",
                      "site=S2|circulation=anterior", "site=S2|circulation=posterior"}
    for stratum in strata:
        entries = [r for r in rows if r["stratum"] == stratum]
        assert len(entries) >= 20
        arms = [r["arm"] for r in entries]
        assert arms.count("rescue_stenting") == arms.count("continued_thrombectomy")


def test_kits_and_a_packing_list_without_arms(tmp_path):
    kits, packing = tmp_path / "kits.csv", tmp_path / "packing.csv"
    result = run("randomization", "kits", "impact-lvo", "--site", "S1", "--site", "S2", "--per-site", "12",
                 "--out", str(kits), "--packing-list", str(packing))
    assert result.exit_code == 0, result.output
    full = list(csv.DictReader(kits.read_text().splitlines()))
    blinded = list(csv.DictReader(packing.read_text().splitlines()))
    assert len(full) == len(blinded) >= 24
    assert set(blinded[0]) == {"kit_number", "site"}
    assert {r["arm"] for r in full} == {"methylprednisolone", "placebo"}


def test_run_randomizes_a_cohort_and_rebuilds_the_same_state(tmp_path):
    cohort, allocations = tmp_path / "cohort.csv", tmp_path / "allocations.csv"
    synth = run("cohort", "synth", "--n", "2000", "--seed", "3", "--trial", "amass-2", "--out", str(cohort))
    assert synth.exit_code == 0
    result = run("randomization", "run", "amass-2", str(cohort), "--seed", "4", "--limit", "120", "--out",
                 str(allocations), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["randomized"] == 120 and data["state_rebuilt_identical"]
    assert abs(data["arms"]["albumin"] - data["arms"]["control"]) <= 4
    rows = list(csv.DictReader(allocations.read_text().splitlines()))
    assert [int(r["sequence"]) for r in rows] == list(range(1, 121))
    assert len({r["patient_id"] for r in rows}) == 120
