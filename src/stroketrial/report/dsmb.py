"""The DSMB's reports: the closed report (by arm, for the DSMB and the unblinded statistician) and the open report
(arms pooled, for the steering committee and blinded roles), computed from the live data at one snapshot.

Pure functions over data frames. The service layer (service/dsmb_reports.py) reads the database and hands over:
- `data`: the analysis dataset, one row per randomized patient (analysis/platform_dataset.py);
- `safety`: one row per randomized patient with its day of randomization, last day seen, day of death and of sICH;
- `saes` and `aes`: one row per serious and non-serious adverse event (an SAE's `related`: the investigator's
  relatedness is a reasonable possibility).

The open report is built from frames that hold no arm: `open_report` refuses a frame with an arm, a sequence, a
kit or anything derived from the arm (per protocol, treated arm), so nothing computed from a hidden field can
reach it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.result import AnalysisInputError
from ..protocol import Protocol
from ..protocol.model import Endpoint
from .escalation_report import Proportion
from .results import Analysis, analyse, derive_outcomes, outcome_column
from .tables import table1

ALL = "all"
ALL_LABEL = "All patients"
# Columns that hold or are computed from the allocation: never in an open report's input.
ARM_COLUMNS = ("arm", "sequence", "kit", "treated_arm", "per_protocol", "as_treated")
# The analyses of a closed report run fewer imputations and bootstrap draws than the final report (20 and 500):
# a DSMB reads estimates and intervals at a look, and the report is made while the member waits.
IMPUTATIONS = 5
BOOTSTRAP = 200


@dataclass(frozen=True)
class Group:
    id: str
    label: str


@dataclass(frozen=True)
class SafetyRow:
    event: str
    cells: Mapping[str, Proportion]  # by group id


@dataclass(frozen=True)
class Curve:
    """Cumulative incidence (1 - Kaplan-Meier) of an event by day since randomization, censored at the last day
    the patient was seen; one step function per group."""

    event: str
    days: Mapping[str, Sequence[float]]
    incidence: Mapping[str, Sequence[float]]
    at_risk: Mapping[str, int]


@dataclass
class DsmbReport:
    protocol: Protocol
    closed: bool
    groups: list[Group]
    as_of: dt.date
    n: int
    enrolment: pd.DataFrame  # site, then per group: randomized, primary due, primary observed
    baseline: pd.DataFrame
    outcome_summaries: pd.DataFrame  # endpoint, then per group: the summary
    safety: list[SafetyRow]
    curves: list[Curve]
    soc: pd.DataFrame  # system organ class, then per group: patients (%) / events
    sae_listing: pd.DataFrame
    ae_listing: pd.DataFrame
    deviations: pd.DataFrame  # deviation, then per group: n
    grotta: dict[str, list[int]]
    efficacy: Analysis | None = None  # closed only: the plan's analyses by arm
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.protocol.id, "closed": self.closed, "as_of": self.as_of.isoformat(), "n": self.n,
                "groups": [{"id": g.id, "label": g.label} for g in self.groups],
                "safety": [{"event": r.event, **{g: c.to_json() for g, c in r.cells.items()}} for r in self.safety],
                "grotta": self.grotta, "efficacy": self.efficacy.to_json() if self.efficacy else None,
                "notes": self.notes}


def closed_report(protocol: Protocol, data: pd.DataFrame, safety: pd.DataFrame, saes: pd.DataFrame,
                  aes: pd.DataFrame, as_of: dt.date) -> DsmbReport:
    """By arm, with the plan's primary and secondary analyses (estimates with 95% CIs)."""
    for frame, name in ((data, "data"), (safety, "safety")):
        if "arm" not in frame.columns:
            raise AnalysisInputError(f"a closed report needs each patient's arm ({name} has none)")
    groups = [Group(a.id, a.name) for a in protocol.arms] + [Group(ALL, ALL_LABEL)]
    report = _report(protocol, data, safety, saes, aes, as_of, groups, closed=True)
    plan = protocol.analysis_plan
    efficacy_endpoints = [e for e in protocol.endpoints if e.role in ("primary", "secondary") and e.analysis]
    if plan is not None and efficacy_endpoints and len(protocol.arms) == 2:
        observed = _primary_observed(protocol, data)
        if observed >= 20:
            only = protocol.model_copy(update={"endpoints": efficacy_endpoints})
            # An early look's small arms can give an estimate whose interval overflows: printed as inf, not an error.
            with np.errstate(over="ignore", divide="ignore"):
                report.efficacy = analyse(only, data, imputations=IMPUTATIONS, bootstrap=BOOTSTRAP, subgroups=False)
        else:
            report.notes.append(f"Efficacy not analysed: {observed} patients have the primary outcome (20 needed).")
    return report


