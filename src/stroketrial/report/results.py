"""The numbers the report shows: every analysis the protocol's endpoints name, run on one dataset.

`analyse` runs the analysis plan on a dataset (one row per randomized patient, data-dictionary columns
plus `arm` and outcome columns such as `mrs_90d`, `death_90d`, `sich`, `infarct_volume_ml`) and
collects the results by endpoint, the subgroups, Table 1, the safety table, the Grotta counts, the
CONSORT boxes and the methods text into an `Analysis`. An analysis the data cannot support becomes a
note in its section, never a failed report. Nothing here draws or writes a file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..analysis import binary, continuous, counts, longitudinal, ordinal
from ..analysis import sensitivity as sensitivity_
from ..clinical.dictionary import VARIABLES, Variable
from ..clinical.scales import ETICI, LabelledEnum
from ..analysis.result import AnalysisInputError, Result, format_p
from ..clinical.assessments import ASSESSMENTS
from ..protocol import Protocol
from ..protocol.analysis_plan import Subgroup
from ..protocol.model import Endpoint
from .tables import safety_table, table1



@dataclass
class Section:
    title: str
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    method: str | None = None  # the plan's method for this endpoint
    better: str | None = None  # which direction of the outcome is better for the patient
    ran: set[str] = field(default_factory=set)  # the analyses that produced a result


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
    received: list[str] = field(default_factory=list)  # what each arm received (the plan's treatment_received)

    def to_json(self) -> dict:
        return {"trial": self.protocol.id, "population": self.population, "n": self.n,
                "treatment": self.treatment, "control": self.control, "treatment_received": self.received,
                "sections": [{"title": s.title, "method": s.method, "better": s.better,
                              "results": [r.to_json() for r in s.results], "notes": s.notes}
                             for s in self.sections],
                "subgroups": [r.to_json() for r in self.subgroups], "methods": self.methods}


def arms_of(protocol: Protocol) -> tuple[str, str]:
    treatment = next(a.id for a in protocol.arms if a.role == "experimental")
    control = next((a.id for a in protocol.arms if a.id != treatment), None)
    if control is None:
        raise AnalysisInputError(f"{protocol.id} has a single arm; a comparative report needs two")
    return treatment, control


def derive_outcomes(df: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """The outcomes the plan derives (a yes/no from a score or grade, in a column named by the endpoint),
    and the dictionary's derived intervals."""
    df = df.copy()
    for endpoint in protocol.endpoints:
        a = endpoint.analysis
        if a is None or not a.outcome.derived or a.outcome.column not in df.columns:
            continue
        if a.outcome.all_of is not None:  # derived from its components already (planned_outcomes): a yes/no
            df[endpoint.id] = df[a.outcome.column].map(lambda v: {"True": 1.0, "False": 0.0}.get(v, v)
                                                         if isinstance(v, str) else v).astype(float)
            continue
        df[endpoint.id] = _at_cut(df[a.outcome.column], a.outcome.at_most, a.outcome.at_least)
    if "lkw_to_puncture_h" not in df.columns and {"last_known_well", "arterial_puncture"} <= set(df.columns):
        start = pd.to_datetime(df["last_known_well"], errors="coerce")
        end = pd.to_datetime(df["arterial_puncture"], errors="coerce")
        df["lkw_to_puncture_h"] = (end - start).dt.total_seconds() / 3600
    return df


def _at_cut(values: pd.Series, at_most: float | None, at_least: float | str | None) -> pd.Series:
    """1.0 where the score is at most / at least the cut, 0.0 where not, missing where not recorded.
    A grade cut (eTICI 2b50) compares the grades' ranks."""
    if isinstance(at_least, str):
        grades = {g.value: g.ranks for g in ETICI}
        ranks = values.astype("string").map(lambda v: grades.get(v, (np.nan, np.nan)) if isinstance(v, str)
                                            else (np.nan, np.nan))
        low = ranks.map(lambda r: r[0]).astype(float)
        high = ranks.map(lambda r: r[1]).astype(float)
        rank = grades[at_least][0]
        # an ambiguous 2b (50-99%) is decided only when both of its readings agree
        decided = (low >= rank) | (high < rank)
        return (low >= rank).astype(float).where(decided & low.notna())
    score = pd.to_numeric(values, errors="coerce")
    cut = at_most if at_most is not None else at_least
    assert isinstance(cut, (int, float)), "a grade cut is handled above"
    hit = score <= cut if at_most is not None else score >= cut
    return hit.astype(float).where(score.notna())


