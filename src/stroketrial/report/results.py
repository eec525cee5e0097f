"""The numbers the report shows: every analysis the protocol's endpoints name, run on one dataset.

`analyse` runs the analysis plan on a dataset (one row per randomized patient, data-dictionary columns
plus `arm` and outcome columns such as `mrs_90d`, `death_90d`, `sich`, `infarct_volume_ml`) and
collects the results by endpoint, the subgroups, Table 1, the safety table, the Grotta counts, the
CONSORT boxes and the methods text into an `Analysis`. An analysis the data cannot support becomes a
note in its section, never a failed report. Nothing here draws or writes a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import __version__
from ..analysis import binary, continuous, longitudinal, ordinal, sensitivity
from ..analysis.result import AnalysisInputError, Result, format_p
from ..protocol import Protocol
from .tables import safety_table, table1

DEFAULT_ADJUST = ("age", "nihss", "aspects")
EVENT_COLUMNS = {"death": "death_90d", "sich": "sich", "infection": "infection_7d"}


@dataclass
class Section:
    title: str
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Analysis:
    protocol: Protocol
    treatment: str
    control: str
    population: str
    n: int
    sections: list[Section]
    subgroups: list[Result]
    overall: Result | None
    table1: pd.DataFrame
    safety: pd.DataFrame
    grotta: dict[str, list[int]]
    consort: dict
    methods: list[str]

    def to_json(self) -> dict:
        return {"trial": self.protocol.id, "population": self.population, "n": self.n,
                "treatment": self.treatment, "control": self.control,
                "sections": [{"title": s.title, "results": [r.to_json() for r in s.results], "notes": s.notes}
                             for s in self.sections],
                "subgroups": [r.to_json() for r in self.subgroups], "methods": self.methods}


def arms_of(protocol: Protocol) -> tuple[str, str]:
    treatment = next(a.id for a in protocol.arms if a.role == "experimental")
    control = next((a.id for a in protocol.arms if a.id != treatment), None)
    if control is None:
        raise AnalysisInputError(f"{protocol.id} has a single arm; a comparative report needs two")
    return treatment, control


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "mrs_90d" in df.columns:
        mrs = pd.to_numeric(df["mrs_90d"], errors="coerce")
        for hi in (1, 2, 3):
            df[f"mrs_90d_0_{hi}"] = (mrs <= hi).astype(float).where(mrs.notna())
        if "death_90d" not in df.columns:
            df["death_90d"] = (mrs == 6).astype(float).where(mrs.notna())
    if "lkw_to_puncture_h" not in df.columns and {"last_known_well", "arterial_puncture"} <= set(df.columns):
        start = pd.to_datetime(df["last_known_well"], errors="coerce")
        end = pd.to_datetime(df["arterial_puncture"], errors="coerce")
        df["lkw_to_puncture_h"] = (end - start).dt.total_seconds() / 3600
    return df


def _safe(section: Section, label: str, analysis, *args, **kwargs) -> None:
    """Run one analysis of the plan; what cannot be analysed becomes a note, never a failed report."""
    try:
        produced = analysis(*args, **kwargs)
    except AnalysisInputError as exc:
        section.notes.append(f"{label}: not analysed ({exc})")
        return
    except KeyError as exc:
        section.notes.append(f"{label}: not analysed (no column {exc})")
        return
    except (ValueError, np.linalg.LinAlgError) as exc:  # a model that cannot be fitted on these data
        section.notes.append(f"{label}: the model could not be fitted ({exc})")
        return
    if isinstance(produced, Result):
        section.results.append(produced)
    elif isinstance(produced, dict):
        section.results.extend(produced.values())
    else:
        section.results.extend(produced)


def analyse(protocol: Protocol, data: pd.DataFrame, long: pd.DataFrame | None = None, population: str = "itt",
            adjust: Sequence[str] = DEFAULT_ADJUST, funnel: dict | None = None, imputations: int = 20,
            bootstrap: int = 500) -> Analysis:
    treatment, control = arms_of(protocol)
    if "arm" not in data.columns:
        raise AnalysisInputError("the dataset has no column 'arm' (the randomized arm of each patient)")
    full = _derive(data)
    df = sensitivity.population(full, population)
    adjust = [c for c in adjust if c in df.columns]
    args = ("arm", treatment, control)
    sections: list[Section] = []
    handled: set[str] = set()
    for endpoint in protocol.endpoints:
        title = f"{endpoint.name} ({endpoint.role})"
        section = Section(title)
        if endpoint.measure == "mrs" and endpoint.type == "ordinal" and (endpoint.timepoint_days or 0) <= 120:
            column = "mrs_90d"
            handled.add(column)
            _safe(section, "unadjusted shift", ordinal.proportional_odds, df, column, *args)
            if adjust:
                _safe(section, "adjusted shift", ordinal.proportional_odds, df, column, *args, adjust=adjust)
            _safe(section, "proportional-odds test", ordinal.proportional_odds_test, df, column, *args)
            _safe(section, "win odds", ordinal.win_odds, df, column, *args)
            _safe(section, "Wilcoxon-Mann-Whitney", ordinal.mann_whitney, df, column, *args)
            _safe(section, "utility-weighted mRS", ordinal.utility_weighted, df, column, *args)
            _safe(section, "multiple imputation", sensitivity.multiple_imputation, df, column, *args, adjust=adjust,
                  imputations=imputations)
            _safe(section, "worst case", sensitivity.worst_case, df, column, *args, adjust=adjust)
        elif endpoint.measure == "mrs" and endpoint.type == "binary":
            hi = 1 if "0_1" in endpoint.id else 3 if "0_3" in endpoint.id else 2
            column = f"mrs_90d_0_{hi}"
            _safe(section, column, binary.binary, df, column, *args, adjust=adjust, bootstrap=bootstrap)
        elif endpoint.type == "binary" and EVENT_COLUMNS.get(endpoint.measure, endpoint.measure) in df.columns:
            column = EVENT_COLUMNS.get(endpoint.measure, endpoint.measure)
            _safe(section, column, binary.binary, df, column, *args)
        elif endpoint.measure == "infarct_volume_ml" and "infarct_volume_ml" in df.columns:
            _safe(section, "Hodges-Lehmann", continuous.hodges_lehmann, df, "infarct_volume_ml", *args)
            cov = [c for c in ("nihss", "aspects") if c in df.columns]
            _safe(section, "log ANCOVA", continuous.log_ancova, df, "infarct_volume_ml", *args, adjust=cov)
        elif long is not None and endpoint.measure in long.columns:
            _safe(section, "mixed model", longitudinal.mixed_model, long, endpoint.measure, *args)
        else:
            section.notes.append(f"no column for {endpoint.measure!r} in the dataset; not analysed")
        sections.append(section)
    if long is not None and "nihss" in long.columns and not any(e.measure == "nihss" for e in protocol.endpoints):
        section = Section("Repeated NIHSS (exploratory)")
        _safe(section, "mixed model", longitudinal.mixed_model, long, "nihss", *args)
        sections.append(section)
    subgroup_results, overall = [], None
    if "mrs_90d" in df.columns and df["mrs_90d"].notna().sum() >= 20:
        by = _subgroup_labels(df)
        try:
            subgroup_results = sensitivity.subgroups(df, "mrs_90d", *args, by)
            overall = ordinal.proportional_odds(df, "mrs_90d", *args, profile=False)
        except (AnalysisInputError, ValueError):
            subgroup_results = []
    grotta = {}
    if "mrs_90d" in df.columns:
        for a in (treatment, control):
            mrs = pd.to_numeric(df.loc[df["arm"] == a, "mrs_90d"], errors="coerce").dropna().astype(int)
            grotta[a] = [int((mrs == s).sum()) for s in range(7)]
    events = {c: label for c, label in (("death_90d", "Death within 90 days"), ("sich", "Symptomatic ICH"),
                                        ("infection_7d", "Infection within 7 days"), ("sae", "Serious adverse event"))}
    methods = _methods(protocol, population, adjust, imputations, len(df))
    return Analysis(protocol, treatment, control, population, len(df), sections, subgroup_results, overall,
                    table1(full, "arm", [treatment, control]), safety_table(full, "arm", [treatment, control], events),
                    grotta, _consort(full, funnel, treatment, control), methods)


# None as np.where takes it (a 0-d object array, which is what np.where makes of None; numpy's ArrayLike
# type leaves None out).
_NONE = np.array(None, dtype=object)


def _subgroup_labels(df: pd.DataFrame) -> dict[str, np.ndarray]:
    by: dict[str, np.ndarray] = {}
    if "age" in df.columns:
        by["Age"] = np.where(pd.to_numeric(df["age"]) >= 70, "70 or older", "under 70")
    if "nihss" in df.columns:
        by["Baseline NIHSS"] = np.where(pd.to_numeric(df["nihss"]) >= 16, "16 or more", "under 16")
    if "aspects" in df.columns and df["aspects"].notna().any():
        aspects = pd.to_numeric(df["aspects"])
        by["ASPECTS"] = np.where(aspects.isna(), _NONE, np.where(aspects >= 8, "8-10", "under 8"))
    if "occlusion_site" in df.columns:
        by["Occlusion site"] = df["occlusion_site"].astype(object).where(df["occlusion_site"].notna(), None).to_numpy()
    if "lkw_to_puncture_h" in df.columns:
        hours = pd.to_numeric(df["lkw_to_puncture_h"], errors="coerce")
        by["Onset to puncture"] = np.where(hours.isna(), _NONE, np.where(hours < 6, "under 6 h", "6 h or more"))
    if "bridging_thrombolysis" in df.columns:
        ivt = df["bridging_thrombolysis"].astype(str).str.lower()
        by["Bridging thrombolysis"] = np.where(ivt.isin(["true", "1", "yes"]), "yes",
                                               np.where(ivt.isin(["false", "0", "no"]), "no", _NONE))
    return by


def _consort(df: pd.DataFrame, funnel: dict | None, treatment: str, control: str) -> dict:
    by_arm = {}
    for a in (treatment, control):
        part = df[df["arm"] == a]
        received = (part["treated_arm"] == a).sum() if "treated_arm" in part else len(part)
        missing = int(part["mrs_90d"].isna().sum()) if "mrs_90d" in part else 0
        by_arm[a] = {"allocated": len(part), "received": int(received), "crossed": int(len(part) - received),
                     "missing": missing, "analysed": len(part) - missing}
    excluded_by = {}
    if funnel:
        excluded_by = {row["id"]: row["excluded_first"] for row in funnel.get("criteria", []) if row["excluded_first"]}
    return {"assessed": funnel["assessed"] if funnel else len(df), "excluded": funnel["excluded"] if funnel else 0,
            "incomplete": funnel.get("incomplete", 0) if funnel else 0, "excluded_by": excluded_by,
            "randomized": len(df), "arms": [treatment, control], "by_arm": by_arm}


def _methods(protocol: Protocol, population: str, adjust: Sequence[str], imputations: int, n: int) -> list[str]:
    pop = {"itt": "intention-to-treat (as randomized)", "pp": "per-protocol", "at": "as-treated"}[population]
    adj = ", ".join(adjust) if adjust else "no covariates"
    return [
        f"Population: {pop}, {n} patients. Arms as in the {protocol.acronym} protocol ({protocol.registry_id}).",
        "Ordinal shift of the 90-day modified Rankin Scale: proportional-odds logistic regression (statsmodels "
        f"OrderedModel), unadjusted and adjusted for {adj}; the common odds ratio above 1 favours the treatment arm; "
        "95% profile-likelihood intervals; likelihood-ratio test of proportional odds for the arm; win odds with "
        "Brunner-Munzel variance; Wilcoxon-Mann-Whitney test; utility-weighted mRS (weights 1.0, 0.91, 0.76, 0.65, "
        "0.33, 0, 0; Chaisinanunkul et al., Stroke 2015).",
        f"Missing 90-day mRS: complete-case primary analysis; multiple imputation ({imputations} imputations from a "
        "proportional-odds model on arm and baseline covariates, Rubin's rules) and a worst-case analysis (missing "
        "mRS 6 in the treatment arm, 0 in the control arm) as sensitivity analyses.",
        "Binary outcomes: risk difference with Newcombe's hybrid score interval, risk ratio (log interval), odds "
        "ratio (Woolf, and conditional exact), Fisher's exact test; adjusted odds ratio by logistic regression and "
        "adjusted risk difference by standardization with a bootstrap interval.",
        "Infarct volume: median (IQR), Hodges-Lehmann shift with Moses interval, Mann-Whitney test; linear "
        "regression of log(volume + 1 mL) adjusted for baseline NIHSS and ASPECTS.",
        "Subgroups: common odds ratio within each subgroup, interaction by likelihood-ratio test.",
        f"All analyses by stroketrial {__version__}; methods checked against R (MASS, ordinal, lme4, stats).",
    ]


def printed(r: Result) -> tuple[str, str, str]:
    """The estimate, its 95% CI and p as the report prints them (3 significant digits; blanks where none)."""
    p = format_p(r.p_value) if r.p_value is not None else ""
    if np.isnan(r.ci_low):
        return f"{r.estimate:#.3g}", "", p
    return f"{r.estimate:#.3g}", f"{r.ci_low:#.3g} to {r.ci_high:#.3g}", p
