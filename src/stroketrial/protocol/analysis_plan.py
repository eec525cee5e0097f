"""The statistical analysis plan, as part of the protocol.

Each endpoint says which column of the analysis dataset holds its outcome (and which visit form
and assessment fill it), how a yes/no outcome is derived from a score, the method, the direction
that is better for the patient, the covariates, the missing-data strategy and the sensitivity
analyses. The trial's plan says alpha, the multiplicity rule, the populations and their
definitions, the covariates and the subgroups. `report` and `analyze` run exactly this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..clinical.scales import ETICI
from .base import FrozenModel, Identifier

# What each method does (the report's Methods section is written from the methods that ran):
# - ordinal_shift: common odds ratio by proportional-odds regression, unadjusted and adjusted;
# - binary: risk difference, risk ratio and odds ratio (unadjusted; adjusted OR and RD when covariates);
# - single_arm_proportion: the proportion in one arm with its exact (Clopper-Pearson) interval;
# - continuous: Hodges-Lehmann shift and, with covariates, linear regression of log(value + 1);
# - mean_difference: difference in means with Welch's interval;
# - mixed_model: the arm effect at each visit of a linear mixed model on the repeated scores;
# - count: events per patient, rate ratio by Poisson regression with a robust (sandwich) interval.
Method = Literal["ordinal_shift", "binary", "single_arm_proportion", "continuous", "mean_difference",
                 "mixed_model", "count"]
SensitivityAnalysis = Literal["proportional_odds_test", "win_odds", "mann_whitney", "utility_weighted",
                              "multiple_imputation", "worst_case"]
PopulationId = Literal["itt", "pp", "at", "safety"]

# Which methods suit which endpoint type (Endpoint.type).
METHODS_FOR_TYPE: dict[str, tuple[str, ...]] = {
    "ordinal": ("ordinal_shift", "mixed_model"),
    "binary": ("binary", "single_arm_proportion"),
    "continuous": ("continuous", "mean_difference", "mixed_model"),
    "count": ("count",),
    "time_to_event": (),
}


class Condition(FrozenModel):
    """One part of a yes/no outcome derived from several assessments of a form: an assessment at least a
    number, one of some categories, or yes/no; or any one of a list of such parts."""

    assessment: Identifier | None = None
    at_least: float | None = None
    one_of: list[str] | None = Field(None, min_length=1)
    is_: bool | None = Field(None, alias="is")
    any_of: list[Condition] | None = Field(None, min_length=2)

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        if self.any_of is not None:
            if self.assessment is not None or self.at_least is not None or self.one_of or self.is_ is not None:
                raise ValueError("any_of stands alone: give its parts inside it")
            return self
        if self.assessment is None:
            raise ValueError("a condition names an assessment (or is any_of: [...])")
        tests = [self.at_least is not None, self.one_of is not None, self.is_ is not None]
        if sum(tests) != 1:
            raise ValueError(f"condition on {self.assessment!r}: give exactly one of at_least, one_of, is")
        return self

    def assessments(self) -> list[str]:
        if self.any_of is not None:
            return [key for part in self.any_of for key in part.assessments()]
        assert self.assessment is not None
        return [self.assessment]


class Outcome(FrozenModel):
    """Where the outcome is in the data: a column of the analysis dataset, filled from a visit's form."""

    column: Identifier = Field(description="the analysis dataset's column, e.g. mrs_90d")
    visit: Identifier | None = Field(None, description="the visit whose form records it; none when it is "
                                                       "recorded outside the visit forms (e.g. an SAE count)")
    assessment: Identifier = Field(description="the assessment key on that form, e.g. mrs; for an outcome derived "
                                               "by all_of, the assessment that decides whether there is an event")
    all_of: list[Condition] | None = Field(None, min_length=2, description="a yes/no outcome derived from several "
                                           "assessments of the form: yes when every condition holds (sICH by the "
                                           "Heidelberg classification)")
    summed_over_visits: bool = Field(False, description="a count recorded at each visit (adverse events since the "
                                                        "last visit): the patient's total over every visit form")
    at_most: float | None = Field(None, description="a yes/no outcome from a score: yes when the score is at most "
                                                    "this (mRS 0-2: 2)")
    at_least: float | str | None = Field(None, description="a yes/no outcome from a score or grade: yes when it is "
                                                           "at least this (eTICI 2b50-3: 2b50)")
    reported_as: str | None = Field(None, description="a yes/no event also counted, in the safety counts, when an "
                                                      "SAE is reported under this term of the reference safety "
                                                      "information (or one of its synonyms) within the endpoint's "
                                                      "timepoint: an sICH reported before or without its imaging "
                                                      "form")

    @model_validator(mode="after")
    def _one_cut(self) -> Outcome:
        if sum(x is not None for x in (self.at_most, self.at_least, self.all_of)) > 1:
            raise ValueError("give one of at_most, at_least and all_of")
        if self.all_of is not None and self.assessment not in self.components():
            raise ValueError(f"assessment {self.assessment!r} is not among the all_of conditions' assessments")
        if self.summed_over_visits and self.visit is not None:
            raise ValueError("summed_over_visits adds the assessment over every visit: give no visit")
        if isinstance(self.at_least, str):
            grades = [g.value for g in ETICI if not g.is_ambiguous]
            if self.at_least not in grades:
                raise ValueError(f"at_least {self.at_least!r} is neither a number nor an eTICI grade "
                                 f"({', '.join(grades)})")
        return self

    @property
    def derived(self) -> bool:
        return self.at_most is not None or self.at_least is not None or self.all_of is not None

    def components(self) -> list[str]:
        """The assessments the outcome is read from."""
        if self.all_of is None:
            return [self.assessment]
        return list(dict.fromkeys(key for c in self.all_of for key in c.assessments()))


