"""Issue 23: one proportional-odds fitter (the power simulation's Newton fitter) for the analyses too.

The profile-likelihood limits are checked against make_profile_reference.R (MASS::polr refitted with the arm's
coefficient fixed by an offset, the limits found by uniroot: exact, where MASS::confint interpolates a spline
through a grid and is good to about 1e-5); the fits against the tight MASS::polr fits of
make_ordinal_extras_reference.R, and against statsmodels' OrderedModel, which the analyses used before and which
stays here as a reference only. The multiple imputation is checked against the statsmodels path it replaced.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.miscmodels.ordinal_model import OrderedModel

from stroketrial.analysis import ordinal, proportional_odds_fit as po, sensitivity
from stroketrial.analysis.result import AnalysisInputError
from stroketrial.design import batched_po_fit

REF = Path(__file__).parent / "reference"
DATA = pd.read_csv(REF / "amass2_trial.csv")
WEIGHTED = pd.read_csv(REF / "ordinal_weighted_data.csv")
PROFILE = pd.read_csv(REF / "profile_reference.csv").set_index("name")["value"].to_dict()
ARMS = ("arm", "albumin", "control")
ADJUST = ["age", "nihss", "aspects"]


@pytest.mark.parametrize("data, adjust, weights, prefix", [
    (DATA, [], None, "unadjusted"), (DATA, ADJUST, None, "adjusted"),
    (WEIGHTED[WEIGHTED["dataset"] == "counts"], [], "weight", "counts"),
    (WEIGHTED[WEIGHTED["dataset"] == "noninteger"], ["age", "nihss"], "weight", "weighted")])
def test_profile_interval_is_the_exact_profile_likelihood_limit(data, adjust, weights, prefix):
    r = ordinal.proportional_odds(data, "mrs_90d", *ARMS, adjust=adjust, weights=weights)
    # the common OR is exp(-beta): its lower limit is the coefficient's upper one
    assert -np.log(r.ci_high) == pytest.approx(PROFILE[f"{prefix}_profile_low"], abs=1e-6)
    assert -np.log(r.ci_low) == pytest.approx(PROFILE[f"{prefix}_profile_high"], abs=1e-6)


def _statsmodels_fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BFGS stops short of gtol 1e-10 and says so; Newton finishes from there
        start = model.fit(method="bfgs", disp=False, maxiter=5000, gtol=1e-10).params
        return model.fit(method="newton", disp=False, maxiter=100, start_params=start)


def _arrays(adjust):
    rows = DATA[DATA["mrs_90d"].notna()]
    X = np.column_stack([(rows["arm"] == "albumin").to_numpy(float), rows[adjust].to_numpy(float)])
    return rows["mrs_90d"].to_numpy().astype(int), X


@pytest.mark.parametrize("adjust", [[], ADJUST])
def test_fit_equals_statsmodels_ordered_model(adjust):
    codes, X = _arrays(adjust)
    fitted = po.fit(codes, 7, X)
    reference = _statsmodels_fit(OrderedModel(codes, X, distr="logit"))
    p = X.shape[1]
    params = np.asarray(reference.params)
    assert fitted.coef == pytest.approx(params[:p], abs=1e-6)
    assert fitted.cuts[0] == pytest.approx(np.cumsum(np.r_[params[p], np.exp(params[p + 1:])]), abs=1e-6)
    assert fitted.llf == pytest.approx(reference.llf, abs=1e-8)
    assert fitted.coef_se == pytest.approx(np.asarray(reference.bse)[:p], rel=1e-4)  # statsmodels' Hessian is numerical


def test_the_batch_options_left_out_are_the_plain_fit():
    codes, X = _arrays(ADJUST)
    y, Xb = np.stack([codes, codes[::-1]]), np.stack([X, X])
    plain = batched_po_fit.fit(y, Xb, 7, full=True)
    options = batched_po_fit.fit(y, Xb, 7, weights=np.ones(y.shape), offset=np.zeros(y.shape),
                                 groups=np.zeros(y.shape, dtype=int), n_groups=1, full=True)
    for name in ("alpha", "beta", "se", "loglik", "covariance"):
        assert np.abs(getattr(plain, name) - getattr(options, name)).max() < 1e-10, name
    # doubling every weight doubles the log-likelihood and leaves the estimates
    doubled = batched_po_fit.fit(y, Xb, 7, weights=np.full(y.shape, 2.0))
    assert doubled.loglik == pytest.approx(2 * plain.loglik, rel=1e-12)
    assert doubled.beta == pytest.approx(plain.beta, abs=1e-9)
    assert doubled.se == pytest.approx(plain.se / np.sqrt(2), abs=1e-9)


def test_two_categories_are_the_general_passes_arithmetic():
    """K = 2 (the binary bootstrap's logistic fits) takes its own pass: the log-likelihood, gradient and Hessian
    of the general pass, with and without weights and an offset, and a trial missing a category set aside."""
    import statsmodels.api as sm

    codes, X = _arrays(ADJUST)
    y = np.stack([codes <= 2, codes == 6, codes >= 0]).astype(int)  # mRS 0-2, death, and no event-free patient
    Xb = np.stack([X, X, X])
    rng = np.random.default_rng(7)
    weights, offset = rng.integers(1, 4, y.shape).astype(float), rng.normal(0, 0.2, y.shape)
    params = np.column_stack([rng.normal(0, 0.5, 3), rng.normal(0, 0.05, (3, X.shape[1]))])
    for options in ({}, {"weights": weights, "offset": offset}):
        general = batched_po_fit._Sorted(y, Xb, 2, None, 1, options.get("weights"), options.get("offset"))
        two = batched_po_fit._TwoCategories(y, Xb, options.get("weights"), options.get("offset"))
        assert (two.counts == general.counts).all() and np.allclose(two.totals, general.totals)
        for mine, theirs in zip(two.evaluate(params), general.evaluate(params), strict=True):
            assert np.abs(mine - theirs).max() <= 1e-10 * max(1.0, np.abs(theirs).max())
        one = np.array([1])
        picked, reference = two.take(one).evaluate(params[one]), general.take(one).evaluate(params[one])
        assert np.abs(picked[2] - reference[2]).max() < 1e-8
    fitted = batched_po_fit.fit(y, Xb, 2, full=True)
    assert fitted.converged.tolist() == [True, True, False]  # the third has no patient in category 0
    for t in range(2):
        reference = sm.Logit(y[t], sm.add_constant(X)).fit(disp=False)
        assert -fitted.alpha[t, 0] == pytest.approx(reference.params[0], abs=1e-8)
        assert fitted.beta[t] == pytest.approx(reference.params[1:], abs=1e-8)
        assert fitted.se[t] == pytest.approx(reference.bse[1:], rel=1e-7)
        assert fitted.loglik[t] == pytest.approx(reference.llf, abs=1e-8)


@pytest.mark.parametrize("k", [2, 3])
def test_a_quasi_separated_fit_is_refused_not_given_an_interval_of_nan(k):
    """Every control in the worst category, the treated in both (review of issue 23): the maximum is at infinity.
    The fitter's steps shrink to nothing while the information turns singular; that is no estimate."""
    if k == 2:
        codes, treated = np.array([1] * 20 + [0] * 40), np.array([1.0] * 20 + [0.0] * 30 + [1.0] * 10)
    else:
        codes, treated = np.array([2] * 20 + [1] * 5 + [0] * 35), np.array([1.0] * 25 + [0.0] * 30 + [1.0] * 5)
    with pytest.raises(AnalysisInputError, match="did not converge"):
        po.fit(codes, k, treated[:, None])
    arms = pd.DataFrame({"mrs": codes + 4, "arm": np.where(treated == 1, "albumin", "control")})
    with pytest.raises(AnalysisInputError, match="did not converge"):
        ordinal.proportional_odds(arms, "mrs", "arm", "albumin", "control", profile=False)


def _multiple_imputation_with_statsmodels(df, adjust, imputations, seed=2026):
    """The multiple imputation as it was before issue 23 (statsmodels' OrderedModel), to 1e-6."""
    data = df[df["arm"].isin(ARMS[1:])].reset_index(drop=True)
    missing = data["mrs_90d"].isna().to_numpy()
    X = pd.concat([pd.Series((data["arm"] == "albumin").astype(float), name="treated"),
                   data[adjust].astype(float)], axis=1)
    levels = np.sort(data["mrs_90d"][~missing].unique())
    codes = np.searchsorted(levels, data["mrs_90d"][~missing].to_numpy())
    model = OrderedModel(pd.Series(codes), X[~missing].reset_index(drop=True), distr="logit")
    fit = _statsmodels_fit(model)
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(fit.params.to_numpy(), fit.cov_params().to_numpy(), size=imputations)
    estimates = []
    for params in draws:
        probs = model.predict(params, exog=X[missing].reset_index(drop=True))
        u = rng.random(len(probs))
        completed = data.copy()
        completed.loc[missing, "mrs_90d"] = levels[np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1),
                                                              len(levels) - 1)]
        estimates.append(ordinal.proportional_odds(completed, "mrs_90d", *ARMS, adjust, profile=False).estimate)
    return float(np.exp(np.mean(np.log(estimates))))


