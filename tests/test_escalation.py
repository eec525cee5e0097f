"""Dose escalation: the 3+3 rules as AMASS-1 ran them, exact operating characteristics, BOIN and CRM."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.dosing.escalation import Cohort, EscalationInputError, parse_dlt_counts, three_plus_three as T
from stroketrial.dosing.escalation.boin import Boin, isotonic
from stroketrial.dosing.escalation.crm import Crm, calibrated_skeleton
import itertools

runner = CliRunner()
REFERENCE = Path(__file__).parent / "reference"


# ---- 3+3: every live rule ----------------------------------------------------------------------
def decide(*cohorts, levels=7, expansion=15):
    return T.decide([Cohort(*c) for c in cohorts], levels, expansion)


def test_three_plus_three_rules_one_by_one():
    assert decide().level == 1 and decide().rule == "start"
    assert (decide((1, 3, 0)).level, decide((1, 3, 0)).rule) == (2, "escalate_0_of_3")
    assert (decide((1, 3, 1)).level, decide((1, 3, 1)).rule) == (1, "expand_1_of_3")
    assert (decide((1, 3, 1), (1, 3, 0)).level, decide((1, 3, 1), (1, 3, 0)).rule) == (2, "escalate_1_of_6")
    stop = decide((1, 3, 0), (2, 3, 1), (2, 3, 1))
    assert (stop.action, stop.mtd, stop.rule) == ("stop", 1, "stop_2_plus")
    assert stop.expansion == "then a dose-expansion cohort of 15 patients at level 1"
    stop = decide((1, 3, 0), (2, 3, 2))
    assert (stop.action, stop.mtd, stop.rule) == ("stop", 1, "stop_2_plus")
    first = decide((1, 3, 2))
    assert (first.action, first.mtd, first.rule, first.expansion) == ("stop", None, "stop_2_plus_first", None)
    top = decide((1, 3, 0), (2, 3, 1), (2, 3, 0), levels=2)
    assert (top.action, top.mtd, top.rule) == ("stop", 2, "top_tolerated")


@pytest.mark.parametrize("cohorts, message", [
    (((1, 3, 0), (1, 3, 0)), "the 3+3 rule called for level 2"),
    (((1, 3, 2), (1, 3, 0)), "the trial stopped after cohort 1"),
    (((1, 4, 0),), "cohorts of 3"),
])
def test_three_plus_three_refuses_a_history_the_rules_could_not_produce(cohorts, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        decide(*cohorts)


def test_a_cohort_with_more_dlts_than_patients_is_refused():
    with pytest.raises(EscalationInputError, match="4 DLTs in 3 patients is impossible"):
        Cohort(1, 3, 4)


# ---- 3+3: exact characteristics --------------------------------------------------------------------
def closed_form_two_levels(p1: float, p2: float) -> dict:
    """By hand: leave a level upwards with (1-p)^3 + 3p(1-p)^2 (1-p)^3; expect 3 + 3 x P(1/3) patients."""
    def e(p):
        return (1 - p) ** 3 + 3 * p * (1 - p) ** 2 * (1 - p) ** 3

    def q1(p):
        return 3 * p * (1 - p) ** 2

    return {"p_none": 1 - e(p1), "p_select": [e(p1) * (1 - e(p2)), e(p1) * e(p2)],
            "expected_n": [3 + 3 * q1(p1), e(p1) * (3 + 3 * q1(p2))],
            "expected_dlt": [3 * p1 + q1(p1) * 3 * p1, e(p1) * (3 * p2 + q1(p2) * 3 * p2)]}


@given(p1=st.floats(0, 1), p2=st.floats(0, 1))
def test_exact_three_plus_three_equals_the_closed_form_for_two_levels(p1, p2):
    p1, p2 = sorted((p1, p2))
    oc = T.exact([p1, p2])
    expected = closed_form_two_levels(p1, p2)
    assert oc.p_none == pytest.approx(expected["p_none"], abs=1e-12)
    for key in ("p_select", "expected_n", "expected_dlt"):
        assert getattr(oc, key) == pytest.approx(expected[key], abs=1e-12)
    assert sum(oc.p_select) + oc.p_none == pytest.approx(1)


def test_simulated_three_plus_three_agrees_with_exact_within_monte_carlo_error():
    tox = [0.05, 0.10, 0.20, 0.35, 0.50]
    exact = T.exact(tox)
    trials = 200_000
    sim = T.simulate(tox, trials, np.random.default_rng(7))
    for e, s in zip([*exact.p_select, exact.p_none], [*sim.p_select, sim.p_none], strict=False):
        assert abs(e - s) < 4.5 * np.sqrt(e * (1 - e) / trials) + 1e-9
    assert sim.expected_n == pytest.approx(exact.expected_n, abs=0.03)
    assert sim.expected_dlt == pytest.approx(exact.expected_dlt, abs=0.02)


# ---- 3+3, classic (the MTD has 6 patients) -------------------------------------------------------------
def classic(counts, levels=4, expansion=0):
    return T.decide_classic(counts, levels, expansion)


def test_classic_three_plus_three_rules_one_by_one():
    assert (classic({}).level, classic({}).rule) == (1, "start")
    assert (classic({1: (0, 3)}).level, classic({1: (0, 3)}).rule) == (2, "escalate_0_of_3")
    assert (classic({1: (1, 3)}).level, classic({1: (1, 3)}).rule) == (1, "expand_1_of_3")
    assert (classic({1: (1, 6)}).level, classic({1: (1, 6)}).rule) == (2, "escalate_1_of_6")
    # 2/3 at level 2 after 0/3 at level 1: level 1 has 3 patients, so 3 more there before it is the MTD
    back = classic({1: (0, 3), 2: (2, 3)})
    assert (back.action, back.level, back.rule) == ("treat", 1, "expand_candidate_to_6")
    done = classic({1: (1, 6), 2: (0, 3), 3: (2, 6)}, expansion=12)  # the candidate had 0/3: expand it
    assert (done.action, done.level) == ("treat", 2)
    mtd = classic({1: (1, 6), 2: (1, 6), 3: (2, 6)}, expansion=12)  # the candidate already has 6: the MTD
    assert (mtd.action, mtd.mtd, mtd.rule) == ("stop", 2, "mtd_at_most_1_of_6")
    assert mtd.expansion == "then a dose-expansion cohort of 12 patients at level 2"
    # its 3 more had 2 DLTs: 2/6, so the candidacy passes down to level 1, which has 3 patients
    down = classic({1: (0, 3), 2: (2, 6), 3: (2, 3)})
    assert (down.level, down.rule) == (1, "expand_candidate_to_6") and "levels 2, 3" in down.text
    assert classic({1: (1, 6), 2: (2, 6), 3: (2, 3)}).mtd == 1
    none = classic({1: (2, 6), 2: (3, 3)})
    assert (none.action, none.mtd, none.rule) == ("stop", None, "no_level_tolerated")
    assert classic({1: (2, 3)}).rule == "no_level_tolerated"
    # the top level tolerated after 0/3 is expanded to 6 before it is declared
    top = classic({1: (0, 3), 2: (0, 3), 3: (0, 3), 4: (0, 3)})
    assert (top.action, top.level, top.rule) == ("treat", 4, "expand_top_to_6")
    assert classic({1: (0, 3), 2: (0, 3), 3: (0, 3), 4: (1, 6)}).mtd == 4
    assert classic({1: (0, 3), 2: (0, 3), 3: (0, 3), 4: (2, 6)}).level == 3


@pytest.mark.parametrize("counts, message", [
    ({1: (0, 3), 3: (0, 3)}, "skips level 2"),
    ({1: (0, 6), 2: (0, 3)}, "cannot be followed"),  # 0/6 at level 1 only as a candidate, after escalation stopped
    ({1: (1, 3), 2: (0, 3)}, "cannot be followed"),  # 1/3 treats 3 more at the same level
    ({1: (0, 6)}, "0/3 escalates"),
    ({1: (0, 4)}, "a 3+3 level has 3 or 6"),
    ({1: (0, 3), 2: (1, 3), 3: (2, 3)}, "cannot be followed"),
    ({5: (0, 3)}, "levels 1 to 4"),
])
def test_classic_three_plus_three_refuses_counts_the_rules_could_not_produce(counts, message):
    with pytest.raises(EscalationInputError, match=re.escape(message)):
        classic(counts)


def _every_classic_path(tox):
    """Follow the live rule (decide_classic) through every outcome of every cohort: exact characteristics
    by brute force, to hold the closed form to the rule."""
    k = len(tox)
    select, n_sum, dlt_sum = np.zeros(k + 1), np.zeros(k), np.zeros(k)

    def walk(counts, prob):
        decision = T.decide_classic({lv: c for lv, c in counts.items() if c[1]}, k)
        if decision.action == "stop":
            select[decision.mtd or 0] += prob
            for lv, (d, m) in counts.items():
                n_sum[lv - 1] += prob * m
                dlt_sum[lv - 1] += prob * d
            return
        lv = decision.level
        d, m = counts.get(lv, (0, 0))
        for x in range(4):
            p = math.comb(3, x) * tox[lv - 1] ** x * (1 - tox[lv - 1]) ** (3 - x)
            if p > 0:
                walk(counts | {lv: (d + x, m + 3)}, prob * p)

    walk({}, 1.0)
    return select, n_sum, dlt_sum


@settings(max_examples=40, deadline=None)
@given(tox=st.lists(st.floats(0, 1), min_size=1, max_size=5).map(sorted))
def test_classic_exact_equals_following_every_path_of_the_live_rule(tox):
    oc = T.exact(tox, "classic")
    select, n_sum, dlt_sum = _every_classic_path(tox)
    assert oc.p_none == pytest.approx(select[0], abs=1e-12)
    assert oc.p_select == pytest.approx(select[1:].tolist(), abs=1e-12)
    assert oc.expected_n == pytest.approx(n_sum.tolist(), abs=1e-11)
    assert oc.expected_dlt == pytest.approx(dlt_sum.tolist(), abs=1e-11)
    assert sum(oc.p_select) + oc.p_none == pytest.approx(1, abs=1e-12)


def _three_plus_three_reference():
    with open(REFERENCE / "three_plus_three_reference.csv") as f:
        rows = list(csv.DictReader(f))
    cases: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        cases.setdefault((row["scenario"], row["variant"]), []).append(row)
    return cases


THREE_PLUS_THREE_R = _three_plus_three_reference()


@pytest.mark.parametrize("case", sorted(THREE_PLUS_THREE_R), ids=lambda c: f"{c[0]}-{c[1]}")
def test_exact_three_plus_three_matches_the_r_enumeration(case):
    """Every trial path enumerated in R (tests/reference/make_three_plus_three_reference.R), both variants."""
    rows = THREE_PLUS_THREE_R[case]
    oc = T.exact([float(r["tox"]) for r in rows], case[1])
    assert oc.settings == {"variant": case[1]}
    assert oc.p_none == pytest.approx(float(rows[0]["p_none"]), abs=1e-9)
    for key in ("p_select", "expected_n", "expected_dlt"):
        assert getattr(oc, key) == pytest.approx([float(r[key]) for r in rows], abs=1e-9), key


def test_classic_three_plus_three_on_the_command_line():
    tox = "0.05,0.10,0.20,0.35"
    data = json.loads(runner.invoke(app, ["escalation", "oc", "--design", "3+3", "--variant", "classic", "--tox", tox,
                                          "--json"]).stdout)
    rows = THREE_PLUS_THREE_R[("S1", "classic")]
    assert data["settings"] == {"variant": "classic"} and data["method"] == "exact"
    assert data["p_select"] == pytest.approx([float(r["p_select"]) for r in rows], abs=1e-9)
    default = json.loads(runner.invoke(app, ["escalation", "oc", "--design", "3+3", "--tox", tox, "--json"]).stdout)
    assert default["settings"] == {"variant": "expansion"}
    assert default["p_select"] == pytest.approx(T.exact([0.05, 0.10, 0.20, 0.35]).p_select)
    live = json.loads(runner.invoke(app, ["escalation", "run", "amass-1", "--variant", "classic", "--dlt",
                                          "1:0/3,2:0/3,3:2/3", "--json"]).stdout)
    assert (live["action"], live["level"], live["rule"], live["variant"]) == ("treat", 2, "expand_candidate_to_6",
                                                                              "classic")
    amass = json.loads(runner.invoke(app, ["escalation", "run", "amass-1", "--dlt", "1:0/3,2:0/3,3:2/3",
                                           "--json"]).stdout)
    assert (amass["action"], amass["mtd"], amass["variant"]) == ("stop", 2, "expansion")


# ---- BOIN ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, lambda_e, lambda_d", [
    # Yuan Y, Hess KR, Hilsenbeck SG, Gilbert MR. Clin Cancer Res 2016;22:4291-301, Table 1
    (0.15, 0.118, 0.179), (0.20, 0.157, 0.238), (0.25, 0.197, 0.298), (0.30, 0.236, 0.359),
    (0.35, 0.276, 0.419), (0.40, 0.316, 0.480)])
def test_boin_boundaries_match_the_published_table(target, lambda_e, lambda_d):
    design = Boin(target)
    assert round(design.lambda_e, 3) == lambda_e
    assert round(design.lambda_d, 3) == pytest.approx(lambda_d, abs=0.001)


def test_boin_elimination_follows_the_beta_posterior():
    design = Boin(0.3)
    table = design.elimination_table(12)
    for n in range(3, 13):
        y = table[n]
        # Pr(p > 0.3 | y DLTs in n, Beta(1, 1) prior) by direct integration of the posterior density
        def tail(k, n=n):
            density = lambda p: p ** k * (1 - p) ** (n - k)  # noqa: E731
            return integrate.quad(density, 0.3, 1)[0] / integrate.quad(density, 0, 1)[0]
        assert tail(y) > 0.95 and (y == 0 or tail(y - 1) <= 0.95)


def test_boin_live_decisions():
    design = Boin(0.3, n_cohorts=10)
    assert design.decide({1: (0, 3)}, 1, 5).level == 2
    stay = design.decide({1: (0, 3), 2: (1, 3)}, 2, 5)
    assert (stay.level, stay.rule) == (2, "stay")
    down = design.decide({1: (0, 3), 2: (2, 3)}, 2, 5)
    assert (down.level, down.rule) == (1, "de_escalate")
    stop = design.decide({1: (3, 3)}, 1, 5)
    assert (stop.action, stop.mtd, stop.rule) == ("stop", None, "lowest_eliminated")
    # 30 patients: isotonic estimates 0.02, 0.01 -> pooled, 0.33, 0.55; level 3 is closest to 0.3
    done = design.decide({1: (0, 3), 2: (0, 6), 3: (4, 12), 4: (5, 9)}, 3, 5)
    assert (done.action, done.mtd) == ("stop", 3)
    upper = design.decide({1: (0, 3), 2: (0, 6), 3: (2, 12), 4: (3, 9)}, 3, 5)  # 0.17 and 0.34: level 4
    assert upper.mtd == 4


def _pava(values, weights):
    """Pool-adjacent-violators, the textbook algorithm, to check the vectorised max-min formula."""
    blocks = [[v, w, 1] for v, w in zip(values, weights, strict=False)]
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] > blocks[i + 1][0]:
            v1, w1, c1 = blocks[i]
            v2, w2, c2 = blocks.pop(i + 1)
            blocks[i] = [(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
            i = max(i - 1, 0)
        else:
            i += 1
    return [v for v, _, c in blocks for _ in range(c)]


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0.1, 10)), min_size=1, max_size=7))
def test_isotonic_regression_equals_pool_adjacent_violators(pairs):
    values = np.array([[v for v, _ in pairs]])
    weights = np.array([[w for _, w in pairs]])
    fit = isotonic(values, weights, np.ones_like(values, dtype=bool))[0]
    assert fit == pytest.approx(_pava(values[0], weights[0]), abs=1e-9)


def _path_enumeration(design: Boin, tox):
    """Every path of cohort outcomes followed one by one (no merging of states), with the same rule."""
    k = len(tox)
    p_select, p_none, expected_n = np.zeros(k), 0.0, np.zeros(k)
    stack = [(np.zeros((1, k), int), np.zeros((1, k), int), 0, k, 1.0, 0)]
    c = design.cohort_size
    while stack:
        n, y, cur, elim, prob, done = stack.pop()
        for dlt in range(c + 1):
            n2, y2 = n.copy(), y.copy()
            n2[0, cur] += c
            y2[0, cur] += dlt
            pr = prob * math.comb(c, dlt) * tox[cur] ** dlt * (1 - tox[cur]) ** (c - dlt)
            s = design.step(n2, y2, np.array([cur]), np.array([elim]))
            if s.no_mtd[0] or s.converged[0] or done + 1 == design.n_cohorts:
                choice = int(design.select_mtd(n2, y2, s.eliminated)[0])
                expected_n += pr * n2[0]
                if choice < 0:
                    p_none += pr
                else:
                    p_select[choice] += pr
            else:
                stack.append((n2, y2, int(s.next_dose[0]), int(s.eliminated[0]), pr, done + 1))
    return p_select, p_none, expected_n


@pytest.mark.parametrize("design", [Boin(0.3, n_cohorts=5), Boin(0.25, n_cohorts=5, n_earlystop=6, extrasafe=True)])
def test_boin_exact_enumeration_equals_following_every_path(design):
    tox = [0.10, 0.30, 0.50]
    p_select, p_none, expected_n = _path_enumeration(design, tox)
    exact = design.exact(tox)
    assert exact.p_select == pytest.approx(p_select, abs=1e-12)
    assert exact.p_none == pytest.approx(p_none, abs=1e-12)
    assert exact.expected_n == pytest.approx(expected_n, abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(target=st.sampled_from([0.2, 0.25, 0.3, 0.33]), earlystop=st.sampled_from([3, 6, 9, 100]),
       extrasafe=st.booleans(), tox=st.lists(st.floats(0, 1), min_size=3, max_size=3).map(sorted))
def test_boin_exact_enumeration_equals_following_every_path_for_any_design(target, earlystop, extrasafe, tox):
    design = Boin(target, n_cohorts=4, n_earlystop=earlystop, extrasafe=extrasafe)
    p_select, p_none, expected_n = _path_enumeration(design, tox)
    exact = design.exact(tox)
    assert sum(exact.p_select) + exact.p_none == pytest.approx(1, abs=1e-12)
    assert exact.p_select == pytest.approx(p_select, abs=1e-12) and exact.p_none == pytest.approx(p_none, abs=1e-12)
    assert exact.expected_n == pytest.approx(expected_n, abs=1e-10)


def test_boin_simulation_agrees_with_exact_enumeration():
    design, tox = Boin(0.27, n_earlystop=9, extrasafe=True), [0.11, 0.27, 0.42, 0.64]
    exact = design.exact(tox)
    trials = 200_000
    sim = design.simulate(tox, trials, np.random.default_rng(3))
    for e, s in zip([*exact.p_select, exact.p_none], [*sim.p_select, sim.p_none], strict=False):
        assert abs(e - s) < 4.5 * np.sqrt(e * (1 - e) / trials) + 1e-9
    assert sum(sim.expected_n) == pytest.approx(sum(exact.expected_n), abs=0.1)


# The four BOIN designs of tests/reference/boin_trialdesign_oc.csv (see its header for the source).
PUBLISHED_BOIN = {
    "A": Boin(0.27),
    "B": Boin(0.27, n_earlystop=6, extrasafe=True, offset=0.05),
    "C": Boin(0.27, n_earlystop=9, extrasafe=True, offset=0.05),
    "D": Boin(0.30, n_earlystop=6, extrasafe=True, offset=0.05, escalation_boundary=0.236,
              deescalation_boundary=0.329),
}


def _published_boin_rows():
    with open(REFERENCE / "boin_trialdesign_oc.csv") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


@pytest.mark.parametrize("row", _published_boin_rows(), ids=lambda r: f"{r['design']}{r['scenario']}")
def test_boin_operating_characteristics_match_the_published_tables(row):
    """Exact operating characteristics against the BOIN software's published 1000-trial simulations:
    each published figure must lie within 4 Monte-Carlo standard errors of a 1000-trial run (computed
    from the exact distribution of trial outcomes), plus half its rounding unit."""
    design = PUBLISHED_BOIN[row["design"]]
    tox = [float(row[f"tox{j}"]) for j in range(1, 5)]
    end = design.final_states(tox)
    w, total = end.probability, end.n.sum(axis=1)
    runs = 1000

    def check(name, exact, se):
        published = float(row[name])
        assert abs(exact - published) <= 4 * se + 0.05, f"{name}: exact {exact:.2f}, published {published}"

    for j in range(4):
        p = w[end.selected == j].sum()
        check(f"select{j + 1}", 100 * p, 100 * np.sqrt(p * (1 - p) / runs))
    p = w[end.selected == -1].sum()
    check("early_stop", 100 * p, 100 * np.sqrt(p * (1 - p) / runs))
    mean_n = w @ total
    check("n_patients", mean_n, np.sqrt(w @ (total - mean_n) ** 2 / runs))
    for j in range(4):
        share = (w @ end.n[:, j]) / mean_n  # a ratio of means: its standard error by the delta method
        check(f"treated{j + 1}", 100 * share, 100 * np.sqrt(w @ (end.n[:, j] - share * total) ** 2 / runs) / mean_n)


def boin_select_mtd_reference(target, npts, ntox, cutoff_eli=0.95, extrasafe=False, offset=0.05) -> int:
    """select.mtd of the BOIN authors' R package (CRAN BOIN, R/select.mtd.R), line by line, with SciPy's
    weighted pool-adjacent-violators (scipy.optimize.isotonic_regression) for its pava(): 0-based, -1 for none."""
    n, y = np.asarray(npts), np.asarray(ntox)
    eliminated = np.zeros(len(n), dtype=bool)
    for i in range(len(n)):
        if n[i] >= 3 and stats.beta.sf(target, y[i] + 1, n[i] - y[i] + 1) > cutoff_eli:
            eliminated[i:] = True
            break
    if extrasafe and n[0] >= 3 and stats.beta.sf(target, y[0] + 1, n[0] - y[0] + 1) > cutoff_eli - offset:
        eliminated[:] = True
    if eliminated[0] or n[~eliminated].sum() == 0:
        return -1
    admissible = np.flatnonzero((n != 0) & ~eliminated)
    ya, na = y[admissible], n[admissible]
    phat = (ya + 0.05) / (na + 0.1)
    variance = (ya + 0.05) * (na - ya + 0.05) / ((na + 0.1) ** 2 * (na + 0.1 + 1))
    phat = optimize.isotonic_regression(phat, weights=1 / variance).x
    phat = phat + np.arange(1, len(phat) + 1) * 1e-10  # BOIN: "break ties by adding an increasingly small number"
    return int(admissible[np.argmin(np.abs(phat - target))])


def test_boin_pools_adjacent_doses_with_inverse_variance_weights():
    # 1/6, 3/6, 0/6, 5/12 at target 0.3: the estimates (y + 0.05)/(n + 0.1) violate order at levels 1-3; pooled
    # with weights 1/Var of the Beta(y + 0.05, n - y + 0.05) posterior the 0/6 dominates, so level 4 (0.417) is
    # closest. Weighting by n instead would pool levels 2-3 to 0.254 and pick level 2.
    n, y = np.array([[6, 6, 6, 12]]), np.array([[1, 3, 0, 5]])
    a, b = y + 0.05, n - y + 0.05
    weights = (a + b) ** 2 * (a + b + 1) / (a * b)
    pooled = optimize.isotonic_regression((a / (a + b))[0], weights=weights[0]).x
    assert isotonic(a / (a + b), weights, np.ones_like(n, dtype=bool))[0] == pytest.approx(pooled, abs=1e-12)
    assert pooled[:3] == pytest.approx([0.0315] * 3, abs=5e-4)
    assert boin_select_mtd_reference(0.3, n[0], y[0]) == Boin(0.3).select_mtd(n, y)[0] == 3
    by_n = optimize.isotonic_regression((a / (a + b))[0], weights=n[0].astype(float)).x
    assert np.argmin(np.abs(by_n - 0.3)) == 1


@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=2, max_size=6),
       st.sampled_from([0.2, 0.25, 0.3, 0.33]), st.booleans())
@settings(max_examples=400, deadline=None)
def test_boin_selects_the_mtd_as_the_boin_r_package_does(counts, target, extrasafe):
    n = np.array([c[0] for c in counts])
    y = np.minimum([c[1] for c in counts], n)
    design = Boin(target, extrasafe=extrasafe)
    assert design.select_mtd(n[None, :], y[None, :])[0] == boin_select_mtd_reference(target, n, y,
                                                                                     extrasafe=extrasafe)
    a, b = y + 0.05, n - y + 0.05
    usable = n > 0
    if usable.any():
        fitted = isotonic((a / (a + b))[None, :], ((a + b) ** 2 * (a + b + 1) / (a * b))[None, :], usable[None, :])
        reference = optimize.isotonic_regression((a / (a + b))[usable], weights=((a + b) ** 2 * (a + b + 1) /
                                                                                  (a * b))[usable]).x
        assert fitted[0, usable] == pytest.approx(reference, abs=1e-10)


def test_boin_early_stopping_and_extra_safety_rules_live():
    design = Boin(0.27, n_earlystop=6, extrasafe=True)  # lambda_e 0.213, lambda_d 0.322
    # 1/6 at level 2 escalates (0.167 <= 0.213): no stop although 6 patients are there
    assert design.decide({1: (0, 3), 2: (1, 6)}, 2, 4).level == 3
    # 2/6 at level 1 would de-escalate but cannot, so the rule stays, and 6 patients are there
    stop = design.decide({1: (2, 6)}, 1, 4)
    assert (stop.action, stop.rule, stop.mtd) == ("stop", "n_earlystop", 1)
    # likewise 1/6 at the top level would escalate but cannot
    top = design.decide({1: (0, 3), 2: (0, 3), 3: (0, 3), 4: (1, 6)}, 4, 4)
    assert (top.action, top.rule, top.mtd) == ("stop", "n_earlystop", 4)
    # 2/3 at level 1: Pr(p > 0.27) = 0.918 is below 0.95 but above 0.95 - 0.05: extra-safe stop
    safety = design.decide({1: (2, 3)}, 1, 4)
    assert (safety.action, safety.mtd, safety.rule) == ("stop", None, "lowest_eliminated")
    assert "0.9" in safety.text
    assert Boin(0.27).decide({1: (2, 3)}, 1, 4).level == 1  # without it, de-escalation stays at level 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(p_saf=0.15, escalation_boundary=0.2), "not both"),
    (dict(escalation_boundary=0.3), "lambda_e"),
    (dict(n_earlystop=0), "n-earlystop"),
    (dict(offset=0.6), "offset"),
    (dict(cutoff_eli=1.0), "cutoff-eli"),
])
def test_boin_refuses_impossible_settings(kwargs, message):
    with pytest.raises(EscalationInputError, match=message):
        Boin(0.27, **kwargs)


# ---- CRM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, y", [
    ([[3, 3, 6, 0]], [[0, 0, 2, 0]]),
    ([[3, 0, 0, 0]], [[3, 0, 0, 0]]),  # every patient with a DLT at the lowest level
    ([[3, 6, 12, 9]], [[0, 0, 0, 0]]),  # no DLT in 30 patients
])
def test_crm_posterior_matches_direct_integration(n, y):
    design = Crm(0.25, (0.05, 0.12, 0.25, 0.40))
    n, y = np.array(n), np.array(y)
    beta, p_over = design.posterior(n, y)

    def likelihood(a):
        p = np.asarray(design.skeleton) ** np.exp(a)
        return np.prod(p ** y[0] * (1 - p) ** (n[0] - y[0])) * np.exp(-a * a / (2 * 1.34))

    z = integrate.quad(likelihood, -20, 20)[0]
    assert beta[0] == pytest.approx(integrate.quad(lambda a: a * likelihood(a), -20, 20)[0] / z, abs=1e-4)
    cut = np.log(np.log(0.25) / np.log(0.05))
    assert p_over[0] == pytest.approx(integrate.quad(likelihood, -20, cut)[0] / z, abs=1e-8)


def _crm_stop_reference():
    with open(REFERENCE / "crm_stop_reference.csv") as f:
        return list(csv.DictReader(f))


CRM_STOP = _crm_stop_reference()


def _semicolons(text: str) -> list[float]:
    return [float(x) for x in text.split(";")]


@pytest.mark.parametrize("row", CRM_STOP, ids=lambda r: r["id"])
def test_crm_safety_stop_probability_matches_r_integrate(row):
    """Pr(p_1 > target | data) against R's integrate() on the same posterior, over the whole line
    (tests/reference/make_crm_stop_reference.R); the grid sum it replaces was low by up to 0.018 here."""
    design = Crm(float(row["target"]), tuple(_semicolons(row["skeleton"])),
                 prior_variance=float(row["prior_variance"]))
    n, y = np.array([_semicolons(row["n"])], dtype=int), np.array([_semicolons(row["y"])], dtype=int)
    beta, p_over = design.posterior(n, y)
    assert p_over[0] == pytest.approx(float(row["p_first_too_toxic"]), abs=1e-9)
    assert beta[0] == pytest.approx(float(row["posterior_mean"]), abs=1e-5)  # the mean stays on the grid


def test_crm_safety_stop_decision_follows_the_integral():
    """2/3 at level 1 of a calibrated 5-level skeleton, target 0.20: R puts Pr(p_1 > 0.20) at 0.9024, above
    0.90, so the trial stops; the grid sum (0.896) had let it go on."""
    row = next(r for r in CRM_STOP if r["id"] == "t20_two_of_three")
    assert float(row["p_first_too_toxic"]) > 0.90
    design = Crm(0.20, tuple(_semicolons(row["skeleton"])))
    decision = design.decide({1: (2, 3)}, 5)
    assert (decision.action, decision.rule) == ("stop", "safety_stop")
    assert "= 0.902 > 0.9" in decision.text
    # simulated trials stop by the same integral: after one cohort at p_1 = 0.5, exactly those with 2 or 3 DLTs
    one_cohort = Crm(0.20, tuple(_semicolons(row["skeleton"])), n_cohorts=1)
    oc = one_cohort.simulate([0.5, 0.6, 0.7, 0.8, 0.9], 20_000, np.random.default_rng(3))
    assert abs(oc.p_none - 0.5) < 4.5 * math.sqrt(0.25 / 20_000)  # P(2 or 3 of 3) = 0.5; the grid stopped 3/3 only


def test_crm_safety_stop_probability_for_many_trials_at_once():
    """All the datasets of one design in one call (as a simulation asks, with repeated histories)."""
    rows = [r for r in CRM_STOP if r["skeleton"] == "0.05;0.12;0.25;0.4" and r["target"] == "0.25"]
    design = Crm(0.25, (0.05, 0.12, 0.25, 0.40))
    order = [*range(len(rows)), 0, 3, 0]
    n = np.array([_semicolons(rows[i]["n"]) for i in order], dtype=int)
    y = np.array([_semicolons(rows[i]["y"]) for i in order], dtype=int)
    expected = [float(rows[i]["p_first_too_toxic"]) for i in order]
    assert design.prob_first_too_toxic(n, y) == pytest.approx(expected, abs=1e-9)


def test_crm_live_rules():
    design = Crm(0.25, (0.05, 0.12, 0.25, 0.40))
    first = design.decide({1: (0, 3)}, 4)
    assert (first.level, first.rule) == (2, "no_skipping")  # the model would go higher: one level at a time
    # after 0/3, 0/3, 0/3 at levels 1-3 and a return to level 2, the next cohort may not jump to 4
    back = design.decide({1: (0, 3), 2: (0, 6), 3: (0, 3)}, 4, last_level=2, last_dlt=0)
    assert back.level == 3
    # 1/3 (33% >= 25%) in the last cohort: no escalation above its level even if the model says so
    coherent = design.decide({1: (0, 3), 2: (1, 3)}, 4)
    assert coherent.level <= 2
    assert design.decide({1: (3, 3)}, 4).rule == "safety_stop"
    assert Crm(0.25, (0.05, 0.12, 0.25, 0.40), stop_probability=None).decide({1: (3, 3)}, 4).level == 1
    with pytest.raises(EscalationInputError, match="--last-dlt"):
        design.decide({1: (0, 3), 2: (1, 6)}, 4)  # level 2 has had two cohorts: which one had the DLT?


def _dfcrm_reference():
    with open(REFERENCE / "crm_dfcrm_reference.csv") as f:
        rows = list(csv.DictReader(f))
    scenarios: dict[str, list[dict]] = {}
    for row in rows:
        scenarios.setdefault(row["scenario"], []).append(row)
    return scenarios


DFCRM = _dfcrm_reference()


@pytest.mark.parametrize("scenario", sorted(DFCRM))
def test_calibrated_skeleton_equals_dfcrm_getprior(scenario):
    rows = DFCRM[scenario]
    sk = calibrated_skeleton(float(rows[0]["target"]), len(rows), float(rows[0]["halfwidth"]), int(rows[0]["nu"]))
    assert sk == pytest.approx([float(r["skeleton"]) for r in rows], abs=5e-5)  # ours is rounded to 4 decimals


@pytest.mark.parametrize("scenario", sorted(DFCRM))
def test_crm_operating_characteristics_match_dfcrm(scenario):
    """dfcrm's crmsim (tests/reference/make_crm_reference.R: 20,000 trials per scenario) against our
    simulation of the same design without the safety stop, within 4.5 standard errors of the
    difference of two simulations."""
    rows = DFCRM[scenario]
    design = Crm(float(rows[0]["target"]), tuple(float(r["skeleton"]) for r in rows), stop_probability=None)
    ours_trials, theirs_trials = 40_000, int(rows[0]["nsim"])
    ours = design.simulate([float(r["tox"]) for r in rows], ours_trials, np.random.default_rng(11))
    spread = 1 / ours_trials + 1 / theirs_trials
    assert ours.p_none == 0
    for j, row in enumerate(rows):
        p = float(row["p_select"])
        assert abs(ours.p_select[j] - p) <= 4.5 * np.sqrt(max(p * (1 - p), 1e-4) * spread), f"level {j + 1}"
        # patients per level lie in 0..30, so their variance is at most mean x (30 - mean)
        m = float(row["mean_n"])
        assert abs(ours.expected_n[j] - m) <= 4.5 * np.sqrt(max(m * (30 - m), 1) * spread), f"level {j + 1}"


def test_calibrated_skeleton_puts_the_prior_mtd_at_the_target():
    sk = calibrated_skeleton(0.25, 5, 0.05)
    assert sk[2] == 0.25 and all(a < b for a, b in itertools.pairwise(sk))
    # at the boundary between levels 3 and 4 the same exp(a) gives target -/+ halfwidth
    e = np.log(0.20) / np.log(sk[2])
    assert sk[3] ** e == pytest.approx(0.30, abs=1e-3)


# ---- BOIN or CRM fixed in the protocol --------------------------------------------------------
def _amass1_with(tmp_path, name: str, **escalation) -> str:
    """AMASS-1's protocol with its dose escalation redesigned, as a trialist planning a successor would."""
    from importlib import resources

    import yaml

    data = yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", "amass-1.yaml").read_text())
    data["dose_escalation"] = {k: v for k, v in data["dose_escalation"].items()
                               if k not in ("expansion_min", "expansion_max")} | escalation
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return str(path)


