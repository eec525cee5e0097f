"""One row per randomized patient from the platform's tables (the export's CSV files, or the same rows read from
the database): screening data, arm and sequence, the outcomes the analysis plan names (planned_outcomes.py) and,
where the plan defines them, the per-protocol and as-treated populations. The `analyze` command reads an export
with it; the DSMB's interim analysis reads the live database with it."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..protocol import Protocol
from .planned_outcomes import outcomes_from_forms, received_populations
from .result import AnalysisInputError


def dataset_from_tables(tables: Mapping[str, pd.DataFrame], protocol: Protocol | None, source: str,
                        pooled: bool = False) -> pd.DataFrame:
    """The analysis dataset; `source` names where the tables came from, for the messages. `pooled`: the tables of a
    reader who sees no arm (a blinded export), for summaries of all patients together: no arm, nothing derived
    from it (the per-protocol and as-treated populations)."""
    if "screening" not in tables or "randomization" not in tables:
        raise AnalysisInputError(f"{source}: not a stroketrial export (screening.csv and randomization.csv expected)")
    rand = tables["randomization"]
    if pooled:
        data = tables["screening"].merge(rand[["patient_id"]], on="patient_id")
        forms = {name.removeprefix("visit_"): t for name, t in tables.items() if name.startswith("visit_")}
        others = {name: t for name, t in tables.items() if not name.startswith("visit_")}
        return data if protocol is None else outcomes_from_forms(protocol, data, forms, others)
    if "arm" not in rand.columns:
        raise AnalysisInputError(f"{source}: the export holds no arms (it was made by a blinded user); export it as "
                                 "the DSMB or an unblinded statistician (for the final analysis: after the "
                                 "database lock, which the report's title page then states)")
    data = tables["screening"].merge(rand[["patient_id", "arm", "sequence"]], on="patient_id")
    if "escalation" in tables:  # a dose-escalation trial: each patient's cohort, level, phase and DLT
        data = data.merge(tables["escalation"][["patient_id", "cohort", "dose_level", "dose", "phase", "dlt"]],
                          on="patient_id", how="left")
    if protocol is None:
        return data
    forms = {name.removeprefix("visit_"): t for name, t in tables.items() if name.startswith("visit_")}
    others = {name: t for name, t in tables.items() if not name.startswith("visit_")}
    data = outcomes_from_forms(protocol, data, forms, others)
    received = protocol.analysis_plan.treatment_received if protocol.analysis_plan else None
    if received is not None:
        data = received_populations(received, data, [a.id for a in protocol.arms], forms.get(received.visit))
    return data
