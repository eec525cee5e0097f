"""Issue 16's additions to the ordinal analyses, against R (MASS::polr, ordinal::clm, and base R for the formulas
of packages Debian does not ship).

tests/reference/make_ordinal_extras_reference.R made ordinal_extras_reference.csv and ordinal_weighted_data.csv
from amass2_trial.csv (albumin against control, the 90-day mRS: lower is better); the tests never run R.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stroketrial.analysis import ordinal
from stroketrial.analysis.result import AnalysisInputError

REF = Path(__file__).parent / "reference"
DATA = pd.read_csv(REF / "amass2_trial.csv")
WEIGHTED = pd.read_csv(REF / "ordinal_weighted_data.csv")
R = pd.read_csv(REF / "ordinal_extras_reference.csv").set_index("name")["value"].to_dict()
ARMS = ("arm", "albumin", "control")
ADJUST = ["age", "nihss", "aspects"]


def _check_full(details: dict, prefix: str) -> None:
    """Every coefficient and cut-point, with its standard error, against MASS::polr (same signs: polr's)."""
    coefficients, cutpoints = details["coefficients"], details["cutpoints"]
    assert set(coefficients) == {k[len(prefix) + 6:] for k in R if k.startswith(prefix + "_coef_")}
    for name, value in coefficients.items():
        assert value["estimate"] == pytest.approx(R[f"{prefix}_coef_{name}"], abs=1e-6)
        assert value["se"] == pytest.approx(R[f"{prefix}_se_{name}"], abs=1e-6)
    assert list(cutpoints) == ["0|1", "1|2", "2|3", "3|4", "4|5", "5|6"]
    for label, value in cutpoints.items():
        assert value["estimate"] == pytest.approx(R[f"{prefix}_zeta_{label}"], abs=1e-6)
        assert value["se"] == pytest.approx(R[f"{prefix}_zeta_se_{label}"], abs=1e-6)


@pytest.mark.parametrize("adjust, prefix", [((), "polr"), (ADJUST, "polr_adj")])
def test_proportional_odds_gives_every_coefficient_and_cut_point_of_polr(adjust, prefix):
    r = ordinal.proportional_odds(DATA, "mrs_90d", *ARMS, adjust=adjust, profile=False, full=True)
    _check_full(r.details, prefix)
    assert r.details["coefficients"]["treated"]["estimate"] == pytest.approx(-r.details["log_or"])
    assert r.details["llf"] == pytest.approx(R[f"{prefix}_loglik"], abs=1e-6)
    assert "coefficients" not in ordinal.proportional_odds(DATA, "mrs_90d", *ARMS, profile=False).details


def test_frequency_weights_match_polr_on_counted_and_non_integer_weights():
    # one row per arm and mRS with the number of patients: polr(weights = count), the same fit as patient rows
    counts = WEIGHTED[WEIGHTED["dataset"] == "counts"]
    r = ordinal.proportional_odds(counts, "mrs_90d", *ARMS, weights="weight")
    assert -r.details["log_or"] == pytest.approx(R["counts_beta"], abs=1e-6)
    assert r.details["se_log_or"] == pytest.approx(R["counts_se"], abs=1e-6)
    assert r.details["llf"] == pytest.approx(R["counts_loglik"], abs=1e-6)
    assert r.ci_low == pytest.approx(np.exp(-R["counts_profile_beta_high"]), abs=1e-4)
    assert r.ci_high == pytest.approx(np.exp(-R["counts_profile_beta_low"]), abs=1e-4)
    patients = DATA["mrs_90d"].notna().sum()
    assert r.n == patients and r.details["rows"] == 14 and "frequency weights weight" in r.method
    assert r.details["n_treatment"] + r.details["n_control"] == patients
    # non-integer weights, adjusted for age and NIHSS
    noninteger = WEIGHTED[WEIGHTED["dataset"] == "noninteger"]
    r = ordinal.proportional_odds(noninteger, "mrs_90d", *ARMS, adjust=["age", "nihss"], weights="weight", full=True)
    _check_full(r.details, "weighted")
    assert r.details["llf"] == pytest.approx(R["weighted_loglik"], abs=1e-6)
    assert r.ci_low == pytest.approx(np.exp(-R["weighted_profile_beta_high"]), abs=1e-4)
    assert r.ci_high == pytest.approx(np.exp(-R["weighted_profile_beta_low"]), abs=1e-4)


def test_proportional_odds_test_is_adjusted_like_the_primary_model():
    r = ordinal.proportional_odds_test(DATA, "mrs_90d", *ARMS, adjust=ADJUST, full=True)
    # ordinal::nominal_test on clm(mrs ~ treated + age + nihss + aspects): only the arm's effect is relaxed
    assert r.estimate == pytest.approx(R["nominal_adj_lr"], abs=1e-6)
    assert r.details["df"] == R["nominal_adj_df"]
    assert r.p_value == pytest.approx(R["nominal_adj_p"], abs=1e-6)
    assert "adjusted for age, nihss, aspects" in r.method and r.details["adjusted_for"] == ADJUST
    assert r.details["llf_proportional"] == pytest.approx(R["po_adj_loglik"], abs=1e-6)
    assert r.details["llf_relaxed"] == pytest.approx(R["relaxed_adj_loglik"], abs=1e-6)
    # the relaxed model is clm(mrs ~ age + nihss + aspects, nominal = ~ treated)
    relaxed = r.details["relaxed"]
    for label in ("0|1", "1|2", "2|3", "3|4", "4|5", "5|6"):
        assert relaxed["cutpoints_control"][label] == pytest.approx(R[f"relaxed_adj_cut_control_{label}"], abs=1e-6)
        assert relaxed["cutpoints_treatment"][label] == pytest.approx(R[f"relaxed_adj_cut_treatment_{label}"],
                                                                      abs=1e-6)
    for name in ADJUST:
        assert relaxed["coefficients"][name] == pytest.approx(R[f"relaxed_adj_coef_{name}"], abs=1e-6)
    assert r.details["proportional"]["coefficients"]["treated"] == pytest.approx(R["polr_adj_coef_treated"], abs=1e-6)
    # with the non-integer frequency weights, against clm(..., weights = weight)
    noninteger = WEIGHTED[WEIGHTED["dataset"] == "noninteger"]
    weighted = ordinal.proportional_odds_test(noninteger, "mrs_90d", *ARMS, adjust=["age", "nihss"], weights="weight")
    assert weighted.estimate == pytest.approx(R["nominal_weighted_lr"], abs=1e-6)


@pytest.mark.parametrize("column, prefix", [("mrs_90d", "gor_mrs"), ("nihss_24h", "gor_nihss24")])
def test_generalized_odds_ratio_matches_agrestis_formula(column, prefix):
    r = ordinal.generalized_odds_ratio(DATA, column, *ARMS)
    assert r.estimate == pytest.approx(R[f"{prefix}_gor"], rel=1e-9)
    assert r.details["se_log_gor"] == pytest.approx(R[f"{prefix}_se_log"], rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx((R[f"{prefix}_low"], R[f"{prefix}_high"]), rel=1e-9)
    assert r.p_value == pytest.approx(R[f"{prefix}_p"], rel=1e-9)
    # ties are left out: wins / losses, as win_odds reports it beside the win odds
    assert r.estimate == pytest.approx(ordinal.win_odds(DATA, column, *ARMS).details["generalized_odds_ratio"])
    flipped = ordinal.generalized_odds_ratio(DATA, column, *ARMS, lower_is_better=False)
    assert flipped.estimate == pytest.approx(1 / r.estimate) and flipped.p_value == pytest.approx(r.p_value)


def test_stratified_win_odds_pools_the_strata_by_inverse_variance():
    r = ordinal.win_odds(DATA, "mrs_90d", *ARMS, strata="site")
    assert r.estimate == pytest.approx(R["strat_wo"], rel=1e-9)
    assert r.details["se_log_win_odds"] == pytest.approx(R["strat_se_log"], rel=1e-9)
    assert (r.ci_low, r.ci_high) == pytest.approx((R["strat_low"], R["strat_high"]), rel=1e-9)
    assert r.p_value == pytest.approx(R["strat_p"], rel=1e-9)
    assert r.details["heterogeneity_q"] == pytest.approx(R["strat_q"], rel=1e-9)
    strata = r.details["strata"]
    assert [s["stratum"] for s in strata] == [f"S{i}" for i in range(1, 9)]
    for s in strata:
        assert s["log_win_odds"] == pytest.approx(R[f"strat_log_wo_{s['stratum']}"], rel=1e-9)
    assert sum(s["weight"] for s in strata) == pytest.approx(1.0)
    assert r.n == DATA["mrs_90d"].notna().sum() and "inverse-variance" in r.method
    # a single stratum is the plain win odds
    one = ordinal.win_odds(DATA.assign(everyone="all"), "mrs_90d", *ARMS, strata="everyone")
    assert one.estimate == pytest.approx(R["unstrat_wo"], rel=1e-9)
    assert one.estimate == pytest.approx(ordinal.win_odds(DATA, "mrs_90d", *ARMS).estimate, rel=1e-12)


def test_every_ordinal_result_says_which_arm_it_favours():
    results = {
        "po": ordinal.proportional_odds(DATA, "mrs_90d", *ARMS, profile=False),
        "po_test": ordinal.proportional_odds_test(DATA, "mrs_90d", *ARMS),
        "win_odds": ordinal.win_odds(DATA, "mrs_90d", *ARMS),
        "stratified": ordinal.win_odds(DATA, "mrs_90d", *ARMS, strata="site"),
        "gor": ordinal.generalized_odds_ratio(DATA, "mrs_90d", *ARMS),
        "mann_whitney": ordinal.mann_whitney(DATA, "mrs_90d", *ARMS),
        "utility": ordinal.utility_weighted(DATA, "mrs_90d", *ARMS),
    }
    favours = {name: r.details["favours"] for name, r in results.items()}
    assert favours["po"].startswith("common odds ratio > 1 favours albumin")
    assert favours["win_odds"].startswith("win odds > 1 favours albumin (lower values are better)")
    assert favours["stratified"] == favours["win_odds"]
    assert favours["gor"].startswith("generalized odds ratio > 1 favours albumin")
    # the probability index is P(albumin's mRS higher) + ties/2: above 0.5 the control arm does better
    assert favours["mann_whitney"].startswith("probability index > 0.5 favours control")
    assert favours["utility"].startswith("mean difference > 0 favours albumin")
    assert favours["po_test"].startswith("none")
    assert "favours albumin" in ordinal.mann_whitney(DATA, "mrs_90d", *ARMS, lower_is_better=False).details["favours"]
    assert "(higher values are better)" in ordinal.win_odds(DATA, "mrs_90d", *ARMS,
                                                            lower_is_better=False).details["favours"]
    # and the estimates agree with the words: albumin has the lower mRS in this dataset
    assert results["po"].estimate > 1 and results["win_odds"].estimate > 1 and results["gor"].estimate > 1
    assert results["mann_whitney"].estimate < 0.5 and results["utility"].estimate > 0


@pytest.mark.parametrize("call, message", [
    (lambda: ordinal.proportional_odds(DATA.assign(w=-1.0), "mrs_90d", *ARMS, weights="w"),
     "column 'w' holds -1.0; a frequency weight is a number, 0 or more"),
    (lambda: ordinal.proportional_odds(DATA.assign(w="many"), "mrs_90d", *ARMS, weights="w"), "frequency weight"),
    (lambda: ordinal.proportional_odds(DATA, "mrs_90d", *ARMS, weights="w"), "no column 'w'"),
    (lambda: ordinal.win_odds(DATA.assign(s=np.where(DATA["arm"] == "albumin", "a", "b")), "mrs_90d", *ARMS,
                              strata="s"), "stratum s = 'a': no row has arm = 'control'"),
    (lambda: ordinal.win_odds(DATA, "mrs_90d", *ARMS, strata="region"), "no column 'region'"),
    (lambda: ordinal.generalized_odds_ratio(DATA.assign(y=np.where(DATA["arm"] == "albumin", 0, 1)), "y", *ARMS),
     "one arm wins or ties every pair"),
])
def test_bad_ordinal_input_names_the_problem(call, message):
    with pytest.raises(AnalysisInputError, match=message):
        call()


def test_zero_weights_leave_rows_out():
    # no weight on the deaths: the fit is the one without them, with no cut-point 5|6
    weighted = DATA.assign(w=np.where(DATA["mrs_90d"] == 6, 0.0, 1.0))
    r = ordinal.proportional_odds(weighted, "mrs_90d", *ARMS, weights="w", profile=False)
    plain = ordinal.proportional_odds(DATA[DATA["mrs_90d"] != 6], "mrs_90d", *ARMS, profile=False)
    assert r.estimate == pytest.approx(plain.estimate, rel=1e-6) and r.n == plain.n == r.details["rows"]
    assert r.details["levels"] == [0, 1, 2, 3, 4, 5]