def outcome_column(endpoint: Endpoint) -> str:
    """The dataset column an endpoint's analysis reads: its own for a derived yes/no, else the outcome's."""
    assert endpoint.analysis is not None
    return endpoint.id if endpoint.analysis.outcome.derived else endpoint.analysis.outcome.column


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
    section.ran.add(label)
    if isinstance(produced, Result):
        section.results.append(produced)
    elif isinstance(produced, dict):
        section.results.extend(produced.values())
    else:
        section.results.extend(produced)


@dataclass(frozen=True)
class _Context:
    df: pd.DataFrame
    full: pd.DataFrame  # every patient, before the population is applied
    population: str
    long: pd.DataFrame | None
    treatment: str
    control: str
    adjust: list[str]
    visit_order: list[str]
    imputations: int
    bootstrap: int


def _run_endpoint(endpoint: Endpoint, ctx: _Context) -> Section:
    """Every analysis the plan names for one endpoint."""
    section = Section(f"{endpoint.name} ({endpoint.role})")
    a = endpoint.analysis
    if a is None:
        section.notes.append("the protocol's analysis plan names no analysis for this endpoint")
        return section
    section.method, section.better = a.method, a.better
    column = outcome_column(endpoint)
    df = ctx.df
    if a.population is not None and a.population != ctx.population:
        df = sensitivity_.population(ctx.full, a.population)
        section.notes.append(f"analysed in the {_POPULATION_LABELS[a.population]} population ({len(df)} patients), "
                             "as the analysis plan declares for this endpoint")
    adjust = [c for c in (ctx.adjust if a.adjust is None else a.adjust) if c in df.columns]
    args = (df, column, "arm", ctx.treatment, ctx.control)
    if a.method == "ordinal_shift":
        _safe(section, "unadjusted shift", ordinal.proportional_odds, *args)
        if adjust:
            _safe(section, "adjusted shift", ordinal.proportional_odds, *args, adjust=adjust)
        sensitivity: dict[str, tuple[str, Callable[..., Any], dict[str, Any]]] = {
                       "proportional_odds_test": ("proportional-odds test", ordinal.proportional_odds_test,
                                                  {"adjust": adjust}),
                       "win_odds": ("win odds", ordinal.win_odds, {}),
                       "mann_whitney": ("Wilcoxon-Mann-Whitney", ordinal.mann_whitney, {}),
                       "utility_weighted": ("utility-weighted mRS", ordinal.utility_weighted, {}),
                       "multiple_imputation": ("multiple imputation", sensitivity_.multiple_imputation,
                                               {"adjust": adjust, "imputations": ctx.imputations}),
                       "worst_case": ("worst case", sensitivity_.worst_case, {"adjust": adjust})}
        for name in a.sensitivity:
            label, fn, kwargs = sensitivity[name]
            _safe(section, label, fn, *args, **kwargs)
    elif a.method == "binary":
        _safe(section, column, binary.binary, *args, adjust=adjust, bootstrap=ctx.bootstrap)
    elif a.method == "single_arm_proportion":
        _safe(section, column, binary.single_arm_proportion, df, column, "arm", a.arm)
    elif a.method == "continuous":
        _safe(section, "Hodges-Lehmann", continuous.hodges_lehmann, *args)
        _safe(section, "log ANCOVA", continuous.log_ancova, *args, adjust=adjust)
    elif a.method == "mean_difference":
        _safe(section, "difference in means", continuous.mean_difference, *args)
    elif a.method == "count":
        _safe(section, "rate ratio", counts.rate_ratio, *args)
    elif a.method == "mixed_model":
        if ctx.long is None:
            section.notes.append("not analysed: the repeated measures need the long data (one row per visit)")
        else:
            known = set(ctx.long["visit"].astype(str)) <= set(ctx.visit_order) if "visit" in ctx.long else False
            _safe(section, "mixed model", longitudinal.mixed_model, ctx.long, column, "arm", ctx.treatment,
                  ctx.control, order=ctx.visit_order if known else None, df="satterthwaite")
    return section


