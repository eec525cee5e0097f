"""The statistical analysis plan lives in the protocol, and the report runs exactly the plan."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stroketrial.analysis import binary, continuous, counts
from stroketrial.analysis.simulated_trial import simulate_trial
from stroketrial.protocol import BUILTIN_IDS, ProtocolError, load_builtin, parse_protocol
from stroketrial.report import analyse

REFERENCE = {row["name"]: float(row["value"]) for row in csv.DictReader(
    (Path(__file__).parent / "reference" / "plan_reference.csv").read_text(encoding="utf-8").splitlines())}
BUILTIN = Path(__file__).parent.parent / "src" / "stroketrial" / "protocol" / "builtin"
RANDOMIZED = [t for t in BUILTIN_IDS if load_builtin(t).randomization is not None]


def _with(trial: str, change) -> str:
    """The built-in protocol's YAML with one change applied to its parsed document."""
    document = yaml.safe_load((BUILTIN / f"{trial}.yaml").read_text(encoding="utf-8"))
    change(document)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _endpoint(document: dict, endpoint_id: str) -> dict:
    return next(e for e in document["endpoints"] if e["id"] == endpoint_id)


def test_each_randomized_seed_trial_declares_an_analysis_for_every_endpoint():
    for trial in RANDOMIZED:
        protocol = load_builtin(trial)
        assert protocol.analysis_plan is not None and protocol.analysis_plan.populations, trial
        assert [e.id for e in protocol.endpoints if e.analysis is None] == [], trial


def test_the_plan_follows_the_seeds():
    # ANGEL-RESCUE (seed 004): "The primary efficacy endpoint is the proportion of patients achieving a modified
    # Rankin Scale (mRS) score of 0-2 at 90±7 days."
    primary = load_builtin("angel-rescue").primary_endpoints[0].analysis
    assert primary is not None and primary.outcome.at_most == 2 and primary.outcome.visit == "d90"
    assert primary.method == "binary" and primary.better == "higher"
    # IMPACT-LVO (seed 002): "The intention-to-treat principle will be applied to the primary analysis"
    impact = load_builtin("impact-lvo")
    assert impact.analysis_plan.primary_population == "itt"
    assert impact.primary_endpoints[0].analysis.method == "ordinal_shift"
    # ISIS-HERMES (seed 003): "We compared "treated" and "control" groups using as-treated analyses"; "Treatment
    # feasibility was 80%" is a proportion in the MSC arm, not a comparison
    hermes = load_builtin("isis-hermes")
    assert hermes.analysis_plan.primary_population == "at"
    feasibility = next(e for e in hermes.endpoints if e.analysis and e.analysis.method == "single_arm_proportion")
    assert feasibility.analysis.arm == "msc"
    assert {e.analysis.method for e in hermes.endpoints if e.type == "continuous" and e.analysis} >= {"mixed_model"}


