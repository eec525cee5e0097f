"""The report as one self-contained HTML document: the figures embedded as PNG, nothing fetched, no script.

The page comes from the Jinja2 templates in `templates/` (autoescaped: a trial title, an arm or a note is text,
never markup). This module decides what the document says: the title page with the protocol's and the data's
SHA-256, the tables and figures numbered in the order they appear, and labels for the data's codes (an arm's
name, a variable's label, an endpoint's name) wherever the analyses print a code. The same HTML is the PDF's
source (pdf.py), with CSS paged media in the template.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from .. import __version__
from ..analysis.result import Result, format_p
from ..clinical import VARIABLES
from .results import Analysis, outcome_column, printed


@dataclass(frozen=True)
class Provenance:
    """What the report was made from, as its title page states it: the protocol's and the data's SHA-256, and
    what each hash was computed over."""

    protocol_sha256: str
    protocol_hashed: str  # what the protocol hash covers, in words
    data_sha256: str
    data_hashed: str  # what the data hash covers, in words
    created: dt.date = field(default_factory=dt.date.today)
    data_lock: str | None = None  # from the platform's export: 'Data locked on DATE by NAME (lock #id)' or interim


@dataclass(frozen=True)
class Row:
    cells: Sequence[str]
    level: bool = False  # a category's level under its heading row (Table 1)
    result: str | None = None  # the result's name as results.json has it (results tables)
    first: bool = True  # the first row of a group (subgroups)


@dataclass(frozen=True)
class Table:
    number: int
    caption: str
    columns: Sequence[str]
    rows: Sequence[Row]
    kind: str  # baseline, results, subgroups, safety: the template's class for widths and alignment
    footnote: str = ""


@dataclass(frozen=True)
class Figure:
    number: int
    caption: str
    src: str  # a data: URI
    kind: str  # consort, grotta, forest


@dataclass
class _Numbering:
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def table(self, caption: str, columns: Sequence[str], rows: Sequence[Row], kind: str,
              footnote: str = "") -> Table:
        t = Table(len(self.tables) + 1, caption, columns, rows, kind, footnote)
        self.tables.append(t)
        return t

    def figure(self, caption: str, path: Path, kind: str) -> Figure:
        mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
        src = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        f = Figure(len(self.figures) + 1, caption, src, kind)
        self.figures.append(f)
        return f


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("stroketrial.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def html_document(a: Analysis, figures: Mapping[str, Sequence[Path]], provenance: Provenance) -> str:
    """The report page; `figures` maps consort, grotta and forest to their files (the first is embedded: the PNG
    as `save` wrote them, or the SVG for the PDF); `provenance` holds the hashes the title page prints."""
    return _environment().get_template("report.html").render(**_context(a, figures, provenance))


def _context(a: Analysis, figures: Mapping[str, Sequence[Path]], provenance: Provenance) -> dict:
    p = a.protocol
    arm_names = {arm.id: arm.name for arm in p.arms}
    words = _Words(a)
    number = _Numbering()
    treatment, control = arm_names.get(a.treatment, a.treatment), arm_names.get(a.control, a.control)
    population = str(a.consort.get("population", a.population))
    plan = p.analysis_plan
    definition = plan.populations.get(a.population, "") if plan is not None else ""  # type: ignore[call-overload]
    shift = next((e for e in p.endpoints if e.analysis is not None and e.analysis.method == "ordinal_shift"), None)
    shift_name = shift.name if shift is not None else "the ordinal shift outcome"
    by_arm = a.consort.get("by_arm", {})

    flow = (number.figure(f"Flow of patients through {p.acronym} (CONSORT 2010): assessment for eligibility, "
                          f"randomization, allocation, follow-up of the primary outcome and analysis ({population}).",
                          figures["consort"][0], "consort") if "consort" in figures else None)
    baseline = number.table(
        "Baseline characteristics of all randomized patients by allocated arm.",
        [_arm_header(c, arm_names) for c in a.table1.columns],
        [Row([c.strip() for c in row], level=str(row[0]).startswith(" ")) for row in a.table1.astype(str).values],
        "baseline", "Median (interquartile range) for numbers and scores, n (%) for yes/no and categories; "
        "percentages of the patients with the value recorded; [n missing] where values are missing.")
    grotta = (number.figure(f"Modified Rankin Scale by arm: the share of patients at each score, from 0 (no "
                            f"symptoms) to 6 (dead); n is the patients with the score recorded. Outcome: "
                            f"{shift_name}.",
                            figures["grotta"][0], "grotta") if "grotta" in figures else None)
    sections = []
    columns = {s.title: outcome_column(e) for s, e in zip(a.sections, p.endpoints, strict=False)
               if e.analysis is not None}
    for s in a.sections:
        table = None
        if s.results:
            rows = [Row([words.result_name(r.name, columns.get(s.title)), r.measure, *printed(r), str(r.n),
                         words(r.method)], result=r.name) for r in s.results]
            compared = "" if s.method == "single_arm_proportion" else f": {treatment} compared with {control}"
            table = number.table(f"{s.title}{compared}.",
                                 ["analysis", "measure", "estimate", "95% CI", "p", "n", "method"], rows, "results")
        sections.append({"title": s.title, "table": table, "notes": [words(n) for n in s.notes]})
    forest = subgroups = None
    if "forest" in figures:
        forest = number.figure(f"Common odds ratio for a better score within each planned subgroup, with 95% "
                               f"confidence intervals and the overall estimate; above 1 favours {treatment}. The "
                               f"p-value beside each subgroup tests the interaction. Outcome: {shift_name}.",
                               figures["forest"][0], "forest")
    if a.subgroups:
        subgroups = number.table(f"Common odds ratio for a better score within each planned subgroup, {treatment} "
                                 f"compared with {control}, with the test of interaction; outcome: {shift_name}.",
                                 ["subgroup", "n", "common OR", "95% CI", "interaction p"],
                                 _subgroup_rows(a.subgroups), "subgroups")
    safety = None
    if not a.safety.empty:
        safety = number.table(f"Safety events by allocated arm: {treatment} compared with {control}.",
                              [arm_names.get(c, c) for c in a.safety.columns],
                              [Row([str(c) for c in row]) for row in a.safety.values], "safety",
                              "Patients with the event / patients with the outcome recorded (%); Fisher's exact "
                              "test.")
    return {
        "acronym": p.acronym, "title": p.title, "registry_id": p.registry_id, "sponsor": p.sponsor,
        "phase": p.phase, "source": p.source, "version": __version__, "provenance": provenance,
        "created": provenance.created.isoformat(), "population": population, "population_definition": definition,
        "n": a.n,
        "arms": [{"name": arm.name, "role": arm.role.replace("_", " "), "randomized": by_arm.get(arm.id, {}).get(
            "allocated")} for arm in p.arms],
        "treatment": treatment, "control": control,
        "flow": flow, "baseline": baseline, "grotta": grotta, "sections": sections, "forest": forest,
        "subgroups": subgroups, "safety": safety, "methods": [words(m) for m in a.methods],
        "received": [words(line) for line in a.received],
        "tables": number.tables, "figures": number.figures,
    }


def _arm_header(column: str, arm_names: Mapping[str, str]) -> str:
    """Table 1's "albumin (n=154)" as "Albumin Group (n=154)"."""
    match = re.fullmatch(r"(.*) (\(n=\d+\))", column)
    if match and match.group(1) in arm_names:
        return f"{arm_names[match.group(1)]} {match.group(2)}"
    return column


