"""Each built-in trial's stated sample size, reproduced from its assumptions where the source gives them.

Where the source leaves an assumption out, the derivation says so and shows what the
stated number implies under a stated, labelled choice; it never presents a choice as
the registry's.
"""

from __future__ import annotations

from scipy import optimize

from ..protocol import Protocol
from .power import CONTROL_MRS
from .samplesize import ordinal_shift, two_proportions


def derivation(protocol: Protocol) -> dict:
    ss = protocol.sample_size
    steps: list[str] = []
    implied: list[dict] = []
    out: dict[str, object] = {
        "trial": protocol.id, "stated_total": ss.total, "stated_per_arm": ss.per_arm, "method": ss.method,
        "missing_assumptions": ss.missing_assumptions, "steps": steps, "reproduced": None, "implied": implied}
    if protocol.id == "impact-lvo":
        evaluable = ss.assumptions["evaluable_per_arm"]
        rate = ss.assumptions["non_adherence"]
        per_arm = evaluable * (1 + rate)
        steps += [f"stated: {ss.assumptions['evaluable_total']} evaluable patients ({evaluable} per arm)",
                  f"non-adherence {rate:g}: {evaluable} x (1 + {rate:g}) = {per_arm:.2f} per arm "
                  "(n x (1 + r), as the registry does, not n / (1 - r))",
                  f"taken as {round(per_arm)} per arm, {2 * round(per_arm)} in all (the registry rounds to the "
                  f"nearest; rounding up would give {2 * int(-(-per_arm // 1))})"]
        out["reproduced"] = 2 * round(per_arm) == ss.total
        implied.append(_implied_or(1010, "the 1010 evaluable patients"))
    elif protocol.id in ("amass-2", "angel-rescue"):
        control = 0.40 if protocol.id == "amass-2" else 0.25
        steps.append(f"stated: {ss.total} in all, 1:1; the source gives no control rate, effect, alpha or power")
        out["reproduced"] = None
        implied.append(_implied_difference(ss.total, control, protocol.id))
    else:
        steps.append(f"stated: {ss.total}; {ss.method}")
    return out


def _implied_or(total: int, label: str) -> dict:
    """The common OR that N patients detect with 80% and 90% power (two-sided 0.05) for a HERMES-like control."""
    implied = {"label": f"common OR detectable by {label}", "control_mrs": list(CONTROL_MRS),
               "assumption": "control-arm mRS distribution close to the thrombectomy arms of HERMES (Goyal M et al., "
                             "Lancet 2016); two-sided alpha 0.05; Whitehead's formula. Not stated by the registry."}
    for power in (0.8, 0.9):
        common_or = optimize.brentq(lambda o, power=power: ordinal_shift(CONTROL_MRS, o, power=power).n_total - total,
                                    1.01, 5)
        implied[f"common_or_power_{int(power * 100)}"] = round(common_or, 3)
    return implied


def _implied_difference(total: int, control: float, trial: str) -> dict:
    implied = {"label": f"mRS 0-2 in the treatment arm detectable by {total} patients",
               "p_control": control,
               "assumption": (f"control-arm mRS 0-2 of {control:.0%} ("
                              + ("functional independence after successful thrombectomy in HERMES-era trials"
                                 if trial == "amass-2" else "after failed thrombectomy, rescue-therapy registries")
                              + "); two-sided alpha 0.05; 10% dropout; normal approximation. Not stated by the "
                                "registry.")}
    for power in (0.8, 0.9):
        p_t = optimize.brentq(lambda p, power=power: two_proportions(control, p, power=power,
                                                                     dropout=0.10).n_total - total,
                              control + 0.01, 0.99)
        implied[f"p_treatment_power_{int(power * 100)}"] = round(p_t, 3)
    return implied
