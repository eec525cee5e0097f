"""Eligibility rules over the data dictionary, written in the protocol YAML.

A rule is evaluated in three-valued (Kleene) logic over a whole table at once:
every row is definitely true, definitely false, or unknown because data are
missing. `evaluate` returns the two masks (is_true, is_false); unknown is
neither. The same code screens one patient (a table of one row) and a million.

YAML forms:
    {field: nihss, op: ">=", value: 6}
    {field: creatinine_umol_l, op: ">", value: 2.0, unit: mg/dL}
    {field: occlusion_site, in: [tandem_ica_m1, m1]}
    {flag: pregnant}
    {all_of: [...]}, {any_of: [...]}, {not: {...}}, {if: {...}, then: {...}}
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, Protocol as TypingProtocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from ..clinical import units
from ..clinical.dictionary import VARIABLES, Variable, format_number
from ..clinical.scales import ETICI, ClinicalValueError

Masks = tuple[np.ndarray, np.ndarray]


class Table(TypingProtocol):
    """What a rule needs from the data: each variable as low and high floats (NaN = missing)."""

    n: int

    def bounds(self, name: str) -> tuple[np.ndarray, np.ndarray]: ...

    def value(self, name: str, row: int) -> Any: ...

    def entered_in(self, name: str, unit: str) -> np.ndarray: ...


_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}
_SYMBOLS = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": "=", "!=": "≠"}
# (when true, when false) for "NIHSS 5 is below 6"
_OP_WORDS = {">=": ("is at least", "is below"), ">": ("is above", "is not above"),
             "<=": ("is at most", "is above"), "<": ("is below", "is not below"),
             "==": ("is", "is not"), "!=": ("is not", "is")}


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def evaluate(self, table: Table) -> Masks:
        """(true, false) masks over the table's rows; neither where the data do not decide.

        Abstract: each rule form (Compare, InSet, Flag, AllOf, AnyOf, Not, If) overrides it."""
        raise NotImplementedError

    def outcome(self, table: Table, row: int = 0) -> bool | None:
        is_true, is_false = self.evaluate(table)
        return True if is_true[row] else False if is_false[row] else None


def _screenable(name: str) -> Variable:
    var = VARIABLES.get(name)
    if var is None:
        raise ValueError(f"unknown variable {name!r}; see `stroketrial dictionary`")
    if not var.screenable:
        hint = ", ".join(v.name for v in VARIABLES.values() if v.kind == "interval" and name in v.interval_ends())
        raise ValueError(f"{name!r} cannot be compared directly; use an interval such as {hint}")
    return var


class UnitThreshold(BaseModel):
    """The same threshold as the source states it in another unit ("< 2.8 mmol/L (50 mg/dL)")."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    value: float
    unit: str