@pytest.mark.parametrize("change, message", [
    (lambda d: _endpoint(d, "mrs_90d_shift")["analysis"].update(method="binary"),
     r"endpoint 'mrs_90d_shift': analysis.method binary does not suit an endpoint of type ordinal; allowed: "
     r"ordinal_shift, mixed_model"),
    (lambda d: _endpoint(d, "sich_48h")["analysis"]["outcome"].update(visit="d30"),
     r"analysis.outcome.visit 'd30' is not a visit of the schedule"),
    (lambda d: _endpoint(d, "sich_48h")["analysis"]["outcome"].update(visit="d90"),
     r"analysis.outcome.assessment 'haemorrhage_class' is not on the d90 form"),
    (lambda d: _endpoint(d, "sich_48h")["analysis"]["outcome"]["all_of"][0].update(one_of=["ph3"]),
     r"analysis.outcome.all_of: haemorrhage_class one_of \['ph3'\]: allowed none, hi1, hi2, ph1, ph2"),
    (lambda d: _endpoint(d, "sich_48h")["analysis"]["outcome"]["all_of"][1]["any_of"][0].update(at_least=None,
                                                                                                 **{"is": True}),
     r"nihss_increase \(integer\) is not yes/no: compare it with at_least or one_of"),
    (lambda d: _endpoint(d, "sich_48h")["analysis"]["outcome"]["all_of"][2].update(at_least=1),
     r"condition on 'haemorrhage_causal': give exactly one of at_least, one_of, is"),
    (lambda d: (_endpoint(d, "mortality_90d")["analysis"].update(population="pp"),
                d["analysis_plan"]["populations"].pop("pp")),
     r"endpoint 'mortality_90d': analysis.population 'pp' is not among the populations the plan defines"),
    (lambda d: _endpoint(d, "mrs_90d_shift")["analysis"]["outcome"].update(at_most=2),
     r"derive a yes/no outcome: the endpoint's type must be binary"),
    (lambda d: _endpoint(d, "mortality_90d")["analysis"].update(adjust=["shoe_size"]),
     r"analysis.adjust names \['shoe_size'\], which are not variables of the data dictionary"),
    (lambda d: d["analysis_plan"].update(primary_population="pp", populations={"itt": "all randomized"}),
     r"analysis_plan: .*primary_population 'pp' is not among the populations defined \(itt\)"),
    (lambda d: _endpoint(d, "mrs_90d_0_2")["analysis"].update(better="sideways"),
     r"endpoints\[0\].analysis.better: Input should be 'higher' or 'lower' \(got 'sideways'\)"),
    (lambda d: d.pop("analysis_plan"), r"endpoints declare analyses but the protocol has no analysis_plan"),
])
def test_a_bad_plan_is_refused_naming_the_field(change, message):
    with pytest.raises(ProtocolError, match=message):
        parse_protocol(_with("amass-2", change), "plan.yaml")


def test_a_grade_cut_must_be_a_grade():
    def bad(d):
        _endpoint(d, "final_reperfusion")["analysis"]["outcome"]["at_least"] = "2b"

    with pytest.raises(ProtocolError, match=r"at_least '2b' is neither a number nor an eTICI grade"):
        parse_protocol(_with("angel-rescue", bad), "plan.yaml")


@pytest.fixture(scope="module")
def amass2():
    return simulate_trial(load_builtin("amass-2"), n=240, seed=5)


def test_the_report_reads_the_mrs_cut_from_the_plan(amass2):
    """mRS 0-1 instead of 0-2 in the plan: the report counts mRS 0-1 (it once read the cut from the endpoint id)."""
    def cut_at_one(d):
        _endpoint(d, "mrs_90d_0_2")["analysis"]["outcome"]["at_most"] = 1

    protocol = parse_protocol(_with("amass-2", cut_at_one), "plan.yaml")
    analysis = analyse(protocol, amass2.data, amass2.long, imputations=2, bootstrap=20)
    section = next(s for s in analysis.sections if s.method == "binary" and "mRS" in s.title)
    rd = next(r for r in section.results if r.measure == "risk difference")
    mrs, arm = amass2.data["mrs_90d"], amass2.data["arm"]
    expected = ((mrs[arm == "albumin"] <= 1).sum() / mrs[arm == "albumin"].notna().sum()
                - (mrs[arm == "control"] <= 1).sum() / mrs[arm == "control"].notna().sum())
    assert rd.estimate == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("trial", RANDOMIZED)
def test_a_simulated_trial_analyses_every_endpoint_of_the_plan(trial):
    protocol = load_builtin(trial)
    sim = simulate_trial(protocol, n=240, seed=3)
    analysis = analyse(protocol, sim.data, sim.long, funnel=sim.funnel, imputations=2, bootstrap=20)
    for endpoint, section in zip(protocol.endpoints, analysis.sections, strict=True):
        assert section.method == endpoint.analysis.method
        assert section.results, (endpoint.id, section.notes)
        assert not [n for n in section.notes if "not analysed" in n], (endpoint.id, section.notes)
    assert analysis.population == protocol.analysis_plan.primary_population
    methods = " ".join(analysis.methods)
    ran = {s.method for s in analysis.sections}
    assert ("proportional-odds" in methods) == ("ordinal_shift" in ran)  # Methods says what ran, nothing else
    assert ("mixed model" in methods) == ("mixed_model" in ran)
    assert protocol.analysis_plan.multiplicity in methods