def _received(protocol: Protocol, full: pd.DataFrame, treatment: str, control: str) -> list[str]:
    """What each arm received, as the plan's treatment_received record says: the values by allocated arm, the
    patients per protocol and those analysed as treated in the other arm."""
    plan = protocol.analysis_plan
    rule = plan.treatment_received if plan else None
    if rule is None or "treatment_received" not in full.columns:
        return []
    lines: list[str] = []
    names = {a.id: a.name for a in protocol.arms}
    for arm in (treatment, control):
        part = full[full["arm"] == arm]
        if rule.arms is not None and arm not in rule.arms:
            lines.append(f"{names[arm]} (n = {len(part)}): no study treatment to record")
            continue
        summaries = [_summary(key, part["treatment_received"] if key == rule.assessment else part[key])
                     for key in [rule.assessment, *rule.also] if key == rule.assessment or key in part.columns]
        crossed = int((part["treated_arm"] != arm).sum()) if "treated_arm" in part else 0
        per_protocol = int(part["per_protocol"].astype(bool).sum()) if "per_protocol" in part else len(part)
        lines.append(f"{names[arm]} (n = {len(part)}): " + "; ".join(summaries) +
                             f"; per protocol {per_protocol}; analysed as treated in another arm {crossed}")
    return lines


def _summary(key: str, values: pd.Series) -> str:
    spec = ASSESSMENTS[key]
    missing = int(values.isna().sum())
    tail = f", not recorded {missing}" if missing else ""
    if spec.kind in ("category", "flag"):
        shown = values.dropna().map(lambda v: spec.label_of(str(v)) if spec.kind == "category"
                                    else ("yes" if v in (True, "True", 1, 1.0) else "no"))
        counts = ", ".join(f"{label} {n}" for label, n in shown.value_counts().sort_index().items())
        return f"{spec.label}: {counts or 'none recorded'}{tail}"
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if numbers.empty:
        return f"{spec.label}: none recorded{tail}"
    q1, median, q3 = numbers.quantile([0.25, 0.5, 0.75])
    unit = f" {spec.unit}" if spec.unit else ""
    return f"{spec.label}: median {median:.4g}{unit} (IQR {q1:.4g}-{q3:.4g}){tail}"


def analyse(protocol: Protocol, data: pd.DataFrame, long: pd.DataFrame | None = None, population: str | None = None,
            adjust: Sequence[str] | None = None, funnel: dict | None = None, imputations: int = 20,
            bootstrap: int = 500, subgroups: bool = True) -> Analysis:
    """Run the protocol's analysis plan: every endpoint by its declared method, in the plan's population
    (or `population`) with the plan's covariates (or `adjust`); `subgroups`: the plan's subgroup analyses too."""
    plan = protocol.analysis_plan
    if plan is None:
        raise AnalysisInputError(f"{protocol.id} declares no analysis plan (analysis_plan in the protocol)")
    treatment, control = arms_of(protocol)
    if "arm" not in data.columns:
        raise AnalysisInputError("the dataset has no column 'arm' (the randomized arm of each patient)")
    population = population or plan.primary_population
    full = derive_outcomes(data, protocol)
    df = sensitivity_.population(full, population)
    covariates = [c for c in (plan.adjust if adjust is None else adjust) if c in df.columns]
    order = [name for v in protocol.visits for name in (v.id, v.name)]
    ctx = _Context(df, full, population, _same_population(long, df), treatment, control, covariates, order,
                   imputations, bootstrap)
    sections = [_run_endpoint(endpoint, ctx) for endpoint in protocol.endpoints]
    shift = next((e for e in protocol.endpoints if e.analysis and e.analysis.method == "ordinal_shift"), None)
    subgroup_results, overall = [], None
    shift_column = outcome_column(shift) if shift is not None else None
    if subgroups and shift_column and shift_column in df.columns and df[shift_column].notna().sum() >= 20:
        try:
            subgroup_results = sensitivity_.subgroups(df, shift_column, "arm", treatment, control,
                                                      _subgroup_labels(df, plan.subgroups))
            overall = ordinal.proportional_odds(df, shift_column, "arm", treatment, control, profile=False)
        except (AnalysisInputError, ValueError):
            subgroup_results = []
    grotta = {}
    if shift_column and shift_column in df.columns:
        for a in (treatment, control):
            scores = pd.to_numeric(df.loc[df["arm"] == a, shift_column], errors="coerce").dropna().astype(int)
            grotta[a] = [int((scores == s).sum()) for s in range(7)]
    events = {outcome_column(e): e.name for e in protocol.endpoints
              if e.analysis is not None and e.role == "safety" and e.analysis.method == "binary"}
    primary = next(e for e in protocol.endpoints if e.role == "primary")
    primary_column = outcome_column(primary) if primary.analysis is not None else None
    methods = _methods(protocol, population, covariates, imputations, len(df), sections)
    return Analysis(protocol, treatment, control, population, len(df), sections, subgroup_results, overall,
                    table1(full, "arm", [treatment, control]), safety_table(full, "arm", [treatment, control], events),
                    grotta, _consort(full, funnel, treatment, control, primary_column,
                             {a.id: a.name for a in protocol.arms})
                    | {"population": _POPULATION_LABELS.get(population, population)}, methods,
                    _received(protocol, full, treatment, control))


