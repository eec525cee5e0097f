"""Interim analyses (issue 21): the boundary at the information actually observed, conditional power and the z of
the primary analysis at a look, against rpact 3.3.4 and MASS::polr (tests/reference/make_interim_reference.R); the
rule's recommendation; the interim plan IMPACT-LVO declares."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from stroketrial.analysis.ordinal import proportional_odds
from stroketrial.design import interim
from stroketrial.design.groupseq import boundaries
from stroketrial.design.samplesize import DesignInputError
from stroketrial.protocol import load_builtin
from stroketrial.protocol.interim_plan import InterimPlan

REFERENCE = Path(__file__).parent / "reference"
with (REFERENCE / "interim_reference.csv").open() as _file:
    R = {row["name"]: float(row["value"]) for row in csv.DictReader(_file)}


@pytest.mark.parametrize(("name", "looks", "alpha", "sided", "spending"), [
    ("of2_048", [0.48, 1.0], 0.025, 1, "obf"),
    ("of3_030_062", [0.3, 0.62, 1.0], 0.025, 1, "obf"),
    ("p3_030_062", [0.3, 0.62, 1.0], 0.025, 1, "pocock"),
    ("of2_two_052", [0.52, 1.0], 0.05, 2, "obf"),
])
def test_the_boundaries_at_the_observed_information_match_rpact(name, looks, alpha, sided, spending):
    """rpact's getDesignGroupSequential(informationRates = the fractions observed)."""
    for k in range(1, len(looks) + 1):
        look = interim.analyse_look(looks[:k], 0.0, [0.5, 1.0], alpha, sided, spending)
        assert look.efficacy_bound == pytest.approx(R[f"{name}_z{k}"], abs=1e-4), (name, k)


def test_conditional_power_matches_rpact_under_the_planned_effect_and_the_trend():
    """Three looks at 30%, 62% and 100% of 400 patients, a mean difference planned at 0.5 with SD 2: the drift
    (the expected z at full information) is 0.5 / 2 x sqrt(400 / 4) = 2.5."""
    drift = 0.5 / 2 * np.sqrt(400 / 4)
    at_two = interim.analyse_look([0.3, 0.62], R["cp_z2"], [0.3, 0.62, 1.0], 0.025, 1, "obf", planned_drift=drift)
    assert at_two.conditional_power_planned == pytest.approx(R["cp_planned"], abs=1e-4)
    assert at_two.conditional_power_trend == pytest.approx(R["cp_trend"], abs=1e-4)
    # rpact's trend is its estimate over its SD estimate; on the z scale it is z / sqrt(t)
    assert R["cp_trend_theta"] / R["cp_trend_sd"] * np.sqrt(400 / 4) == pytest.approx(R["cp_z2"] / np.sqrt(0.62),
                                                                                       abs=1e-6)
    bounds = boundaries(3, 0.025, 1, "obf", information=[0.3, 0.62, 1.0]).z
    assert interim.conditional_power(R["cp1_z1"], 0.3, [0.62], bounds[1:2], drift) == pytest.approx(
        R["cp1_planned_by2"], abs=1e-4)
    at_one = interim.analyse_look([0.3], R["cp1_z1"], [0.3, 0.62, 1.0], 0.025, 1, "obf", planned_drift=drift)
    assert at_one.conditional_power_planned == pytest.approx(R["cp1_planned_by3"], abs=1e-4)


def test_the_z_of_the_primary_analysis_at_a_look_matches_polr():
    """The first 153 patients of the AMASS-2 reference trial, the mRS shift adjusted for age, NIHSS and ASPECTS:
    z = log(common OR) / SE, positive favouring albumin; polr's coefficient is for a shift toward worse grades."""
    trial = pd.read_csv(REFERENCE / "amass2_trial.csv").iloc[:153]
    result = proportional_odds(trial, "mrs_90d", "arm", "albumin", "control", adjust=["age", "nihss", "aspects"],
                               profile=False)
    z = result.details["log_or"] / result.details["se_log_or"]
    assert z == pytest.approx(-R["look_polr_z"], abs=1e-4)