def test_the_mixed_models_take_the_schedules_visit_order():
    protocol = load_builtin("isis-hermes")
    sim = simulate_trial(protocol, n=60, seed=2)
    analysis = analyse(protocol, sim.data, sim.long, imputations=2, bootstrap=20)
    section = next(s for s in analysis.sections if s.method == "mixed_model")
    shown = [r.details["visit"] for r in section.results]
    schedule = [v.name for v in protocol.visits if v.name in shown]
    assert shown == schedule and shown[0] == protocol.visits[0].name


# ---- the analyses the plan adds, against R (tests/reference/make_plan_reference.R) ---------------------------
def test_single_arm_proportion_is_the_exact_interval_of_r():
    df = pd.DataFrame({"arm": ["msc"] * 15 + ["control"] * 5, "treated": [1] * 12 + [0] * 3 + [0] * 5})
    result = binary.single_arm_proportion(df, "treated", "arm", "msc")
    assert result.estimate == pytest.approx(0.8)
    assert result.ci_low == pytest.approx(REFERENCE["clopper_pearson_12_15_low"], abs=1e-9)
    assert result.ci_high == pytest.approx(REFERENCE["clopper_pearson_12_15_high"], abs=1e-9)


def test_mean_difference_is_welchs_t_of_r():
    a = [12.1, 15.3, 9.8, 20.4, 17.2, 11.9, 14.4]
    b = [10.2, 8.7, 13.1, 9.9, 7.5, 11.0]
    df = pd.DataFrame({"arm": ["t"] * len(a) + ["c"] * len(b), "y": a + b})
    result = continuous.mean_difference(df, "y", "arm", "t", "c")
    for got, key in ((result.estimate, "welch_difference"), (result.ci_low, "welch_low"),
                     (result.ci_high, "welch_high"), (result.p_value, "welch_p")):
        assert got == pytest.approx(REFERENCE[key], abs=1e-9), key


def test_rate_ratio_is_rs_poisson_glm_with_the_hc0_sandwich():
    events = [0, 1, 0, 2, 1, 0, 0, 3, 1, 0, 0, 1, 4, 0, 1, 2, 1, 3, 0, 2, 5, 1, 2, 4]
    df = pd.DataFrame({"arm": ["msc"] * 16 + ["control"] * 8, "n": events})
    result = counts.rate_ratio(df, "n", "arm", "msc", "control")
    for got, key in ((result.estimate, "rate_ratio"), (result.ci_low, "rate_ratio_low"),
                     (result.ci_high, "rate_ratio_high"), (result.p_value, "rate_ratio_p")):
        assert got == pytest.approx(REFERENCE[key], rel=1e-6), key
    assert result.details["patients_with_event_treatment"] == int(np.count_nonzero(events[:16]))


# ---- the protocol is the single source of truth ---------------------------------------------------------------
def _ids() -> set[str]:
    from stroketrial.clinical.assessments import ASSESSMENTS
    from stroketrial.clinical.dictionary import VARIABLES
    from stroketrial.clinical.scales import OcclusionSite

    ids = set(BUILTIN_IDS)
    for trial in BUILTIN_IDS:
        protocol = load_builtin(trial)
        ids |= {e.id for e in protocol.endpoints} | {v.id for v in protocol.visits}
    # Ids that are also words of the clinical vocabulary (an assessment, a dictionary variable, an occlusion
    # site such as m1, `baseline`) name the measurement, not the trial's endpoint or visit.
    return ids - set(ASSESSMENTS) - set(VARIABLES) - {s.value for s in OcclusionSite} - {"baseline"}