BOIN_IN_PROTOCOL = {"design": "boin", "n_cohorts": 10,
                    "boin": {"target": 0.25, "n_earlystop": 9, "extrasafe": True}}


def test_a_protocol_fixes_boin_and_the_command_line_cannot_change_it(tmp_path):
    path = _amass1_with(tmp_path, "amass1-boin", **BOIN_IN_PROTOCOL)
    up = json.loads(runner.invoke(app, ["escalation", "run", path, "--dlt", "1:0/3", "--json"]).stdout)
    assert (up["design"], up["level"], up["dose"], up["rule"]) == ("boin", 2, 0.35, "escalate")
    # 2/9 at level 2 stays and 9 patients are there: the protocol's n_earlystop = 9 ends escalation
    done = json.loads(runner.invoke(app, ["escalation", "run", path, "--dlt", "1:0/3,2:2/9", "--json"]).stdout)
    assert (done["action"], done["rule"], done["mtd"], done["dose"]) == ("stop", "n_earlystop", 2, 0.35)
    refused = runner.invoke(app, ["escalation", "run", path, "--dlt", "1:0/3", "--target", "0.3"])
    assert refused.exit_code == 2 and "the protocol fixes the boin settings" in refused.output
    tox = "0.05,0.10,0.20,0.30,0.40,0.50,0.60"
    oc = json.loads(runner.invoke(app, ["escalation", "oc", "--trial", path, "--tox", tox, "--exact", "--json"]).stdout)
    expected = Boin(0.25, n_earlystop=9, extrasafe=True).exact([float(x) for x in tox.split(",")])
    assert oc["method"] == "exact" and oc["p_select"] == pytest.approx(expected.p_select)
    wrong = runner.invoke(app, ["escalation", "oc", "--trial", path, "--tox", "0.1,0.2"])
    assert wrong.exit_code == 2 and "7 dose levels" in wrong.output


