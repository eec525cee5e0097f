"""The dose-escalation report as one HTML document (templates/escalation_report.html): the same title page,
numbering and conventions as the comparative report (html.py), with the escalation's own sections."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .. import __version__
from ..analysis.result import Result
from ..clinical import VARIABLES
from .escalation_report import EscalationReport, term_labels
from .html import Provenance, Row, _environment, _Numbering
from .results import printed

WEIGHTING = {"matching": "matched", "ipw": "IPW (ATT), sensitivity"}


def escalation_document(r: EscalationReport, figures: Mapping[str, Sequence[Path]], provenance: Provenance) -> str:
    return _environment().get_template("escalation_report.html").render(**_context(r, figures, provenance))


def _context(r: EscalationReport, figures: Mapping[str, Sequence[Path]], provenance: Provenance) -> dict:
    p, e = r.protocol, r.escalation
    number = _Numbering()
    dose = {lv.level: lv.dose for lv in e.levels}
    history = number.figure(
        f"Escalation history: each patient in order of enrolment at the dose level given ({e.unit}), a DLT "
        f"marked with a cross; cohorts of {e.cohort_size} separated by grey lines, with the decision that followed "
        "each; then the expansion cohort at the maximum tolerated dose.", figures["history"][0], "history")
    safety = number.table(
        "Safety by dose level: DLTs and the protocol's safety endpoints.", ["", "n", *r.safety_columns],
        [Row([row.label, str(row.n), *(c.text() for c in row.cells)]) for row in r.safety_rows], "safety",
        "DLTs are the investigator's assessments against the protocol's definitions; counts are patients with "
        "at least one event.")
    context = {
        "acronym": p.acronym, "title": p.title, "registry_id": p.registry_id, "sponsor": p.sponsor,
        "phase": p.phase, "source": p.source, "version": __version__, "provenance": provenance,
        "created": provenance.created.isoformat(), "n": r.n, "design": p.design.summary,
        "mtd": f"level {r.mtd}, {dose[r.mtd]:g} {e.unit}" if r.mtd else "not declared",
        "history": history, "safety": safety,
        "dlt_definition": [f"{d.text} (observed for {d.window_hours} h from the start of the infusion)"
                           for d in e.dlt_definition],
        "matched": None, "balance": None, "love": None, "matched_intro": "", "matched_notes": list(r.notes),
        "methods": _methods(r),
    }
    if r.matching is not None:
        context |= _matched_context(r, figures, number)
    return context | {"tables": number.tables, "figures": number.figures}


def _matched_context(r: EscalationReport, figures: Mapping[str, Sequence[Path]], number: _Numbering) -> dict:
    assert r.matching is not None
    m, plan = r.matching, r.protocol.analysis_plan
    assert plan is not None and plan.matched_controls is not None
    labels = term_labels(m)
    balance = number.table(
        "Balance of the matching variables before and after matching: means (proportions for categories) and "
        "standardized mean differences (SMD; treated minus control, over the treated patients' SD).",
        ["variable", "treated", "controls before", "SMD before", "controls after", "SMD after"],
        [Row([labels.get(t.term, t.term), f"{t.before.mean_treated:.2f}", f"{t.before.mean_control:.2f}",
              f"{t.before.smd:+.3f}", f"{t.after.mean_control:.2f}" if t.after else "",
              f"{t.after.smd:+.3f}" if t.after else ""]) for t in m.balance.terms], "baseline",
        "An absolute SMD under 0.1 is taken as balance.")
    love = (number.figure("Absolute standardized mean differences of the matching variables before (open) and after "
                          "(filled) matching; the dashed line is 0.1.", figures["love"][0], "love")
            if "love" in figures else None)
    words = _codes_as_words(r)
    rows, methods = [], []
    for outcome in r.matched:
        for i, result in enumerate(outcome.results):
            method = words(result.method)
            if method not in methods:
                methods.append(method)
            rows.append(Row([outcome.name if i == 0 else "", _analysis_label(result), result.measure,
                             *printed(result),
                             f"{result.details.get('n_treated', '')} / {result.details.get('n_control', '')}",
                             f"({methods.index(method) + 1})"], result=result.name, first=i == 0))
    matched = number.table(
        f"{r.protocol.acronym} patients compared with matched registry controls, then with every control weighted "
        "by the odds of treatment (IPW, ATT) as the sensitivity analysis.",
        ["outcome", "analysis", "measure", "estimate", "95% CI", "p", "n treated / controls", "method"], rows,
        "matched", "Methods: " + " ".join(f"({i}) {m}" for i, m in enumerate(methods, 1)))
    left = "; ".join(f"{n} {why}" for why, n in r.left_out.items() if n)
    intro = (f"{m.n_matched_treated} of {m.n_treated} treated patients matched to {m.n_matched_control} of "
             f"{m.n_control} registry controls ({plan.matched_controls.ratio}:1 nearest neighbour on the logit of "
             f"the propensity score, caliper {plan.matched_controls.caliper} SD, without replacement); "
             f"{m.n_unmatched_treated} treated patients had no control within the caliper."
             + (f" Left out before matching: {left}." if left else ""))
    notes = [*(f"{o.name}: {words(refusal)}" for o in r.matched for refusal in o.refused)]
    return {"balance": balance, "love": love, "matched": matched, "matched_intro": intro,
            "matched_notes": [*r.notes, *notes]}


def _codes_as_words(r: EscalationReport) -> Callable[[str], str]:
    """The outcome columns in the analyses' method texts as the protocol names them (mrs_90d: the 90-day mRS)."""
    plan = r.protocol.analysis_plan
    cut = plan.matched_controls.good_outcome_at_most if plan and plan.matched_controls else None
    names: dict[str, str] = {}
    for e in r.protocol.endpoints:
        if e.analysis is not None:
            column = e.analysis.outcome.column
            names[column] = e.name.lower() if e.name[1:2].islower() else e.name
            if cut is not None:
                names[f"{column}_0_{cut}"] = f"{e.name} 0 to {cut}"
    pattern = re.compile(r"(?<![\w])(" + "|".join(re.escape(c) for c in sorted(names, key=len, reverse=True))
                         + r")(?![\w])")
    return lambda text: pattern.sub(lambda m: names[m.group(1)], text)


def _analysis_label(result: Result) -> str:
    return WEIGHTING["ipw" if "(IPW" in result.name else "matching"]


def _methods(r: EscalationReport) -> list[str]:
    e, plan = r.escalation, r.protocol.analysis_plan
    out = [f"Dose escalation by the {e.design} design over {len(e.levels)} levels in cohorts of {e.cohort_size}; "
           "each decision was the rule's, computed by the platform from the DLTs recorded, and took effect when the "
           "safety review committee signed it.",
           "Safety proportions with exact (Clopper-Pearson) 95% intervals."]
    if plan is not None and plan.matched_controls is not None:
        mc = plan.matched_controls
        out.append(f"Controls: {mc.controls}. Propensity score by logistic regression on "
                   f"{', '.join(VARIABLES[c].label if c in VARIABLES else c for c in mc.covariates)}; "
                   f"{mc.ratio}:1 nearest-neighbour matching on its logit within {mc.caliper} SD, without "
                   "replacement (as MatchIt's method \"nearest\"). Outcomes in the matched sample with the matched "
                   "sets accounted for (pairs: paired analyses; otherwise cluster-robust errors by matched set); "
                   "the sensitivity analysis weights every control by the odds of treatment (ATT) with robust "
                   "errors." + (f" Assumed: {mc.assumption}" if mc.assumption else ""))
    return out
