"""The protocol as a validated, immutable model.

Everything downstream (screening form, randomization, dose sheet, visit schedule,
analysis plan) reads the trial from here. Where the source document is silent
the protocol says so in an `assumption`, never as if the registry said it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from .rules import Rule
from .schemes import PermutedBlocks, Randomization, RandomizationScheme
from ..clinical.dictionary import VARIABLES
from ..clinical.assessments import ASSESSMENTS
from .interim_plan import InterimPlan
from .safety_monitoring import SafetyRule
from .analysis_plan import (METHODS_FOR_TYPE, AnalysisPlan, Condition, EndpointAnalysis, MatchedControls, Outcome,
                            TreatmentReceived)
from .base import FrozenModel, Identifier
from .envelopes import EmergencyRandomization
from .procedure import DuringProcedure, ScreeningSteps, problem as _screening_steps_problem
from .supply import Supply
from .. import i18n


class Translated(FrozenModel):
    """A part of the protocol with words people read on the site's pages (`TRANSLATED`), and their translations
    beside the seed's wording: `translations: {zh_Hans: {text: ...}}`, read with i18n.protocol_text. A translation
    is part of the protocol file: an amendment that changes it changes the part."""

    TRANSLATED: ClassVar[tuple[str, ...]] = ()
    translations: dict[str, dict[str, str]] | None = Field(
        None, description="language -> attribute -> the attribute's wording in that language (the English is the "
                          "attribute itself)")

    @model_validator(mode="after")
    def _translations_are_of_this_parts_words(self) -> Translated:
        for language, words in (self.translations or {}).items():
            if language not in i18n.LANGUAGES or language == i18n.ENGLISH:
                offered = [x for x in i18n.LANGUAGES if x != i18n.ENGLISH]
                raise ValueError(f"translations: {language!r} is not a language to translate into "
                                 f"({', '.join(offered)})")
            for attribute, text in words.items():
                if attribute not in self.TRANSLATED:
                    raise ValueError(f"translations.{language}: {attribute!r} is not a translated wording of this "
                                     f"part ({', '.join(self.TRANSLATED) or 'none'})")
                if getattr(self, attribute, None) is None:
                    raise ValueError(f"translations.{language}.{attribute}: the part has no {attribute} to translate")
                if not text.strip():
                    raise ValueError(f"translations.{language}.{attribute} is empty")
        return self

    def untranslated(self, language: str) -> list[str]:
        """The wordings of this part that have no translation into `language`."""
        carried = (self.translations or {}).get(language) or {}
        return [a for a in self.TRANSLATED if getattr(self, a, None) is not None and a not in carried]


class Assumption(FrozenModel):
    """A choice made where the source document is silent."""

    topic: str
    choice: str
    reason: str


class Design(Translated):
    allocation: Literal["randomized", "non_randomized"]
    model: Literal["parallel", "dose_escalation_then_expansion"]
    masking: Literal["open_label", "open_label_blinded_endpoint", "single_blind", "double_blind"]
    centres: Literal["single", "multi"]
    summary: str

    TRANSLATED: ClassVar[tuple[str, ...]] = ("summary",)


class Criterion(Translated):
    """One inclusion or exclusion criterion, with the source document's wording.

    A computable criterion has a `rule` over the data dictionary; a judgement
    ("in the opinion of the investigator") has an `attestation`, the question the
    screener answers. For an exclusion criterion the rule describes the excluding
    condition: when it holds, the patient is excluded.
    """

    id: Identifier
    text: str = Field(description="the source document's wording, verbatim")
    rule: Rule | None = None
    attestation: str | None = Field(None, description="question the screener answers yes (applies) or no")
    assumption: str | None = None

    TRANSLATED: ClassVar[tuple[str, ...]] = ("text", "attestation")

    @model_validator(mode="after")
    def _rule_or_attestation(self) -> Criterion:
        if (self.rule is None) == (self.attestation is None):
            raise ValueError("a criterion has exactly one of `rule` (computable) or `attestation` (judgement)")
        return self

    def fields(self) -> set[str]:
        return self.rule.fields() if self.rule is not None else set()


class DoseStep(Translated):
    """One administration of an intervention: amount, route, preparation, infusion and timing.

    A dose drawn up from a solution states its strength: `concentration_pct` (w/v, e.g. 20 for 20%
    albumin) or `concentration_mg_per_ml` (after `reconstitution`). It may then be made up to
    `final_volume_ml` with a `diluent`; that is the volume infused over `infusion_minutes`.
    """

    route: Literal["intra_arterial", "intravenous", "procedure"]
    text: str | None = Field(None, description="the source document's words for this dose, verbatim")
    amount: float | None = Field(None, gt=0)
    amount_choices: list[float] = Field(default_factory=list, description="registered dose groups; one is given")
    unit: str | None = Field(None, description="g, mg or cells; per kg when per_kg")
    per_kg: bool = False
    concentration_pct: float | None = Field(None, gt=0, le=100, description="w/v %, e.g. 20 for 20% albumin")
    concentration_mg_per_ml: float | None = Field(None, gt=0, le=1000, description="mg per mL of the solution "
                                                  "the dose is drawn up from, after reconstitution")
    reconstitution: str | None = Field(None, description="how the drug is brought to concentration_mg_per_ml")
    diluent: str | None = Field(None, description="what the drawn-up dose is made up with, e.g. 0.9% sodium chloride")
    final_volume_ml: float | None = Field(None, gt=0, description="the volume the dose is made up to with the "
                                          "diluent: the volume given")
    infusion_minutes: float | None = Field(None, gt=0)
    max_amount: float | None = Field(None, gt=0, description="cap per administration, in `unit`")
    repeat_days: int = Field(1, ge=1, description="given once a day for this many days")
    timing: str
    assumption: str | None = None

    TRANSLATED: ClassVar[tuple[str, ...]] = ("text", "timing", "reconstitution", "diluent")
    PREPARATION: ClassVar[tuple[str, ...]] = ("concentration_pct", "concentration_mg_per_ml", "reconstitution",
                                              "diluent", "final_volume_ml")
    # What a matching placebo takes from the step it matches, and so may not state itself.
    MATCHED: ClassVar[tuple[str, ...]] = ("amount", "amount_choices", "unit", "per_kg", *PREPARATION,
                                          "infusion_minutes", "max_amount")

    @model_validator(mode="after")
    def _preparation(self) -> DoseStep:
        problem = self._preparation_problem()
        if problem:
            raise ValueError(problem)
        return self

    def _preparation_problem(self) -> str | None:
        if self.route == "procedure":
            stated = [f for f in self.PREPARATION if getattr(self, f) is not None]
            return f"a procedure step is not prepared; remove {', '.join(stated)}" if stated else None
        if self.concentration_pct is not None and self.concentration_mg_per_ml is not None:
            return "give concentration_pct (w/v %) or concentration_mg_per_ml, not both"
        strength = "concentration_pct" if self.concentration_pct is not None else "concentration_mg_per_ml"
        if self._has_strength() and self.unit not in ("g", "mg"):
            return f"{strength} needs a dose in g or mg; unit is {self.unit!r}"
        if self.reconstitution is not None and self.concentration_mg_per_ml is None:
            return "reconstitution says how the drug reaches concentration_mg_per_ml, which is not given"
        if (self.final_volume_ml is None) != (self.diluent is None):
            return ("final_volume_ml needs a diluent (what the dose is made up with)" if self.diluent is None
                    else "diluent needs final_volume_ml (the volume the dose is made up to)")
        return self._final_volume_problem()

    def _has_strength(self) -> bool:
        return self.concentration_pct is not None or self.concentration_mg_per_ml is not None

    def _final_volume_problem(self) -> str | None:
        """final_volume_ml needs a strength (the volume drawn up is made up to it) and must hold the largest
        dose the step can give (its cap, its largest dose group, or its fixed amount)."""
        if self.final_volume_ml is None:
            return None
        if not self._has_strength():
            return ("final_volume_ml needs concentration_mg_per_ml or concentration_pct: the volume drawn up "
                    "is made up to it")
        largest = self.max_amount if self.max_amount is not None else (
            max(self.amount_choices) if self.amount_choices else None if self.per_kg else self.amount)
        if largest is None:
            return None
        grams = largest if self.unit == "g" else largest / 1000
        drawn = (grams * 1000 / self.concentration_mg_per_ml if self.concentration_mg_per_ml is not None
                 else grams * 100 / (self.concentration_pct or 1))
        if drawn > self.final_volume_ml:
            return (f"final_volume_ml {self.final_volume_ml:g} cannot hold the largest dose, {largest:g} {self.unit} "
                    f"= {drawn:.4g} mL at {self._strength()}")
        return None

    def _strength(self) -> str:
        if self.concentration_mg_per_ml is not None:
            return f"{self.concentration_mg_per_ml:g} mg/mL"
        return f"{self.concentration_pct:g}% w/v"


class Intervention(Translated):
    """A drug, biological, procedure or placebo, and its steps.

    A matching placebo names the intervention it `matches`; each of its steps is given by the same
    route at the same timing as one step of that intervention, and is prepared to that step's volume
    for the patient's weight, with the placebo in place of the drug."""

    id: Identifier
    name: str
    kind: Literal["drug", "biological", "procedure", "placebo", "none"]
    description: str
    matches: Identifier | None = Field(None, description="a placebo's active intervention, whose volumes it takes")
    steps: list[DoseStep] = Field(default_factory=list)

    TRANSLATED: ClassVar[tuple[str, ...]] = ("name", "description")

    @model_validator(mode="after")
    def _placebo(self) -> Intervention:
        if self.matches is not None and self.kind != "placebo":
            raise ValueError(f"matches: only a placebo matches another intervention; kind is {self.kind}")
        if self.matches == self.id:
            raise ValueError(f"matches: a placebo cannot match itself ({self.id})")
        for i, step in enumerate(self.steps):
            if step.route == "procedure" or self.kind != "placebo":
                continue
            if self.matches is not None:
                stated = [f for f in DoseStep.MATCHED if getattr(step, f) not in (None, False, [])]
                if stated:
                    raise ValueError(f"steps[{i}] ({step.route}) states {', '.join(stated)}: a matching placebo "
                                     f"is prepared as the {self.matches} step it matches; state route and timing only")
            elif step.amount is None and not step.amount_choices:
                raise ValueError(f"steps[{i}] ({step.route}) states no amount: name the intervention this placebo "
                                 "matches (matches:) so that its volumes can be prepared")
        return self

    def matching_problem(self, interventions: list[Intervention]) -> str | None:
        """What is wrong with a placebo's `matches` among the protocol's interventions, or None.

        Each of its steps matches one step of that intervention by route and timing, given on as many
        days; and every step of that intervention has its placebo, or the blind would show."""
        if self.matches is None:
            return None
        active = next((i for i in interventions if i.id == self.matches), None)
        if active is None:
            return (f"matches: {self.matches!r} is not an intervention of the protocol "
                    f"({', '.join(i.id for i in interventions)})")
        if active.kind not in ("drug", "biological"):
            return f"matches: {active.id} is a {active.kind}; a placebo matches a drug or a biological"
        given = [s for s in active.steps if s.route != "procedure"]
        mine = [s for s in self.steps if s.route != "procedure"]
        for i, step in enumerate(self.steps):
            if step.route == "procedure":
                continue
            same = [s for s in given if (s.route, s.timing) == (step.route, step.timing)]
            if len(same) != 1:
                return (f"steps[{i}] ({step.route}, timing {step.timing!r}) matches {len(same)} steps of "
                        f"{active.id}; it must match one, by route and the same timing text")
            if same[0].repeat_days != step.repeat_days:
                return (f"steps[{i}] ({step.route}) repeat_days {step.repeat_days} differs from {active.id}'s "
                        f"{same[0].repeat_days}")
        unmatched = [s for s in given if not any((p.route, p.timing) == (s.route, s.timing) for p in mine)]
        if unmatched:
            return (f"{active.id} is also given {', '.join(f'{s.route} ({s.timing})' for s in unmatched)}, with no "
                    "placebo step: each administration of the active arm needs its placebo")
        return None