def test_no_trial_endpoint_or_visit_id_appears_in_python():
    """A trial, endpoint or visit id used as a value or a key ("amass-2", "d90", "visit_d90") in Python means a
    rule outside the protocol. Prose (help examples, messages) may name a trial; it has spaces."""
    literal = re.compile(r"""(["'])([^\s"']*)\1""")
    ids = _ids()
    found = []
    for path in sorted((Path(__file__).parent.parent / "src" / "stroketrial").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in literal.finditer(line):
                found += [f"{path.name}:{number}: {i}" for i in ids
                          if re.search(rf"(?<![a-z0-9]){re.escape(i)}(?![a-z0-9])", match.group(2))]
    assert found == []


def test_the_id_check_finds_an_id_where_one_is_used():
    """The check above is live: it finds a visit id used as a key, and leaves a help example alone."""
    literal = re.compile(r"""(["'])([^\s"']*)\1""")
    tokens = [m.group(2) for line in ('columns = {"visit_d90": 1}', 'help="stroketrial dose amass-2 --weight-kg 70"')
              for m in literal.finditer(line)]
    hits = [t for t in tokens for i in _ids() if re.search(rf"(?<![a-z0-9]){re.escape(i)}(?![a-z0-9])", t)]
    assert hits == ["visit_d90"]


def test_as_treated_mixed_models_analyse_patients_in_the_arm_they_received():
    """ISIS-HERMES compared "treated" and "control" as treated: a patient allocated MSCs who did not receive them
    counts as control in the repeated-measures models too (they once kept the allocated arm)."""
    from stroketrial.analysis import longitudinal

    protocol = load_builtin("isis-hermes")
    sim = simulate_trial(protocol, n=60, seed=4)
    data = sim.data.copy()
    crossed = data.index[data["arm"] == "msc"][:4]
    data.loc[crossed, "treated_arm"] = "control"
    itt = analyse(protocol, data, sim.long, population="itt", imputations=2, bootstrap=20)
    at = analyse(protocol, data, sim.long, population="at", imputations=2, bootstrap=20)
    column = next(e for e in protocol.endpoints if e.analysis and e.analysis.method == "mixed_model").analysis.outcome
    first = next(s for s in at.sections if s.method == "mixed_model")
    received = dict(zip(data["patient_id"], data["treated_arm"], strict=True))
    long = sim.long.assign(arm=sim.long["patient_id"].map(received))
    order = [v.name for v in protocol.visits]
    expected = longitudinal.mixed_model(long, column.column, "arm", "msc", "control", order=order)
    assert [r.estimate for r in first.results] == pytest.approx([r.estimate for r in expected], rel=1e-9)
    itt_first = next(s for s in itt.sections if s.method == "mixed_model")
    assert [r.estimate for r in first.results] != pytest.approx([r.estimate for r in itt_first.results], rel=1e-6)


def test_the_export_reader_fills_the_plans_outcomes_from_the_visit_forms_and_counts_the_sae_reports(tmp_path):
    import zipfile

    from stroketrial.cli.analysis import read_dataset

    protocol = load_builtin("amass-2")
    tables = {
        "screening": "patient_id,age\nP1,70\nP2,60\nP3,55\n",
        "randomization": "patient_id,arm,sequence\nP1,albumin,1\nP2,control,2\nP3,albumin,3\n",
        "visit_d90": "patient_id,visit_date,mrs,death\nP1,2026-06-01,2,False\nP2,2026-06-02,6,True\n",
        "sae": "patient_id,term\nP1,pneumonia\nP1,seizure\nP2,death\n",
    }
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in tables.items():
            archive.writestr(f"{name}.csv", text)
    data = read_dataset(path, protocol).set_index("patient_id")
    shift = next(e for e in protocol.endpoints if e.analysis and e.analysis.method == "ordinal_shift")
    death = next(e for e in protocol.endpoints if e.analysis and e.analysis.outcome.assessment == "death")
    count = next(e for e in protocol.endpoints if e.analysis and e.analysis.method == "count")
    assert data[shift.analysis.outcome.column].tolist()[:2] == [2, 6]
    assert data[death.analysis.outcome.column].tolist()[:2] == [0.0, 1.0]
    assert data[count.analysis.outcome.column].tolist() == [2, 1, 0]
