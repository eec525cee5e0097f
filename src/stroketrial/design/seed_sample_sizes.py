"""Each built-in trial's stated sample size, reproduced from its assumptions where the source gives them.

Where the source leaves an assumption out, the derivation says so and shows what the
stated number implies under a stated, labelled choice; it never presents a choice as
the registry's.
"""

from __future__ import annotations

from scipy import optimize

from ..protocol import Protocol
from ..protocol.model import ImpliedEffect
from .power import CONTROL_MRS
from .samplesize import ordinal_shift, two_proportions


def derivation(protocol: Protocol) -> dict:
    """The protocol's `sample_size` block re-derived: the inflation for non-adherence where it states the
    evaluable number, and the effect the number implies under its `implied` choices, for the primary
    endpoint's planned method (an mRS shift: the common OR; a binary endpoint: the treatment proportion)."""
    ss = protocol.sample_size
    steps: list[str] = []
    implied: list[dict] = []
    out: dict[str, object] = {
        "trial": protocol.id, "stated_total": ss.total, "stated_per_arm": ss.per_arm, "method": ss.method,
        "missing_assumptions": ss.missing_assumptions, "steps": steps, "reproduced": None, "implied": implied}
    if {"evaluable_per_arm", "non_adherence"} <= set(ss.assumptions):
        evaluable = ss.assumptions["evaluable_per_arm"]
        rate = ss.assumptions["non_adherence"]
        per_arm = evaluable * (1 + rate)
        steps += [f"stated: {ss.assumptions.get('evaluable_total', 2 * evaluable)} evaluable patients "
                  f"({evaluable} per arm)",
                  f"non-adherence {rate:g}: {evaluable} x (1 + {rate:g}) = {per_arm:.2f} per arm "
                  "(n x (1 + r), as the registry does, not n / (1 - r))",
                  f"taken as {round(per_arm)} per arm, {2 * round(per_arm)} in all (the registry rounds to the "
                  f"nearest; rounding up would give {2 * int(-(-per_arm // 1))})"]
        out["reproduced"] = 2 * round(per_arm) == ss.total
    else:
        steps.append(f"stated: {ss.total} in all; {ss.method}")
    primary = protocol.primary_endpoints[0]
    method = primary.analysis.method if primary.analysis is not None else None
    if ss.implied is not None and method == "ordinal_shift":
        implied.append(_implied_or(ss.implied))
    elif ss.implied is not None and method == "binary" and ss.implied.control_rate is not None:
        implied.append(_implied_difference(ss.total, ss.implied, primary.name))
    return out


def _implied_or(choice: ImpliedEffect) -> dict:
    """The common OR that the patients detect with 80% and 90% power for the control distribution chosen."""
    control = tuple(choice.control_mrs or CONTROL_MRS)
    patients = choice.patients
    assert patients is not None, "an implied common OR is for a stated number of evaluable patients"
    implied: dict[str, object] = {"label": f"common OR detectable by the {patients} evaluable patients",
                                  "control_mrs": list(control), "assumption": choice.assumption}
    for power in (0.8, 0.9):
        common_or = optimize.brentq(lambda o, power=power: ordinal_shift(control, o, alpha=choice.alpha,
                                                                         power=power).n_total - patients, 1.01, 5)
        implied[f"common_or_power_{int(power * 100)}"] = round(common_or, 3)
    return implied


def _implied_difference(total: int, choice: ImpliedEffect, endpoint: str) -> dict:
    control = choice.control_rate
    assert control is not None
    implied: dict[str, object] = {"label": f"{endpoint}: the treatment arm's proportion detectable by {total} "
                                           "patients", "p_control": control, "assumption": choice.assumption}
    for power in (0.8, 0.9):
        p_t = optimize.brentq(lambda p, power=power: two_proportions(control, p, alpha=choice.alpha, power=power,
                                                                     dropout=choice.dropout).n_total - total,
                              control + 0.01, 0.99)
        implied[f"p_treatment_power_{int(power * 100)}"] = round(p_t, 3)
    return implied