class Arm(Translated):
    id: Identifier
    name: str
    role: Literal["experimental", "control", "placebo_control", "active_comparator"]
    description: str
    ratio: int = Field(1, ge=1, description="allocation weight, e.g. 2 for the 2 in 2:1")
    interventions: list[Identifier] = Field(default_factory=list)

    TRANSLATED: ClassVar[tuple[str, ...]] = ("name", "description")


class Endpoint(Translated):
    id: Identifier
    name: str
    role: Literal["primary", "secondary", "safety", "exploratory"]
    type: Literal["ordinal", "binary", "continuous", "count", "time_to_event"]
    measure: str = Field(description="what is measured, e.g. mrs, sich, death, infarct_volume_ml")
    timepoint_days: float | None = Field(None, ge=0)
    window_days: float | None = Field(None, ge=0)
    definition: str
    assumption: str | None = None
    analysis: EndpointAnalysis | None = Field(None, description="how the statistical analysis plan analyses it")

    TRANSLATED: ClassVar[tuple[str, ...]] = ("name",)


def _analysis_problem(e: Endpoint, visits: dict[str, Visit], arms: set[str],
                      filled_from: dict[str, tuple[str | None, str]]) -> str | None:
    """What is wrong with an endpoint's declared analysis, or None."""
    a = e.analysis
    assert a is not None
    if a.method not in METHODS_FOR_TYPE[e.type]:
        return (f"analysis.method {a.method} does not suit an endpoint of type {e.type}; allowed: "
                f"{', '.join(METHODS_FOR_TYPE[e.type]) or 'none yet'}")
    o = a.outcome
    problem = _outcome_problem(o, visits)
    if problem:
        return problem
    if o.derived and e.type != "binary":
        return "analysis.outcome.at_most / at_least derive a yes/no outcome: the endpoint's type must be binary"
    source = (o.visit, o.assessment)
    if filled_from.setdefault(o.column, source) != source:
        return f"analysis.outcome.column {o.column!r} is filled from another visit or assessment by another endpoint"
    if a.method == "single_arm_proportion" and a.arm not in arms:
        return f"analysis.arm {a.arm!r} is not an arm ({', '.join(sorted(arms))})"
    unknown = [v for v in a.adjust or [] if v not in VARIABLES]
    if unknown:
        return f"analysis.adjust names {unknown}, which are not variables of the data dictionary"
    return None


