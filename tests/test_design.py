"""Trial design against rpact: sample sizes, group-sequential boundaries; the batched PO fitter against
statsmodels; simulated power against Whitehead's formula; a Dask cluster gives the same answer."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.miscmodels.ordinal_model import OrderedModel
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.design import groupseq, batched_po_fit, samplesize
from stroketrial.design.power import PowerSettings, simulate_power
from stroketrial.design.seed_sample_sizes import derivation
from stroketrial.design.samplesize import treatment_distribution
from stroketrial.protocol import load_builtin

REFERENCE = Path(__file__).parent / "reference"
RPACT = pd.read_csv(REFERENCE / "rpact_reference.csv").set_index("name")["value"].to_dict()
# Hmisc (posamsize, popower, pomodm: Whitehead's formula) and rpact values made by make_design_reference.R
DESIGN = pd.read_csv(REFERENCE / "design_reference.csv").set_index("name")["value"].to_dict()
RATES_GRID = pd.read_csv(REFERENCE / "rpact_rates_grid.csv")
# rpact getSampleSizeMeans (t-test and normal approximation) and getSampleSizeRates, fixed and group-sequential
# (make_samplesize_reference.R)
SAMPLESIZE = pd.read_csv(REFERENCE / "samplesize_reference.csv")
SAMPLESIZE["normal"] = SAMPLESIZE["normal"].map({True: "TRUE", False: "FALSE"}).fillna("")  # "": rates
EXAMPLE_MRS = [0.05, 0.10, 0.15, 0.20, 0.20, 0.10, 0.20]  # the control mRS distribution of the CLI example
# Hmisc::posamsize's total for EXAMPLE_MRS and common OR 1.5, rounded up to whole patients per arm
EXAMPLE_N = 2 * math.ceil(DESIGN["whitehead_example_n"] / 2)
runner = CliRunner()


# ---- group-sequential boundaries ------------------------------------------------------------------
@pytest.mark.parametrize("looks, alpha, kind, information, expected", [
    # rpact's own test suite (Debian r-cran-rpact: doc/tests/testthat/test-f_design_group_sequential.R.gz):
    # x7a, lines 466-478 (asOF, non-binding futility does not change the efficacy bounds)
    (3, 0.13, "obf", [0.4, 0.75, 1], [2.1280732, 1.4368565, 1.2468994]),
    # x7a, lines 512-524
    (4, 0.13, "obf", [0.4, 0.75, 0.85, 1], [2.1280732, 1.4368565, 1.422873, 1.2970881]),
    # x6a, lines 388-401 (asP, non-binding)
    (3, 0.13, "pocock", [0.35, 0.7, 1], [1.5446617, 1.4828682, 1.4620058]),
    # x6b, lines 431-435 (asP, default alpha 0.025, the last look at information 0.7)
    (2, 0.025, "pocock", [0.4, 0.7], [2.223875, 2.3050796]),
])
def test_boundaries_match_rpacts_test_suite(looks, alpha, kind, information, expected):
    b = groupseq.boundaries(looks, alpha, 1, kind, information)
    assert b.z == pytest.approx(expected, abs=1e-5)


def test_boundaries_and_characteristics_match_rpact():
    b = groupseq.boundaries(3, 0.025, 1, "obf")
    assert b.z == pytest.approx([RPACT[f"asof3_z{k}"] for k in (1, 2, 3)], abs=1e-5)
    info = groupseq.inflation(b, 0.8)
    assert info["inflation_factor"] == pytest.approx(RPACT["asof3_inflation"], abs=1e-5)
    assert info["expected_fraction_h0"] == pytest.approx(RPACT["asof3_en_h0"], abs=1e-5)
    assert info["expected_fraction_h1"] == pytest.approx(RPACT["asof3_en_h1"], abs=1e-5)
    # rpact: getDesignGroupSequential(kMax = 3, alpha = 0.05, sided = 2, typeOfDesign = "asOF")
    assert groupseq.boundaries(3, 0.05, 2, "obf").z == pytest.approx([3.710303, 2.511427, 1.993047], abs=1e-5)
    two = groupseq.boundaries(4, 0.05, 2, "pocock")
    assert two.z == pytest.approx([RPACT[f"asp4two_z{k}"] for k in (1, 2, 3, 4)], abs=1e-5)
    assert groupseq.inflation(two, 0.9)["inflation_factor"] == pytest.approx(RPACT["asp4two_inflation"], abs=1e-5)


def test_cumulative_alpha_is_the_spending_function_and_futility_is_non_binding():
    b = groupseq.boundaries(3, 0.025, 1, "pocock", futility=[0.0, 0.5])
    t = np.array([1, 2, 3]) / 3
    assert b.cumulative_alpha == pytest.approx(0.025 * np.log(1 + (np.e - 1) * t))
    assert b.z == pytest.approx(groupseq.boundaries(3, 0.025, 1, "pocock").z)
    info = groupseq.inflation(b, 0.8)
    assert info["expected_fraction_h0"] < groupseq.inflation(groupseq.boundaries(3, 0.025, 1, "pocock"), 0.8)[
        "expected_fraction_h0"]


# ---- sample size ---------------------------------------------------------------------------------------
def test_two_proportions_match_rpact():
    r = samplesize.two_proportions(0.30, 0.45)
    assert r.n_per_arm == {"treatment": math.ceil(RPACT["rates_n1"]), "control": math.ceil(RPACT["rates_n2"])}
    r2 = samplesize.two_proportions(0.30, 0.45, ratio=2)
    assert r2.n_per_arm == {"treatment": math.ceil(RPACT["rates_r2_n1"]), "control": math.ceil(RPACT["rates_r2_n2"])}
    assert samplesize.continuous(0.5, 1.2, power=0.9).n_total == 2 * math.ceil(RPACT["means_n"] / 2)


@pytest.mark.parametrize("row", RATES_GRID.to_dict("records"), ids=lambda r: f"{r['pi2']}-{r['pi1']}-r{r['ratio']}")
def test_two_proportions_match_rpact_over_a_grid(row):
    # rpact getSampleSizeRates (make_design_reference.R): one- and two-sided, alpha 0.01-0.05, power 0.8-0.9,
    # allocation 1:2 to 3:1; each arm is rpact's unrounded n rounded up
    r = samplesize.two_proportions(row["pi2"], row["pi1"], alpha=row["alpha"], power=row["power"],
                                   ratio=row["ratio"], sided=int(row["sided"]))
    assert r.n_per_arm == {"treatment": math.ceil(row["n1"] - 1e-9), "control": math.ceil(row["n2"] - 1e-9)}


def _rpact_case(row: dict) -> tuple[samplesize.SampleSize, samplesize.SampleSize]:
    """(the fixed design, its group-sequential maximum) for a row of samplesize_reference.csv."""
    if row["endpoint"] == "means":
        fixed = samplesize.continuous(row["delta"], row["sd"], row["alpha"], row["power"], row["ratio"],
                                      int(row["sided"]), normal_approximation=row["normal"] == "TRUE")
    else:
        fixed = samplesize.two_proportions(row["pi2"], row["pi1"], row["alpha"], row["power"], row["ratio"],
                                           int(row["sided"]))
    if row["looks"] == 1:
        return fixed, fixed
    b = groupseq.boundaries(int(row["looks"]), row["alpha"], int(row["sided"]), row["spending"])
    return fixed, samplesize.group_sequential_max(fixed, groupseq.inflation(b, row["power"])["inflation_factor"])


@pytest.mark.parametrize("row", SAMPLESIZE.to_dict("records"),
                         ids=lambda r: f"{r['id']}-{ {'TRUE': 'normal', 'FALSE': 't'}.get(r['normal'], 'rates')}")
def test_fixed_and_group_sequential_sample_sizes_match_rpact_per_arm(row):
    """rpact's nFixed and maxNumberOfSubjects1/2 (= nFixed x inflation factor x r/(1+r), 1/(1+r)): each arm
    rounded up, then added. The t-test's n is rpact's root to its tolerance of 1e-4 per arm."""
    fixed, maximum = _rpact_case(row)
    t_test = row["normal"] == "FALSE"
    assert sum(fixed.unrounded.values()) == pytest.approx(float(row["n_fixed"]), abs=2e-3 if t_test else 1e-7)
    for arm in ("treatment", "control"):
        assert maximum.unrounded[arm] == pytest.approx(float(row[f"n_max_{arm}"]), abs=2e-3, rel=1e-6)
        assert maximum.n_per_arm[arm] == math.ceil(float(row[f"n_max_{arm}"]) - 1e-9), arm
    assert maximum.n_total == row["n_max_rounded"]


def test_t_test_sample_size_has_the_power_asked_for():
    """At the unrounded n the two-sample t-test's power (noncentral t) is the power asked for; the normal
    approximation's n is smaller."""
    from scipy import stats

    r = samplesize.continuous(10, 30, alpha=0.05, power=0.9, ratio=2, normal_approximation=False)
    n_c = r.unrounded["control"]
    df, ncp = 3 * n_c - 2, 10 / (30 * math.sqrt(1 / n_c + 1 / (2 * n_c)))
    assert stats.nct.sf(stats.t.ppf(0.975, df), df, ncp) == pytest.approx(0.9, abs=1e-9)
    assert samplesize.continuous(10, 30, alpha=0.05, power=0.9, ratio=2).unrounded["control"] < n_c
    assert "t-test" in r.steps[1] and r.inputs["normal_approximation"] is False