class Compare(_Rule):
    field: str
    op: Literal[">=", ">", "<=", "<", "==", "!="]
    value: float | str
    unit: str | None = Field(None, description="unit of `value` when it is not the variable's own")
    also: list[UnitThreshold] = Field(default_factory=list, description="the threshold as the source states it "
                                      "in other units: a value entered in that unit is compared with it")

    @model_validator(mode="after")
    def _check(self) -> Compare:
        var = _screenable(self.field)
        if var.kind == "category":
            raise ValueError(f"{self.field} is a category; use `in: [...]`")
        if var.kind == "flag":
            raise ValueError(f"{self.field} is yes/no; use `flag: {self.field}`")
        if var.kind == "grade":
            grade = ETICI.parse(self.value)
            if grade.is_ambiguous:
                raise ValueError(f"threshold {self.value!r} is ambiguous; use 2b50 or 2b67")
        elif not isinstance(self.value, (int, float)):
            raise ValueError(f"threshold {self.value!r} for {self.field} must be a number")
        if self.unit is not None:
            if var.quantity is None:
                raise ValueError(f"{self.field} has no unit to convert")
            units.factor(var.quantity, self.unit)  # raises UnitError for an unknown unit
        if var.kind not in ("grade",) and not var.bounds()[0] <= self.threshold <= var.bounds()[1]:
            raise ValueError(f"threshold {format_number(self.threshold)} is outside the allowed range: {var.allowed()}")
        self._check_also(var)
        return self

    def _check_also(self, var: Variable) -> None:
        for other in self.also:
            if var.quantity is None or units.normalise_unit(other.unit) not in var.alternate_units:
                raise ValueError(f"also: {other.unit!r} is not a unit {self.field} may be entered in "
                                 f"({', '.join(var.alternate_units) or 'none'})")
            converted = units.to_canonical(var.quantity, other.value, other.unit)
            if abs(converted - self.threshold) > 0.05 * abs(self.threshold):  # a typo, not a rounding
                raise ValueError(f"also: {other.value:g} {other.unit} is {format_number(converted)} {var.unit}, "
                                 f"more than 5% from the threshold {format_number(self.threshold)} {var.unit}")

    @property
    def variable(self) -> Variable:
        return VARIABLES[self.field]

    @property
    def threshold(self) -> float:
        var = self.variable
        if var.kind == "grade":
            return float(ETICI.parse(self.value).ranks[0])
        if self.unit is None:
            return float(self.value)
        assert var.quantity is not None  # _check refuses a unit for a variable without a quantity
        return units.to_canonical(var.quantity, float(self.value), self.unit)

    def thresholds(self, table: Table) -> np.ndarray:
        """Per row, the threshold in canonical units: the source's own for a value entered in one of the
        `also` units (50 mg/dL, not 2.8 mmol/L converted), else `value`."""
        threshold = np.full(table.n, self.threshold)
        var = self.variable
        for other in self.also:
            assert var.quantity is not None  # _check_also
            unit = units.normalise_unit(other.unit)
            assert unit is not None
            threshold[table.entered_in(self.field, unit)] = units.to_canonical(var.quantity, other.value, unit)
        return threshold

    def _row_threshold(self, table: Table, row: int) -> UnitThreshold | None:
        for other in self.also:
            unit = units.normalise_unit(other.unit)
            if unit is not None and table.entered_in(self.field, unit)[row]:
                return other
        return None

    def evaluate(self, table: Table) -> Masks:
        low, high = table.bounds(self.field)
        op, threshold = _OPS[self.op], self.thresholds(table)
        with np.errstate(invalid="ignore"):
            at_low, at_high = op(low, threshold), op(high, threshold)
        known = ~np.isnan(low)
        return known & at_low & at_high, known & ~at_low & ~at_high

    def explain(self, table: Table, row: int = 0) -> str:
        var = self.variable
        value = table.value(self.field, row)
        if value is None:
            return var.describe(None)
        result = self.outcome(table, row)
        if result is None:  # a bare eTICI 2b against 2b67
            return f"{var.describe(value)} cannot be compared with {self.value} (record 2b50 or 2b67)"
        words = _OP_WORDS[self.op][0 if result else 1]
        other = self._row_threshold(table, row)
        if other is not None and var.quantity is not None:
            entered = value / units.factor(var.quantity, other.unit)
            return f"{var.label} {format_number(round(entered, 6))} {other.unit} {words} {other.value:g} {other.unit}"
        return f"{var.describe(value)} {words} {self.describe_threshold()}"

    def describe_threshold(self) -> str:
        var = self.variable
        if var.kind == "grade":
            return str(self.value)
        text = format_number(self.threshold) + (f" {var.unit}" if var.unit else "")
        if self.unit is not None and units.normalise_unit(self.unit) != var.unit:
            text += f" ({self.value} {self.unit})"
        if self.also:
            text += " (" + ", ".join(f"{o.value:g} {o.unit}" for o in self.also) + ")"
        return text

    def text(self) -> str:
        return f"{self.field} {_SYMBOLS[self.op]} {self.describe_threshold()}"

    def fields(self) -> set[str]:
        return {self.field}


class InSet(_Rule):
    field: str
    values: list[str] = Field(alias="in", min_length=1)

    @model_validator(mode="after")
    def _check(self) -> InSet:
        var = _screenable(self.field)
        if var.kind != "category":
            raise ValueError(f"`in` applies to categories; {self.field} is {var.kind}")
        allowed = {m.value for m in var.enum_scale()}
        bad = [v for v in self.values if v not in allowed]
        if bad:
            raise ValueError(f"{bad} not allowed; {var.allowed()}")
        return self

    def codes(self) -> list[float]:
        members = list(VARIABLES[self.field].enum_scale())
        return [float(i) for i, m in enumerate(members) if m.value in self.values]

    def evaluate(self, table: Table) -> Masks:
        low, _ = table.bounds(self.field)
        inside = np.isin(low, self.codes())
        known = ~np.isnan(low)
        return known & inside, known & ~inside

    def explain(self, table: Table, row: int = 0) -> str:
        var = VARIABLES[self.field]
        value = table.value(self.field, row)
        if value is None:
            return var.describe(None)
        labels = ", ".join(var.enum_scale()(v).label for v in self.values)
        return f"{var.describe(value)} {'is' if self.outcome(table, row) else 'is not'} one of: {labels}"

    def text(self) -> str:
        return f"{self.field} in {{{', '.join(self.values)}}}"

    def fields(self) -> set[str]:
        return {self.field}


class Flag(_Rule):
    flag: str

    @field_validator("flag")
    @classmethod
    def _is_flag(cls, name: str) -> str:
        var = _screenable(name)
        if var.kind != "flag":
            raise ValueError(f"{name!r} is not a yes/no variable; compare it with `field:`")
        return name

    def evaluate(self, table: Table) -> Masks:
        low, _ = table.bounds(self.flag)
        return low == 1.0, low == 0.0

    def explain(self, table: Table, row: int = 0) -> str:
        return VARIABLES[self.flag].describe(table.value(self.flag, row))

    def text(self) -> str:
        return f"{self.flag} = yes"

    def fields(self) -> set[str]:
        return {self.flag}