def _outcome_problem(o: Outcome, visits: dict[str, Visit]) -> str | None:
    """Whether the outcome's visit and assessments are on the schedule and its conditions fit the assessments."""
    if o.visit is None:
        if o.summed_over_visits and not any(o.assessment in v.assessments for v in visits.values()):
            return f"analysis.outcome.assessment {o.assessment!r} is on no visit form, so there is nothing to sum"
        return None
    if o.visit not in visits:
        return f"analysis.outcome.visit {o.visit!r} is not a visit of the schedule ({', '.join(visits)})"
    for key in o.components():
        if key not in visits[o.visit].assessments:
            return (f"analysis.outcome.assessment {key!r} is not on the {o.visit} form "
                    f"({', '.join(visits[o.visit].assessments)})")
    wrong = _unknown_choices(o.all_of or [])
    return f"analysis.outcome.all_of: {wrong}" if wrong else None


def _unknown_choices(conditions: list[Condition]) -> str | None:
    """A condition's categories that its assessment does not have, or a number compared with a category."""
    for c in conditions:
        if c.any_of is not None:
            inner = _unknown_choices(c.any_of)
            if inner:
                return inner
            continue
        a = ASSESSMENTS.get(c.assessment or "")
        if a is None:
            return f"{c.assessment!r} has no definition in the follow-up dictionary"
        if c.one_of is not None:
            unknown = [v for v in c.one_of if v not in a.choices]
            if unknown:
                return f"{c.assessment} one_of {unknown}: allowed {', '.join(a.choices) or 'none (not a category)'}"
        if c.is_ is not None and a.kind != "flag":
            return f"{c.assessment} ({a.kind}) is not yes/no: compare it with at_least or one_of"
        if c.at_least is not None and a.kind not in ("integer", "number"):
            return f"{c.assessment} ({a.kind}) is not a number: at_least does not apply"
    return None