def _subgroup_rows(results: Sequence[Result]) -> list[Row]:
    rows, seen = [], set()
    for r in results:
        group = r.details.get("subgroup", r.name.split(":")[0])
        p = r.details.get("interaction_p")
        first = group not in seen
        seen.add(group)
        rows.append(Row([r.name, str(r.n), f"{r.estimate:.2f}", f"{r.ci_low:.2f} to {r.ci_high:.2f}",
                         format_p(p) if first and p is not None else ""], result=r.name, first=first))
    return rows


class _Words:
    """The data's codes as people read them: a variable's label (nihss: NIHSS), an outcome column's endpoint
    name; in an analysis' name also an arm's and a visit's name. Codes inside quotes (a column the data lack) are
    left as they are. Arm and visit ids are often words ("control", "baseline"): never replaced in running text."""

    def __init__(self, a: Analysis):
        p = a.protocol
        codes = {name: v.label for name, v in VARIABLES.items() if v.label != name}
        for e in p.endpoints:
            if e.analysis is not None:
                codes.setdefault(outcome_column(e), e.name)
        self.codes = codes
        self.arms = {arm.id: arm.name for arm in p.arms}
        self.visits = {v.id: v.name for v in p.visits}
        self.population = (a.population, str(a.consort.get("population", a.population)))
        alternatives = "|".join(re.escape(c) for c in sorted(codes, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<![\w'\"/.-])({alternatives})(?![\w'\"/-])") if codes else None

    def __call__(self, text: str) -> str:
        code, label = self.population
        text = text.replace(f"Population: {code} (", f"Population: {label} (")
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: self.codes[m.group(1)], text)

    def result_name(self, name: str, column: str | None) -> str:
        """An analysis' name in its endpoint's table: without the outcome's column, which the table's caption
        names ("mrs_90d_0_2: risk ratio" is "risk ratio"), and with the arm's name for an arm's id."""
        if column and name.startswith(column + ": "):
            name = name[len(column) + 2:]
        elif column and name.startswith(column + " at "):  # a mixed model's estimate at one visit
            visit = name[len(column) + 4:]
            return f"at {self.visits.get(visit, visit)}"
        for arm_id, arm_name in self.arms.items():  # a single arm's proportion: "proportion in msc"
            name = re.sub(rf"(?<=\bin ){re.escape(arm_id)}$", arm_name, name)
        return self(name)