def test_a_protocol_fixes_the_crm_with_a_calibrated_skeleton(tmp_path):
    path = _amass1_with(tmp_path, "amass1-crm", design="crm", n_cohorts=10,
                        crm={"target": 0.25, "halfwidth": 0.05, "prior_mtd": 3})
    decision = json.loads(runner.invoke(app, ["escalation", "run", path, "--dlt", "1:0/3", "--json"]).stdout)
    assert (decision["design"], decision["level"], decision["rule"]) == ("crm", 2, "no_skipping")
    from stroketrial.dosing.escalation.from_protocol import crm_design
    from stroketrial.protocol import resolve

    design = crm_design(resolve(path).dose_escalation)
    assert design.skeleton == calibrated_skeleton(0.25, 7, 0.05, 3) and design.stop_probability == 0.90


@pytest.mark.parametrize("escalation, message", [
    ({"design": "boin", "n_cohorts": 10}, "needs its settings under dose_escalation.boin"),
    ({"design": "boin", "boin": {"target": 0.25}}, "needs n_cohorts"),
    ({"design": "boin", "n_cohorts": 10, "boin": {"target": 0.25, "lambda_e": 0.3}}, "lambda_e 0.3 must be below"),
    ({"design": "boin", "n_cohorts": 10, "boin": {"target": 0.25, "p_saf": 0.15, "lambda_e": 0.2}}, "not both"),
    ({"design": "3+3", "crm": {"target": 0.25}}, "dose_escalation.crm is given but the design is 3+3"),
    ({"design": "crm", "n_cohorts": 10, "crm": {"target": 0.25, "skeleton": [0.1, 0.2]}}, "2 values for 7 levels"),
    ({"design": "crm", "n_cohorts": 10, "crm": {"target": 0.25, "skeleton": [0.3, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]}},
     "increase strictly"),
])
def test_a_protocol_with_an_incomplete_or_impossible_escalation_design_is_refused(tmp_path, escalation, message):
    path = _amass1_with(tmp_path, "bad", **escalation)
    result = runner.invoke(app, ["escalation", "run", path, "--dlt", "1:0/3"])
    assert result.exit_code == 2 and message in result.output and "dose_escalation" in result.output
    assert "Traceback" not in result.output