def _treatment_received_problem(t: TreatmentReceived, visits: dict[str, Visit], arms: set[str]) -> str | None:
    if t.visit not in visits:
        return f"visit {t.visit!r} is not a visit of the schedule ({', '.join(visits)})"
    if t.assessment not in visits[t.visit].assessments:
        return f"assessment {t.assessment!r} is not on the {t.visit} form ({', '.join(visits[t.visit].assessments)})"
    off_form = [key for key in t.also if key not in visits[t.visit].assessments]
    if off_form:
        return f"also names {off_form}, which are not on the {t.visit} form ({', '.join(visits[t.visit].assessments)})"
    named = [*(t.arms or []), *(t.arm_by_value or {}).values(), t.otherwise_arm]
    unknown = sorted({a for a in named if a is not None and a not in arms})
    if unknown:
        return f"names {unknown}, which are not arms ({', '.join(sorted(arms))})"
    a = ASSESSMENTS.get(t.assessment)
    if a is not None and t.arm_by_value is not None:
        missing = [c for c in a.choices if c not in t.arm_by_value]
        extra = [v for v in t.arm_by_value if v not in a.choices]
        if extra or missing or a.kind != "category":
            return (f"arm_by_value must give each value of {t.assessment} ({', '.join(a.choices) or 'not a category'})"
                    f"{'; unknown: ' + ', '.join(extra) if extra else ''}"
                    f"{'; missing: ' + ', '.join(missing) if missing else ''}")
    if a is not None and t.at_least is not None and a.kind not in ("integer", "number", "flag"):
        return f"{t.assessment} ({a.kind}) is neither a number nor yes/no: at_least does not apply"
    visit_arms = visits[t.visit].arms
    if t.arms is not None and visit_arms is not None and set(t.arms) != set(visit_arms):
        return f"arms {t.arms} differ from the arms of the {t.visit} visit ({', '.join(visit_arms)})"
    return None


class Visit(Translated):
    id: Identifier
    name: str
    day: float = Field(ge=0, description="days after randomization (0 = the day of treatment)")
    window_before_days: float = Field(0, ge=0)
    window_after_days: float = Field(0, ge=0)
    assessments: list[str] = Field(default_factory=list)
    assessor_only: list[Identifier] = Field(
        default_factory=list, description="assessments of this visit that only the blinded outcome assessor records "
                                          "(a PROBE design's blinded endpoint); site staff record the others")
    assessor_only_text: str | None = Field(None, description="the source document's wording behind assessor_only, "
                                                             "verbatim")
    arms: list[Identifier] | None = Field(None, description="the arms whose patients have this visit (an infusion "
                                          "record in the treated arm only); none: every patient. Open-label trials "
                                          "only: a form for one arm would show a blinded user the arm")
    assumption: str | None = None

    TRANSLATED: ClassVar[tuple[str, ...]] = ("name",)

    @field_validator("assessor_only")
    @classmethod
    def _reserved_assessments_are_on_the_form(cls, reserved: list[str], info: ValidationInfo) -> list[str]:
        assessments = info.data.get("assessments", [])
        for key in reserved:
            if key not in assessments:
                raise ValueError(f"{key!r} is not an assessment of this visit ({', '.join(assessments) or 'none'})")
            if reserved.count(key) > 1:
                raise ValueError(f"{key!r} is named twice")
        return reserved

    @model_validator(mode="after")
    def _wording_needs_reserved_assessments(self) -> Visit:
        if self.assessor_only_text is not None and not self.assessor_only:
            raise ValueError("assessor_only_text quotes the source for assessor_only, which names no assessment")
        if self.assessor_only and self.arms is not None:
            # The outcome assessor is shown the visits it records: one that only some arms have would tell it the arm.
            raise ValueError(f"assessor_only {self.assessor_only} on a visit of some arms only (arms: {self.arms}) "
                             "would tell the blinded outcome assessor the arm: reserve assessments on a visit of "
                             "every patient")
        return self


class FieldIs(FrozenModel):
    """One assessment of a visit form holding one value: the `if` and the `then` of a cross-field edit check."""

    assessment: Identifier
    is_: bool | int | float | str = Field(alias="is")


class EditCheck(Translated):
    """A check on the visit forms, run after each entry or correction: one that fails opens a data query saying
    `text` (with the values found), and one that passes again closes it. `range`: an assessment outside a plausible
    range narrower than the dictionary's hard limits; `cross_field`: `if` one value then another on the same form;
    `visit_timing`: the visit dated outside its window; `before_randomization`: dated before randomization.
    `form` is the visit checked; none: every visit whose form holds what the check reads."""

    id: Identifier
    kind: Literal["range", "cross_field", "visit_timing", "before_randomization"]
    text: str = Field(description="what the query says: the source document's wording, or the check in words")
    assumption: str | None = None
    form: Identifier | None = None
    assessment: Identifier | None = Field(None, description="range: the assessment checked")
    low: float | None = None
    high: float | None = None
    if_: FieldIs | None = Field(None, alias="if")
    then: FieldIs | None = None

    TRANSLATED: ClassVar[tuple[str, ...]] = ("text",)

    @property
    def reads(self) -> list[str]:
        """The assessments the check reads (none: it reads the visit date)."""
        if self.kind == "range" and self.assessment is not None:
            return [self.assessment]
        return [c.assessment for c in (self.if_, self.then) if c is not None]

    def problem(self, visits: list[Visit]) -> str | None:
        """Why the check cannot run on these visits (fields of another kind, an unknown form, assessment or value)."""
        given = {k for k in ("assessment", "low", "high", "if_", "then") if getattr(self, k) is not None}
        wanted = {"range": {"assessment", "low", "high"}, "cross_field": {"if_", "then"}}.get(self.kind, set())
        if given != wanted:
            return (f"a {self.kind} check takes {', '.join(sorted(w.rstrip('_') for w in wanted)) or 'no values'}"
                    f" (given: {', '.join(sorted(g.rstrip('_') for g in given)) or 'none'})")
        forms = [v for v in visits if self.form in (None, v.id)]
        if not forms:
            return f"form {self.form!r} is not a visit ({', '.join(v.id for v in visits)})"
        if not any(all(a in v.assessments for a in self.reads) for v in forms):
            return f"no visit form{'' if self.form is None else ' ' + self.form} holds {', '.join(self.reads)}"
        if unknown := [a for a in self.reads if a not in ASSESSMENTS]:
            return f"{', '.join(unknown)} not in the follow-up dictionary"
        if self.kind == "range":
            a = ASSESSMENTS[str(self.assessment)]
            if a.low is None or a.high is None or self.low is None or self.high is None:
                return f"{self.assessment} is not a number with a range ({a.kind})"
            if not a.low <= self.low <= self.high <= a.high or (self.low, self.high) == (a.low, a.high):
                return (f"the plausible range {self.low:g}-{self.high:g} must lie within {a.label}'s limits "
                        f"{a.low:g}-{a.high:g} and be narrower")
        for c in (self.if_, self.then):
            if c is not None:
                try:
                    ASSESSMENTS[c.assessment].parse(c.is_)
                except ValueError as exc:
                    return f"{c.assessment} is {c.is_!r}: {exc}"
        return None