def open_report(protocol: Protocol, data: pd.DataFrame, safety: pd.DataFrame, saes: pd.DataFrame,
                aes: pd.DataFrame, as_of: dt.date) -> DsmbReport:
    """Every patient pooled: nothing that tells one arm from the other."""
    for frame, name in ((data, "data"), (safety, "safety"), (saes, "SAEs"), (aes, "AEs")):
        held = sorted(set(ARM_COLUMNS) & set(frame.columns))
        if held:
            raise AnalysisInputError(f"an open report is made from data without arms; {name} holds {', '.join(held)}")
    return _report(protocol, data, safety, saes, aes, as_of, [Group(ALL, ALL_LABEL)], closed=False)


def _grouped(frame: pd.DataFrame, groups: Sequence[Group]) -> dict[str, pd.DataFrame]:
    return {g.id: frame if g.id == ALL else frame[frame["arm"] == g.id] for g in groups}


def _primary(protocol: Protocol) -> Endpoint | None:
    return next((e for e in protocol.endpoints if e.role == "primary" and e.analysis is not None), None)


def _primary_observed(protocol: Protocol, data: pd.DataFrame) -> int:
    primary = _primary(protocol)
    if primary is None or primary.analysis is None or primary.analysis.outcome.column not in data.columns:
        return 0
    return int(data[primary.analysis.outcome.column].notna().sum())


def _report(protocol: Protocol, data: pd.DataFrame, safety: pd.DataFrame, saes: pd.DataFrame, aes: pd.DataFrame,
            as_of: dt.date, groups: list[Group], closed: bool) -> DsmbReport:
    derived = derive_outcomes(data, protocol)
    if not closed:
        derived = derived.assign(arm=ALL)
    return DsmbReport(
        protocol=protocol, closed=closed, groups=groups, as_of=as_of, n=len(safety),
        enrolment=enrolment(protocol, derived, safety, groups, as_of),
        baseline=_baseline(derived, groups),
        outcome_summaries=outcome_summaries(protocol, derived, groups),
        safety=safety_rows(safety, saes, groups),
        curves=[cumulative_incidence(safety, column, label, groups)
                for column, label in (("death_on", "Death"), ("sich_on", "Symptomatic intracranial haemorrhage"))],
        soc=by_organ_class(safety, saes, groups),
        sae_listing=listing(saes, closed), ae_listing=listing(aes, closed),
        deviations=deviations(protocol, derived, safety, groups, as_of),
        grotta=_grotta(protocol, derived, groups))


def enrolment(protocol: Protocol, data: pd.DataFrame, safety: pd.DataFrame, groups: Sequence[Group],
              as_of: dt.date) -> pd.DataFrame:
    """Per site and group: patients randomized, those with the primary outcome recorded, those whose primary outcome
    is due (its window has closed) and those of them with it recorded; the last row is every site."""
    primary = _primary(protocol)
    column = primary.analysis.outcome.column if primary and primary.analysis else None
    days = primary.timepoint_days if primary is not None and primary.timepoint_days is not None else 0
    window = (primary.window_days or 0) if primary is not None else 0
    frame = safety.assign(arm=safety["arm"] if "arm" in safety.columns else ALL)
    observed = set(data.loc[data[column].notna(), "patient_id"]) if column and column in data.columns else set()
    frame = frame.assign(
        due=[(as_of - pd.Timestamp(r).date()).days >= days + window for r in frame["randomized_on"]],
        observed=frame["patient_id"].isin(observed))
    rows = []
    for site in [*sorted(frame["site"].unique()), None]:
        part = frame if site is None else frame[frame["site"] == site]
        row: dict[str, Any] = {"site": "All sites" if site is None else site}
        for g, rows_g in _grouped(part, groups).items():
            due = int(rows_g["due"].sum())
            seen = int((rows_g["due"] & rows_g["observed"]).sum())
            row[g] = {"randomized": len(rows_g), "recorded": int(rows_g["observed"].sum()), "due": due,
                      "observed": seen, "completeness": seen / due if due else None}
        rows.append(row)
    return pd.DataFrame(rows)


