"""A DSMB report (dsmb.py) as one self-contained HTML document (templates/dsmb_report.html), with the numbering,
title page and print rules of the trial report (html.py); the same HTML is the PDF's source (pdf.py).

The title page states what the report was made from: the data snapshot's time and SHA-256, the lock or freeze in
force, who generated it, and for a closed report that it is closed."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..analysis.result import format_p
from .dsmb import DsmbReport
from .dsmb_figures import safety_curves
from .figures import grotta_bars, save
from .html import Row, _environment, _Numbering, _Words
from .results import outcome_column, printed

SPENDING = {"obf": "Lan-DeMets O'Brien-Fleming-type", "pocock": "Lan-DeMets Pocock-type"}

@dataclass(frozen=True)
class Snapshot:
    """What a DSMB report was made from, as its title page states it."""

    data_sha256: str
    data_hashed: str
    taken_at: dt.datetime
    generated_by: str
    lock: str | None = None  # the freeze or lock in force, in words


def dsmb_document(r: DsmbReport, snapshot: Snapshot, look: Mapping[str, Any] | None,
                  monitoring: Sequence[Mapping[str, Any]], unblindings: Sequence[Mapping[str, Any]]) -> str:
    """The report page. `look` is the latest interim look (closed: its whole result; open: its number and
    information only), `monitoring` the safety rules' status (closed only), `unblindings` the emergency
    unblinding log (closed only)."""
    with tempfile.TemporaryDirectory() as folder:
        return _environment().get_template("dsmb_report.html").render(
            **_context(r, snapshot, look, monitoring, unblindings, Path(folder)))


def _figure_file(fig: Any, folder: Path, stem: str) -> Path:
    return save(fig, folder / stem, ("png",))[0]


def _context(r: DsmbReport, snapshot: Snapshot, look: Mapping[str, Any] | None,
             monitoring: Sequence[Mapping[str, Any]], unblindings: Sequence[Mapping[str, Any]],
             folder: Path) -> dict[str, Any]:
    p = r.protocol
    number = _Numbering()
    labels = [g.label for g in r.groups]
    ids = [g.id for g in r.groups]

    def completeness(cell: Mapping[str, Any]) -> str:
        share = cell["completeness"]
        return (f"{cell['randomized']} / {cell['recorded']}; {cell['observed']} of {cell['due']}"
                + (f" ({100 * share:.0f}%)" if share is not None else ""))

    enrolment = number.table(
        "Enrolment and follow-up by site: patients randomized / with the primary outcome recorded; follow-up "
        "completeness: recorded of those whose primary outcome window has closed (%).", ["site", *labels],
        [Row([row["site"], *(completeness(row[g]) for g in ids)]) for row in r.enrolment.to_dict("records")],
        "safety")
    baseline = number.table("Baseline characteristics.", list(r.baseline.columns),
                            [Row([str(v) for v in row], level=str(row[0]).startswith("    "))
                             for row in r.baseline.itertuples(index=False)], "baseline")
    outcomes = number.table(
        "Primary and secondary outcomes: patients with the outcome / patients with it recorded (exact 95% CI), "
        "else median (IQR).", ["endpoint", *labels],
        [Row([row["endpoint"], *(row[g] for g in ids)]) for row in r.outcome_summaries.to_dict("records")],
        "safety")
    analyses = None
    if r.efficacy is not None:
        rows = []
        words = _Words(r.efficacy)
        endpoints = [e for e in p.endpoints if e.role in ("primary", "secondary") and e.analysis is not None]
        for endpoint, section in zip(endpoints, r.efficacy.sections, strict=True):
            for i, result in enumerate(section.results):
                name = words.result_name(result.name, outcome_column(endpoint))
                rows.append(Row([section.title if i == 0 else "", name, result.measure, *printed(result)],
                                result=result.name, first=i == 0))
        analyses = number.table(
            f"Efficacy by the statistical analysis plan ({r.efficacy.population} population, n = {r.efficacy.n}): "
            "estimates with 95% confidence intervals, unadjusted for the interim look.",
            ["endpoint", "analysis", "measure", "estimate", "95% CI", "p"], rows, "results",
            "p-values at an interim look are descriptive; the boundary below decides.")
    safety = number.table(
        "Safety: patients with the event / patients randomized (exact Clopper-Pearson 95% interval).",
        ["event", *labels], [Row([row.event, *(row.cells[g].text() for g in ids)]) for row in r.safety], "safety")
    soc = number.table(
        "Serious adverse events by system organ class as reported: patients (% of randomized), events.",
        ["system organ class", *labels],
        [Row([row["system_organ_class"], *(f"{row[g]['patients']} ({row[g]['percent']:.1f}%), {row[g]['events']}"
                                           if row[g]["percent"] is not None else "-" for g in ids)])
         for row in r.soc.to_dict("records")], "safety")
    deviations = number.table("Protocol deviations found in the data (the platform keeps no separate deviation log).",
                              ["deviation", *labels],
                              [Row([row["deviation"], *(str(row[g]) for g in ids)])
                               for row in r.deviations.to_dict("records")], "safety")
    arm_names = {a.id: a.name for a in p.arms}
    sae_listing = _listing(number, "Serious adverse events, in order of onset.", r.sae_listing, arm_names)
    ae_listing = _listing(number, "Non-serious adverse events, in order of onset.", r.ae_listing, arm_names)
    figures = {}
    if r.grotta and any(sum(c) for c in r.grotta.values()):
        figures["grotta"] = number.figure(
            "Modified Rankin Scale at 90 days among patients with it recorded (percentages in each segment).",
            _figure_file(grotta_bars(r.grotta), folder, "grotta"), "grotta")
    figures["curves"] = number.figure(
        "Cumulative incidence (1 - Kaplan-Meier) of death and of symptomatic intracranial haemorrhage by day since "
        "randomization, censored at the last day seen.", _figure_file(safety_curves(r.curves, r.groups), folder,
                                                                      "curves"), "grotta")
    kind = "closed" if r.closed else "open"
    return {
        "document_title": f"{p.acronym} DSMB {kind} report", "page_heading": f"DSMB {kind} report",
        "acronym": p.acronym, "title": p.title,
        "registry_id": p.registry_id, "sponsor": p.sponsor, "version": __version__, "closed": r.closed,
        "created": snapshot.taken_at.date().isoformat(), "snapshot": snapshot,
        "taken_at": snapshot.taken_at.strftime("%Y-%m-%d %H:%M UTC"), "n": r.n, "design": p.design.summary,
        "groups": labels, "enrolment": enrolment, "baseline": baseline, "outcomes": outcomes,
        "analyses": analyses, "safety": safety, "soc": soc, "deviations": deviations, "sae_listing": sae_listing,
        "ae_listing": ae_listing, "figures_by": figures, "notes": r.notes,
        "look": _look(look) if look else None, "monitoring": [_rule(m) for m in monitoring],
        "unblindings": list(unblindings),
        "tables": number.tables, "figures": number.figures,
    }


def _listing(number: _Numbering, caption: str, frame: Any, arm_names: Mapping[str, str]):
    headings = {"patient_id": "patient", "site": "site", "arm": "arm", "term": "term", "coded_term": "coded term",
                "system_organ_class": "system organ class", "onset_date": "onset", "criteria": "seriousness",
                "severity": "severity", "relatedness": "relatedness", "outcome": "outcome"}

    def cell(column: str, value: Any) -> str:
        if column == "arm":
            return arm_names.get(str(value), str(value))
        if isinstance(value, list | tuple):
            return ", ".join(str(v).replace("_", " ") for v in value)
        return "" if value is None or value != value else str(value).replace("_", " ")

    return number.table(caption, [headings[c] for c in frame.columns],
                        [Row([cell(c, v) for c, v in zip(frame.columns, row, strict=True)])
                         for row in frame.itertuples(index=False)], "listing",
                        "" if len(frame) else "None recorded.")


def _look(look: Mapping[str, Any]) -> dict[str, Any]:
    """The look's numbers as the report prints them."""
    result = look.get("look_result") or {}
    primary = look.get("primary_analysis") or {}

    def percent(value: float | None) -> str:
        return "" if value is None else f"{100 * value:.1f}%"

    out = {"number": look["look"], "patients_observed": look["patients_observed"],
           "information_total": look.get("information_total"), "information": f"{100 * look['information']:.1f}%",
           "run_at": _moment(look.get("run_at")), "run_by": look.get("run_by"), "closed": "z" in look}
    if "z" in look and result:
        out |= {"z": f"{look['z']:.3f}", "efficacy_bound": f"{result['efficacy_bound']:.3f}",
                "harm_bound": f"{result['harm_bound']:.3f}" if result.get("harm_bound") is not None else "",
                "futility_bound": (f"{result['futility_bound']:.3f}" if result.get("futility_bound") is not None
                                   else ""),
                "nominal_p": format_p(result["nominal_p"]), "alpha_spent": f"{result['alpha_spent']:.5f}",
                "recommendation": look["recommendation"],
                "conditional_power_planned": percent(result.get("conditional_power_planned")),
                "conditional_power_trend": percent(result.get("conditional_power_trend")),
                "predictive_probability": percent(result.get("predictive_probability")),
                "estimate": (f"common odds ratio {primary['common_odds_ratio']:.3f} (95% CI "
                             f"{primary['ci95'][0]:.3f} to {primary['ci95'][1]:.3f})" if primary else ""),
                "prior": look.get("prior"), "spending": SPENDING.get(str(look.get("spending")), look.get("spending")),
                "decision": _decision(look.get("decision"))}
    return out


def _moment(text: str | None) -> str:
    """A stored UTC moment as the report prints it: to the minute, named UTC."""
    if not text:
        return ""
    moment = dt.datetime.fromisoformat(text)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment.tzinfo else moment.strftime(
        "%Y-%m-%d %H:%M UTC")


def _decision(decision: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if decision is None else {**decision, "decided_at": _moment(decision.get("decided_at"))}


def _rule(m: Mapping[str, Any]) -> dict[str, Any]:
    where = m.get("arm_name") or "all patients"
    rate = "" if m.get("rate") is None else f"{100 * m['rate']:.1f}%"
    event = {"death": "death", "sich": "symptomatic intracranial haemorrhage"}.get(m["event"], m["event"])
    return {"what": f"{event} in {where}", "events": f"{m['events']}/{m['patients']} ({rate})",
            "expected": f"{100 * m['expected_rate']:.1f}%",
            "probability": f"{m['probability_above_expected']:.3f} (bound {m['bound']:g})",
            "crossed": "crossed" if m["crossed"] else "not crossed"}
