"""The DSMB report's computations on small frames worked by hand (issue 21): the cumulative incidence as
1 - Kaplan-Meier, follow-up completeness by site, the primary outcome missing after its window, safety proportions
with exact intervals, and an open report refusing anything that holds an arm."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from scipy import stats

from stroketrial.analysis.result import AnalysisInputError
from stroketrial.protocol import load_builtin
from stroketrial.report import dsmb

PROTOCOL = load_builtin("impact-lvo")
TODAY = dt.date(2026, 11, 30)
GROUPS = [dsmb.Group("a", "A"), dsmb.Group(dsmb.ALL, dsmb.ALL_LABEL)]


def patients(days_to_death: list[int | None], followed: list[int], arms: list[str], sites: list[str]) -> pd.DataFrame:
    start = dt.date(2026, 1, 1)
    return pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(len(followed))], "site": sites, "arm": arms,
        "randomized_on": [start] * len(followed),
        "last_seen": [start + dt.timedelta(days=d) for d in followed],
        "death_on": [None if d is None else start + dt.timedelta(days=d) for d in days_to_death],
        "sich_on": [None] * len(followed)})


def test_the_cumulative_incidence_is_one_minus_kaplan_meier_censored_at_the_last_day_seen():
    # deaths on days 10 and 30; censored on days 20, 40 and 50: S(10) = 4/5, S(30) = 4/5 * 2/3
    frame = patients([10, None, 30, None, None], [10, 20, 30, 40, 50], ["a"] * 5, ["S1"] * 5)
    curve = dsmb.cumulative_incidence(frame, "death_on", "Death", GROUPS)
    assert curve.days["a"] == [0.0, 10.0, 30.0, 50.0]
    assert curve.incidence["a"] == pytest.approx([0.0, 0.2, 1 - 0.8 * 2 / 3, 1 - 0.8 * 2 / 3])
    assert curve.at_risk == {"a": 5, "all": 5}


def test_safety_proportions_carry_exact_clopper_pearson_intervals():
    frame = patients([10, None, 30, None, None], [10, 20, 30, 40, 50], ["a"] * 5, ["S1"] * 5)
    saes = pd.DataFrame({"patient_id": ["P0", "P2", "P2"], "outcome": ["fatal", "fatal", "recovered"],
                         "related": [False, True, False]})
    rows = {r.event: r.cells["a"] for r in dsmb.safety_rows(frame, saes, GROUPS)}
    assert (rows["Death"].events, rows["Death"].n) == (2, 5)
    assert rows["Any serious adverse event"].events == 2
    assert rows["Serious adverse event related to the study treatment (possibly or more)"].events == 1
    exact = stats.binomtest(2, 5).proportion_ci(method="exact")
    assert rows["Death"].interval == pytest.approx((exact.low, exact.high))
    assert rows["Death"].text() == f"2/5 ({100 * exact.low:.0f} to {100 * exact.high:.0f}%)"


def test_follow_up_completeness_counts_only_patients_whose_primary_window_has_closed():
    primary = next(e for e in PROTOCOL.endpoints if e.role == "primary")
    closes = int(primary.timepoint_days + (primary.window_days or 0))
    randomized = [TODAY - dt.timedelta(days=closes + 1), TODAY - dt.timedelta(days=closes + 1), TODAY]
    frame = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "site": ["S1", "S2", "S2"], "arm": ["a", "a", "a"],
                          "randomized_on": randomized, "last_seen": randomized, "death_on": [None] * 3,
                          "sich_on": [None] * 3})
    data = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "arm": ["a"] * 3,
                         primary.analysis.outcome.column: [2, None, None]})
    table = dsmb.enrolment(PROTOCOL, data, frame, GROUPS, TODAY).set_index("site")
    assert table.loc["All sites", "a"] == {"randomized": 3, "recorded": 1, "due": 2, "observed": 1,
                                           "completeness": 0.5}
    assert table.loc["S2", "a"] == {"randomized": 2, "recorded": 0, "due": 1, "observed": 0, "completeness": 0.0}
    missing = dsmb.deviations(PROTOCOL, data, frame, GROUPS, TODAY)
    assert missing.iloc[0]["a"] == 1 and "not recorded after its window closed" in missing.iloc[0]["deviation"]


def test_an_open_report_refuses_every_frame_that_holds_the_allocation():
    clean = pd.DataFrame({"patient_id": ["P1"]})
    for column in dsmb.ARM_COLUMNS:
        held = pd.DataFrame({"patient_id": ["P1"], column: ["x"]})
        for position in range(4):
            frames = [clean] * 4
            frames[position] = held
            with pytest.raises(AnalysisInputError, match=f"holds {column}"):
                dsmb.open_report(PROTOCOL, *frames, TODAY)
