"""Protocols load from YAML, stay immutable, and say exactly what is wrong with a bad file."""

import json
import textwrap

import pydantic
import pytest

from stroketrial.protocol import BUILTIN_IDS, ProtocolError, load_builtin, load_protocol, parse_protocol, \
    protocol_json_schema, resolve

MINIMAL = textwrap.dedent("""\
    id: mini
    acronym: MINI
    title: A minimal trial
    registry_id: NCT00000001
    source: test
    sponsor: test
    phase: "2"
    design: {allocation: non_randomized, model: parallel, masking: open_label, centres: single, summary: s}
    population: adults
    inclusion:
      - id: nihss
        text: NIHSS of at least 6
        rule: {field: nihss, op: ">=", value: 6}
    arms: [{id: a, name: A, role: experimental, description: d}]
    endpoints: [{id: e, name: E, role: primary, type: binary, measure: mrs, definition: d}]
    visits: [{id: v, name: V, day: 0}]
    sample_size: {total: 10, method: none}
    """)


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_builtin_protocol_loads_with_the_registry_id(trial):
    protocol = load_builtin(trial)
    assert protocol.id == trial and protocol.registry_id.startswith("NCT")
    assert all(c.text.strip() for c in protocol.criteria)


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_every_choice_beyond_the_source_is_an_assumption_with_a_reason(trial):
    protocol = load_builtin(trial)
    not_in_source = [c for c in protocol.criteria if c.text.startswith("(not in the abstract)")]
    assert all(c.assumption for c in not_in_source)
    if protocol.randomization is not None:
        assert protocol.randomization.assumption, "no source names the factors: an assumption is required"


def test_the_five_trials_declare_their_design():
    assert load_builtin("amass-2").randomization.method == "minimization"
    assert load_builtin("impact-lvo").randomization.blinded_kits
    assert load_builtin("isis-hermes").allocation_ratio == "2:1"
    assert load_builtin("angel-rescue").randomization.timing.startswith("during the procedure")
    amass1 = load_builtin("amass-1")
    assert amass1.randomization is None
    assert [lvl.dose for lvl in amass1.dose_escalation.levels] == [0.25, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60]


def test_impact_lvo_sample_size_inflates_by_n_times_one_plus_r():
    ss = load_builtin("impact-lvo").sample_size
    assert ss.total == 1060 and ss.assumptions["evaluable_total"] == 1010
    assert round(ss.assumptions["evaluable_per_arm"] * (1 + ss.assumptions["non_adherence"])) == ss.per_arm[
        "placebo"]


def test_protocols_are_immutable():
    with pytest.raises(pydantic.ValidationError):
        load_builtin("amass-2").sample_size.total = 1


def test_a_minimal_protocol_parses():
    assert parse_protocol(MINIMAL, "mini.yaml").inclusion[0].rule.threshold == 6


@pytest.mark.parametrize("change, expected", [
    (("{field: nihss,", "{field: nihs,"), "mini.yaml: inclusion[0].rule: Value error, unknown variable 'nihs'"),
    (('">=", value: 6}', '">=", value: 60}'),
     "inclusion[0].rule: threshold 60 is outside the allowed range: NIHSS is a whole number from 0 to 42"),
    (('op: ">="', 'op: "=>"'), "inclusion[0].rule.op: Input should be"),
    (("rule: {field", "rul: {field"), "inclusion[0].rul: unknown key"),
    (("registry_id: NCT00000001", "registry_id: NCT123"),
     "registry_id: String should match pattern '^NCT\\d{8}$' (got 'NCT123')"),
    (("rule: {field: nihss, op: \">=\", value: 6}", "rule: {flag: nihss}"),
     "inclusion[0].rule.flag: Value error, 'nihss' is not a yes/no variable"),
    (("rule: {field: nihss, op: \">=\", value: 6}", "rule: {field: creatinine_umol_l, op: '>', value: 2, unit: mg/L}"),
     "unit 'mg/L' is not allowed"),
    (("rule: {field: nihss, op: \">=\", value: 6}", "rule: {nonsense: 1}"), "a rule is {field, op, value}"),
])
def test_errors_name_the_file_the_path_and_the_reason(change, expected):
    old, new = change
    assert old in MINIMAL
    with pytest.raises(ProtocolError) as err:
        parse_protocol(MINIMAL.replace(old, new), "mini.yaml")
    assert expected.removeprefix("mini.yaml: ").replace("Value error, ", "") in str(err.value)
    assert str(err.value).startswith("mini.yaml: ")


def test_malformed_yaml_gives_line_and_column():
    with pytest.raises(ProtocolError, match=r"^bad.yaml:3:\d+: not valid YAML"):
        parse_protocol("id: x\ntitle: [unclosed\nphase: 2\n", "bad.yaml")


