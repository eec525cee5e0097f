"""The analysis dataset from the platform's forms, as the analysis plan declares it.

Each planned outcome is read from its visit's form (a score, a grade, a yes/no), derived from several of
the form's assessments (sICH by the Heidelberg classification: a haemorrhage on imaging, a clinical
deterioration, judged causal), summed over the visits (adverse events since the last visit), or counted
in a log (SAE reports). The record of what each patient received defines the per-protocol population and
the as-treated arms. Pure functions over data frames: the export reader and the simulated trial use them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..protocol import Protocol
from ..protocol.analysis_plan import Condition, Outcome, TreatmentReceived

# A yes/no as the CSV export or a dataset holds it (1 and 1.0 are the same key as True).
_YES: dict[object, bool] = {True: True, False: False, "True": True, "False": False, "true": True, "false": False}


def _masks(condition: Condition, form: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(holds, does not hold) per row; neither where the form does not decide (Kleene logic)."""
    if condition.any_of is not None:
        parts = [_masks(c, form) for c in condition.any_of]
        true = np.logical_or.reduce([t for t, _ in parts])
        return true, np.logical_and.reduce([f for _, f in parts])
    assert condition.assessment is not None
    if condition.assessment not in form.columns:
        missing = np.zeros(len(form), dtype=bool)
        return missing, missing
    raw = form[condition.assessment]
    if condition.at_least is not None:
        number = pd.to_numeric(raw, errors="coerce")
        known = number.notna().to_numpy()
        hit = (number >= condition.at_least).to_numpy()
    elif condition.one_of is not None:
        known = raw.notna().to_numpy()
        hit = raw.astype("string").isin(condition.one_of).fillna(False).to_numpy(dtype=bool)
    else:
        answer = raw.map(lambda v: _YES.get(v) if not pd.isna(v) else None)
        known = answer.notna().to_numpy()
        hit = (answer == condition.is_).fillna(False).to_numpy(dtype=bool)
    return hit & known, ~hit & known


def derive_all_of(conditions: list[Condition], form: pd.DataFrame) -> pd.Series:
    """1.0 where every condition holds, 0.0 where any one fails (sICH is no when imaging shows no
    haemorrhage, whatever else is blank), missing where the form does not decide."""
    parts = [_masks(c, form) for c in conditions]
    true = np.logical_and.reduce([t for t, _ in parts])
    false = np.logical_or.reduce([f for _, f in parts])
    return pd.Series(np.where(true, 1.0, np.where(false, 0.0, np.nan)), index=form.index)


def event_on_form(outcome: Outcome, values: Mapping[str, object]) -> bool:
    """Whether one visit form's values record the outcome's event (sICH by its components, or a yes)."""
    if outcome.all_of is not None:
        return bool(derive_all_of(outcome.all_of, pd.DataFrame([dict(values)])).iloc[0] == 1.0)
    return values.get(outcome.assessment) is True


def events_on_forms(outcome: Outcome, forms: list[Mapping[str, object]]) -> list[bool]:
    """`event_on_form` for many forms at once (one frame, not one per form)."""
    if not forms:
        return []
    if outcome.all_of is not None:
        return [bool(v == 1.0) for v in derive_all_of(outcome.all_of, pd.DataFrame([dict(f) for f in forms]))]
    return [f.get(outcome.assessment) is True for f in forms]


def _visit_value(outcome: Outcome, form: pd.DataFrame) -> pd.Series | None:
    if outcome.all_of is not None:
        return derive_all_of(outcome.all_of, form)
    if outcome.assessment not in form.columns:
        return None
    values = form[outcome.assessment]
    recorded = values.dropna()
    if len(recorded) and recorded.map(lambda v: isinstance(v, (bool, np.bool_)) or v in ("True", "False")).all():
        return values.map(lambda v: float(_YES[v]) if not pd.isna(v) else np.nan)  # a yes/no form field
    return values