def _edit_checks_problem(checks: list[EditCheck], visits: list[Visit]) -> str | None:
    ids = [c.id for c in checks]
    if len(set(ids)) != len(ids):
        return f"edit_checks repeat an id ({', '.join(ids)})"
    return next((f"edit_checks.{c.id}: {p}" for c in checks if (p := c.problem(visits)) is not None), None)


class ImpliedEffect(FrozenModel):
    """What the stated sample size implies under choices the source does not make, each labelled as such."""

    assumption: str = Field(description="the choices made, ending with who did not state them")
    alpha: float = Field(0.05, gt=0, lt=1, description="two-sided")
    dropout: float = Field(0.0, ge=0, lt=1)
    patients: int | None = Field(None, gt=0, description="the patients the effect is for (default: the total)")
    control_rate: float | None = Field(None, gt=0, lt=1, description="a binary primary endpoint: the control "
                                                                      "arm's proportion")
    control_mrs: list[float] | None = Field(None, description="an mRS shift: the control arm's mRS 0-6 "
                                                              "distribution (default: HERMES-like)")


class SampleSize(FrozenModel):
    total: int = Field(gt=0)
    per_arm: dict[Identifier, int] = Field(default_factory=dict)
    method: str
    assumptions: dict[str, Any] = Field(default_factory=dict)
    inflation: str | None = None
    missing_assumptions: list[str] = Field(default_factory=list,
                                           description="what the source does not state, so the number cannot be "
                                                       "re-derived")
    implied: ImpliedEffect | None = None


class DoseLevel(FrozenModel):
    level: int = Field(ge=1)
    dose: float = Field(gt=0)


class BoinSettings(FrozenModel):
    """BOIN fixed in advance (Liu S, Yuan Y. J R Stat Soc C 2015), with the options of the BOIN software."""

    target: float = Field(gt=0, lt=1, description="target DLT rate")
    p_saf: float | None = Field(None, gt=0, lt=1, description="highest DLT rate deemed too low (default 0.6 x target)")
    p_tox: float | None = Field(None, gt=0, lt=1, description="lowest DLT rate deemed too high (default 1.4 x target)")
    lambda_e: float | None = Field(None, gt=0, lt=1, description="escalation boundary given instead of p_saf")
    lambda_d: float | None = Field(None, gt=0, lt=1, description="de-escalation boundary given instead of p_tox")
    n_earlystop: int = Field(100, ge=1, description="stop once this many patients are at a dose the rule keeps")
    cutoff_eli: float = Field(0.95, ge=0.5, lt=1, description="posterior probability that eliminates a dose")
    extrasafe: bool = False
    offset: float = Field(0.05, ge=0, lt=0.5, description="the extra-safe rule stops at cutoff_eli - offset")

    @model_validator(mode="after")
    def _ordered(self) -> BoinSettings:
        for given, derived in (("lambda_e", "p_saf"), ("lambda_d", "p_tox")):
            if getattr(self, given) is not None and getattr(self, derived) is not None:
                raise ValueError(f"give {derived} or {given}, not both")
        low = [(name, v) for name, v in (("p_saf", self.p_saf), ("lambda_e", self.lambda_e)) if v is not None]
        high = [(name, v) for name, v in (("p_tox", self.p_tox), ("lambda_d", self.lambda_d)) if v is not None]
        for name, value in low:
            if value >= self.target:
                raise ValueError(f"{name} {value:g} must be below the target {self.target:g}")
        for name, value in high:
            if value <= self.target:
                raise ValueError(f"{name} {value:g} must be above the target {self.target:g}")
        return self


class CrmSettings(FrozenModel):
    """The CRM fixed in advance (O'Quigley 1990, power model; dfcrm's conventions)."""

    target: float = Field(gt=0, lt=1, description="target DLT rate")
    skeleton: list[Annotated[float, Field(gt=0, lt=1)]] | None = Field(
        None, description="prior DLT rate per level; default: calibrated (Lee & Cheung 2009)")
    halfwidth: float = Field(0.05, gt=0, lt=0.5, description="indifference half-width of the calibrated skeleton")
    prior_mtd: int | None = Field(None, ge=1, description="level the calibrated skeleton puts at the target")
    prior_variance: float = Field(1.34, gt=0)
    safety_stop: float | None = Field(0.90, ge=0.5, lt=1,
                                      description="stop when Pr(level 1 DLT rate > target) exceeds this; null: never")

    @model_validator(mode="after")
    def _increasing(self) -> CrmSettings:
        if self.skeleton is not None and any(b <= a for a, b in zip(self.skeleton, self.skeleton[1:], strict=False)):
            raise ValueError(f"skeleton {self.skeleton} must increase strictly from level to level")
        return self


