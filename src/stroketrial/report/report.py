"""The trial report: every analysis the protocol's endpoints name, the figures, Table 1, methods; HTML and PDF.

`analyse` runs the analyses on a dataset (one row per randomized patient, data-dictionary
columns plus `arm` and outcome columns such as `mrs_90d`, `death_90d`, `sich`,
`infarct_volume_ml`); `write_report` writes report.html (self-contained: figures are
embedded), report.pdf, results.json and every figure as PNG, SVG and PDF.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages

from .. import __version__
from ..analysis import binary, continuous, longitudinal, ordinal, sensitivity
from ..analysis.result import AnalysisInputError, Result, format_p
from ..protocol import Protocol
from .figures import consort, forest, grotta_bars, save
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


# ---- writing -----------------------------------------------------------------------------------------
def write_report(analysis: Analysis, out: str | Path, dataset: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[Path]] = {}
    if analysis.grotta and any(sum(v) for v in analysis.grotta.values()):
        figures["grotta"] = save(grotta_bars(analysis.grotta), out / "grotta_bars")
    figures["consort"] = save(consort(analysis.consort), out / "consort")
    if analysis.subgroups:
        fig = forest(analysis.subgroups, analysis.overall,
                     favours=(f"favours {analysis.control}", f"favours {analysis.treatment}"))
        figures["forest"] = save(fig, out / "forest_subgroups")
    if dataset is not None:
        dataset.to_csv(out / "dataset.csv", index=False)
    (out / "results.json").write_text(json.dumps(analysis.to_json(), indent=2, default=str))
    (out / "report.html").write_text(_html(analysis, figures), encoding="utf-8")
    _pdf(analysis, figures, out / "report.pdf")
    return figures


def _fmt(r: Result) -> tuple[str, str, str]:
    if np.isnan(r.ci_low):
        return f"{r.estimate:#.3g}", "", format_p(r.p_value) if r.p_value is not None else ""
    return (f"{r.estimate:#.3g}", f"{r.ci_low:#.3g} to {r.ci_high:#.3g}",
            format_p(r.p_value) if r.p_value is not None else "")


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _html(a: Analysis, figures: dict[str, list[Path]]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(a.protocol.acronym)} report"
             "</title><style>body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:2rem auto;"
             "color:#1b1f24;padding:0 1rem}table{border-collapse:collapse;margin:.6rem 0 1.2rem}"
             "td,th{border-bottom:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}"
             "th{background:#f3f5f7}img{max-width:100%}.small{color:#555;font-size:.9em}h2{margin-top:2rem}"
             "</style></head><body>",
             f"<h1>{e(a.protocol.acronym)}: {e(a.protocol.title)}</h1>",
             f"<p class='small'>{e(a.protocol.registry_id)} · {a.population.upper()} population, n = {a.n} · "
             f"{e(a.treatment)} vs {e(a.control)} · generated {dt.date.today().isoformat()} by stroketrial "
             f"{__version__}</p>"]
    if "consort" in figures:
        parts.append("<h2>Flow of patients (CONSORT)</h2>" + _img(figures["consort"][0]))
    parts.append("<h2>Baseline characteristics (Table 1)</h2>" + a.table1.to_html(index=False, border=0, escape=True))
    if "grotta" in figures:
        parts.append("<h2>Modified Rankin Scale at 90 days</h2>" + _img(figures["grotta"][0]))
    for section in a.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.results:
            parts.append("<table><tr><th>analysis</th><th>measure</th><th>estimate</th><th>95% CI</th><th>p</th>"
                         "<th>n</th><th>method</th></tr>")
            for r in section.results:
                est, ci, p = _fmt(r)
                parts.append(f"<tr><td>{e(r.name)}</td><td>{e(r.measure)}</td><td>{est}</td><td>{ci}</td><td>{p}</td>"
                             f"<td>{r.n}</td><td class='small'>{e(r.method)}</td></tr>")
            parts.append("</table>")
        parts.extend(f"<p class='small'>{e(note)}</p>" for note in section.notes)
    if "forest" in figures:
        parts.append("<h2>Subgroups</h2>" + _img(figures["forest"][0]))
        parts.append("<table><tr><th>subgroup</th><th>n</th><th>common OR (95% CI)</th><th>interaction p</th></tr>")
        for r in a.subgroups:
            parts.append(f"<tr><td>{e(r.name)}</td><td>{r.n}</td><td>{r.text()}</td>"
                         f"<td>{format_p(r.details['interaction_p'])}</td></tr>")
        parts.append("</table>")
    if not a.safety.empty:
        parts.append("<h2>Safety</h2>" + a.safety.to_html(index=False, border=0))
    parts.append("<h2>Methods</h2>" + "".join(f"<p>{e(m)}</p>" for m in a.methods))
    parts.append("</body></html>")
    return "\n".join(parts)


def _pdf(a: Analysis, figures: dict[str, list[Path]], path: Path) -> None:
    with PdfPages(path) as pdf:
        lines = [f"{a.protocol.acronym}: {a.protocol.title}", f"{a.protocol.registry_id} · {a.population.upper()} "
                 f"population, n = {a.n} · {a.treatment} vs {a.control}", ""]
        for section in a.sections:
            lines.append(section.title)
            for r in section.results:
                est, ci, p = _fmt(r)
                lines.append(f"   {r.name}: {r.measure} {est}" + (f" (95% CI {ci})" if ci else "") +
                             (f", p = {p}" if p else "") + f", n = {r.n}")
            lines.extend(f"   {note}" for note in section.notes)
            lines.append("")
        lines.append("Methods")
        for m in a.methods:
            lines.extend(textwrap.wrap(m, 110, initial_indent="   ", subsequent_indent="   "))
        for start in range(0, len(lines), 60):
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.96, "\n".join(lines[start:start + 60]), va="top", ha="left", fontsize=7.6,
                     family="DejaVu Sans")
            pdf.savefig(fig)
            plt.close(fig)
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.06, 0.96, "Baseline characteristics (Table 1)", va="top", fontsize=11, weight="bold")
        table = a.table1
        ax = fig.add_axes((0.04, 0.05, 0.92, 0.86))
        ax.axis("off")
        tbl = ax.table(cellText=table.values, colLabels=list(table.columns), loc="upper left", cellLoc="left")
        tbl.auto_set_font_size(False)
        tbl.set_fontsize(7)
        tbl.scale(1, 1.15)
        pdf.savefig(fig)
        plt.close(fig)
        for name in ("consort", "grotta", "forest"):
            if name in figures:
                image = plt.imread(figures[name][0])
                fig = plt.figure(figsize=(8.27, 11.69))
                ax = fig.add_axes((0.05, 0.05, 0.9, 0.9))
                ax.imshow(image)
                ax.axis("off")
                pdf.savefig(fig)
                plt.close(fig)