def test_group_sequential_maximum_rounds_each_arm_then_inflates_for_dropout():
    fixed = samplesize.continuous(0.5, 1.2, dropout=0.1, non_adherence=0.05)
    maximum = samplesize.group_sequential_max(fixed, 1.0127948)
    per_arm = math.ceil(fixed.unrounded["control"] * 1.0127948)  # 91.58 -> 92
    inflated = math.ceil(math.ceil(per_arm * 1.05 - 1e-9) / 0.9 - 1e-9)
    assert maximum.n_per_arm == {"treatment": inflated, "control": inflated} and maximum.n_total == 2 * inflated
    assert maximum.steps[0].startswith("group-sequential maximum") and "dropout 0.1" in maximum.steps[-1]


def test_continuity_correction_and_inflation_steps():
    plain = samplesize.two_proportions(0.30, 0.45)
    corrected = samplesize.two_proportions(0.30, 0.45, continuity=True)
    n = 162.3343821
    expected = n / 4 * (1 + math.sqrt(1 + 4 / (n * 0.15))) ** 2  # Fleiss, Tytun and Ury, r = 1
    assert corrected.n_per_arm["control"] == math.ceil(expected) > plain.n_per_arm["control"]
    inflated = samplesize.two_proportions(0.30, 0.45, dropout=0.05)
    assert inflated.n_per_arm["control"] == math.ceil(163 / 0.95) and "dropout 0.05" in inflated.steps[-1]
    # non-adherence as IMPACT-LVO's registry inflates for it (seed 002): n x (1 + r), not n / (1 - r)
    adherent = samplesize.two_proportions(0.30, 0.45, non_adherence=0.2)
    assert adherent.n_per_arm["control"] == math.ceil(163 * 1.2) and "x (1 + 0.2)" in adherent.steps[-1]