class DoseLimitingToxicity(Translated):
    """One event the protocol counts as a dose-limiting toxicity, in the protocol's words, with the hours after
    the start of the infusion in which it counts."""

    id: Identifier
    text: str
    window_hours: int = Field(ge=1, le=24 * 90)
    assumption: str | None = None

    TRANSLATED: ClassVar[tuple[str, ...]] = ("text",)


class DoseEscalation(FrozenModel):
    design: Literal["3+3", "boin", "crm"]
    unit: str
    levels: list[DoseLevel] = Field(min_length=1)
    cohort_size: int = Field(3, ge=1)
    n_cohorts: int | None = Field(None, ge=1, description="BOIN and CRM: the planned number of cohorts")
    expansion_min: int = Field(0, ge=0)
    expansion_max: int = Field(0, ge=0)
    boin: BoinSettings | None = None
    crm: CrmSettings | None = None
    dlt_definition: list[DoseLimitingToxicity] = Field(min_length=1)
    review_role: Literal["safety_review_committee"] = Field(
        "safety_review_committee", description="who confirms each escalation decision, with a signature and a reason")
    assumption: str | None = None

    @property
    def dlt_window_hours(self) -> int:
        """A patient's DLT observation ends when the longest window of the DLT definition has passed."""
        return max(d.window_hours for d in self.dlt_definition)

    @property
    def expansion_size(self) -> int:
        """The expansion cohort enrols up to the protocol's maximum."""
        return self.expansion_max

    @model_validator(mode="after")
    def _settings_match_the_design(self) -> DoseEscalation:
        numbers = [lv.level for lv in self.levels]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"levels must be numbered 1, 2, 3, ... in order (got {numbers})")
        if self.expansion_min > self.expansion_max:
            raise ValueError(f"expansion_min {self.expansion_min} is more than expansion_max {self.expansion_max}")
        dlt_ids = [d.id for d in self.dlt_definition]
        if len(set(dlt_ids)) != len(dlt_ids):
            raise ValueError(f"dlt_definition repeats an id ({', '.join(dlt_ids)})")
        for design in ("boin", "crm"):
            settings = getattr(self, design)
            if self.design == design and settings is None:
                raise ValueError(f"design {design} needs its settings under dose_escalation.{design}")
            if self.design != design and settings is not None:
                raise ValueError(f"dose_escalation.{design} is given but the design is {self.design}")
        if self.design != "3+3" and self.n_cohorts is None:
            raise ValueError(f"design {self.design} needs n_cohorts, the planned number of cohorts")
        if self.crm is not None:
            if self.crm.skeleton is not None and len(self.crm.skeleton) != len(self.levels):
                raise ValueError(f"the CRM skeleton has {len(self.crm.skeleton)} values for {len(self.levels)} levels")
            if self.crm.prior_mtd is not None and self.crm.prior_mtd > len(self.levels):
                raise ValueError(f"crm.prior_mtd {self.crm.prior_mtd} is not one of the {len(self.levels)} levels")
        return self


class ConsentPolicy(Translated):
    """How the trial takes informed consent: the routes it allows, the consent form versions the ethics committee
    approved (the last is the current one), and for deferred consent the hours within which the patient or a
    representative must confirm it. `criterion` is the attestation criterion a consent record meets."""

    text: str = Field(description="the source document's (or the ethics approval's) wording on consent")
    criterion: Identifier = Field(description="the inclusion criterion (an attestation) a consent record meets")
    routes: list[Literal["patient", "representative", "deferred"]] = Field(min_length=1)
    form_versions: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        min_length=1, description="the approved consent form versions, oldest first; the last is current")
    deferred_confirmation_hours: int | None = Field(
        None, ge=1, le=24 * 30, description="deferred consent: hours from enrolment to the confirmation deadline")
    deferred_text: str | None = Field(None, description="the source's wording on deferred consent and its deadline")
    data_use_withdrawal: bool = Field(
        False, description="whether a patient may withdraw the use of their data (where the law allows)")
    assumption: str | None = None

    TRANSLATED: ClassVar[tuple[str, ...]] = ("text", "deferred_text")

    @model_validator(mode="after")
    def _deferred_has_a_deadline(self) -> ConsentPolicy:
        if len(set(self.routes)) != len(self.routes) or len(set(self.form_versions)) != len(self.form_versions):
            raise ValueError("consent.routes and consent.form_versions list each entry once")
        if ("deferred" in self.routes) != (self.deferred_confirmation_hours is not None):
            raise ValueError("deferred consent needs deferred_confirmation_hours (the confirmation deadline), and "
                             "only deferred consent has one")
        return self

    @property
    def current_form(self) -> str:
        return self.form_versions[-1]


class ExpectedEvent(FrozenModel):
    """An event the reference safety information (investigator's brochure, SmPC or protocol) lists as expected for
    the treatment: a serious, related SAE that matches it is expected, not a SUSAR. Its `text` quotes the source;
    `assumption` marks an entry the source does not make."""

    term: str = Field(min_length=1, description="the event, as an SAE's term or coded term would name it")
    synonyms: list[str] = Field(default_factory=list, description="other words for it an SAE form may carry")
    text: str | None = Field(None, description="the source document's wording")
    assumption: str | None = None

    @model_validator(mode="after")
    def _sourced(self) -> ExpectedEvent:
        if (self.text is None) == (self.assumption is None):
            raise ValueError(f"expected event {self.term!r}: give the source's text or an assumption (one of them)")
        return self