# ---- CLI -------------------------------------------------------------------------------------------
def test_escalation_oc_json_has_the_agreed_keys():
    result = runner.invoke(app, ["escalation", "oc", "--design", "3+3", "--tox", "0.05,0.10,0.20,0.35", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["p_select"]) == 4 and len(data["expected_n"]) == 4 and len(data["expected_dlt"]) == 4
    assert sum(data["p_select"]) + data["p_none"] == pytest.approx(1)
    boin = json.loads(runner.invoke(app, ["escalation", "oc", "--design", "boin", "--target", "0.25", "--tox",
                                          "0.05,0.10,0.20,0.35", "--trials", "2000", "--json"]).stdout)
    assert boin["design"] == "boin" and boin["trials"] == 2000 and len(boin["p_select_se"]) == 4
    exact = json.loads(runner.invoke(app, ["escalation", "oc", "--design", "boin", "--target", "0.27", "--tox",
                                           "0.11,0.27,0.42,0.64", "--n-earlystop", "9", "--extrasafe", "--exact",
                                           "--json"]).stdout)
    assert exact["method"] == "exact" and exact["settings"]["n_earlystop"] == 9 and exact["settings"]["extrasafe"]
    assert exact["p_select"] == pytest.approx(PUBLISHED_BOIN["C"].exact([0.11, 0.27, 0.42, 0.64]).p_select)


def test_escalation_run_for_amass1_names_the_dose_and_the_rule():
    result = runner.invoke(app, ["escalation", "run", "amass-1", "--dlt", "1:0/3,2:1/6,3:0/3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["action"], data["level"], data["dose"], data["rule"]) == ("treat", 4, 0.45, "escalate_0_of_3")


@pytest.mark.parametrize("args, message", [
    (("escalation", "run", "amass-1", "--dlt", "1:0/3,3:0/3"), "skips level 2"),
    (("escalation", "run", "amass-1", "--dlt", "1:0/6"), "0/3 escalates"),
    (("escalation", "run", "amass-1", "--dlt", "1-0/3"), "is not LEVEL:DLTS/PATIENTS"),
    (("escalation", "run", "amass-1", "--dlt", "1:4/3"), "impossible"),
    (("escalation", "run", "amass-2", "--dlt", "1:0/3"), "has no dose escalation"),
    (("escalation", "oc", "--tox", "0.3,0.2"), "must not decrease"),
    (("escalation", "oc", "--tox", "0.1,1.2"), "between 0 and 1"),
    (("escalation", "oc", "--tox", "a,b"), "comma-separated list of numbers"),
    (("escalation", "oc", "--tox", "0.1,0.2", "--design", "mtpi"), "is not one of"),
    (("escalation", "oc", "--tox", "0.1,0.2", "--variant", "storer"), "is not one of expansion, classic"),
    (("escalation", "oc", "--tox", "0.1,0.2", "--design", "boin", "--variant", "classic"), "chooses the 3+3 variant"),
    (("escalation", "run", "amass-1", "--variant", "classic", "--dlt", "1:0/3,2:1/3,3:0/3"), "cannot be followed"),
    (("escalation", "oc", "--tox", "0.1,0.2", "--design", "crm", "--skeleton", "0.3,0.2"), "strictly increasing"),
    (("escalation", "oc", "--tox", "0.1,0.2", "--design", "boin", "--offset", "0.7"), "--offset 0.7"),
    (("escalation", "oc", "--tox", "0.1,0.2", "--design", "boin", "--lambda-e", "0.5"), "lambda_e"),
    (("escalation", "oc", "--tox", "0.05,0.1,0.15,0.2,0.3,0.4", "--design", "boin", "--cohorts", "20", "--exact"),
     "simulate instead"),
    (("escalation", "run", "amass-1", "--design", "crm", "--dlt", "1:0/3,2:1/6"), "give --last-dlt"),
    (("dose", "amass-2", "--weight-kg", "0"), "outside 20-300 kg"),
    (("dose", "amass-2"), "weight_kg is missing"),
    (("dose", "amass-1", "--weight-kg", "70"), "doses by escalation level"),
    (("dose", "amass-2", "--weight-kg", "70", "--weight-lb", "150"), "not both"),
])
def test_bad_escalation_and_dose_input_exits_2(args, message):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_dose_in_pounds_is_converted_exactly():
    data = json.loads(runner.invoke(app, ["dose", "amass-2", "--weight-lb", "154", "--json"]).stdout)
    assert data["weight_kg"] == 69.9 and "0.45359237" in data["weight_conversion"]
    albumin = data["administrations"][1]
    assert albumin["amount"] == pytest.approx(41.9) and albumin["volume_ml"] == pytest.approx(209.5)


def test_dlt_counts_parse():
    assert parse_dlt_counts("1:0/3, 2:1/6") == {1: (0, 3), 2: (1, 6)}
    with pytest.raises(EscalationInputError, match="level 2 twice"):
        parse_dlt_counts("2:0/3,2:1/3")