def test_whitehead_sample_size_matches_hmisc():
    # Hmisc::pomodm (the shifted distribution), posamsize (Whitehead's N) and popower, from
    # make_design_reference.R: computed by R, not by this test
    shifted = treatment_distribution(np.array(EXAMPLE_MRS), 1.5)
    assert shifted == pytest.approx([DESIGN[f"whitehead_example_treated_{k}"] for k in range(7)], abs=1e-9)
    r = samplesize.ordinal_shift(EXAMPLE_MRS, 1.5)
    half = math.ceil(DESIGN["whitehead_example_n"] / 2)
    assert r.n_per_arm == {"treatment": half, "control": half} and r.n_total == EXAMPLE_N
    n90 = DESIGN["whitehead_example_n_power90"]
    assert samplesize.ordinal_shift(EXAMPLE_MRS, 1.5, power=0.9).n_total == 2 * math.ceil(n90 / 2)
    assert DESIGN["whitehead_example_power_at_590"] == pytest.approx(0.80, abs=0.002)  # Hmisc::popower at that n


def test_each_trials_stated_sample_size_and_what_it_implies():
    # IMPACT-LVO (seed 002, NCT07141303): "A sample size of n = 1010 patients (n=505 per group) ... approximate
    # 5% non-adherence rate ... we planned to enrol n=1060 patients (n=530 per group)"
    impact = derivation(load_builtin("impact-lvo"))
    assert impact["stated_total"] == 1060 and set(impact["stated_per_arm"].values()) == {530}
    assert impact["reproduced"] is True and "505 x (1 + 0.05) = 530.25" in " ".join(impact["steps"])
    # the common OR that 1010 evaluable patients detect (Hmisc::posamsize, solved for the OR in R); the
    # stroketrial figure is any OR that needs 1010 after rounding up per arm, so it may lie up to 0.002 above
    implied = impact["implied"][0]
    for power in (80, 90):
        assert implied[f"common_or_power_{power}"] == pytest.approx(DESIGN[f"impact_lvo_or_power_{power}"], abs=2e-3)
    # AMASS-2 (seed 001, NCT07365475): "A total of 306 patients ... randomly assigned in a 1:1 ratio"; ANGEL-RESCUE
    # (seed 004, NCT07026344): "312 participants in 2 patient groups". Neither states a control rate, effect,
    # alpha or power: the implied effect rests on a labelled assumption, checked here against rpact.
    for trial, total, key in (("amass-2", 306, "amass_2"), ("angel-rescue", 312, "angel_rescue")):
        data = derivation(load_builtin(trial))
        assert data["stated_total"] == total and set(data["stated_per_arm"].values()) == {total // 2}
        assert data["reproduced"] is None and "alpha and power" in data["missing_assumptions"]
        implied = data["implied"][0]
        assert implied["assumption"].endswith("Not stated by the registry.")
        for power in (80, 90):
            assert implied[f"p_treatment_power_{power}"] == pytest.approx(
                DESIGN[f"{key}_p_treatment_power_{power}"], abs=2e-3), (trial, power)


# ---- the batched proportional-odds fitter ------------------------------------------------------------------
def test_batched_fits_equal_statsmodels():
    rng = np.random.default_rng(5)
    trials, n = 30, 300
    X = np.stack([rng.integers(0, 2, (trials, n)).astype(float), rng.normal(0, 10, (trials, n)),
                  rng.normal(0, 5, (trials, n))], axis=2)
    eta = X @ np.array([-0.4, 0.03, 0.08])
    cuts = np.array([-2.2, -1.2, -0.4, 0.3, 1.1, 1.6])
    y = (rng.random((trials, n))[..., None] > 1 / (1 + np.exp(-(cuts - eta[..., None])))).sum(axis=-1)
    batch = batched_po_fit.fit(y, X, 7)
    assert batch.converged.all()
    warnings.simplefilter("ignore")
    for t in range(5):
        ref = OrderedModel(pd.Series(y[t]), pd.DataFrame(X[t]), distr="logit").fit(
            method="newton", disp=False, maxiter=200)
        assert batch.beta[t] == pytest.approx(ref.params.to_numpy()[:3], abs=1e-6)
        assert batch.se[t] == pytest.approx(ref.bse.to_numpy()[:3], abs=1e-5)
        assert batch.loglik[t] == pytest.approx(ref.llf, abs=1e-6)


# ---- simulated power -------------------------------------------------------------------------------------
def test_simulated_power_agrees_with_whitehead_and_type_one_error_holds():
    protocol = load_builtin("angel-rescue")
    n = samplesize.ordinal_shift([0.10, 0.14, 0.16, 0.17, 0.15, 0.08, 0.20], 1.8).n_total
    # No covariate effects or dropout here, so the simulated trial is the one Whitehead's formula describes.
    settings = PowerSettings("angel-rescue", n, 1500, 7, 1.8, adjust=(), dropout=0.0)
    from stroketrial.design import power as power_module
    saved = dict(power_module.COVARIATE_EFFECTS)
    power_module.COVARIATE_EFFECTS.update({k: (0.0, c) for k, (_, c) in saved.items()})
    try:
        result = simulate_power(protocol, settings)
        null = simulate_power(protocol, PowerSettings("angel-rescue", n, 1500, 8, 1.0, adjust=(), dropout=0.0))
    finally:
        power_module.COVARIATE_EFFECTS.update(saved)
    assert abs(result.power - 0.80) < 4 * 0.0103 + 0.01
    assert abs(null.power - 0.025) < 4 * np.sqrt(0.025 * 0.975 / 1500)  # one direction of a two-sided 0.05 test


def test_the_same_seed_gives_the_same_power_in_chunks_and_on_a_dask_cluster():
    protocol = load_builtin("amass-2")
    settings = PowerSettings("amass-2", 306, 300, 11, 1.5, chunk=100)
    local = simulate_power(protocol, settings)
    again = simulate_power(protocol, settings)
    assert local.power == again.power and local.estimates == again.estimates
    distributed = simulate_power(protocol, settings, workers=2)
    assert distributed.power == local.power and distributed.estimates == local.estimates


def test_design_cli_json():
    data = json.loads(runner.invoke(app, ["design", "boundaries", "--looks", "3", "--alpha", "0.025", "--sided", "1",
                                          "--spending", "obf", "--json"]).stdout)
    assert len(data["z"]) == 3 and len(data["nominal_p"]) == 3 and data["cumulative_alpha"][-1] == pytest.approx(0.025)
    data = json.loads(runner.invoke(app, ["design", "samplesize", "binary", "--p-control", "0.30", "--p-treatment",
                                          "0.45", "--dropout", "0.05", "--json"]).stdout)
    per_arm = math.ceil(math.ceil(RPACT["rates_n1"]) / 0.95)  # rpact's n per arm, rounded up, then / (1 - 0.05)
    assert data["n_per_arm"] == {"treatment": per_arm, "control": per_arm} and data["n_total"] == 2 * per_arm
    data = json.loads(runner.invoke(app, ["design", "samplesize", "ordinal", "--control-mrs",
                                          "0.05,0.10,0.15,0.20,0.20,0.10,0.20", "--common-or", "1.5",
                                          "--json"]).stdout)
    assert data["n_total"] == EXAMPLE_N  # Hmisc::posamsize (make_design_reference.R)
    data = json.loads(runner.invoke(app, ["design", "samplesize", "continuous", "--delta", "0.5", "--sd", "1.2",
                                          "--power", "0.9", "--json"]).stdout)
    assert data["n_total"] == 2 * math.ceil(RPACT["means_n"] / 2)  # rpact getSampleSizeMeans
    data = json.loads(runner.invoke(app, ["design", "derivation", "impact-lvo", "--json"]).stdout)
    # IMPACT-LVO (seed 002): "we planned to enrol n=1060 patients (n=530 per group)"
    assert data["stated_total"] == 1060 and data["reproduced"] is True


def test_design_power_dropout_zero_means_zero():
    def power(*extra):
        result = runner.invoke(app, ["design", "power", "amass-2", "--trials", "60", "--seed", "4", "--json",
                                     *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert power("--dropout", "0")["settings"]["dropout"] == 0.0
    assert power("--dropout", "0.2")["settings"]["dropout"] == 0.2
    assert power()["settings"]["dropout"] == 0.05  # the default when --dropout is not given
    direct = simulate_power(load_builtin("amass-2"), PowerSettings("amass-2", 306, 60, 4, 1.5, endpoint="binary",
                                                                   dropout=0.0))
    assert power("--dropout", "0")["power"] == direct.power  # the CLI ran the trial without dropout


def test_design_power_simulates_the_primary_endpoint_the_plan_declares():
    """AMASS-2's primary endpoint is mRS 0-2 (binary); IMPACT-LVO's is the mRS shift; ISIS-HERMES's is neither."""
    def settings(trial, *extra):
        result = runner.invoke(app, ["design", "power", trial, "--trials", "20", "--seed", "2", "--json", *extra])
        return result.exit_code, (json.loads(result.stdout)["settings"] if result.exit_code == 0 else result.output)

    code, amass2 = settings("amass-2")
    assert code == 0 and (amass2["endpoint"], amass2["mrs_at_most"]) == ("binary", 2)
    code, impact = settings("impact-lvo")
    assert code == 0 and impact["endpoint"] == "ordinal"
    code, forced = settings("amass-2", "--endpoint", "ordinal")
    assert code == 0 and forced["endpoint"] == "ordinal"
    code, message = settings("isis-hermes")
    assert code == 2 and "is not an mRS shift or an mRS cut" in message


@pytest.mark.parametrize("args, message", [
    (("design", "samplesize", "binary", "--p-control", "0.3", "--p-treatment", "0.3"), "no difference"),
    (("design", "samplesize", "binary", "--p-control", "1.3", "--p-treatment", "0.3"), "between 0 and 1"),
    (("design", "samplesize", "ordinal", "--control-mrs", "0.5,0.2"), "summing to 1"),
    (("design", "samplesize", "ordinal", "--control-mrs", "0.5,0.5", "--common-or", "1"), "not 1"),
    (("design", "samplesize", "weird"), "No such command 'weird'"),
    (("design", "samplesize", "binary", "--p-control", "0.3"), "Missing option '--p-treatment'"),
    (("design", "samplesize", "ordinal", "--control-mrs", "0.5,0.5", "--looks", "1"), "2 or more looks"),
    (("design", "boundaries", "--looks", "3", "--information", "0.5,0.4,1"), "increasing fractions"),
    (("design", "boundaries", "--spending", "hp"), "is not obf or pocock"),
    (("design", "power", "amass-1"), "not randomized"),
    (("design", "derivation", "amass-9"), "unknown trial"),
])
def test_bad_design_input_exits_2(args, message):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_group_sequential_sample_size_for_an_ordinal_endpoint():
    data = json.loads(runner.invoke(app, ["design", "samplesize", "ordinal", "--control-mrs",
                                          "0.05,0.10,0.15,0.20,0.20,0.10,0.20", "--common-or", "1.5", "--looks", "3",
                                          "--spending", "obf", "--json"]).stdout)
    gs = data["group_sequential"]
    half = math.ceil(DESIGN["whitehead_example_n"] / 2 * gs["inflation_factor"])  # each arm rounded up
    assert gs["n_max"] == 2 * half and gs["n_max_per_arm"] == {"treatment": half, "control": half}
    assert gs["expected_n_h1"] < EXAMPLE_N < gs["n_max"]
    assert gs["z"] == pytest.approx([3.710303, 2.511427, 1.993047], abs=1e-5)


def _gs_row(case_id: str, normal: str) -> dict:
    return SAMPLESIZE[(SAMPLESIZE["id"] == case_id) & (SAMPLESIZE["normal"] == normal)].iloc[0].to_dict()


def test_group_sequential_maximum_on_the_command_line_is_rounded_per_arm():
    """1:1, delta 0.5, sd 1.2, 3 looks (O'Brien-Fleming type): rpact's maximum is 183.15, 91.58 per arm: 92 + 92
    = 184 (rounding the fixed total 182 x 1.0128 = 184.3 gave an odd 185)."""
    def run(*args, looks="3"):
        result = runner.invoke(app, ["design", "samplesize", *args, "--looks", looks, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["group_sequential"]

    normal = run("continuous", "--delta", "0.5", "--sd", "1.2")
    assert normal["n_max"] == _gs_row("G1", "TRUE")["n_max_rounded"] == 184
    assert normal["n_max_per_arm"] == {"treatment": 92, "control": 92}
    assert run("continuous", "--delta", "0.5", "--sd", "1.2", "--t")["n_max"] == _gs_row("G1", "FALSE")[
        "n_max_rounded"]
    unequal = run("continuous", "--delta", "10", "--sd", "30", "--ratio", "2", "--power", "0.9", "--spending",
                  "pocock", looks="4")
    row = _gs_row("G2", "TRUE")
    assert unequal["n_max_per_arm"] == {"treatment": math.ceil(float(row["n_max_treatment"])),
                                        "control": math.ceil(float(row["n_max_control"]))}
    assert run("binary", "--p-control", "0.30", "--p-treatment", "0.45")["n_max"] == _gs_row("R1", "")[
        "n_max_rounded"]


def test_continuous_t_option_on_the_command_line():
    def n_total(*extra):
        result = runner.invoke(app, ["design", "samplesize", "continuous", "--delta", "0.5", "--sd", "1.2", "--json",
                                     *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    t_row = SAMPLESIZE[(SAMPLESIZE["id"] == "M1") & (SAMPLESIZE["normal"] == "FALSE")].iloc[0]
    assert n_total("--t")["n_total"] == t_row["n_max_rounded"] == 184  # rpact's default, the t-test
    assert n_total("--normal")["n_total"] == n_total()["n_total"] == 182  # the default: the normal approximation
    assert n_total("--t")["inputs"]["normal_approximation"] is False
