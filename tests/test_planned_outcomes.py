"""The analysis dataset is built from the platform's forms as each protocol's analysis plan declares it."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from stroketrial.analysis.planned_outcomes import derive_all_of, outcomes_from_forms, received_populations
from stroketrial.cli.analysis import read_dataset
from stroketrial.protocol import load_builtin
from stroketrial.report import analyse


def _sich_endpoint(trial: str):
    protocol = load_builtin(trial)
    return protocol, next(e for e in protocol.endpoints if e.analysis and e.analysis.outcome.column == "sich")


def _export(tmp_path, tables: dict[str, str]):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in tables.items():
            archive.writestr(f"trial/{name}.csv", text)
    return path


@pytest.mark.parametrize("trial", ["amass-2", "angel-rescue", "impact-lvo"])
def test_sich_is_derived_by_the_heidelberg_classification_from_its_components(trial):
    """Heidelberg (von Kummer 2015): a haemorrhage on imaging, a deterioration (NIHSS up 4 or more, 2 or more in one
    category, or a major intervention), and no alternative explanation."""
    _, endpoint = _sich_endpoint(trial)
    form = pd.DataFrame([
        # class, NIHSS increase, 2 in one item, major intervention, causal -> sICH
        ("ph2", 6, False, False, True),       # yes: PH2, NIHSS +6, causal
        ("hi1", 1, True, False, True),        # yes: 2 points in one category is enough
        ("subdural", 0, False, True, True),   # yes: a major intervention is enough
        ("ph1", 3, False, False, True),       # no: the deterioration is too small
        ("ph2", 8, False, False, False),      # no: another explanation
        ("none", None, None, None, None),     # no: no haemorrhage, whatever is blank
        ("ph1", None, False, False, True),    # unknown: the NIHSS increase is not recorded
        (None, 10, False, False, True),       # unknown: imaging not recorded
    ], columns=["haemorrhage_class", "nihss_increase", "nihss_item_increase", "major_intervention",
                "haemorrhage_causal"])
    derived = derive_all_of(endpoint.analysis.outcome.all_of, form)
    assert derived.tolist()[:6] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert derived.iloc[6:].isna().all()


def test_the_export_reader_derives_sich_and_per_protocol_for_amass2(tmp_path):
    protocol = load_builtin("amass-2")
    path = _export(tmp_path, {
        "screening": "patient_id,age,nihss\nP1,70,12\nP2,60,14\nP3,55,9\nP4,66,20\n",
        "randomization": "patient_id,arm,sequence\nP1,albumin,1\nP2,control,2\nP3,albumin,3\nP4,albumin,4\n",
        "visit_h24": ("patient_id,visit_date,haemorrhage_class,nihss_increase,nihss_item_increase,major_intervention,"
                      "haemorrhage_causal\nP1,2026-01-02,ph2,5,False,False,True\nP2,2026-01-03,none,,,,\n"
                      "P3,2026-01-03,hi1,2,False,False,True\n"),
        "visit_infusion_monitoring": "patient_id,visit_date,infusion_completed,sbp_max_mmhg\nP1,2026-01-01,True,150\n"
                          "P3,2026-01-02,False,140\n",
    })
    data = read_dataset(path, protocol).set_index("patient_id")
    assert data["sich"].tolist()[:3] == [1.0, 0.0, 0.0] and np.isnan(data.loc["P4", "sich"])
    # P3's infusion was not given: as treated a control, not per protocol; P4 has no infusion form: as allocated,
    # not confirmed per protocol; the control patient is per protocol (no treatment to receive)
    assert data["treated_arm"].tolist() == ["albumin", "control", "control", "albumin"]
    assert data["per_protocol"].tolist() == [True, True, False, False]


def test_angel_rescue_final_etici_is_read_from_the_end_of_the_procedure_and_per_protocol_from_the_rescue(tmp_path):
    protocol = load_builtin("angel-rescue")
    # the eligibility grade (eTICI 0-1 after failed passes) is on the screening form; the final grade is not
    path = _export(tmp_path, {
        "screening": "patient_id,age,etici\nP1,70,1\nP2,60,0\nP3,55,1\nP4,50,1\n",
        "randomization": ("patient_id,arm,sequence\nP1,rescue_stenting,1\nP2,continued_thrombectomy,2\n"
                          "P3,rescue_stenting,3\nP4,continued_thrombectomy,4\n"),
        "visit_end_of_procedure": ("patient_id,visit_date,etici,rescue_treatment\nP1,2026-01-01,2b67,stenting\n"
                            "P2,2026-01-01,2a,further_passes\nP3,2026-01-01,3,further_passes\nP4,2026-01-01,1,none\n"),
    })
    data = read_dataset(path, protocol).set_index("patient_id")
    final = next(e for e in protocol.endpoints if e.analysis and e.analysis.outcome.visit == "end_of_procedure")
    assert data[final.analysis.outcome.column].tolist() == ["2b67", "2a", "3", "1"]
    assert data["treated_arm"].tolist() == ["rescue_stenting", "continued_thrombectomy", "continued_thrombectomy",
                                            "continued_thrombectomy"]
    # P3 crossed over; P4 received neither rescue (no further treatment): analysed as allocated, not per protocol
    assert data["per_protocol"].tolist() == [True, True, False, False]
    analysis = analyse(protocol, data.reset_index(), population="pp")
    assert analysis.n == 2
    # the report says what each arm received, with labels, from every patient allocated (not only the analysed)
    names = {a.id: a.name for a in protocol.arms}
    assert analysis.received == [
        f"{names['rescue_stenting']} (n = 2): rescue treatment received: further thrombectomy passes 1, rescue "
        "stenting 1; per protocol 1; analysed as treated in another arm 1",
        f"{names['continued_thrombectomy']} (n = 2): rescue treatment received: further thrombectomy passes 1, no "
        "further treatment 1; per protocol 1; analysed as treated in another arm 0"]


def test_impact_lvo_per_protocol_needs_all_three_intravenous_doses(tmp_path):
    protocol = load_builtin("impact-lvo")
    path = _export(tmp_path, {
        "screening": "patient_id,age\nP1,70\nP2,60\nP3,55\n",
        "randomization": "patient_id,arm,sequence\nP1,methylprednisolone,1\nP2,placebo,2\nP3,placebo,3\n",
        "visit_d3": "patient_id,visit_date,iv_doses_given\nP1,2026-01-04,3\nP2,2026-01-04,2\n",
    })
    data = read_dataset(path, protocol).set_index("patient_id")
    assert data["per_protocol"].tolist() == [True, False, False]
    assert data["treated_arm"].tolist() == ["methylprednisolone", "placebo", "placebo"]  # a placebo: as allocated


def test_isis_hermes_counts_adverse_events_over_every_visit_and_treats_the_uninfused_as_controls(tmp_path):
    protocol = load_builtin("isis-hermes")
    path = _export(tmp_path, {
        "screening": "patient_id,age,nihss\nP1,50,10\nP2,60,12\nP3,45,9\n",
        "randomization": "patient_id,arm,sequence\nP1,msc,1\nP2,control,2\nP3,msc,3\n",
        "visit_msc_infusion": "patient_id,visit_date,msc_dose_group,cells_infused_million\nP1,2026-01-20,100,98\n"
                          "P3,2026-01-25,300,0\n",
        "visit_w2": "patient_id,visit_date,adverse_events_count\nP1,2026-01-15,1\nP2,2026-01-15,0\nP3,2026-01-15,2\n",
        "visit_m6": ("patient_id,visit_date,adverse_events_count,fmri_mi4a_mi4p\nP1,2026-07-01,2,1.5\n"
                     "P2,2026-07-01,1,0.4\n"),
        "visit_y2": "patient_id,visit_date,adverse_events_count,fmri_mi4a_mi4p\nP1,2028-01-01,0,2.0\n",
    })
    data = read_dataset(path, protocol).set_index("patient_id")
    assert data["adverse_events_count"].tolist() == [3, 1, 2]
    assert data["fmri_mi4a_mi4p"].tolist()[0] == 2.0 and data["fmri_mi4a_mi4p"].iloc[1:].isna().all()
    assert data["treated_arm"].tolist() == ["msc", "control", "control"]
    # feasibility is a proportion of the patients ALLOCATED MSCs (the plan analyses it in the ITT population),
    # even though the trial's primary population is as treated
    analysis = analyse(protocol, data.reset_index())
    assert analysis.population == "at"
    feasibility = next(s for s in analysis.sections if s.method == "single_arm_proportion")
    assert feasibility.results[0].estimate == pytest.approx(0.5) and feasibility.results[0].n == 2


def test_a_column_the_dataset_already_holds_is_kept():
    protocol = load_builtin("amass-2")
    data = pd.DataFrame({"patient_id": ["P1"], "arm": ["albumin"], "sich": [0.0]})
    forms = {"h24": pd.DataFrame({"patient_id": ["P1"], "haemorrhage_class": ["ph2"], "nihss_increase": [9],
                                  "nihss_item_increase": [False], "major_intervention": [False],
                                  "haemorrhage_causal": [True]})}
    assert outcomes_from_forms(protocol, data, forms, {})["sich"].tolist() == [0.0]


def test_a_patient_of_an_arm_without_the_record_received_the_allocation():
    rule = load_builtin("isis-hermes").analysis_plan.treatment_received
    data = pd.DataFrame({"patient_id": ["A", "B"], "arm": ["control", "msc"]})
    out = received_populations(rule, data, ["msc", "control"], None)
    assert out["per_protocol"].tolist() == [True, False]
    assert out["treated_arm"].tolist() == ["control", "msc"]
