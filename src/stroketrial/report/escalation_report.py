"""The report of a single-arm dose-escalation trial (AMASS-1): safety per dose level and overall with exact
intervals, DLTs per level, the escalation history, then efficacy against matched registry controls as the
protocol's plan declares it (analysis_plan.matched_controls), with an inverse-probability-weighted sensitivity
analysis.

The treated patients' data hold one row per patient with `dose_level`, `cohort`, `phase` (escalation or
expansion) and `dlt`, the plan's outcome columns and the baseline variables (the platform's export gives
them); the registry controls hold the same baseline variables and outcome columns.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..analysis.matched_outcomes import (MatchedColumns, OddsRatioNotEstimable, hodges_lehmann_shift,
                                         log_volume_ratio, mrs_shift, odds_ratio, risk_difference)
from ..analysis.matching import MatchingSpec, MatchResult, match
from ..analysis.result import AnalysisInputError, Result
from ..clinical import INTERVALS, VARIABLES
from ..protocol import Protocol
from ..protocol.analysis_plan import MatchedControls
from ..protocol.model import DoseEscalation, Endpoint
from .escalation_figure import HistoryCohort

TREATED = "treated"
NEEDED = ("dose_level", "cohort", "phase")
SAFETY_METHODS = ("single_arm_proportion", "count")


@dataclass(frozen=True)
class Proportion:
    events: int
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        """Exact (Clopper-Pearson) 95% interval."""
        ci = stats.binomtest(self.events, self.n).proportion_ci(0.95, method="exact")
        return float(ci.low), float(ci.high)

    def text(self) -> str:
        if self.n == 0:
            return "not recorded"
        low, high = self.interval
        return f"{self.events}/{self.n} ({100 * low:.0f} to {100 * high:.0f}%)"

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval if self.n else (None, None)
        return {"events": self.events, "n": self.n, "ci_low": low, "ci_high": high}


@dataclass(frozen=True)
class SafetyRow:
    label: str
    n: int
    cells: tuple[Proportion, ...]  # one per safety column


@dataclass(frozen=True)
class MatchedOutcome:
    endpoint: str
    name: str
    results: tuple[Result, ...]
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class EscalationReport:
    protocol: Protocol
    n: int
    safety_columns: tuple[str, ...]  # labels
    safety_rows: tuple[SafetyRow, ...]
    history: tuple[HistoryCohort, ...]
    mtd: int | None
    matching: MatchResult | None = None
    controls_available: int = 0
    left_out: dict[str, int] = field(default_factory=dict)  # patients left out of matching, by reason
    matched: tuple[MatchedOutcome, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def escalation(self) -> DoseEscalation:
        assert self.protocol.dose_escalation is not None
        return self.protocol.dose_escalation

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.protocol.id, "n": self.n, "mtd": self.mtd,
                "safety": [{"row": r.label, "n": r.n, **{c: p.to_json() for c, p in zip(self.safety_columns,
                                                                                          r.cells, strict=True)}}
                           for r in self.safety_rows],
                "history": [{"cohort": c.number, "level": c.level, "phase": c.phase, "dlt": list(c.dlt),
                             "decision": c.decision} for c in self.history],
                "matching": self.matching.to_json() if self.matching else None,
                "controls_available": self.controls_available, "left_out": self.left_out,
                "matched_outcomes": [{"endpoint": m.endpoint, "name": m.name,
                                      "results": [r.to_json() for r in m.results], "refused": list(m.refused)}
                                     for m in self.matched],
                "notes": list(self.notes)}


def analyse_escalation(protocol: Protocol, data: pd.DataFrame, controls: pd.DataFrame | None = None,
                       seed: int = 1) -> EscalationReport:
    escalation = protocol.dose_escalation
    if escalation is None:
        raise AnalysisInputError(f"{protocol.id} has no dose escalation")
    missing = [c for c in NEEDED if c not in data.columns]
    if missing:
        raise AnalysisInputError(f"the dataset has no column {missing[0]!r}; a dose-escalation report needs each "
                                 f"patient's {', '.join(NEEDED)} (the platform's export has them)")
    data = data.dropna(subset=["dose_level"]).assign(dose_level=lambda d: d["dose_level"].astype(int))
    safety = [e for e in protocol.endpoints if e.analysis is not None and e.analysis.method in SAFETY_METHODS]
    columns = ("DLT", *(e.name for e in safety))
    rows = _safety_rows(escalation, data, safety)
    history = tuple(_history(data))
    expansion = data[data["phase"] == "expansion"]
    mtd = int(expansion["dose_level"].iloc[0]) if not expansion.empty else None
    report = EscalationReport(protocol, len(data), columns, rows, history, mtd)
    plan = protocol.analysis_plan
    if plan is None or plan.matched_controls is None:
        return report
    if controls is None or controls.empty:
        return _with(report, notes=("No registry controls were given, so the comparison with matched controls "
                                    "the plan declares was not run.",))
    return _matched(report, plan.matched_controls, data, controls, seed)


def _with(report: EscalationReport, **changes: Any) -> EscalationReport:
    return EscalationReport(**{**report.__dict__, **changes})


def _yes(values: pd.Series, endpoint: Endpoint | None) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    if endpoint is not None and endpoint.analysis is not None and endpoint.analysis.method == "count":
        return (numbers > 0).astype(float).where(numbers.notna())
    return numbers


def _outcome(data: pd.DataFrame, endpoint: Endpoint) -> pd.Series:
    column = endpoint.analysis.outcome.column if endpoint.analysis else None
    if column is None or column not in data.columns:
        return pd.Series(np.nan, index=data.index)
    return _yes(data[column], endpoint)


def _dlt(data: pd.DataFrame) -> pd.Series:
    """The investigator's DLT assessment as 1/0 (blank: not assessed); a CSV gives it as True/False text."""
    if "dlt" not in data.columns:
        return pd.Series(np.nan, index=data.index)
    text = data["dlt"].astype("string").str.strip().str.lower()
    return text.map({"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}).astype(float)


def _proportion(values: pd.Series) -> Proportion:
    known = values.dropna()
    return Proportion(int(known.sum()), len(known))


def _safety_rows(escalation: DoseEscalation, data: pd.DataFrame, safety: Sequence[Endpoint]) -> tuple[SafetyRow, ...]:
    outcomes = [_dlt(data), *(_outcome(data, e) for e in safety)]
    dose = {lv.level: lv.dose for lv in escalation.levels}
    groups: list[tuple[str, pd.Series]] = []
    escalating = data["phase"] == "escalation"
    for level in sorted(data.loc[escalating, "dose_level"].unique()):
        groups.append((f"Level {level} ({dose[level]:g} {escalation.unit})",
                       escalating & (data["dose_level"] == level)))
    groups.append(("Dose escalation, all levels", escalating))
    if (~escalating).any():
        level = int(data.loc[~escalating, "dose_level"].iloc[0])
        groups.append((f"Dose expansion at level {level} ({dose[level]:g} {escalation.unit})", ~escalating))
    groups.append(("All patients", pd.Series(True, index=data.index)))
    return tuple(SafetyRow(label, int(mask.sum()), tuple(_proportion(o[mask]) for o in outcomes))
                 for label, mask in groups)


def _history(data: pd.DataFrame) -> list[HistoryCohort]:
    order = data.sort_values(["cohort"], kind="stable")
    cohorts = [(int(number), group) for number, group in order.groupby("cohort", sort=True)]
    out = []
    for i, (number, group) in enumerate(cohorts):
        level, phase = int(group["dose_level"].iloc[0]), str(group["phase"].iloc[0])
        dlt = [None if pd.isna(v) else bool(v) for v in _dlt(group)]
        nxt = cohorts[i + 1][1] if i + 1 < len(cohorts) else None
        decision = None
        if phase == "escalation" and nxt is not None:
            next_level, next_phase = int(nxt["dose_level"].iloc[0]), str(nxt["phase"].iloc[0])
            decision = ("MTD declared" if next_phase == "expansion" else "escalate" if next_level > level
                        else "3 more here" if next_level == level else "de-escalate")
        out.append(HistoryCohort(number, level, phase, dlt, decision))
    return out


def _matched(report: EscalationReport, plan: MatchedControls, data: pd.DataFrame, controls: pd.DataFrame,
             seed: int) -> EscalationReport:
    endpoints = {e.id: e for e in report.protocol.endpoints}
    outcome_columns = {o: endpoints[o].analysis.outcome.column for o in plan.outcomes  # type: ignore[union-attr]
                       if endpoints[o].analysis is not None}
    covariates = list(dict.fromkeys([*plan.covariates, *plan.exact]))
    data, controls = _with_intervals(data, covariates), _with_intervals(controls, covariates)
    for frame, whose in ((controls, "the registry controls"), (data, "the trial's dataset")):
        absent = [c for c in covariates if c not in frame.columns]
        if absent:
            raise AnalysisInputError(f"{whose} have no column {absent[0]!r}; the plan matches on "
                                     f"{', '.join(covariates)}")
    notes = list(report.notes)
    for endpoint, column in list(outcome_columns.items()):
        for frame, whose in ((data, "the trial's patients"), (controls, "the registry controls")):
            if column not in frame.columns or frame[column].isna().all():
                notes.append(f"{endpoints[endpoint].name}: not recorded for {whose} yet, so not compared.")
                outcome_columns.pop(endpoint, None)
                break
    wanted = list(dict.fromkeys([*covariates, *outcome_columns.values()]))
    both = pd.concat([data[wanted].assign(**{TREATED: 1}), controls[wanted].assign(**{TREATED: 0})],
                     ignore_index=True)
    incomplete = both[covariates].isna().any(axis=1)
    left_out = {"treated without every matching variable": int((incomplete & (both[TREATED] == 1)).sum()),
                "controls without every matching variable": int((incomplete & (both[TREATED] == 0)).sum())}
    sample = both[~incomplete].reset_index(drop=True)
    spec = MatchingSpec(tuple(plan.covariates), ratio=plan.ratio, caliper=plan.caliper, exact=tuple(plan.exact))
    result = match(sample, TREATED, spec, seed=seed)
    outcomes = []
    for endpoint in outcome_columns:
        try:
            outcomes.append(_compare(endpoints[endpoint], result.data, plan))
        except AnalysisInputError as refusal:  # too few outcomes recorded in the matched sample, for one
            notes.append(f"{endpoints[endpoint].name}: not compared ({refusal}).")
    return _with(report, matching=result, controls_available=len(controls), left_out=left_out,
                 matched=tuple(outcomes), notes=tuple(notes))


def _with_intervals(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The derived intervals among `names` (onset to reperfusion) computed from their two times where the frame
    has the times but not the interval (a screening export holds the times as typed, ISO 8601)."""
    added = {}
    for interval in INTERVALS:
        start, end = interval.interval_ends()
        if interval.name in names and interval.name not in frame.columns and {start, end} <= set(frame.columns):
            times = [pd.to_datetime(frame[c], utc=True, format="ISO8601") for c in (start, end)]
            scale = 60.0 if interval.unit == "min" else 3600.0
            added[interval.name] = (times[1] - times[0]).dt.total_seconds() / scale
    return frame.assign(**added) if added else frame


def _compare(endpoint: Endpoint, data: pd.DataFrame, plan: MatchedControls) -> MatchedOutcome:
    assert endpoint.analysis is not None
    column, columns = endpoint.analysis.outcome.column, MatchedColumns(treated=TREATED)
    results: list[Result] = []
    refused: list[str] = []
    if endpoint.type == "continuous":
        results += [log_volume_ratio(data, column, columns), hodges_lehmann_shift(data, column, columns),
                    log_volume_ratio(data, column, columns, weighting="ipw")]
    elif endpoint.type == "ordinal":
        results += [mrs_shift(data, column, columns), mrs_shift(data, column, columns, weighting="ipw")]
        if plan.good_outcome_at_most is not None:
            cut = f"{column}_0_{plan.good_outcome_at_most}"
            values = pd.to_numeric(data[column], errors="coerce")
            binary = data.assign(**{cut: (values <= plan.good_outcome_at_most).astype(float).where(values.notna())})
            results += _binary(binary, cut, columns, refused)
    else:
        results += _binary(data, column, columns, refused)
    return MatchedOutcome(endpoint.id, endpoint.name, tuple(results), tuple(refused))


def _binary(data: pd.DataFrame, column: str, columns: MatchedColumns, refused: list[str]) -> list[Result]:
    out = []
    for weighting in ("matching", "ipw"):
        out.append(risk_difference(data, column, columns, weighting=weighting))
        try:
            out.append(odds_ratio(data, column, columns, weighting=weighting))
        except OddsRatioNotEstimable as refusal:
            refused.append(str(refusal))
    return out


def term_labels(result: MatchResult) -> dict[str, str]:
    """Each balance term as a reader names it: "NIHSS", "occlusion site: MCA M1" (not occlusion_site[m1])."""
    labels = {"distance": "propensity score (logit)"}
    for t in result.balance.terms:
        column, _, level = t.term.partition("[")
        variable = VARIABLES.get(column)
        if variable is None:
            continue
        if not level:
            labels[t.term] = variable.label
            continue
        level = level.rstrip("]")
        scale = variable.scale
        members: list[enum.Enum] = list(scale) if isinstance(scale, enum.EnumMeta) else []
        named = {str(m.value): str(getattr(m, "label", m.value)) for m in members}
        labels[t.term] = f"{variable.label}: {named.get(level, level)}"
    return labels