def test_a_criterion_is_either_a_rule_or_an_attestation():
    text = MINIMAL.replace("rule: {field: nihss, op: \">=\", value: 6}",
                           "rule: {field: nihss, op: \">=\", value: 6}\n    attestation: also asked?")
    with pytest.raises(ProtocolError, match="exactly one of `rule`"):
        parse_protocol(text, "mini.yaml")


def test_unknown_trial_lists_the_builtins():
    with pytest.raises(ProtocolError, match="built-in trials are amass-1, amass-2"):
        resolve("amass-9")


def test_protocol_file_on_disk(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(MINIMAL)
    assert resolve(str(path)).id == "mini"
    with pytest.raises(ProtocolError, match="cannot read"):
        load_protocol(tmp_path / "absent.yaml")


def test_json_schema_describes_the_protocol():
    schema = json.loads(protocol_json_schema())
    assert schema["title"] == "Protocol"
    assert {"inclusion", "exclusion", "arms", "randomization", "endpoints", "visits"} <= set(schema["properties"])


# ---- assessments reserved for the blinded outcome assessor (PROBE) -------------------------------------------
PROBE = MINIMAL.replace("masking: open_label,", "masking: open_label_blinded_endpoint,")


def test_amass2_reserves_the_90_day_mrs_for_the_blinded_assessor_and_the_others_reserve_nothing():
    reserved = {(t, v.id): v.assessor_only for t in BUILTIN_IDS for v in load_builtin(t).visits if v.assessor_only}
    assert reserved == {("amass-2", "d90"): ["mrs"]}
    d90 = next(v for v in load_builtin("amass-2").visits if v.id == "d90")
    assert "endpoint-blinded" in d90.assessor_only_text and "assess" in d90.assumption


def test_a_reserved_assessment_parses():
    text = PROBE.replace("visits: [{id: v, name: V, day: 0}]",
                         "visits: [{id: v, name: V, day: 90, assessments: [mrs, death], assessor_only: [mrs]}]")
    assert parse_protocol(text, "mini.yaml").visits[0].assessor_only == ["mrs"]
    assert parse_protocol(PROBE, "mini.yaml").visits[0].assessor_only == []  # optional: nothing reserved


@pytest.mark.parametrize("visit, expected", [
    ("{id: v, name: V, day: 90, assessments: [mrs, death], assessor_only: [nihss]}",
     "mini.yaml: visits[0].assessor_only: 'nihss' is not an assessment of this visit (mrs, death)"),
    ("{id: v, name: V, day: 90, assessments: [mrs], assessor_only: [mrs, mrs]}",
     "mini.yaml: visits[0].assessor_only: 'mrs' is named twice"),
    ("{id: v, name: V, day: 90, assessments: [mrs], assessor_only: [MRS]}",
     "mini.yaml: visits[0].assessor_only[0]: String should match pattern '^[a-z][a-z0-9_]*$' (got 'MRS')"),
    ("{id: v, name: V, day: 90, assessments: [mrs], assessor_only_text: endpoint-blinded}",
     "mini.yaml: visits[0]: assessor_only_text quotes the source for assessor_only, which names no assessment"),
    ("{id: v, name: V, day: 90, assessments: [mrs], assessor_only: mrs}",
     "mini.yaml: visits[0].assessor_only: Input should be a valid list"),
])
def test_a_bad_reservation_is_refused_naming_the_field_and_the_value(visit, expected):
    with pytest.raises(ProtocolError) as err:
        parse_protocol(PROBE.replace("visits: [{id: v, name: V, day: 0}]", f"visits: [{visit}]"), "mini.yaml")
    assert expected in str(err.value)


def test_an_open_label_trial_has_no_blinded_assessor():
    text = MINIMAL.replace("visits: [{id: v, name: V, day: 0}]",
                           "visits: [{id: v, name: V, day: 90, assessments: [mrs], assessor_only: [mrs]}]")
    with pytest.raises(ProtocolError, match=r"design\.masking is open_label: use open_label_blinded_endpoint"):
        parse_protocol(text, "mini.yaml")


def test_a_visit_of_some_arms_reserves_nothing():
    """The outcome assessor is shown the visits it records: one that only some arms have would show it the arm."""
    text = PROBE.replace("visits: [{id: v, name: V, day: 0}]",
                         "visits: [{id: v, name: V, day: 90, arms: [a], assessments: [mrs], assessor_only: [mrs]}]")
    with pytest.raises(ProtocolError, match="would tell the blinded outcome assessor the arm"):
        parse_protocol(text, "mini.yaml")


def test_an_outcome_reported_as_a_term_the_safety_information_lacks_is_refused():
    from importlib import resources

    import yaml

    text = resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    for endpoint in data["endpoints"]:
        if endpoint.get("measure") == "sich":
            endpoint["analysis"]["outcome"]["reported_as"] = "brain bleed"
    with pytest.raises(ProtocolError, match="reported_as 'brain bleed' is not a term of the reference"):
        parse_protocol(yaml.safe_dump(data, allow_unicode=True), "amass-2.yaml")
