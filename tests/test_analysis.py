"""The analyses against R (MASS::polr, ordinal::clm, lme4, fisher.test, glm, lm) on a committed dataset.

tests/reference/make_reference.R made r_reference.csv from amass2_trial.csv and
amass2_nihss_long.csv; the tests compare to at least 4 decimal places and never run R.
make_hodges_lehmann_reference.R made hodges_lehmann_data.csv and hodges_lehmann_reference.csv (wilcox.test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stroketrial.analysis import binary, continuous, longitudinal, ordinal, sensitivity
from stroketrial.analysis.result import AnalysisInputError

REF = Path(__file__).parent / "reference"
DATA = pd.read_csv(REF / "amass2_trial.csv")
LONG = pd.read_csv(REF / "amass2_nihss_long.csv")
R = pd.read_csv(REF / "r_reference.csv").set_index("name")["value"].to_dict()
ARMS = ("arm", "albumin", "control")


def test_proportional_odds_matches_mass_polr_with_profile_interval():
    r = ordinal.proportional_odds(DATA, "mrs_90d", *ARMS)
    assert r.details["log_or"] == pytest.approx(-R["polr_beta"], abs=1e-4)
    assert r.details["se_log_or"] == pytest.approx(R["polr_se"], abs=1e-4)
    assert r.details["llf"] == pytest.approx(R["polr_loglik"], abs=1e-4)
    # the common OR favours treatment above 1: exp(-beta); the profile interval flips accordingly
    assert r.estimate == pytest.approx(np.exp(-R["polr_beta"]), abs=1e-4)
    assert r.ci_low == pytest.approx(np.exp(-R["polr_profile_beta_high"]), abs=1e-4)
    assert r.ci_high == pytest.approx(np.exp(-R["polr_profile_beta_low"]), abs=1e-4)
    assert r.details["log_or"] == pytest.approx(-R["clm_beta"], abs=1e-6)  # ordinal::clm (tighter than polr) too
    assert r.n == DATA["mrs_90d"].notna().sum() and r.details["dropped_missing"] == DATA["mrs_90d"].isna().sum()


def test_adjusted_proportional_odds_matches_mass_polr():
    r = ordinal.proportional_odds(DATA, "mrs_90d", *ARMS, adjust=["age", "nihss", "aspects"])
    assert r.details["log_or"] == pytest.approx(-R["polr_adj_beta"], abs=1e-4)
    assert r.details["se_log_or"] == pytest.approx(R["polr_adj_se"], abs=1e-4)
    assert r.ci_low == pytest.approx(np.exp(-R["polr_adj_profile_beta_high"]), abs=1e-4)
    assert r.ci_high == pytest.approx(np.exp(-R["polr_adj_profile_beta_low"]), abs=1e-4)


def test_proportional_odds_test_matches_ordinal_nominal_test():
    r = ordinal.proportional_odds_test(DATA, "mrs_90d", *ARMS)
    assert r.estimate == pytest.approx(R["clm_nominal_lr"], abs=1e-6)
    assert r.details["df"] == R["clm_nominal_df"]
    assert r.p_value == pytest.approx(R["clm_nominal_p"], abs=1e-4)


def test_wilcoxon_matches_r():
    assert ordinal.mann_whitney(DATA, "mrs_90d", *ARMS).p_value == pytest.approx(R["wilcox_p"], abs=1e-6)


def test_binary_mrs_0_2_matches_fisher_test_and_glm():
    data = DATA.assign(mrs_0_2=(DATA["mrs_90d"] <= 2).astype(float).where(DATA["mrs_90d"].notna()))
    results = binary.binary(data, "mrs_0_2", *ARMS, adjust=["age", "nihss"], bootstrap=200)
    exact = results["odds_ratio_exact"]
    assert exact.estimate == pytest.approx(R["fisher_or"], abs=1e-4)
    assert exact.ci_low == pytest.approx(R["fisher_or_low"], abs=1e-4)
    assert exact.ci_high == pytest.approx(R["fisher_or_high"], abs=1e-4)
    assert exact.p_value == pytest.approx(R["fisher_p"], abs=1e-6)
    adjusted = results["odds_ratio_adjusted"]
    assert np.log(adjusted.estimate) == pytest.approx(R["glm_beta"], abs=1e-8)  # R prints 10 digits
    se = (np.log(adjusted.ci_high) - np.log(adjusted.ci_low)) / (2 * stats.norm.ppf(0.975))
    assert se == pytest.approx(R["glm_se"], rel=1e-6)  # glm stops at its deviance tolerance, 1e-8
    rd = results["risk_difference"]
    d = rd.details
    assert rd.estimate == pytest.approx(d["risk_treatment"] - d["risk_control"])
    assert rd.ci_low < rd.estimate < rd.ci_high
    standardized = results["risk_difference_adjusted"]
    assert abs(standardized.estimate - rd.estimate) < 0.05 and standardized.ci_low < standardized.ci_high


def test_newcombe_interval_matches_the_published_worked_example():
    # Newcombe RG, Stat Med 1998;17:873-890, Table II example (56/70 vs 48/80): 0.0524 to 0.3339
    data = pd.DataFrame({"arm": ["t"] * 70 + ["c"] * 80, "y": [1] * 56 + [0] * 14 + [1] * 48 + [0] * 32})
    rd = binary.binary(data, "y", "arm", "t", "c")["risk_difference"]
    assert rd.estimate == pytest.approx(0.2)
    assert (round(rd.ci_low, 4), round(rd.ci_high, 4)) == (0.0524, 0.3339)


def test_adjusted_binary_model_is_refused_where_a_covariate_separates_the_outcome():
    # every patient over 70 died and none under: no maximum-likelihood estimate, so no adjusted odds ratio
    age = np.tile(np.arange(50, 90), 2)
    data = pd.DataFrame({"arm": ["t"] * 40 + ["c"] * 40, "age": age, "death": (age > 70).astype(float)})
    with pytest.raises(AnalysisInputError, match="adjusted logistic model for death cannot be fitted"):
        binary.binary(data, "death", "arm", "t", "c", adjust=["age"], bootstrap=20)
    data.loc[[0, 79], "death"] = [1.0, 0.0]  # one young death and one old survivor: the model has its maximum
    adjusted = binary.binary(data, "death", "arm", "t", "c", adjust=["age"], bootstrap=20)["odds_ratio_adjusted"]
    assert np.isfinite([adjusted.estimate, adjusted.ci_low, adjusted.ci_high]).all()


def test_small_safety_counts_get_exact_answers():
    data = pd.DataFrame({"arm": ["t"] * 15 + ["c"] * 15, "sich": [1] + [0] * 14 + [0] * 15})
    results = binary.binary(data, "sich", "arm", "t", "c")
    assert results["risk_difference"].p_value == pytest.approx(1.0)  # Fisher: 1/15 vs 0/15
    assert "risk_ratio" not in results and "odds_ratio" not in results  # undefined with a zero cell
    assert results["odds_ratio_exact"].ci_high == np.inf or results["odds_ratio_exact"].ci_high > 10


def test_log_volume_ancova_matches_lm():
    r = continuous.log_ancova(DATA, "infarct_volume_ml", *ARMS, adjust=["nihss", "aspects"])
    assert r.details["log_ratio"] == pytest.approx(R["lm_beta"], abs=1e-6)
    assert r.details["se"] == pytest.approx(R["lm_se"], abs=1e-6)


def test_hodges_lehmann_is_the_median_pairwise_difference():
    r = continuous.hodges_lehmann(DATA, "infarct_volume_ml", *ARMS)
    a = DATA.loc[DATA.arm == "albumin", "infarct_volume_ml"].to_numpy()
    b = DATA.loc[DATA.arm == "control", "infarct_volume_ml"].to_numpy()
    assert r.estimate == pytest.approx(np.median(np.subtract.outer(a, b)))
    assert r.ci_low <= r.estimate <= r.ci_high
    assert r.p_value == pytest.approx(stats.mannwhitneyu(a, b).pvalue)


HL_DATA = pd.read_csv(REF / "hodges_lehmann_data.csv")
HL_R = pd.read_csv(REF / "hodges_lehmann_reference.csv")


@pytest.mark.parametrize("row", HL_R.to_dict("records"), ids=HL_R["dataset"].tolist())
def test_hodges_lehmann_interval_matches_r_wilcox_test(row):
    # make_hodges_lehmann_reference.R: wilcox.test(treatment, control, conf.int = TRUE) with R's defaults, the
    # exact distribution below 50 per arm without ties, the normal approximation otherwise
    data = HL_DATA[HL_DATA["dataset"] == row["dataset"]]
    r = continuous.hodges_lehmann(data, "value", "arm", "treatment", "control")
    assert r.details["interval"] == ("exact" if row["exact"] else "normal approximation")
    assert ("exact Moses interval" in r.method) == bool(row["exact"])
    assert ("normal approximation" in r.method) != bool(row["exact"])
    assert r.estimate == pytest.approx(row["median_difference"], abs=1e-6)
    if row["exact"]:  # R's estimate is then the median difference too (with the approximation, a root near it)
        assert r.estimate == pytest.approx(row["estimate"], abs=1e-6)
    assert (r.ci_low, r.ci_high) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-6)
    assert r.p_value == pytest.approx(row["p_value"], abs=1e-9)
    assert r.n == row["n_treatment"] + row["n_control"]


def test_hodges_lehmann_exact_interval_is_wider_than_the_old_approximation_for_12_vs_10():
    # the order statistic floor(n1 n2 / 2 - 1.96 sd) + 1 (the normal approximation used before) is the 31st; the
    # exact 2.5% quantile of the Mann-Whitney distribution for 12 and 10 (R: qwilcox(0.025, 12, 10)) is 30
    data = HL_DATA[HL_DATA["dataset"] == "twelve_vs_ten"]
    a = data.loc[data.arm == "treatment", "value"].to_numpy()
    b = data.loc[data.arm == "control", "value"].to_numpy()
    diffs = np.sort(np.subtract.outer(a, b).ravel())
    r = continuous.hodges_lehmann(data, "value", "arm", "treatment", "control")
    assert (r.ci_low, r.ci_high) == (diffs[29], diffs[120 - 30])
    assert r.ci_low < diffs[30] and r.ci_high > diffs[120 - 31]
    assert r.details["achieved_confidence"] >= 0.95


def test_mixed_model_matches_lme4():
    results = longitudinal.mixed_model(LONG, "nihss", *ARMS, order=["baseline", "24 h", "7 days"])
    assert [r.details["visit"] for r in results] == ["baseline", "24 h", "7 days"]
    for r, visit in zip(results, ("baseline", "24_h", "7_days"), strict=False):
        assert r.estimate == pytest.approx(R[f"lmer_effect_{visit}"], abs=1e-4)
        assert r.details["se"] == pytest.approx(R[f"lmer_se_{visit}"], abs=1e-4)


def test_win_odds_agrees_with_scipys_mann_whitney_and_brunner_munzel():
    r = ordinal.win_odds(DATA, "mrs_90d", *ARMS)
    a = DATA.loc[DATA.arm == "albumin", "mrs_90d"].dropna().to_numpy()
    b = DATA.loc[DATA.arm == "control", "mrs_90d"].dropna().to_numpy()
    # SciPy's Mann-Whitney U of control against treatment counts the pairs where the control patient has the
    # higher (worse) mRS, ties counted half: the treatment arm's wins + ties/2 (Dong G et al., Stat Med 2020)
    u = stats.mannwhitneyu(b, a).statistic
    theta = u / (len(a) * len(b))
    assert r.estimate == pytest.approx(theta / (1 - theta), rel=1e-12)
    # the generalized odds ratio (Agresti 1980), wins / losses: the tied pairs are sum_k n_a(k) n_b(k)
    tied = float(np.bincount(a.astype(int), minlength=7) @ np.bincount(b.astype(int), minlength=7))
    wins, losses = u - tied / 2, len(a) * len(b) - u - tied / 2
    assert r.details["generalized_odds_ratio"] == pytest.approx(wins / losses, rel=1e-12)
    # SciPy's Brunner-Munzel statistic is (theta - 1/2) / se(theta) with the same placement variance: the interval
    # on the log odds by the delta method, and the p-value, follow from it
    bm = stats.brunnermunzel(a, b)
    se_log = abs(theta - 0.5) / abs(bm.statistic) / (theta * (1 - theta))
    assert (r.ci_low, r.ci_high) == pytest.approx((r.estimate * np.exp(-1.959963985 * se_log),
                                                   r.estimate * np.exp(1.959963985 * se_log)), rel=1e-8)
    assert r.p_value == pytest.approx(bm.pvalue, rel=1e-12)
    assert r.estimate > 1 and bm.statistic > 0  # albumin has the better (lower) mRS in this dataset


def test_utility_weighted_mrs_uses_the_published_weights():
    weights = dict(enumerate([1.0, 0.91, 0.76, 0.65, 0.33, 0.0, 0.0]))
    r = ordinal.utility_weighted(DATA, "mrs_90d", *ARMS)
    m = DATA.dropna(subset=["mrs_90d"])
    u = m["mrs_90d"].map(weights)
    assert r.estimate == pytest.approx(u[m.arm == "albumin"].mean() - u[m.arm == "control"].mean())


def test_populations_missing_data_and_subgroups():
    itt = sensitivity.population(DATA, "itt")
    pp = sensitivity.population(DATA, "pp")
    at = sensitivity.population(DATA, "at")
    assert len(pp) == DATA["per_protocol"].sum() and (at["arm"] == DATA.loc[at.index, "treated_arm"]).all()
    assert len(itt) == len(DATA)
    worst = sensitivity.worst_case(DATA, "mrs_90d", *ARMS)
    plain = ordinal.proportional_odds(DATA, "mrs_90d", *ARMS, profile=False)
    assert worst.estimate < plain.estimate and worst.n == len(DATA)
    mi = sensitivity.multiple_imputation(DATA, "mrs_90d", *ARMS, adjust=["age", "nihss", "aspects"], imputations=10)
    assert mi.n == len(DATA) and mi.details["imputed"] == DATA["mrs_90d"].isna().sum()
    assert abs(np.log(mi.estimate) - np.log(plain.estimate)) < 0.15
    groups = sensitivity.subgroups(DATA, "mrs_90d", *ARMS, {"age": np.where(DATA["age"] >= 70, ">=70", "<70")})
    assert [g.details["level"] for g in groups] == ["<70", ">=70"]
    assert 0 <= groups[0].details["interaction_p"] <= 1


@pytest.mark.parametrize("call, message", [
    (lambda: ordinal.proportional_odds(DATA, "mrs_91d", *ARMS), "no column 'mrs_91d'"),
    (lambda: ordinal.proportional_odds(DATA, "mrs_90d", "arm", "albumin", "placebo"), "not only"),
    (lambda: ordinal.proportional_odds(DATA.assign(mrs_90d=DATA.mrs_90d + 3), "mrs_90d", *ARMS), "the mRS is 0 to 6"),
    (lambda: binary.binary(DATA, "mrs_90d", *ARMS), "a binary outcome is 0 or 1"),
    (lambda: sensitivity.population(DATA.drop(columns="per_protocol"), "pp"), "per_protocol column"),
])
def test_bad_analysis_input_names_the_column(call, message):
    with pytest.raises(AnalysisInputError, match=message):
        call()