class AllOf(_Rule):
    all_of: list[Rule] = Field(min_length=1)

    def evaluate(self, table: Table) -> Masks:
        parts = [r.evaluate(table) for r in self.all_of]
        return np.logical_and.reduce([t for t, _ in parts]), np.logical_or.reduce([f for _, f in parts])

    def explain(self, table: Table, row: int = 0) -> str:
        return _explain_parts(self.all_of, table, row, self.outcome(table, row), decisive=False)

    def text(self) -> str:
        return " AND ".join(_nested(r) for r in self.all_of)

    def fields(self) -> set[str]:
        return set().union(*(r.fields() for r in self.all_of))


class AnyOf(_Rule):
    any_of: list[Rule] = Field(min_length=1)

    def evaluate(self, table: Table) -> Masks:
        parts = [r.evaluate(table) for r in self.any_of]
        return np.logical_or.reduce([t for t, _ in parts]), np.logical_and.reduce([f for _, f in parts])

    def explain(self, table: Table, row: int = 0) -> str:
        return _explain_parts(self.any_of, table, row, self.outcome(table, row), decisive=True)

    def text(self) -> str:
        return " OR ".join(_nested(r) for r in self.any_of)

    def fields(self) -> set[str]:
        return set().union(*(r.fields() for r in self.any_of))


class Not(_Rule):
    negated: Rule = Field(alias="not")

    def evaluate(self, table: Table) -> Masks:
        is_true, is_false = self.negated.evaluate(table)
        return is_false, is_true

    def explain(self, table: Table, row: int = 0) -> str:
        return self.negated.explain(table, row)

    def text(self) -> str:
        return f"NOT {_nested(self.negated)}"

    def fields(self) -> set[str]:
        return self.negated.fields()


class If(_Rule):
    """`then` applies only where `if` holds (Kleene implication: not if, or then)."""

    condition: Rule = Field(alias="if")
    then: Rule

    def evaluate(self, table: Table) -> Masks:
        c_true, c_false = self.condition.evaluate(table)
        t_true, t_false = self.then.evaluate(table)
        return c_false | t_true, c_true & t_false

    def explain(self, table: Table, row: int = 0) -> str:
        applies = self.condition.outcome(table, row)
        if applies is False:
            return f"does not apply ({self.condition.explain(table, row)})"
        return f"{self.condition.explain(table, row)}: {self.then.explain(table, row)}"

    def text(self) -> str:
        return f"IF {_nested(self.condition)} THEN {_nested(self.then)}"

    def fields(self) -> set[str]:
        return self.condition.fields() | self.then.fields()


def _nested(rule: Rule) -> str:
    return f"({rule.text()})" if isinstance(rule, (AllOf, AnyOf, If)) else rule.text()


def _explain_parts(parts: list[Rule], table: Table, row: int, result: bool | None, decisive: bool) -> str:
    """Quote the parts that decided the outcome: for all_of the false ones, for any_of the true ones."""
    outcomes = [(p, p.outcome(table, row)) for p in parts]
    if result is None:
        chosen = [p for p, o in outcomes if o is None]
    elif result is decisive:
        chosen = [p for p, o in outcomes if o is result]
    else:
        chosen = [p for p, _ in outcomes]
    return "; ".join(p.explain(table, row) for p in chosen)


def _rule_tag(data: Any) -> str | None:
    if isinstance(data, BaseModel):
        return type(data).__name__
    if not isinstance(data, dict):
        return None
    for key, tag in (("all_of", "AllOf"), ("any_of", "AnyOf"), ("not", "Not"), ("if", "If"), ("flag", "Flag"),
                     ("in", "InSet"), ("op", "Compare")):
        if key in data:
            return tag
    return None


Rule = Annotated[
    Annotated[Compare, Tag("Compare")] | Annotated[InSet, Tag("InSet")] | Annotated[Flag, Tag("Flag")]
    | Annotated[AllOf, Tag("AllOf")] | Annotated[AnyOf, Tag("AnyOf")] | Annotated[Not, Tag("Not")]
    | Annotated[If, Tag("If")],
    Discriminator(_rule_tag, custom_error_type="rule_form", custom_error_message=(
        "a rule is {field, op, value}, {field, in: [...]}, {flag}, {all_of}, {any_of}, {not} or {if, then}")),
]

for _model in (AllOf, AnyOf, Not, If):
    _model.model_rebuild()

__all__ = ["AllOf", "AnyOf", "ClinicalValueError", "Compare", "Flag", "If", "InSet", "Not", "Rule", "Table"]


def leaves(rule: Rule) -> list[Compare | InSet | Flag]:
    """Every comparison, set test and flag inside a rule, in order."""
    if isinstance(rule, AllOf):
        return [leaf for r in rule.all_of for leaf in leaves(r)]
    if isinstance(rule, AnyOf):
        return [leaf for r in rule.any_of for leaf in leaves(r)]
    if isinstance(rule, Not):
        return leaves(rule.negated)
    if isinstance(rule, If):
        return leaves(rule.condition) + leaves(rule.then)
    return [rule]