def _same_population(long: pd.DataFrame | None, df: pd.DataFrame) -> pd.DataFrame | None:
    """The repeated measures of the analysis population's patients, each in the arm that population gives them
    (as treated: the arm received), so the mixed models analyse the same patients in the same arms."""
    if long is None or "patient_id" not in long.columns or "patient_id" not in df.columns:
        return long
    arm_of = dict(zip(df["patient_id"].astype(str), df["arm"], strict=True))
    patient = long["patient_id"].astype(str)
    kept = long[patient.isin(arm_of)].copy()
    kept["arm"] = patient[patient.isin(arm_of)].map(arm_of)
    return kept


# None as np.where takes it (a 0-d object array, which is what np.where makes of None; numpy's ArrayLike
# type leaves None out).
_NONE = np.array(None, dtype=object)


def _subgroup_labels(df: pd.DataFrame, subgroups: Sequence[Subgroup]) -> dict[str, np.ndarray]:
    """Each planned subgroup as a label per patient (None where the variable is not recorded)."""
    by: dict[str, np.ndarray] = {}
    for s in subgroups:
        if s.field not in df.columns:
            continue
        values = df[s.field]
        var = VARIABLES.get(s.field)
        if s.at_least is not None:
            numbers = pd.to_numeric(values, errors="coerce").astype(float)  # nullable integers hold NA, not NaN
            cut = f"{s.at_least:g}" + (f" {var.unit}" if var is not None and var.unit else "")
            by[s.name] = np.where(numbers.isna(), _NONE, np.where(numbers >= s.at_least, f"{cut} or more",
                                                                   f"under {cut}"))
        else:
            by[s.name] = values.map(lambda v, var=var: _label(var, v)).to_numpy()
    return by


_POPULATION_LABELS = {"itt": "intention to treat", "pp": "per protocol", "at": "as treated", "safety": "safety"}