def test_the_predictive_probability_with_one_look_left_is_the_closed_form():
    """Flat prior, one look left at full information: PP = Phi((z - c sqrt(t)) / sqrt(1 - t))."""
    for z, t in [(1.2, 0.5), (2.1, 0.48), (-0.4, 0.6)]:
        look = interim.analyse_look([t], z, [0.5, 1.0], 0.025, 1, "obf")
        c = boundaries(2, 0.025, 1, "obf", information=[t, 1.0]).z[1]
        assert look.predictive_probability == pytest.approx(stats.norm.cdf((z - c * np.sqrt(t)) / np.sqrt(1 - t)),
                                                            abs=1e-6)


def test_the_rule_recommends_what_the_boundaries_say():
    two_sided = dict(planned=[0.5, 1.0], alpha=0.05, sided=2, spending="obf", futility=[0.0])
    c = boundaries(2, 0.05, 2, "obf", information=[0.5, 1.0]).z[0]
    assert interim.analyse_look([0.5], c + 0.01, **two_sided).recommendation == interim.EFFICACY
    assert interim.analyse_look([0.5], -c - 0.01, **two_sided).recommendation == interim.HARM
    assert interim.analyse_look([0.5], -0.2, **two_sided).recommendation == interim.FUTILITY
    assert interim.analyse_look([0.5], 1.0, **two_sided).recommendation == interim.CONTINUE
    final = interim.analyse_look([0.5, 1.0], 1.5, **two_sided)
    assert final.final and final.recommendation == interim.NOT_SIGNIFICANT and final.conditional_power_trend is None
    assert interim.analyse_look([0.5, 1.0], 2.5, **two_sided).recommendation == interim.EFFICACY


def test_the_next_look_accounts_for_the_alpha_an_earlier_look_spent():
    """A first look held late (60%, not 50%) spent more alpha, so the final boundary is higher than planned."""
    planned = interim.analyse_look([0.5, 1.0], 0.0, [0.5, 1.0], 0.025, 1, "obf")
    late = interim.analyse_look([0.6, 1.0], 0.0, [0.5, 1.0], 0.025, 1, "obf")
    assert late.efficacy_bound > planned.efficacy_bound
    assert late.alpha_spent == pytest.approx(0.025) and planned.alpha_spent == pytest.approx(0.025)
    # more information than planned at the final analysis: the final look is at 1 and spends all that is left
    assert interim.analyse_look([0.5, 1.04], 0.0, [0.5, 1.0], 0.025, 1, "obf").information == 1.0


def test_bad_looks_and_statistics_are_refused_by_name():
    with pytest.raises(DesignInputError, match="observed at the looks must increase"):
        interim.analyse_look([0.6, 0.5], 1.0, [0.5, 1.0], 0.025, 1, "obf")
    with pytest.raises(DesignInputError, match="z statistic at the look is nan"):
        interim.analyse_look([0.5], float("nan"), [0.5, 1.0], 0.025, 1, "obf")
    with pytest.raises(DesignInputError, match="planned looks must be increasing fractions ending at 1"):
        interim.analyse_look([0.5], 1.0, [0.5, 0.9], 0.025, 1, "obf")


def test_impact_lvos_plan_is_an_assumption_and_its_planned_effect_is_the_sample_sizes():
    protocol = load_builtin("impact-lvo")
    plan = protocol.interim
    assert plan is not None and "states no interim analysis" in plan.assumption
    assert plan.looks == [0.5, 1.0] and plan.spending == "obf" and plan.futility == [0.0]
    drift = interim.planned_drift_for_odds_ratio(plan.planned_effect.common_odds_ratio, 1010,
                                                 plan.planned_effect.control_mrs)
    # the implied effect was solved for 80% power at two-sided 0.05 (3 decimals): its drift is z_.975 + z_.8
    assert drift == pytest.approx(stats.norm.ppf(0.975) + stats.norm.ppf(0.8), abs=0.01)
    with pytest.raises(ValidationError, match="one z bound per interim look"):
        InterimPlan.model_validate({**plan.model_dump(), "futility": [0.0, 0.5]})
    with pytest.raises(ValidationError, match="ending at 1"):
        InterimPlan.model_validate({**plan.model_dump(), "looks": [0.5, 0.9]})