def _baseline(data: pd.DataFrame, groups: Sequence[Group]) -> pd.DataFrame:
    frame = data.assign(_group=data["arm"])
    parts = [frame.assign(_group=g.label) if g.id == ALL else frame[frame["arm"] == g.id].assign(_group=g.label)
             for g in groups]
    return table1(pd.concat(parts, ignore_index=True), "_group", [g.label for g in groups])


def _summary(endpoint: Endpoint, values: pd.Series) -> str:
    known = pd.to_numeric(values, errors="coerce").dropna()
    missing = len(values) - len(known)
    tail = f" [{missing} missing]" if missing else ""
    if known.empty:
        return "not recorded" + tail
    if endpoint.type == "binary":
        events = int((known > 0).sum())
        return Proportion(events, len(known)).text() + tail
    q1, median, q3 = np.percentile(known, [25, 50, 75])
    return f"median {median:.3g} (IQR {q1:.3g} to {q3:.3g}), n={len(known)}" + tail


def outcome_summaries(protocol: Protocol, data: pd.DataFrame, groups: Sequence[Group]) -> pd.DataFrame:
    """Each primary and secondary endpoint per group: n/N with its exact 95% CI (yes/no), else median (IQR);
    among patients whose outcome is recorded."""
    rows = []
    for e in protocol.endpoints:
        if e.role not in ("primary", "secondary") or e.analysis is None:
            continue
        column = outcome_column(e)
        if column not in data.columns:
            continue
        rows.append({"endpoint": e.name, **{g: _summary(e, part[column])
                                            for g, part in _grouped(data, groups).items()}})
    return pd.DataFrame(rows)


def safety_rows(safety: pd.DataFrame, saes: pd.DataFrame, groups: Sequence[Group]) -> list[SafetyRow]:
    """Patients with each event over patients randomized, with exact (Clopper-Pearson) 95% intervals."""
    with_sae = set(saes["patient_id"]) if "patient_id" in saes.columns else set()
    fatal_sae = set(saes.loc[saes["outcome"] == "fatal", "patient_id"]) if "outcome" in saes.columns else set()
    related = set(saes.loc[saes["related"].astype(bool), "patient_id"]) if "related" in saes.columns else set()
    events = {"Death": safety["death_on"].notna(),
              "Symptomatic intracranial haemorrhage": safety["sich_on"].notna(),
              "Any serious adverse event": safety["patient_id"].isin(with_sae),
              "Fatal serious adverse event": safety["patient_id"].isin(fatal_sae),
              "Serious adverse event related to the study treatment (possibly or more)":
                  safety["patient_id"].isin(related)}
    out = []
    for label, hit in events.items():
        frame = safety.assign(_hit=hit)
        out.append(SafetyRow(label, {g: Proportion(int(part["_hit"].sum()), len(part))
                                     for g, part in _grouped(frame, groups).items()}))
    return out


def cumulative_incidence(safety: pd.DataFrame, column: str, label: str, groups: Sequence[Group]) -> Curve:
    """1 - Kaplan-Meier (statsmodels' SurvfuncRight) of the days from randomization to the event, censored at the
    last day seen."""
    from statsmodels.duration.survfunc import SurvfuncRight

    days_by, incidence_by, n_by = {}, {}, {}
    for g, part in _grouped(safety, groups).items():
        randomized = pd.to_datetime(part["randomized_on"])
        event = pd.to_datetime(part[column])
        seen = pd.to_datetime(part["last_seen"])
        time = np.where(event.notna(), (event - randomized).dt.days, (seen - randomized).dt.days).astype(float)
        status = event.notna().to_numpy().astype(int)
        n_by[g] = len(part)
        if len(part) == 0 or status.sum() == 0:
            days_by[g], incidence_by[g] = [0.0, float(max(time.max(), 0.0)) if len(part) else 0.0], [0.0, 0.0]
            continue
        fitted = SurvfuncRight(np.maximum(time, 0.0), status)
        # the curve runs on, flat, to the last day anyone in the group was followed
        days_by[g] = [0.0, *map(float, fitted.surv_times), float(max(time.max(), 0.0))]
        incidence_by[g] = [0.0, *(1.0 - float(s) for s in fitted.surv_prob), 1.0 - float(fitted.surv_prob[-1])]
    return Curve(label, days_by, incidence_by, n_by)