def _label(var: Variable | None, value: object) -> object:
    """A category as people read it (MCA M1, not m1); None where not recorded."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    scale = var.scale if var is not None else None
    if isinstance(scale, type) and issubclass(scale, LabelledEnum):
        try:
            return scale(value).label
        except ValueError:
            return value
    return value


def _consort(df: pd.DataFrame, funnel: dict | None, treatment: str, control: str, primary: str | None,
             names: dict[str, str] | None = None) -> dict:
    by_arm = {}
    for a in (treatment, control):
        part = df[df["arm"] == a]
        received = (part["treated_arm"] == a).sum() if "treated_arm" in part else len(part)
        missing = int(part[primary].isna().sum()) if primary and primary in part else 0
        by_arm[a] = {"allocated": len(part), "received": int(received), "crossed": int(len(part) - received),
                     "missing": missing, "analysed": len(part) - missing}
    excluded_by = {}
    if funnel:
        excluded_by = {row["id"]: row["excluded_first"] for row in funnel.get("criteria", []) if row["excluded_first"]}
    return {"assessed": funnel["assessed"] if funnel else len(df), "excluded": funnel["excluded"] if funnel else 0,
            "incomplete": funnel.get("incomplete", 0) if funnel else 0, "excluded_by": excluded_by,
            "randomized": len(df), "arms": [treatment, control], "by_arm": by_arm, "arm_names": names}


# The Methods section says what ran: one sentence per method and per sensitivity analysis.
_METHOD_TEXT = {
    "ordinal_shift": "Ordinal shift: proportional-odds logistic regression (Newton-Raphson, as MASS::polr), unadjusted "
                     "and adjusted for {adjust}; the common odds ratio above 1 favours the treatment arm (a shift "
                     "toward better scores); 95% profile-likelihood intervals.",
    "binary": "Binary outcomes: risk difference with Newcombe's hybrid score interval, risk ratio (log interval), "
              "odds ratio (Woolf, and conditional exact), Fisher's exact test; adjusted odds ratio by logistic "
              "regression and adjusted risk difference by standardization with a bootstrap interval.",
    "single_arm_proportion": "Single-arm proportions with exact (Clopper-Pearson) 95% intervals.",
    "continuous": "Skewed continuous outcomes: median (IQR), Hodges-Lehmann shift with Moses interval, "
                  "Mann-Whitney test; linear regression of log(value + 1) adjusted for {adjust}.",
    "mean_difference": "Differences in means with Welch's t interval and test.",
    "mixed_model": "Repeated scores: linear mixed model (REML) with a random intercept per patient and arm x visit "
                   "terms, visits in the schedule's order; the arm effect at each visit with a t interval on "
                   "Satterthwaite degrees of freedom (as lmerTest).",
    "count": "Event counts: events per patient compared by Poisson regression with a robust (sandwich) interval, "
             "reported as a rate ratio, with the patients who had at least one event.",
}
_SENSITIVITY_TEXT = {
    "proportional-odds test": "likelihood-ratio test of proportional odds for the arm",
    "win odds": "win odds with Brunner-Munzel variance",
    "Wilcoxon-Mann-Whitney": "Wilcoxon-Mann-Whitney test",
    "utility-weighted mRS": "utility-weighted mRS (weights 1.0, 0.91, 0.76, 0.65, 0.33, 0, 0; Chaisinanunkul et "
                            "al., Stroke 2015)",
    "multiple imputation": "multiple imputation of the missing outcome ({imputations} imputations from a "
                           "proportional-odds model on arm and baseline covariates, Rubin's rules)",
    "worst case": "a worst-case analysis (missing outcome worst in the treatment arm, best in the control arm)",
}


def _methods(protocol: Protocol, population: str, adjust: Sequence[str], imputations: int, n: int,
             sections: Sequence[Section]) -> list[str]:
    plan = protocol.analysis_plan
    assert plan is not None
    definition = plan.populations.get(population, population)  # type: ignore[call-overload]
    adj = ", ".join(adjust) if adjust else "no covariates"
    lines = [f"Population: {population} ({definition}), {n} patients. Arms as in the {protocol.acronym} protocol "
             f"({protocol.registry_id}). Alpha {plan.alpha:g}, {plan.sided}-sided; multiplicity: {plan.multiplicity}."]
    ran_methods = [m for m in _METHOD_TEXT if any(s.method == m and s.results for s in sections)]
    lines += [_METHOD_TEXT[m].format(adjust=adj) for m in ran_methods]
    ran = [label for label in _SENSITIVITY_TEXT if any(label in s.ran for s in sections)]
    if ran:
        lines.append("Sensitivity analyses: " + "; ".join(_SENSITIVITY_TEXT[r].format(imputations=imputations)
                                                          for r in ran) + ". Missing outcomes: complete-case "
                     "primary analysis.")
    if plan.subgroups:
        lines.append("Subgroups (" + ", ".join(s.name for s in plan.subgroups) + "): common odds ratio within each "
                     "subgroup, interaction by likelihood-ratio test.")
    lines.append(f"All analyses by stroketrial {__version__}; methods checked against R (MASS, ordinal, lme4, stats).")
    return lines


def printed(r: Result) -> tuple[str, str, str]:
    """The estimate, its 95% CI and p as the report prints them (3 significant digits; blanks where none)."""
    p = format_p(r.p_value) if r.p_value is not None else ""
    if np.isnan(r.ci_low):
        return f"{r.estimate:#.3g}", "", p
    return f"{r.estimate:#.3g}", f"{r.ci_low:#.3g} to {r.ci_high:#.3g}", p
