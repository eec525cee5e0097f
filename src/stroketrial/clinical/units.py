"""Units and exact conversions to each variable's canonical unit.

Conversion factors come from molar masses, so a value converts the same way
wherever it is converted (a patient's 2.0 mg/dL and a protocol's "> 2.0 mg/dL"
land on the identical number of µmol/L):

- creatinine C4H7N3O, 113.12 g/mol: 1 mg/dL = 10 000 / 113.12 µmol/L (about 88.40)
- glucose C6H12O6, 180.156 g/mol: 1 mg/dL = 10 / 180.156 mmol/L (about 0.05551)
- the international avoirdupois pound is exactly 0.45359237 kg
"""

from __future__ import annotations

from .. import InputError

from fractions import Fraction

CREATININE_MOLAR_MASS = Fraction("113.12")  # g/mol
GLUCOSE_MOLAR_MASS = Fraction("180.156")  # g/mol

# Spellings people type for the same unit; the key is the canonical spelling.
_SPELLINGS = {
    "µmol/L": ("umol/l", "µmol/l", "μmol/l", "micromol/l"),
    "mmol/L": ("mmol/l",),
    "mg/dL": ("mg/dl",),
    "kg": ("kg",),
    "lb": ("lb", "lbs"),
    "h": ("h", "hr", "hour", "hours"),
    "min": ("min", "minute", "minutes"),
    "d": ("d", "day", "days"),
    "mmHg": ("mmhg",),
}
_CANONICAL_SPELLING = {alias: unit for unit, aliases in _SPELLINGS.items() for alias in aliases}

# factor that turns a value in the first unit into the second, per quantity.
_FACTORS: dict[str, dict[str, Fraction]] = {
    "creatinine": {"µmol/L": Fraction(1), "mg/dL": Fraction(10_000) / CREATININE_MOLAR_MASS},
    "glucose": {"mmol/L": Fraction(1), "mg/dL": Fraction(10) / GLUCOSE_MOLAR_MASS},
    "weight": {"kg": Fraction(1), "lb": Fraction("0.45359237")},
    "hours": {"h": Fraction(1), "min": Fraction(1, 60), "d": Fraction(24)},
    "minutes": {"min": Fraction(1), "h": Fraction(60), "d": Fraction(1440)},
}


class UnitError(InputError):
    pass


def normalise_unit(unit: str) -> str | None:
    """The canonical spelling of a unit, or None when it is not one we know."""
    return _CANONICAL_SPELLING.get(unit.strip().lower()) if isinstance(unit, str) else None


def units_for(quantity: str) -> tuple[str, ...]:
    return tuple(_FACTORS[quantity])


def factor(quantity: str, unit: str) -> float:
    """The multiplier that converts `unit` to the quantity's canonical unit."""
    canonical = normalise_unit(unit)
    table = _FACTORS[quantity]
    if canonical not in table:
        raise UnitError(f"unit {unit!r} is not allowed; use one of {', '.join(table)}")
    return float(table[canonical])


def to_canonical(quantity: str, value: float, unit: str) -> float:
    return value * factor(quantity, unit)