def by_organ_class(safety: pd.DataFrame, saes: pd.DataFrame, groups: Sequence[Group]) -> pd.DataFrame:
    """SAEs by system organ class (as reported): patients with at least one (% of randomized) and events."""
    if saes.empty or "system_organ_class" not in saes.columns:
        return pd.DataFrame(columns=["system_organ_class", *(g.id for g in groups)])
    frame = saes.assign(system_organ_class=saes["system_organ_class"].fillna("not coded").replace("", "not coded"))
    if "arm" in safety.columns and "arm" not in frame.columns:
        frame = frame.merge(safety[["patient_id", "arm"]], on="patient_id", how="left")
    randomized = {g: len(part) for g, part in _grouped(safety, groups).items()}
    rows = []
    for soc, part in frame.groupby("system_organ_class", sort=True):
        row: dict[str, Any] = {"system_organ_class": soc}
        for g, rows_g in _grouped(part, groups).items():
            patients = rows_g["patient_id"].nunique()
            row[g] = {"patients": patients, "events": len(rows_g),
                      "percent": 100 * patients / randomized[g] if randomized[g] else None}
        rows.append(row)
    return pd.DataFrame(rows)


LISTING = ("patient_id", "site", "arm", "term", "coded_term", "system_organ_class", "onset_date", "criteria",
           "severity", "relatedness", "outcome")


def listing(events: pd.DataFrame, closed: bool) -> pd.DataFrame:
    """The events one per row in the order of onset; the arm only in a closed report."""
    columns = [c for c in LISTING if c in events.columns and (closed or c != "arm")]
    if events.empty:
        return pd.DataFrame(columns=columns)
    ordered = events.sort_values(["onset_date", "patient_id"] if "onset_date" in events.columns else ["patient_id"])
    return ordered[columns].reset_index(drop=True)


def deviations(protocol: Protocol, data: pd.DataFrame, safety: pd.DataFrame, groups: Sequence[Group],
               as_of: dt.date) -> pd.DataFrame:
    """Deviations the data show (the platform keeps no deviation log): the primary outcome missing after its window
    closed, and, in a closed report, patients not treated as allocated (the plan's treatment received)."""
    primary = _primary(protocol)
    rows = []
    if primary is not None and primary.analysis is not None and primary.timepoint_days is not None:
        column = primary.analysis.outcome.column
        closes = primary.timepoint_days + (primary.window_days or 0)
        due = safety[[(as_of - pd.Timestamp(r).date()).days > closes for r in safety["randomized_on"]]]
        known = set(data.loc[data[column].notna(), "patient_id"]) if column in data.columns else set()
        missing = due.assign(_missing=~due["patient_id"].isin(known))
        rows.append({"deviation": f"{primary.name}: not recorded after its window closed (day {closes:g})",
                     **{g: int(part["_missing"].sum()) for g, part in _grouped(missing, groups).items()}})
    if "per_protocol" in data.columns:
        off = data.assign(_off=~data["per_protocol"].fillna(False).astype(bool))
        rows.append({"deviation": "Not treated as allocated (outside the per-protocol population)",
                     **{g: int(part["_off"].sum()) for g, part in _grouped(off, groups).items()}})
    return pd.DataFrame(rows)


def _grotta(protocol: Protocol, data: pd.DataFrame, groups: Sequence[Group]) -> dict[str, list[int]]:
    shift = next((e for e in protocol.endpoints if e.analysis and e.analysis.method == "ordinal_shift"), None)
    if shift is None or outcome_column(shift) not in data.columns:
        return {}
    out = {}
    for g in groups:
        part = data if g.id == ALL else data[data["arm"] == g.id]
        scores = pd.to_numeric(part[outcome_column(shift)], errors="coerce").dropna().astype(int)
        out[g.label] = [int((scores == s).sum()) for s in range(7)]
    return out