def test_multiple_imputation_equals_the_statsmodels_path_it_replaced():
    r = sensitivity.multiple_imputation(DATA, "mrs_90d", *ARMS, adjust=ADJUST, imputations=20)
    reference = _multiple_imputation_with_statsmodels(DATA, ADJUST, 20)
    assert r.estimate == pytest.approx(reference, abs=1e-6)


def test_bootstrap_of_the_adjusted_risk_difference_equals_the_statsmodels_loop_it_replaced():
    import statsmodels.api as sm

    from stroketrial.analysis import binary

    data = DATA.assign(good=(DATA["mrs_90d"] <= 2).astype(float).where(DATA["mrs_90d"].notna()))
    r = binary.binary(data, "good", *ARMS, adjust=["age", "nihss"], bootstrap=200)["risk_difference_adjusted"]
    rows = data[data["good"].notna()]
    X = sm.add_constant(np.column_stack([(rows["arm"] == "albumin").to_numpy(float),
                                         rows[["age", "nihss"]].to_numpy(float)]))
    y, rng, draws = rows["good"].to_numpy(), np.random.default_rng(2026), []
    for _ in range(200):
        idx = rng.integers(0, len(y), len(y))
        params = sm.Logit(y[idx], X[idx]).fit(disp=False, maxiter=100).params
        treated, control = X[idx].copy(), X[idx].copy()
        treated[:, 1], control[:, 1] = 1.0, 0.0
        draws.append(np.mean(1 / (1 + np.exp(-treated @ params))) - np.mean(1 / (1 + np.exp(-control @ params))))
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])), abs=1e-9)


def test_bootstrap_started_at_the_whole_sample_estimate_ends_where_a_cold_start_does():
    """The resamples' Newton starts at the whole sample's coefficients (issue 23): the same draws to 1e-10."""
    from statsmodels.discrete.discrete_model import Logit

    from stroketrial.analysis import binary

    rows = DATA[DATA["mrs_90d"].notna()]
    y = (rows["mrs_90d"] <= 2).to_numpy(int)
    X = np.column_stack([(rows["arm"] == "albumin").to_numpy(float), rows[["age", "nihss"]].to_numpy(float)])
    whole = Logit(y, np.column_stack([np.ones(len(y)), X])).fit(disp=False).params
    cold = binary._bootstrap_rd(y, X, 200, 2026)
    warm = binary._bootstrap_rd(y, X, 200, 2026, whole)
    assert len(cold) == len(warm) == 200
    np.testing.assert_allclose(warm, cold, rtol=0, atol=1e-10)
