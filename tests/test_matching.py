"""Propensity-score matching against R's MatchIt, its invariants, and the inputs it refuses.

The reference (tests/reference/matchit_reference.json, made by make_matchit_reference.R from matchit_data.csv)
is MatchIt 4.5.1 with upstream's fixes of its nearest-neighbour C++ code (issues #159 and #163; see the
script) in twelve configurations: 1:1, 1:2 and 1:3, with and without a caliper, exact matching, with
replacement, the three deterministic matching orders, and three on a two-covariate model whose 20 covariate
patterns make patients share distances exactly, where MatchIt's rules for ties decide the match.
"""

import hashlib
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from matplotlib.figure import Figure

from stroketrial import InputError
from stroketrial.analysis.matching import (
    MatchingInputError, MatchingSpec, balance_table, match, propensity_scores,
)
from stroketrial.report.balance_figure import love_plot

REFERENCE_DIR = Path(__file__).parent / "reference"
DATA_PATH = REFERENCE_DIR / "matchit_data.csv"
REFERENCE = json.loads((REFERENCE_DIR / "matchit_reference.json").read_text())
CONFIGS = {config["name"]: config for config in REFERENCE["configs"]}
COVARIATES = ("age", "sex", "nihss", "aspects", "occlusion_site", "lkw_to_recanalization_h", "etici")


@pytest.fixture(scope="module")
def registry() -> pd.DataFrame:
    return pd.read_csv(DATA_PATH).set_index("id")


@pytest.fixture(scope="module")
def results(registry) -> dict:
    return {name: match(registry, "treated", spec_of(config)) for name, config in CONFIGS.items()}


def spec_of(config: dict) -> MatchingSpec:
    return MatchingSpec(covariates=tuple(config["covariates"]), ratio=config["ratio"], caliper=config["caliper"],
                        exact=tuple(config["exact"]), replace=config["replace"], order=config["order"])


def r_term(term: str) -> str:
    """MatchIt's name for a term: occlusion_site[m1] is occlusion_sitem1."""
    return term.replace("[", "").removesuffix("]")


# --- against MatchIt -----------------------------------------------------------------------------------


def test_reference_was_made_from_the_committed_data():
    assert hashlib.md5(DATA_PATH.read_bytes()).hexdigest() == REFERENCE["software"]["data_md5"]


def test_no_two_patients_share_a_distance():
    # MatchIt breaks ties in row order, and so does match(); the data avoid them all the same, so that the
    # match does not hang on an order of equal values or on 1e-8 differences between two fits.
    distance = np.sort(np.array(CONFIGS["a_1to1_caliper"]["distance"]))
    assert np.diff(distance).min() > 1e-6


