"""Trial design against rpact: sample sizes, group-sequential boundaries; the batched PO fitter against
statsmodels; simulated power against Whitehead's formula; a Dask cluster gives the same answer."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.miscmodels.ordinal_model import OrderedModel
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.design import groupseq, pofit, samplesize
from stroketrial.design.power import PowerSettings, simulate_power
from stroketrial.design.protocols import derivation
from stroketrial.protocol import load_builtin

RPACT = pd.read_csv(Path(__file__).parent / "reference" / "rpact_reference.csv").set_index("name")["value"].to_dict()
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
    assert float(re.search(r"control arm n = ([\d.]+)", r.steps[1]).group(1)) == pytest.approx(RPACT["rates_n2"],
                                                                                              abs=0.01)
    assert r.n_total == 2 * math.ceil(RPACT["rates_n1"])
    r2 = samplesize.two_proportions(0.30, 0.45, ratio=2)
    assert r2.n_per_arm == {"treatment": math.ceil(RPACT["rates_r2_n1"]), "control": math.ceil(RPACT["rates_r2_n2"])}
    assert samplesize.continuous(0.5, 1.2, power=0.9).n_total == 2 * math.ceil(RPACT["means_n"] / 2)


def test_continuity_correction_and_inflation_steps():
    plain = samplesize.two_proportions(0.30, 0.45)
    corrected = samplesize.two_proportions(0.30, 0.45, continuity=True)
    n = 162.3343821
    expected = n / 4 * (1 + math.sqrt(1 + 4 / (n * 0.15))) ** 2  # Fleiss, Tytun and Ury, r = 1
    assert corrected.n_per_arm["control"] == math.ceil(expected) > plain.n_per_arm["control"]
    inflated = samplesize.two_proportions(0.30, 0.45, dropout=0.05)
    assert inflated.n_per_arm["control"] == math.ceil(163 / 0.95) and "dropout 0.05" in inflated.steps[-1]


def test_whitehead_formula_by_hand():
    control = [0.05, 0.10, 0.15, 0.20, 0.20, 0.10, 0.20]
    r = samplesize.ordinal_shift(control, 1.5)
    p_c = np.array(control)
    cum = np.cumsum(p_c)[:-1]
    p_t = np.diff(np.concatenate([[0], 1.5 * cum / (1 - cum + 1.5 * cum), [1]]))
    p_bar = (p_c + p_t) / 2
    n = 12 * (1.959963985 + 0.841621234) ** 2 / (math.log(1.5) ** 2 * (1 - np.sum(p_bar ** 3)))
    assert r.n_total == 2 * math.ceil(n / 2)


def test_impact_lvo_1060_is_reproduced_from_its_stated_arithmetic():
    data = derivation(load_builtin("impact-lvo"))
    assert data["reproduced"] is True and "530.25" in " ".join(data["steps"])
    assert data["implied"][0]["common_or_power_80"] > 1.2
    assert derivation(load_builtin("amass-2"))["implied"][0]["p_control"] == 0.40


# ---- the batched proportional-odds fitter ------------------------------------------------------------------
def test_batched_fits_equal_statsmodels():
    rng = np.random.default_rng(5)
    trials, n = 30, 300
    X = np.stack([rng.integers(0, 2, (trials, n)).astype(float), rng.normal(0, 10, (trials, n)),
                  rng.normal(0, 5, (trials, n))], axis=2)
    eta = X @ np.array([-0.4, 0.03, 0.08])
    cuts = np.array([-2.2, -1.2, -0.4, 0.3, 1.1, 1.6])
    y = (rng.random((trials, n))[..., None] > 1 / (1 + np.exp(-(cuts - eta[..., None])))).sum(axis=-1)
    batch = pofit.fit(y, X, 7)
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


# ---- CLI ---------------------------------------------------------------------------------------------------
def test_design_cli_json():
    data = json.loads(runner.invoke(app, ["design", "boundaries", "--looks", "3", "--alpha", "0.025", "--sided", "1",
                                          "--spending", "obf", "--json"]).stdout)
    assert len(data["z"]) == 3 and len(data["nominal_p"]) == 3 and data["cumulative_alpha"][-1] == pytest.approx(0.025)
    data = json.loads(runner.invoke(app, ["design", "samplesize", "binary", "--p-control", "0.30", "--p-treatment",
                                          "0.45", "--dropout", "0.05", "--json"]).stdout)
    assert data["n_total"] == 344 and data["n_per_arm"] == {"treatment": 172, "control": 172} and data["steps"]
    data = json.loads(runner.invoke(app, ["design", "samplesize", "ordinal", "--control-mrs",
                                          "0.05,0.10,0.15,0.20,0.20,0.10,0.20", "--common-or", "1.5",
                                          "--json"]).stdout)
    assert data["n_total"] == 590


@pytest.mark.parametrize("args, message", [
    (("design", "samplesize", "binary", "--p-control", "0.3", "--p-treatment", "0.3"), "no difference"),
    (("design", "samplesize", "binary", "--p-control", "1.3", "--p-treatment", "0.3"), "between 0 and 1"),
    (("design", "samplesize", "ordinal", "--control-mrs", "0.5,0.2"), "summing to 1"),
    (("design", "samplesize", "ordinal", "--control-mrs", "0.5,0.5", "--common-or", "1"), "not 1"),
    (("design", "samplesize", "weird"), "choose binary, ordinal or continuous"),
    (("design", "boundaries", "--looks", "3", "--information", "0.5,0.4,1"), "increasing fractions"),
    (("design", "boundaries", "--spending", "hp"), "is not obf or pocock"),
    (("design", "power", "amass-1"), "not randomized"),
    (("design", "amass-9"), "unknown trial"),
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
    assert gs["n_max"] == math.ceil(590 * gs["inflation_factor"]) and gs["expected_n_h1"] < 590 < gs["n_max"]
    assert gs["z"] == pytest.approx([3.710303, 2.511427, 1.993047], abs=1e-5)