def outcomes_from_forms(protocol: Protocol, data: pd.DataFrame, forms: Mapping[str, pd.DataFrame],
                        logs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`data` (one row per patient, with patient_id) with a column for each planned outcome the forms hold.
    `forms`: each visit's form by visit id (patient_id, assessments); `logs`: other records by name (the SAE
    reports as `sae`, the non-serious adverse-event log as `adverse_event`: the export's tables of those names),
    one row per event; an endpoint counted (`method: count`) with that name as its assessment counts each
    patient's rows. A column already in `data` is kept as it is."""
    data = data.copy()
    for endpoint in protocol.endpoints:
        a = endpoint.analysis
        if a is None or a.outcome.column in data.columns:
            continue
        o = a.outcome
        per_patient: pd.Series | None = None
        if o.visit is not None:
            form = forms.get(o.visit)
            if form is None or form.empty:
                continue
            value = _visit_value(o, form)
            if value is None:
                continue
            per_patient = pd.Series(value.to_numpy(), index=form["patient_id"].to_numpy())
        elif o.summed_over_visits:
            recorded = [f.set_index("patient_id")[o.assessment] for f in forms.values()
                        if not f.empty and o.assessment in f.columns]
            if not recorded:
                continue
            stacked = pd.concat([pd.to_numeric(r, errors="coerce") for r in recorded])
            per_patient = stacked.groupby(level=0).sum(min_count=1)
        elif a.method == "count" and o.assessment in logs and "patient_id" in logs[o.assessment].columns:
            counted = logs[o.assessment].groupby("patient_id").size()
            per_patient = data["patient_id"].map(counted).fillna(0).astype(int).set_axis(data["patient_id"])
        if per_patient is not None:
            per_patient = per_patient[~per_patient.index.duplicated(keep="last")]
            data[o.column] = data["patient_id"].map(per_patient).to_numpy()
    return data


def received_populations(rule: TreatmentReceived, data: pd.DataFrame, arm_ids: list[str],
                         form: pd.DataFrame | None) -> pd.DataFrame:
    """`data` with `treatment_received` (the form's value), `treated_arm` and `per_protocol`.

    Received as allocated is per protocol. A patient of an arm the record applies to with nothing recorded is
    not per protocol (receipt is not confirmed) and is analysed as allocated in the as-treated population."""
    data = data.copy()
    value = pd.Series(np.nan, index=data.index, dtype=object)
    if form is not None and not form.empty and rule.assessment in form.columns:
        latest = form.drop_duplicates("patient_id", keep="last").set_index("patient_id")[rule.assessment]
        value = data["patient_id"].map(latest)
    recorded = rule.arms or arm_ids
    applies = data["arm"].isin(recorded)
    treated = data["arm"].astype(object).copy()
    if rule.arm_by_value is not None:
        by_value = rule.arm_by_value
        mapped = value.map(lambda v: by_value.get(str(v)) if isinstance(v, str) else None)
        known = value.notna() & applies
        treated[known & mapped.notna()] = mapped[known & mapped.notna()]
        per_protocol = known & (mapped == data["arm"])
    else:
        amount = pd.to_numeric(value.map(lambda v: _YES.get(v, v) if isinstance(v, (str, bool, np.bool_)) else v),
                               errors="coerce")  # a yes/no record: yes counts 1
        assert rule.at_least is not None
        enough = amount >= rule.at_least
        if rule.otherwise_arm is not None:
            short = applies & amount.notna() & ~enough
            treated[short] = rule.otherwise_arm
        per_protocol = applies & enough
    for key in rule.also:
        if form is not None and key in form.columns and key not in data.columns:
            data[key] = data["patient_id"].map(form.drop_duplicates("patient_id", keep="last")
                                               .set_index("patient_id")[key])
    data["treatment_received"] = value.where(applies)
    data["treated_arm"] = treated
    data["per_protocol"] = per_protocol | ~applies
    return data