class Protocol(Translated):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    acronym: str
    title: str
    registry_id: Annotated[str, StringConstraints(pattern=r"^NCT\d{8}$")]
    source: str = Field(description="the document the protocol was encoded from")
    sponsor: str
    phase: Literal["1", "2", "3", "1/2", "2/3", "pilot"]
    design: Design
    population: str
    etici_2b_accepted: bool = Field(
        False, description="whether a bare (m)TICI 2b is a valid reperfusion grade for this trial")
    inclusion: list[Criterion] = Field(min_length=1)
    exclusion: list[Criterion] = Field(default_factory=list)
    arms: list[Arm] = Field(min_length=1)
    randomization: Randomization | None = None
    interventions: list[Intervention] = Field(default_factory=list)
    endpoints: list[Endpoint] = Field(min_length=1)
    visits: list[Visit] = Field(min_length=1)
    sample_size: SampleSize
    dose_escalation: DoseEscalation | None = None
    consent: ConsentPolicy | None = None
    analysis_plan: AnalysisPlan | None = None
    interim: InterimPlan | None = Field(None, description="the group-sequential interim analyses the DSMB "
                                                         "reviews (protocol/interim_plan.py)")
    edit_checks: list[EditCheck] = Field(default_factory=list)
    safety_monitoring: list[SafetyRule] = Field(default_factory=list, description="rates the DSMB watches with a "
                                                "bound that raises an alert (protocol/safety_monitoring.py)")
    reference_safety_information: list[ExpectedEvent] = Field(
        default_factory=list, description="the events expected for the treatment (expectedness of SAEs)")
    supply: Supply | None = Field(None, description="investigational product supply: site stock levels, expiry, "
                                                    "what happens when no kit is in stock")
    emergency_randomization: EmergencyRandomization | None = Field(
        None, description="sealed envelopes kept at each site for randomization while the platform cannot be reached")
    screening: ScreeningSteps | None = Field(
        None, description="screening in two steps: what is only known during the procedure (during_procedure)")
    assumptions: list[Assumption] = Field(default_factory=list)

    TRANSLATED: ClassVar[tuple[str, ...]] = ("title",)

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        ids = [c.id for c in self.criteria]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"criterion ids must be unique; repeated: {duplicated}")
        known = {i.id for i in self.interventions}
        for arm in self.arms:
            missing = [i for i in arm.interventions if i not in known]
            if missing:
                raise ValueError(f"arm {arm.id!r} names unknown interventions {missing}")
        arm_ids = {a.id for a in self.arms}
        if set(self.sample_size.per_arm) - arm_ids:
            unknown = sorted(set(self.sample_size.per_arm) - arm_ids)
            raise ValueError(f"sample_size.per_arm names unknown arms {unknown}")
        if (self.design.allocation == "randomized") != (self.randomization is not None):
            raise ValueError("a randomized design needs a `randomization` section, and only a randomized one")
        if self.randomization is not None:
            self._check_randomization(self.randomization)
        if self.emergency_randomization is not None and (problem := self.emergency_randomization.problem(
                self.randomization, sum(a.ratio for a in self.arms))) is not None:
            raise ValueError(problem)
        if not any(e.role == "primary" for e in self.endpoints):
            raise ValueError("at least one endpoint has role: primary")
        blinded = [v.id for v in self.visits if v.assessor_only]
        if blinded and self.design.masking == "open_label":
            raise ValueError(f"visits {blinded} reserve assessments for the blinded outcome assessor (assessor_only) "
                             "but design.masking is open_label: use open_label_blinded_endpoint (PROBE)")
        for intervention in self.interventions:
            problem = intervention.matching_problem(self.interventions)
            if problem:
                raise ValueError(f"interventions.{intervention.id}: {problem}")
        self._check_visit_arms(arm_ids)
        if (problem := _edit_checks_problem(self.edit_checks, self.visits)) is not None:
            raise ValueError(problem)
        self._check_analysis_plan()
        if self.screening is not None and (problem := _screening_steps_problem(
                self.screening, self.screened_fields, self.attestation_ids)) is not None:
            raise ValueError(problem)
        if self.dose_escalation is not None and (len(self.arms) != 1 or self.randomization is not None
                                                 or self.design.masking != "open_label"):
            # The escalation table shows every patient's dose level: it cannot be kept from anyone blinded, and
            # the platform enrols into cohorts, not arms.
            raise ValueError("dose_escalation is for a single-arm, open-label, non-randomized trial (the escalation "
                             "table shows every patient's dose level)")
        return self

    def _check_visit_arms(self, arm_ids: set[str]) -> None:
        for v in self.visits:
            if v.arms is None:
                continue
            unknown = sorted(set(v.arms) - arm_ids)
            if unknown:
                raise ValueError(f"visit {v.id!r}: arms {unknown} are not arms ({', '.join(sorted(arm_ids))})")
            if self.design.masking in ("single_blind", "double_blind"):
                raise ValueError(f"visit {v.id!r} is for arms {v.arms} only, but design.masking is "
                                 f"{self.design.masking}: a form kept for one arm would unblind whoever sees it")
            if v.assessor_only:
                raise ValueError(f"visit {v.id!r} is for arms {v.arms} only and reserves assessments for the blinded "
                                 "outcome assessor, who must not learn the arm")

    def _check_safety_counting(self, planned: list[Endpoint]) -> None:
        """Safety monitoring rules name arms and events the protocol defines; an outcome `reported_as` names a term
        of the reference safety information."""
        arm_ids = {a.id for a in self.arms}
        for rule in self.safety_monitoring:
            if rule.arm is not None and rule.arm not in arm_ids:
                raise ValueError(f"safety_monitoring {rule.id!r}: arm {rule.arm!r} is not an arm "
                                 f"({', '.join(sorted(arm_ids))})")
            if rule.event == "sich" and not any(e.measure == "sich" and e.analysis is not None
                                                for e in self.endpoints):
                raise ValueError(f"safety_monitoring {rule.id!r}: the protocol has no sICH endpoint that defines it")
        terms = [r.term for r in self.reference_safety_information]
        for e in planned:
            reported = e.analysis.outcome.reported_as if e.analysis else None
            if reported is not None and reported not in terms:
                raise ValueError(f"endpoint {e.id!r}: outcome.reported_as {reported!r} is not a term of the "
                                 f"reference_safety_information ({', '.join(terms) or 'none declared'})")

    def _check_analysis_plan(self) -> None:
        planned = [e for e in self.endpoints if e.analysis is not None]
        if planned and self.analysis_plan is None:
            raise ValueError("endpoints declare analyses but the protocol has no analysis_plan (alpha, populations)")
        visits = {v.id: v for v in self.visits}
        filled_from: dict[str, tuple[str | None, str]] = {}
        for e in planned:
            problem = _analysis_problem(e, visits, {a.id for a in self.arms}, filled_from)
            if problem:
                raise ValueError(f"endpoint {e.id!r}: {problem}")
        self._check_safety_counting(planned)
        plan = self.analysis_plan
        if plan is not None:
            unknown = [v for v in [*plan.adjust, *(s.field for s in plan.subgroups)] if v not in VARIABLES]
            if unknown:
                raise ValueError(f"analysis_plan names {unknown}, which are not variables of the data dictionary")
            for e in planned:
                wanted = e.analysis.population if e.analysis else None
                if wanted is not None and wanted not in plan.populations:
                    raise ValueError(f"endpoint {e.id!r}: analysis.population {wanted!r} is not among the populations "
                                     f"the plan defines ({', '.join(plan.populations)})")
            if plan.treatment_received is not None:
                problem = _treatment_received_problem(plan.treatment_received, visits, {a.id for a in self.arms})
                if problem:
                    raise ValueError(f"analysis_plan.treatment_received: {problem}")
            if plan.matched_controls is not None:
                self._check_matched_controls(plan.matched_controls, planned)

    def _check_matched_controls(self, m: MatchedControls, planned: list[Endpoint]) -> None:
        unknown = [v for v in [*m.covariates, *m.exact] if v not in VARIABLES]
        if unknown:
            raise ValueError(f"analysis_plan.matched_controls names {unknown}, which are not variables of the data "
                             "dictionary")
        if len(self.arms) != 1:
            raise ValueError("analysis_plan.matched_controls is for a single-arm trial; a randomized trial compares "
                             "its own arms")
        analysed = {e.id for e in planned}
        missing = [o for o in m.outcomes if o not in analysed]
        if missing:
            raise ValueError(f"analysis_plan.matched_controls.outcomes {missing} are not endpoints with an analysis "
                             f"(those with one: {', '.join(sorted(analysed))})")

    def _check_randomization(self, r: RandomizationScheme) -> None:
        slots = sum(a.ratio for a in self.arms)
        if len(self.arms) < 2:
            raise ValueError("a randomized trial has at least two arms")
        if isinstance(r, PermutedBlocks):  # method: permuted_blocks
            bad = [b for b in r.block_sizes if b % slots]
            if bad:
                raise ValueError(f"randomization.block_sizes {bad} are not multiples of {slots}, the sum of the "
                                 f"allocation ratio {self.allocation_ratio}; a block must hold whole ratios")
        if self.design.masking in ("double_blind", "single_blind") and not r.blinded_kits:
            # Without kits that look alike a blinded user could only be shown one arm's dose sheet
            # (the experimental arm's, wrong for control patients) or the arm itself.
            raise ValueError(f"design.masking is {self.design.masking} but randomization.blinded_kits is not true: "
                             "a blinded trial dispenses numbered kits that look alike; set blinded_kits: true or "
                             "masking: open_label / open_label_blinded_endpoint")
        if r.method == "efron" and slots != 2:
            raise ValueError(f"Efron's biased coin is defined for two arms 1:1, not {self.allocation_ratio}; use "
                             "minimization, permuted blocks or big_stick")

    @property
    def criteria(self) -> list[Criterion]:
        """Inclusion then exclusion criteria, in the protocol's order."""
        return [*self.inclusion, *self.exclusion]

    def kind_of(self, criterion: Criterion) -> Literal["inclusion", "exclusion"]:
        return "inclusion" if any(c is criterion for c in self.inclusion) else "exclusion"

    @property
    def during_procedure(self) -> DuringProcedure | None:
        return self.screening.during_procedure if self.screening is not None else None

    @property
    def screened_fields(self) -> set[str]:
        """The recorded fields screening reads: each criterion's and randomization factor's variables (the clock
        times an interval is derived from), and the time of randomization."""
        names = {name for c in self.criteria for name in c.fields()}
        if self.randomization is not None:
            names |= {f.field for f in self.randomization.factors if f.field != "site"} | {"randomization"}
        return {real for name in names for real in (VARIABLES[name].derived_from or (name,))}

    @property
    def attestation_ids(self) -> list[str]:
        return [c.id for c in self.criteria if c.attestation is not None]

    @property
    def allocation_ratio(self) -> str:
        return ":".join(str(a.ratio) for a in self.arms)

    @property
    def primary_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.role == "primary"]
