"""Outcome analyses in a propensity-matched sample and the IPW sensitivity analysis, against R.

tests/reference/make_matched_outcomes_reference.R made matched_outcomes_data.csv (40 treated, 400 registry
controls; MatchIt 1:1 and 1:2 nearest-neighbour matchings on the logit propensity score with a caliper) and
matched_outcomes_reference.csv: t.test(paired = TRUE), wilcox.test(conf.int = TRUE), lm / glm(quasibinomial) /
ordinal::clm with sandwich::vcovCL(cluster = ~subclass) for the matched samples and vcovHC(type = "HC0") /
sandwich() for the ATT-weighted one. Every estimate, interval limit, standard error and p-value is compared at a
relative tolerance of 1e-9 (an absolute 1e-12 where R's value is 0); they agree to about 1e-13, the 15 significant
digits the reference file holds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stroketrial import InputError
from stroketrial.analysis.matched_outcomes import (
    MatchedColumns,
    OddsRatioNotEstimable,
    att_weights,
    hodges_lehmann_shift,
    log_volume_ratio,
    matched_comparison,
    mrs_shift,
    odds_ratio,
    risk_difference,
)
from stroketrial.analysis.result import Result

VOLUME, MRS = "infarct_volume_24h_ml", "mrs_90d"
OUTCOMES = {"infarct_volume": VOLUME, "mrs": MRS, "death": "death_90d", "sich": "sich"}

REF = Path(__file__).parent / "reference"
DATA = pd.read_csv(REF / "matched_outcomes_data.csv")
R = pd.read_csv(REF / "matched_outcomes_reference.csv", keep_default_na=False, na_values=[""])
ONE_TO_TWO = MatchedColumns(subclass="subclass_1to2", weights="weights_1to2")
DESIGNS = {"1to1": (MatchedColumns(), "matching"), "1to2": (ONE_TO_TWO, "matching"), "ipw": (MatchedColumns(), "ipw")}
TOLERANCE = {"rel": 1e-9, "abs": 1e-12}


def _data() -> pd.DataFrame:
    data = DATA.copy()
    data["mrs_0_2"] = (data["mrs_90d"] <= 2).astype(float).where(data["mrs_90d"].notna())
    data["infarct_volume_24h_ml_rounded"] = np.round(data["infarct_volume_24h_ml"])
    data["sich_no_treated_events"] = data["sich"].where(data["treated"] == 0, data["sich"] * 0)
    return data


def _reference(design: str, outcome: str, measure: str) -> pd.Series:
    rows = R[(R.design == design) & (R.outcome == outcome) & (R.measure == measure)]
    assert len(rows) == 1, (design, outcome, measure)
    return rows.iloc[0]


def _analyse(design: str, outcome: str, measure: str) -> Result:
    columns, weighting = DESIGNS[design]
    data = _data()
    if measure == "ratio_of_geometric_means":
        return log_volume_ratio(data, outcome, columns, weighting)  # type: ignore[arg-type]
    if measure == "hodges_lehmann":
        return hodges_lehmann_shift(data, outcome, columns)
    if measure == "common_odds_ratio":
        return mrs_shift(data, outcome, columns, weighting)  # type: ignore[arg-type]
    if measure == "risk_difference":
        return risk_difference(data, outcome, columns, weighting)  # type: ignore[arg-type]
    return odds_ratio(data, outcome, columns, weighting)  # type: ignore[arg-type]


COMPARED = R[R.measure != "hodges_lehmann_median"]


@pytest.mark.parametrize(("design", "outcome", "measure"),
                         list(COMPARED[["design", "outcome", "measure"]].itertuples(index=False, name=None)))
def test_agrees_with_r(design: str, outcome: str, measure: str) -> None:
    ref = _reference(design, outcome, measure)
    result = _analyse(design, outcome, measure)
    assert result.ci_low == pytest.approx(ref.ci_low, **TOLERANCE)
    assert result.ci_high == pytest.approx(ref.ci_high, **TOLERANCE)
    assert result.n == ref.n
    if measure == "hodges_lehmann":
        # R's estimate is the median of the Walsh averages (or pairwise differences) in the exact case and, with
        # the normal approximation, a root of the standardized statistic found by uniroot (tol.root 1e-12): the
        # same number here to 1e-12, but uniroot may stop anywhere on a flat stretch where the statistic is 0.
        # The estimate compared is that median, which R's script writes as hodges_lehmann_median.
        median = _reference(design, outcome, "hodges_lehmann_median")
        assert result.estimate == pytest.approx(median.estimate, **TOLERANCE)
        assert result.estimate == pytest.approx(ref.estimate, abs=1e-9)
        assert result.details["interval"] == ref.note
    else:
        assert result.estimate == pytest.approx(ref.estimate, **TOLERANCE)
    if pd.isna(ref.p_value):
        assert result.p_value is None
    else:
        assert result.p_value == pytest.approx(ref.p_value, **TOLERANCE)
    if not pd.isna(ref.se):
        assert result.details["se"] == pytest.approx(ref.se, **TOLERANCE)


def test_reference_covers_every_analysis() -> None:
    assert len(COMPARED) == 30
    assert set(R.design) == set(DESIGNS)
    # both branches of the signed-rank interval: exact (the volumes as recorded) and the normal approximation
    assert set(R[R.measure == "hodges_lehmann"].note) == {"exact", "normal approximation"}


def test_pairs_are_analysed_within_pairs_and_one_to_two_by_weighted_least_squares() -> None:
    paired = log_volume_ratio(DATA, VOLUME)
    assert "paired t-test" in paired.method and paired.details["pairs"] == 39
    assert paired.details["pairs_dropped"] == 1 and "1 pair missing infarct_volume_24h_ml left out" in paired.method
    weighted = log_volume_ratio(DATA, VOLUME, columns=ONE_TO_TWO)
    assert "weighted least squares of log(infarct_volume_24h_ml + 1)" in weighted.method
    assert "HC1" in weighted.method and "G/(G - 1)" in weighted.method
    assert "HC0" in mrs_shift(DATA, MRS, columns=ONE_TO_TWO).method


def test_the_offset_is_stated_and_changes_the_estimate() -> None:
    half = log_volume_ratio(DATA, VOLUME, columns=ONE_TO_TWO, offset=0.5)
    assert "log(infarct_volume_24h_ml + 0.5)" in half.method
    assert half.estimate != pytest.approx(log_volume_ratio(DATA, VOLUME, columns=ONE_TO_TWO).estimate)
    with pytest.raises(InputError, match="offset"):
        log_volume_ratio(DATA, VOLUME, offset=0)


def test_common_odds_ratio_above_one_favours_treated() -> None:
    data = _data()
    treated = data.treated == 1
    better, worse = data.copy(), data.copy()
    better.loc[treated, "mrs_90d"] = (data.loc[treated, "mrs_90d"] - 2).clip(lower=0)
    worse.loc[treated, "mrs_90d"] = (data.loc[treated, "mrs_90d"] + 2).clip(upper=6)
    for weighting in ("matching", "ipw"):
        assert mrs_shift(better, MRS, weighting=weighting).estimate > 2  # type: ignore[arg-type]
        assert mrs_shift(worse, MRS, weighting=weighting).estimate < 0.5  # type: ignore[arg-type]
    assert "favours treated" in mrs_shift(data, MRS).details["favours"]


def test_missing_outcomes_are_dropped_per_outcome_and_counted() -> None:
    data = _data()
    matched = data[data.subclass.notna()]
    result = mrs_shift(data, MRS, columns=ONE_TO_TWO)
    one_to_two = data[data.subclass_1to2.notna()]
    assert result.details["dropped_missing"] == int(one_to_two.mrs_90d.isna().sum()) == 1
    assert result.n == one_to_two.mrs_90d.notna().sum()
    assert "1 patient without mrs_90d left out" in result.method
    death = risk_difference(data, "death_90d", weighting="ipw")
    assert death.details["dropped_missing"] == int(data.death_90d.isna().sum()) == 3
    assert "3 patients without death_90d left out" in death.method
    # sICH is complete in the 1:1 sample: nothing dropped, and the method text says nothing about it
    assert int(matched.sich.isna().sum()) == 0
    assert "left out" not in risk_difference(data, "sich").method


def test_unmatched_rows_are_left_out_of_the_matched_analyses_only() -> None:
    data = _data()
    unmatched = data[data.subclass.isna()].index
    changed = data.copy()
    changed.loc[unmatched, "infarct_volume_24h_ml"] = 999.0
    changed.loc[unmatched, "mrs_90d"] = 6
    for analysis in (_volume, _hl, _mrs):
        assert analysis(changed).estimate == pytest.approx(analysis(data).estimate, rel=1e-12)
    assert (mrs_shift(changed, MRS, weighting="ipw").estimate
            != pytest.approx(mrs_shift(data, MRS, weighting="ipw").estimate))


def test_att_weights() -> None:
    weights = att_weights(DATA)
    ps = DATA.propensity.to_numpy()
    treated = DATA.treated.to_numpy() == 1
    assert np.all(weights[treated] == 1)
    assert weights[~treated] == pytest.approx(ps[~treated] / (1 - ps[~treated]), rel=1e-15)


def test_no_events_in_a_group_refuses_the_odds_ratio_and_gives_a_newcombe_risk_difference() -> None:
    data = _data()
    with pytest.raises(OddsRatioNotEstimable, match=r"sich_no_treated_events: none of the 40 matched treated "
                                                    r"patients had it; the odds ratio would be 0 or infinite"):
        odds_ratio(data, "sich_no_treated_events")
    rd = risk_difference(data, "sich_no_treated_events")
    assert rd.p_value is None and math.isfinite(rd.estimate)
    assert "Newcombe's hybrid score 95% CI" in rd.method and "no p-value" in rd.method
    assert rd.details["events_treated"] == 0


def test_the_comparison_reports_a_refused_odds_ratio_and_keeps_going() -> None:
    data = DATA.copy()
    data.loc[data.treated == 1, "sich"] = 0
    comparison = matched_comparison(data, **OUTCOMES)
    refused = {item.name for item in comparison.not_estimated}
    assert refused == {"sich: odds ratio (matched)", "sich: odds ratio (IPW, ATT)"}
    names = [row["name"] for row in comparison.rows()]
    assert "sich: risk difference (matched)" in names and "sich: odds ratio (matched)" not in names


def test_comparison_table_and_json() -> None:
    comparison = matched_comparison(DATA, **OUTCOMES)
    table = comparison.to_frame()
    assert list(table.columns) == ["name", "analysis", "measure", "estimate", "ci_low", "ci_high", "p_value",
                                   "n_treated", "n_control", "dropped_missing", "method"]
    assert len(table) == 17  # matched: 2 volume + mRS + 3 x 2 binary; IPW: volume + mRS + 3 x 2 binary
    assert set(table.analysis) == {"matched", "IPW sensitivity (ATT)"}
    first = table.iloc[0]
    assert (first.n_treated, first.n_control) == (39, 39)
    ipw = table[table.analysis != "matched"]
    assert (ipw.n_treated + ipw.n_control >= 434).all()
    assert all("ATT" in method and "same propensity model" in method for method in ipw.method)
    text = json.dumps(comparison.to_json(), allow_nan=False)
    assert json.loads(text)["results"][2]["measure"] == "common odds ratio"
    assert "mrs_90d_0_2: risk difference (matched)" in text
    only_matched = matched_comparison(DATA.drop(columns="propensity"), ipw_sensitivity=False, **OUTCOMES)
    assert len(only_matched.results) == 9


def test_the_good_outcome_is_derived_from_the_mrs() -> None:
    data = _data()
    derived = matched_comparison(data.drop(columns="mrs_0_2"), **OUTCOMES).results[3]
    assert derived.estimate == pytest.approx(risk_difference(data, "mrs_0_2").estimate, rel=1e-12)
    with pytest.raises(InputError, match="already has a column 'mrs_90d_0_2'"):
        matched_comparison(data.assign(mrs_90d_0_2=1), **OUTCOMES)


def _unpair_first_control(data: pd.DataFrame) -> pd.DataFrame:
    control = data.index[(data.subclass == 1) & (data.treated == 0)]
    data.loc[control, ["subclass", "weights"]] = [np.nan, 0.0]
    return data


def _mrs(data: pd.DataFrame) -> Result:
    return mrs_shift(data, MRS)


def _volume(data: pd.DataFrame) -> Result:
    return log_volume_ratio(data, VOLUME)


def _hl(data: pd.DataFrame) -> Result:
    return hodges_lehmann_shift(data, VOLUME)


@pytest.mark.parametrize(("change", "call", "message"), [
    (lambda d: d.drop(columns="subclass"), _mrs, "no column 'subclass'"),
    (lambda d: d.drop(columns="mrs_90d"), _mrs, "no column 'mrs_90d'"),
    (lambda d: d.assign(treated=d.treated.replace({0: 2})), _mrs, "'treated' holds 2"),
    (lambda d: d.assign(treated=d.treated.astype(object).where(d.index != 5, "yes")), _mrs,
     "'treated' holds 'yes'"),
    (lambda d: d.assign(mrs_90d=d.mrs_90d.replace({6: 7})), _mrs, r"'mrs_90d' holds 7.0; the modified Rankin"),
    (lambda d: d.assign(mrs_90d=d.mrs_90d.replace({3: 2.5})), _mrs, r"'mrs_90d' holds 2.5"),
    (lambda d: d.assign(infarct_volume_24h_ml=-d.infarct_volume_24h_ml), _volume,
     r"'infarct_volume_24h_ml' holds -.*a volume is 0 mL or more"),
    (lambda d: d.assign(infarct_volume_24h_ml=d.infarct_volume_24h_ml.astype(object).where(d.index != 3, "n/a")),
     _hl, r"'infarct_volume_24h_ml' holds 'n/a', which is not a number"),
    (lambda d: d.assign(subclass=np.nan, weights=0.0), _volume, "no row is matched"),
    (lambda d: d.assign(weights=d.weights.where(d.subclass.notna(), 1.0)), _mrs,
     "'weights' holds 1.0 for a row with no subclass"),
    (lambda d: d.assign(weights=d.weights.where(d.index != 0, 0)), _mrs, r"'weights' holds 0.* above 0"),
    (_unpair_first_control, _mrs, "subclass 1.0 holds only treated patients"),
    (lambda d: d.assign(death_90d=d.death_90d.replace({1: 2})), lambda d: odds_ratio(d, "death_90d"),
     r"'death_90d' holds 2.0; a yes/no outcome is 1 \(yes\) or 0 \(no\)"),
])
def test_bad_input_names_the_column_and_value(change, call, message) -> None:
    with pytest.raises(InputError, match=message):
        call(change(DATA.copy()))


@pytest.mark.parametrize("value", [0.0, 1.0, 1.2, np.nan])
def test_propensity_must_lie_strictly_between_0_and_1(value: float) -> None:
    data = DATA.copy()
    data.loc[7, "propensity"] = value
    with pytest.raises(InputError, match=r"'propensity' holds .*strictly between 0 and 1"):
        mrs_shift(data, MRS, weighting="ipw")
    mrs_shift(data, MRS)  # the matched analysis does not use it


def test_unknown_weighting() -> None:
    with pytest.raises(InputError, match="weighting 'ate'"):
        mrs_shift(DATA, MRS, weighting="ate")  # type: ignore[arg-type]