class EndpointAnalysis(FrozenModel):
    outcome: Outcome
    method: Method
    better: Literal["higher", "lower"] = Field(description="which direction of the outcome (or of the proportion of "
                                                          "yes) is better for the patient")
    adjust: list[Identifier] | None = Field(None, description="covariates; none: the plan's covariates")
    missing_data: Literal["complete_case"] = "complete_case"
    sensitivity: list[SensitivityAnalysis] = Field(default_factory=list)
    arm: Identifier | None = Field(None, description="single_arm_proportion: the arm whose proportion is estimated")
    population: PopulationId | None = Field(None, description="the population this endpoint is analysed in, when "
                                            "not the plan's (feasibility: every patient allocated the treatment)")
    wording: str | None = Field(None, description="the seed document's words for this analysis")
    assumption: str | None = None


class Subgroup(FrozenModel):
    name: str
    field: Identifier = Field(description="a baseline variable of the data dictionary")
    at_least: float | None = Field(None, description="numbers: the cut; patients at or above it form one subgroup")
    wording: str | None = None


class TreatmentReceived(FrozenModel):
    """What each patient actually received, read from a form: it defines the per-protocol population (received
    as allocated) and the as-treated arms. Either the value names the arm received (a category), or a number at
    least `at_least` means the allocated treatment was received (below it: `otherwise_arm`, or the allocated arm
    where every arm gets a treatment, as with a placebo)."""

    visit: Identifier
    assessment: Identifier
    arms: list[Identifier] | None = Field(None, description="the arms whose patients have this record; the other "
                                          "arms' patients received their allocation by definition (no treatment)")
    arm_by_value: dict[str, Identifier | None] | None = Field(None, description="each value: the arm it means was "
                                                              "received; null: neither arm's treatment")
    at_least: float | None = None
    otherwise_arm: Identifier | None = None
    also: list[Identifier] = Field(default_factory=list, description="other assessments of the same form that the "
                                   "report summarises by arm with it (the dose group, the infusion's duration)")
    wording: str | None = None
    assumption: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> TreatmentReceived:
        if (self.arm_by_value is None) == (self.at_least is None):
            raise ValueError("give arm_by_value (the arm each value means) or at_least (the amount that counts as "
                             "received), one of them")
        if self.otherwise_arm is not None and self.at_least is None:
            raise ValueError("otherwise_arm goes with at_least")
        return self


class MatchedControls(FrozenModel):
    """A single-arm trial's comparison with controls from a registry of patients treated without the study drug:
    propensity-score matching (logistic model on `covariates`; nearest neighbour 1:`ratio` on the logit within
    `caliper` standard deviations, without replacement; exact on `exact`), the `outcomes` (endpoint ids: their
    analysis columns are the registry's outcome columns) compared in the matched sample, and an inverse-probability
    weighted (ATT) analysis with the same model as the sensitivity analysis."""

    controls: str = Field(description="where the controls come from, in words")
    covariates: list[Identifier] = Field(min_length=1, description="data-dictionary variables of the propensity "
                                         "model")
    exact: list[Identifier] = Field(default_factory=list, description="variables matched exactly")
    ratio: int = Field(1, ge=1, le=10, description="controls per treated patient")
    caliper: float | None = Field(0.2, gt=0, description="in standard deviations of the logit of the propensity "
                                  "score; none: no caliper")
    outcomes: list[Identifier] = Field(min_length=1, description="endpoints compared with the matched controls")
    good_outcome_at_most: int | None = Field(2, ge=0, description="an ordinal outcome (the mRS) is also compared as "
                                             "yes/no at this score or better (mRS 0-2); none: the shift only")
    wording: str | None = None
    assumption: str | None = None


class AnalysisPlan(FrozenModel):
    alpha: float = Field(gt=0, lt=1, description="the type I error of the primary analysis")
    sided: Literal[1, 2] = 2
    multiplicity: str = Field(description="how more than one primary comparison is handled")
    populations: dict[PopulationId, str] = Field(description="each analysis population and its definition")
    primary_population: PopulationId = "itt"
    adjust: list[Identifier] = Field(default_factory=list, description="covariates of the adjusted analyses")
    subgroups: list[Subgroup] = Field(default_factory=list)
    treatment_received: TreatmentReceived | None = Field(None, description="the record that defines the "
                                                         "per-protocol and as-treated populations")
    matched_controls: MatchedControls | None = Field(None, description="a single-arm trial's comparison with "
                                                     "matched registry controls")
    wording: str | None = None
    assumption: str | None = None

    @model_validator(mode="after")
    def _primary_population_defined(self) -> AnalysisPlan:
        if self.primary_population not in self.populations:
            raise ValueError(f"primary_population {self.primary_population!r} is not among the populations "
                             f"defined ({', '.join(self.populations)})")
        return self
