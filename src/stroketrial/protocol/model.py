"""The protocol as a validated, immutable model.

Everything downstream (screening form, randomization, dose sheet, visit schedule,
analysis plan) reads the trial from here. Where the source document is silent
the protocol says so in an `assumption`, never as if the registry said it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .rules import Rule
from .schemes import PermutedBlocks, Randomization, RandomizationScheme
from ..clinical.dictionary import VARIABLES
from .analysis_plan import METHODS_FOR_TYPE, AnalysisPlan, EndpointAnalysis
from .base import FrozenModel, Identifier




class Assumption(FrozenModel):
    """A choice made where the source document is silent."""

    topic: str
    choice: str
    reason: str


class Design(FrozenModel):
    allocation: Literal["randomized", "non_randomized"]
    model: Literal["parallel", "dose_escalation_then_expansion"]
    masking: Literal["open_label", "open_label_blinded_endpoint", "single_blind", "double_blind"]
    centres: Literal["single", "multi"]
    summary: str


class Criterion(FrozenModel):
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

    @model_validator(mode="after")
    def _rule_or_attestation(self) -> Criterion:
        if (self.rule is None) == (self.attestation is None):
            raise ValueError("a criterion has exactly one of `rule` (computable) or `attestation` (judgement)")
        return self

    def fields(self) -> set[str]:
        return self.rule.fields() if self.rule is not None else set()


class DoseStep(FrozenModel):
    """One administration of an intervention: amount, route, infusion and timing."""

    route: Literal["intra_arterial", "intravenous", "procedure"]
    amount: float | None = Field(None, gt=0)
    amount_choices: list[float] = Field(default_factory=list, description="registered dose groups; one is given")
    unit: str | None = Field(None, description="g, mg or cells; per kg when per_kg")
    per_kg: bool = False
    concentration_pct: float | None = Field(None, gt=0, le=100, description="w/v %, e.g. 20 for 20% albumin")
    infusion_minutes: float | None = Field(None, gt=0)
    max_amount: float | None = Field(None, gt=0, description="cap per administration, in `unit`")
    repeat_days: int = Field(1, ge=1, description="given once a day for this many days")
    timing: str
    assumption: str | None = None


class Intervention(FrozenModel):
    id: Identifier
    name: str
    kind: Literal["drug", "biological", "procedure", "placebo", "none"]
    description: str
    steps: list[DoseStep] = Field(default_factory=list)


class Arm(FrozenModel):
    id: Identifier
    name: str
    role: Literal["experimental", "control", "placebo_control", "active_comparator"]
    description: str
    ratio: int = Field(1, ge=1, description="allocation weight, e.g. 2 for the 2 in 2:1")
    interventions: list[Identifier] = Field(default_factory=list)


class Endpoint(FrozenModel):
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


def _analysis_problem(e: Endpoint, visits: dict[str, Visit], arms: set[str],
                      filled_from: dict[str, tuple[str | None, str]]) -> str | None:
    """What is wrong with an endpoint's declared analysis, or None."""
    a = e.analysis
    assert a is not None
    if a.method not in METHODS_FOR_TYPE[e.type]:
        return (f"analysis.method {a.method} does not suit an endpoint of type {e.type}; allowed: "
                f"{', '.join(METHODS_FOR_TYPE[e.type]) or 'none yet'}")
    o = a.outcome
    if o.visit is not None:
        if o.visit not in visits:
            return f"analysis.outcome.visit {o.visit!r} is not a visit of the schedule ({', '.join(visits)})"
        if o.assessment not in visits[o.visit].assessments:
            return (f"analysis.outcome.assessment {o.assessment!r} is not on the {o.visit} form "
                    f"({', '.join(visits[o.visit].assessments)})")
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


class Visit(FrozenModel):
    id: Identifier
    name: str
    day: float = Field(ge=0, description="days after randomization (0 = the day of treatment)")
    window_before_days: float = Field(0, ge=0)
    window_after_days: float = Field(0, ge=0)
    assessments: list[str] = Field(default_factory=list)


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
    dlt_definition: list[str]
    assumption: str | None = None

    @model_validator(mode="after")
    def _settings_match_the_design(self) -> DoseEscalation:
        numbers = [lv.level for lv in self.levels]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"levels must be numbered 1, 2, 3, ... in order (got {numbers})")
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


class Protocol(FrozenModel):
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
    analysis_plan: AnalysisPlan | None = None
    assumptions: list[Assumption] = Field(default_factory=list)

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
        if not any(e.role == "primary" for e in self.endpoints):
            raise ValueError("at least one endpoint has role: primary")
        self._check_analysis_plan()
        return self

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
        plan = self.analysis_plan
        if plan is not None:
            unknown = [v for v in [*plan.adjust, *(s.field for s in plan.subgroups)] if v not in VARIABLES]
            if unknown:
                raise ValueError(f"analysis_plan names {unknown}, which are not variables of the data dictionary")

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
    def attestation_ids(self) -> list[str]:
        return [c.id for c in self.criteria if c.attestation is not None]

    @property
    def allocation_ratio(self) -> str:
        return ":".join(str(a.ratio) for a in self.arms)

    @property
    def primary_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.role == "primary"]