@pytest.mark.parametrize("name", CONFIGS)
def test_propensity_scores_are_matchits(name, results):
    config, data = CONFIGS[name], results[name].data
    # glm, as MatchIt calls it, stops at a relative deviance change of 1e-8, which leaves its scores 3e-9 (the
    # full model) to 3e-8 (the two-covariate one) short of the maximum; run on to the maximum they agree to 1e-12
    np.testing.assert_allclose(data["propensity"], config["propensity_converged"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(data["propensity"], config["propensity"], rtol=0, atol=5e-8)
    np.testing.assert_allclose(data["distance"], config["distance"], rtol=0, atol=1e-6)


def test_propensity_scores_alone_are_the_models(registry):
    scores = propensity_scores(registry, "treated", COVARIATES)
    np.testing.assert_allclose(scores, CONFIGS["a_1to1_caliper"]["propensity_converged"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CONFIGS)
def test_matched_sets_are_matchits(name, results):
    config, result = CONFIGS[name], results[name]
    ours = {int(t): sorted(int(c) for c in cs) for t, cs in result.matched_sets.items()}
    theirs = {int(t): sorted(cs) for t, cs in config["matched_sets"].items()}
    assert ours == theirs


@pytest.mark.parametrize("name", CONFIGS)
def test_weights_are_matchits(name, results):
    np.testing.assert_allclose(results[name].data["weights"], CONFIGS[name]["weights"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CONFIGS)
def test_sample_sizes_and_caliper_are_matchits(name, results):
    config, result = CONFIGS[name], results[name]
    sizes = config["sample_sizes"]
    assert (result.n_matched_treated, result.n_matched_control, result.n_unmatched_treated,
            result.n_unmatched_control) == (sizes["matched_treated"], sizes["matched_control"],
                                            sizes["unmatched_treated"], sizes["unmatched_control"])
    if config["caliper"] is None:
        assert result.caliper_distance is None
    else:
        assert result.caliper_distance == pytest.approx(config["caliper_distance_units"], abs=1e-7)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("when", ["before", "after"])
def test_balance_is_matchits_summary(name, when, results):
    config, balance = CONFIGS[name], results[name].balance
    summary = config["balance_all" if when == "before" else "balance_matched"]
    assert [r_term(row.term) for row in balance.terms] == list(summary)
    for row in balance.terms:
        ours, theirs = getattr(row, when), summary[r_term(row.term)]
        # the distance differs from MatchIt's by where glm stopped (~1e-8); every covariate is exact
        tolerance = 1e-6 if row.term == "distance" else 1e-10
        for statistic in ("mean_treated", "mean_control", "smd"):
            assert getattr(ours, statistic) == pytest.approx(theirs[statistic], abs=tolerance), (row.term, statistic)
        if theirs["variance_ratio"] is None:
            assert ours.variance_ratio is None and row.binary
        else:
            assert ours.variance_ratio == pytest.approx(theirs["variance_ratio"], abs=tolerance), row.term


def test_subclasses_are_the_matched_sets(results):
    data = results["b_1to2_caliper"].data
    for treated, controls in results["b_1to2_caliper"].matched_sets.items():
        members = data.index[data["subclass"] == data.loc[treated, "subclass"]]
        assert set(members) == {treated, *controls}
    assert data["subclass"].isna().sum() == (~data["matched"]).sum()
    assert results["e_1to2_caliper_replace"].data["subclass"].isna().all()  # sets overlap: none, as in MatchIt


def test_result_as_json_is_strict_json(results):
    document = results["b_1to2_caliper"].to_json()
    json.dumps(document, allow_nan=False)
    assert document["n_unmatched_treated"] == 10
    first = document["matched_sets"][0]  # row labels as they are (ints here), controls nearest first
    assert first == {"treated": 12, "controls": CONFIGS["b_1to2_caliper"]["matched_sets"]["12"]}


# --- a literal port of MatchIt's nearest-neighbour loop, for data full of ties --------------------------


def matchit_loop(distance: np.ndarray, treated: np.ndarray, order: np.ndarray, ratio: int, caliper: float | None,
                 replace: bool) -> dict[int, list[int]]:
    """nn_matchC_vec.cpp (MatchIt 4.5.1 with the fixes of #159 and #163) as it is written: scan outwards."""
    d_ord = np.argsort(distance, kind="stable")
    d, t = distance[d_ord], treated[d_ord]
    position = np.empty(len(d_ord), dtype=int)
    position[d_ord] = np.arange(len(d_ord))
    free = ~t.copy()
    sets: dict[int, list[int]] = {int(i): [] for i in np.flatnonzero(treated)}

    def scan(ii: int, step: int) -> int | None:
        k = ii + step
        while 0 <= k < len(d):
            if t[k] or not free[k] or d_ord[k] in sets[int(d_ord[ii])]:
                k += step
                continue
            return None if caliper is not None and abs(d[ii] - d[k]) > caliper else k
        return None

    for _ in range(ratio):
        for unit in np.flatnonzero(treated)[order]:
            ii = position[unit]
            left, right = scan(ii, -1), scan(ii, +1)
            if left is not None and right is not None:
                k = left if abs(d[left] - d[ii]) <= abs(d[right] - d[ii]) else right
            else:
                k = left if left is not None else right
            if k is not None:
                sets[int(unit)].append(int(d_ord[k]))
                free[k] = replace
    return {unit: controls for unit, controls in sets.items() if controls}


@st.composite
def small_registries(draw):
    n_treated = draw(st.integers(3, 12))
    n_control = draw(st.integers(4, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    treated = np.r_[np.ones(n_treated, int), np.zeros(n_control, int)]
    # few distinct values, so many patients share a propensity score: MatchIt's tie rules decide
    data = pd.DataFrame({
        "treated": treated,
        "nihss": rng.integers(6, 10, len(treated)) + treated * draw(st.integers(0, 2)),
        "site": rng.choice(["m1", "m2", "ica"], len(treated)),
        "sex": rng.choice(["female", "male"], len(treated)),
    }).sample(frac=1, random_state=int(rng.integers(1000))).reset_index(drop=True)
    spec = MatchingSpec(covariates=("nihss", "site"), ratio=draw(st.integers(1, 3)),
                        caliper=draw(st.sampled_from([None, 0.05, 0.2, 1.0])), replace=draw(st.booleans()),
                        exact=draw(st.sampled_from([(), ("sex",)])), order=draw(st.sampled_from(["largest", "data"])))
    return data, spec


def matched_or_skip(data: pd.DataFrame, spec: MatchingSpec):
    try:
        return match(data, "treated", spec)
    except MatchingInputError as error:  # a separated toy model, or nothing within the caliper
        assume(False)
        raise AssertionError from error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(small_registries())
def test_matching_follows_matchits_loop_through_ties(case):
    data, spec = case
    result = matched_or_skip(data, spec)
    distance, treated = result.data["distance"].to_numpy(), data["treated"].to_numpy() == 1
    expected: dict[int, list[int]] = {}
    strata = data.groupby(list(spec.exact)).indices.values() if spec.exact else [np.arange(len(data))]
    for rows in strata:
        rows = np.asarray(rows)
        if treated[rows].all() or not treated[rows].any():
            continue
        d, t = distance[rows], treated[rows]
        order = np.argsort(-d[t], kind="stable") if spec.order == "largest" else np.arange(t.sum())
        found = matchit_loop(d, t, order, spec.ratio, result.caliper_distance, spec.replace)
        expected.update({int(rows[u]): [int(rows[c]) for c in cs] for u, cs in found.items()})
    assert {t: list(cs) for t, cs in result.matched_sets.items()} == expected


# --- invariants ----------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(small_registries())
def test_matched_sets_keep_the_rules(case):
    data, spec = case
    result = matched_or_skip(data, spec)
    out = result.data
    controls = [c for cs in result.matched_sets.values() for c in cs]
    for treated, cs in result.matched_sets.items():
        assert 1 <= len(cs) <= spec.ratio and len(set(cs)) == len(cs)
        assert (out.loc[list(cs), "treated"] == 0).all() and out.loc[treated, "treated"] == 1
        for exact in spec.exact:
            assert (out.loc[list(cs), exact] == out.loc[treated, exact]).all()
        if result.caliper_distance is not None:  # every pair within the caliper
            gaps = (out.loc[list(cs), "distance"] - out.loc[treated, "distance"]).abs()
            assert (gaps <= result.caliper_distance).all()
    if not spec.replace:  # no control used twice
        assert len(controls) == len(set(controls))
    weights = out["weights"]
    assert (weights[list(result.matched_sets)] == 1).all()
    assert weights[out["treated"] == 0].sum() == pytest.approx(len(set(controls)))
    assert set(out.index[out["matched"]]) == set(result.matched_sets) | set(controls)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 30), st.integers(0, 2**32 - 1))
def test_smd_is_zero_for_identical_groups(n, seed):
    rng = np.random.default_rng(seed)
    group = pd.DataFrame({"age": rng.normal(70, 10, n).round(), "site": rng.choice(["m1", "m2", "ica"], n),
                          "diabetes": rng.integers(0, 2, n)})
    data = pd.concat([group.assign(treated=1), group.assign(treated=0)], ignore_index=True)
    table = balance_table(data, "treated", ["age", "site", "diabetes"], weights=np.ones(len(data)))
    for row in table.terms:
        for comparison in (row.before, row.after):
            assert comparison is not None and comparison.smd == 0
            assert row.binary or comparison.variance_ratio == pytest.approx(1) or math.isnan(comparison.variance_ratio)


def test_random_order_is_seeded(registry):
    spec = MatchingSpec(covariates=COVARIATES, order="random")
    first, again = match(registry, "treated", spec, seed=7), match(registry, "treated", spec, seed=7)
    assert first.matched_sets == again.matched_sets


def test_balance_table_before_only(registry):
    table = balance_table(registry, "treated", ["age", "etici"])
    assert [row.term for row in table.terms] == ["age", "etici[2b50]", "etici[2b67]", "etici[2c]", "etici[3]"]
    assert all(row.after is None for row in table.terms)
    frame = table.to_frame()
    assert frame.loc["age", "smd_before"] == pytest.approx(CONFIGS["a_1to1_caliper"]["balance_all"]["age"]["smd"])
    assert "smd_after" not in frame


# --- bad input -----------------------------------------------------------------------------------------


def bad(registry: pd.DataFrame, **changes) -> pd.DataFrame:
    data = registry.copy()
    for column, values in changes.items():
        data[column] = values
    return data


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d.drop(columns="nihss"), "column 'nihss' is not in the data"),
    (lambda d: bad(d, nihss=d["nihss"].where(d.index % 50 != 0)), r"covariate 'nihss' is missing .* in 9 rows"),
    (lambda d: bad(d, occlusion_site=d["occlusion_site"].where(d.index != 3)), r"'occlusion_site' .* 1 rows \(rows 3"),
    (lambda d: bad(d, treated=d["treated"] + 1), r"treatment column 'treated' must be 0/1 or bool; it has 2"),
    (lambda d: bad(d, treated=d["treated"].map({1: "albumin", 0: "registry"})), "must be 0/1 or bool"),
    (lambda d: bad(d, treated=0), "has no treated patients"),
    (lambda d: bad(d, treated=1), "has no control patients"),
    (lambda d: bad(d, weights=1.0), "already have a column 'weights'"),
    (lambda d: d.set_index(d.index % 400), "row label 1 is used more than once"),
])
def test_bad_data_is_refused_by_name(registry, make, message):
    with pytest.raises(MatchingInputError, match=message):
        match(make(registry), "treated", MatchingSpec(covariates=COVARIATES))


@pytest.mark.parametrize(("settings_", "message"), [
    ({"ratio": 0}, "ratio 0 is not allowed"),
    ({"ratio": 1.5}, "ratio 1.5 is not allowed"),
    ({"caliper": 0}, "caliper 0 is not allowed"),
    ({"caliper": -0.2}, "caliper -0.2 is not allowed"),
    ({"order": "closest"}, "order 'closest' is not allowed"),
    ({"covariates": ()}, "covariates: name at least one column"),
    ({"covariates": ("age", "age")}, "age named more than once"),
])
def test_bad_settings_are_refused(settings_, message):
    with pytest.raises(InputError, match=message):
        MatchingSpec(**{"covariates": COVARIATES, **settings_})


def test_exact_variable_must_exist(registry):
    with pytest.raises(MatchingInputError, match="column 'hospital' is not in the data"):
        match(registry, "treated", MatchingSpec(covariates=COVARIATES, exact=("hospital",)))


def test_random_order_needs_a_seed(registry):
    with pytest.raises(MatchingInputError, match="needs a seed"):
        match(registry, "treated", MatchingSpec(covariates=COVARIATES, order="random"))


def test_a_separated_model_is_refused_naming_the_term(registry):
    data = registry.copy()
    # quasi-complete: basilar occlusions only among the treated
    data.loc[data.index[data["treated"] == 1][:3], "occlusion_site"] = "basilar"
    message = r"separated: occlusion_site predict.*; occlusion_site 'basilar' occurs only in treated patients"
    with pytest.raises(MatchingInputError, match=message):
        match(data, "treated", MatchingSpec(covariates=COVARIATES))
    # complete: a covariate that is the treatment
    data = registry.assign(albumin_given=registry["treated"] * 20.0)
    with pytest.raises(MatchingInputError, match=r"separated: albumin_given predict\(s\) treatment perfectly"):
        propensity_scores(data, "treated", [*COVARIATES, "albumin_given"])


def test_a_constant_covariate_is_left_out_as_glm_does(registry):
    with_constant = registry.assign(anterior=1)
    np.testing.assert_allclose(propensity_scores(with_constant, "treated", [*COVARIATES, "anterior"]),
                               propensity_scores(registry, "treated", COVARIATES), atol=1e-12)


def test_no_match_within_the_caliper_is_an_input_error(registry):
    data = registry.copy()
    data.loc[data["treated"] == 1, "sex"] = "female"
    data.loc[data["treated"] == 0, "sex"] = "male"
    with pytest.raises(InputError):  # separated, and no control shares a treated patient's sex either
        match(data, "treated", MatchingSpec(covariates=("age",), exact=("sex",)))
    with pytest.raises(MatchingInputError, match="no treated patient has a control"):
        match(data, "treated", MatchingSpec(covariates=("age", "nihss"), exact=("sex",)))


# --- the Love plot -------------------------------------------------------------------------------------


def test_love_plot(results, tmp_path):
    result = results["a_1to1_caliper"]
    fig = love_plot(result, labels={"age": "Age (years)", "occlusion_site": "Occlusion site",
                                    "etici[3]": "eTICI 3"})
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert names[0] == "Propensity score (logit)" and "Age (years)" in names and "eTICI 3" in names
    assert "Occlusion site: m1" in names and "nihss" in names
    assert any(line.get_linestyle() == "--" and list(line.get_xdata()) == [0.1, 0.1] for line in ax.get_lines())
    before, after = ax.collections[1], ax.collections[2]
    smd = [abs(row.after.smd) for row in result.balance.terms]
    np.testing.assert_allclose(after.get_offsets()[:, 0], smd)
    assert matplotlib.colors.to_hex(before.get_facecolors()[0]) == "#ffffff"
    fig.savefig(tmp_path / "love.png")
    assert (tmp_path / "love.png").stat().st_size > 10_000
