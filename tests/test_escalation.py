"""Dose escalation: the 3+3 rules as AMASS-1 ran them, exact operating characteristics, BOIN and CRM."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.dosing.escalation import Cohort, EscalationInputError, parse_dlt_counts, three_plus_three as T
from stroketrial.dosing.escalation.boin import Boin, isotonic
from stroketrial.dosing.escalation.crm import Crm, calibrated_skeleton

runner = CliRunner()


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
    for e, s in zip([*exact.p_select, exact.p_none], [*sim.p_select, sim.p_none]):
        assert abs(e - s) < 4.5 * np.sqrt(e * (1 - e) / trials) + 1e-9
    assert sim.expected_n == pytest.approx(exact.expected_n, abs=0.03)
    assert sim.expected_dlt == pytest.approx(exact.expected_dlt, abs=0.02)


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
        def tail(k):
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
    blocks = [[v, w, 1] for v, w in zip(values, weights)]
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


def test_boin_simulation_agrees_with_exact_enumeration():
    # Three levels, four cohorts of 3: enumerate all 4^4 outcome paths with the same step rule.
    design, tox = Boin(0.3, n_cohorts=4), np.array([0.10, 0.30, 0.50])
    table = design.elimination_table(12)
    from scipy.stats import binom
    p_select, p_none = np.zeros(3), 0.0
    stack = [(np.zeros((1, 3), int), np.zeros((1, 3), int), 0, 3, 1.0, 0)]
    while stack:
        n, y, cur, elim, prob, done = stack.pop()
        for dlt in range(4):
            n2, y2 = n.copy(), y.copy()
            n2[0, cur] += 3
            y2[0, cur] += dlt
            pr = prob * binom.pmf(dlt, 3, tox[cur])
            nxt, elim2, stop = design.step(n2, y2, np.array([cur]), np.array([elim]), table)
            if stop[0] or done + 1 == 4:
                choice = -1 if stop[0] else int(design.select_mtd(n2, y2, elim2)[0])
                if choice < 0:
                    p_none += pr
                else:
                    p_select[choice] += pr
            else:
                stack.append((n2, y2, int(nxt[0]), int(elim2[0]), pr, done + 1))
    trials = 200_000
    sim = design.simulate(tox, trials, np.random.default_rng(3))
    for e, s in zip([*p_select, p_none], [*sim.p_select, sim.p_none]):
        assert abs(e - s) < 4.5 * np.sqrt(e * (1 - e) / trials) + 1e-9


# ---- CRM -------------------------------------------------------------------------------------------
def test_crm_posterior_matches_direct_integration():
    design = Crm(0.25, (0.05, 0.12, 0.25, 0.40))
    n, y = np.array([[3, 3, 6, 0]]), np.array([[0, 0, 2, 0]])
    mean, p_over = design.posterior(n, y)

    def likelihood(a):
        p = np.asarray(design.skeleton) ** np.exp(a)
        return np.prod(p ** y[0] * (1 - p) ** (n[0] - y[0])) * np.exp(-a * a / (2 * 1.34))

    z = integrate.quad(likelihood, -10, 10)[0]
    for j in range(4):
        m = integrate.quad(lambda a: design.skeleton[j] ** np.exp(a) * likelihood(a), -10, 10)[0] / z
        assert mean[0, j] == pytest.approx(m, abs=2e-4)
    cut = np.log(np.log(0.25) / np.log(0.05))
    assert p_over[0] == pytest.approx(integrate.quad(likelihood, -10, cut)[0] / z, abs=2e-3)


def test_crm_never_skips_an_untried_level_and_stops_for_safety():
    design = Crm(0.25, (0.05, 0.12, 0.25, 0.40))
    assert design.decide({1: (0, 3)}, 4).level == 2  # the model would go higher, but level 2 is untried
    assert design.decide({1: (3, 3)}, 4).rule == "safety_stop"


def test_calibrated_skeleton_puts_the_prior_mtd_at_the_target():
    sk = calibrated_skeleton(0.25, 5, 0.05)
    assert sk[2] == 0.25 and all(a < b for a, b in zip(sk, sk[1:]))
    # at the boundary between levels 3 and 4 the same exp(a) gives target -/+ halfwidth
    e = np.log(0.20) / np.log(sk[2])
    assert sk[3] ** e == pytest.approx(0.30, abs=1e-3)


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
    (("escalation", "oc", "--tox", "0.1,0.2", "--design", "crm", "--skeleton", "0.3,0.2"), "strictly increasing"),
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
