"""IMPACT-LVO's placebo is prepared, not described.

The registry: "The methylprednisolone sodium succinate group patients will receive intra-arterial
methylprednisolone sodium succinate 40mg immediately after the recanalization. Then, intravenous
administration with methylprednisolone sodium succinate 2mg/kg in the next 3 days. The placebo group patients
will receive intra-arterial and intravenous sterile water for injection." The registry states no strength,
diluent or volume: the protocol assumes them (40 mg/mL after reconstitution, made up with 0.9% sodium chloride
to 10 mL intra-arterially over 10 min and to 100 mL intravenously over 30 min), and the unblinded pharmacist
draws up, for the placebo, the volume the active dose would take for this patient's weight (the 160 mg cap
included), of sterile water for injection. Everything else on the two sheets (diluent, volumes, pump rates,
times, the blinded label) is the same.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import uuid

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.dosing import DoseError, dose_instructions
from stroketrial.protocol import BUILTIN_IDS, load_builtin
from stroketrial.protocol.loader import ProtocolError, parse_protocol
from stroketrial.service import SYSTEM, accounts, patients, randomize, trials
from stroketrial.store import Database
from stroketrial.web import create_app

from .test_source_wording import SHARED, normalised, require_seeds
from .trials import impact_lvo
from .trials.helpers import happening_now

PROTOCOL = load_builtin("impact-lvo")
SAME_ON_BOTH_SHEETS = ("route", "timing", "volume_ml", "draw_up_ml", "diluent", "diluent_ml", "infusion_minutes",
                       "rate_ml_min", "rate_ml_h", "due", "label")
RANDOMIZED_AT = dt.datetime(2026, 3, 1, 14, 30, tzinfo=dt.UTC)


def sheet(arm: str, weight_kg: float | None, randomized_at: dt.datetime | None = RANDOMIZED_AT) -> dict:
    """The study-drug administrations of an arm, by route."""
    return {a.route: a for a in dose_instructions(PROTOCOL, arm, weight_kg, randomized_at) if a.route != "procedure"}


# ---- the dose, as the registry gives it and the protocol prepares it -----------------------------------------------
def test_the_registry_words_stand_beside_each_dose_and_the_preparation_is_an_assumption():
    require_seeds()
    document = normalised((SHARED / PROTOCOL.source).read_text(encoding="utf-8"))
    drug, placebo = (next(i for i in PROTOCOL.interventions if i.id == x) for x in ("methylprednisolone", "placebo"))
    for step in [*drug.steps, *placebo.steps]:
        assert step.text and normalised(step.text) in document, step.text
    for step in drug.steps:
        assert step.concentration_mg_per_ml == 40 and step.diluent == "0.9% sodium chloride"
        assert step.assumption and "Not stated by the registry" in step.assumption
        for words in ("40 mg/mL", "0.9% sodium chloride", f"{step.final_volume_ml:g} mL",
                      f"{step.infusion_minutes:g} min", "sterile water for injection"):
            assert words in step.assumption, (step.route, words)
    ia, iv = drug.steps
    assert (ia.amount, ia.unit, ia.per_kg) == (40, "mg", False)  # "methylprednisolone sodium succinate 40mg"
    assert (iv.amount, iv.unit, iv.per_kg, iv.max_amount, iv.repeat_days) == (2, "mg", True, 160, 3)  # 2mg/kg x 3 d
    assert placebo.matches == "methylprednisolone" and placebo.name == "Sterile water for injection"


def test_every_builtin_placebo_matches_a_step_of_its_active_drug():
    for trial in BUILTIN_IDS:
        protocol = load_builtin(trial)
        for intervention in protocol.interventions:
            assert intervention.matching_problem(protocol.interventions) is None, (trial, intervention.id)


# ---- equal volumes at every weight ----------------------------------------------------------------------------------
@pytest.mark.parametrize("weight_kg", [20, 45, 64.5, 70, 79.5, 80, 95, 120, 300])
def test_the_placebo_takes_the_volume_of_the_active_dose_at_every_weight(weight_kg):
    active, placebo = sheet("methylprednisolone", weight_kg), sheet("placebo", weight_kg)
    assert active.keys() == placebo.keys() == {"intra_arterial", "intravenous"}
    for route in active:
        for key in SAME_ON_BOTH_SHEETS:
            assert getattr(placebo[route], key) == getattr(active[route], key), (route, key)
        assert placebo[route].amount is None and placebo[route].unit is None  # no drug in the placebo
        assert placebo[route].draw_up == "Sterile water for injection"
        assert active[route].draw_up == "Methylprednisolone sodium succinate 40 mg/mL"
        # every piece of the active arm's arithmetic is on the placebo sheet too
        assert active[route].notes == placebo[route].notes[1:]
        assert placebo[route].notes[0].startswith("matching placebo for Methylprednisolone sodium succinate")
    iv = active["intravenous"]
    dose_mg = round(min(2 * weight_kg, 160))  # 2 mg/kg, at most 160 mg, to 1 mg
    assert iv.amount == dose_mg
    assert iv.draw_up_ml == pytest.approx(round(dose_mg / 40, 1))
    assert iv.draw_up_ml + iv.diluent_ml == pytest.approx(100)


@pytest.mark.parametrize(("weight_kg", "mg", "drawn", "saline", "capped"), [
    (70, 140, 3.5, 96.5, False),
    (120, 160, 4.0, 96.0, True),  # 2 mg/kg x 120 kg = 240 mg, above the 160 mg cap
])
def test_the_intravenous_sheets_for_70_and_120_kg(weight_kg, mg, drawn, saline, capped):
    active, placebo = sheet("methylprednisolone", weight_kg)["intravenous"], sheet("placebo", weight_kg)["intravenous"]
    assert active.amount == mg and active.unit == "mg"
    for given in (active, placebo):
        assert (given.draw_up_ml, given.diluent, given.diluent_ml, given.volume_ml) == (
            drawn, "0.9% sodium chloride", saline, 100)
        assert (given.infusion_minutes, given.rate_ml_min, given.rate_ml_h) == (30, 3.3, 200)
        assert given.due == ["2026-03-02T14:30+00:00", "2026-03-03T14:30+00:00", "2026-03-04T14:30+00:00"]
        assert f"2 mg/kg × {weight_kg:g} kg = {2 * weight_kg:g} mg" in given.notes
        assert ("capped at 160 mg (protocol maximum per dose)" in given.notes) is capped
        assert f"{mg} mg ÷ 40 mg/mL = {drawn:g} mL" in given.notes
        assert f"{drawn:g} mL + {saline:g} mL 0.9% sodium chloride = 100 mL" in given.notes
        assert "100 mL over 30 min = 3.3 mL/min (200 mL/h)" in given.notes


def test_the_intra_arterial_sheets_do_not_depend_on_weight():
    for weight_kg in (50, 120):
        for given in sheet("methylprednisolone", weight_kg)["intra_arterial"], sheet("placebo", weight_kg)[
                "intra_arterial"]:
            assert (given.draw_up_ml, given.diluent_ml, given.volume_ml) == (1, 9, 10)
            assert (given.infusion_minutes, given.rate_ml_min, given.rate_ml_h) == (10, 1, 60)
            assert given.due == []  # given once, immediately after recanalization
    assert sheet("methylprednisolone", 50)["intra_arterial"].amount == 40


# ---- the blind ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight_kg", [70, 120])
def test_active_and_placebo_sheets_give_the_same_volume_duration_rate_and_label(weight_kg):
    active, placebo = sheet("methylprednisolone", weight_kg), sheet("placebo", weight_kg)
    for route in ("intra_arterial", "intravenous"):
        a, p = active[route], placebo[route]
        assert (a.volume_ml, a.infusion_minutes, a.rate_ml_min, a.rate_ml_h, a.label) == (
            p.volume_ml, p.infusion_minutes, p.rate_ml_min, p.rate_ml_h, p.label)
        assert a.label is not None
        assert "Methylprednisolone sodium succinate or placebo" in a.label  # the blinded wording, on both
        assert "Sterile water" not in a.label and "mg" not in a.label.replace("IMPACT", "")
        assert f"{a.volume_ml:g} mL" in a.label


def test_the_open_label_trials_have_no_blinded_label():
    albumin = next(a for a in dose_instructions(load_builtin("amass-2"), "albumin", 70) if a.route != "procedure")
    assert albumin.label is None and albumin.volume_ml == 210 and albumin.rate_ml_min == 10.5


# ---- a dose is never computed from a guess --------------------------------------------------------------------------
@pytest.mark.parametrize("arm", ["methylprednisolone", "placebo"])
def test_a_missing_weight_is_named(arm):
    with pytest.raises(DoseError, match=r"^weight_kg is missing; a weight-based dose needs the patient's weight"):
        dose_instructions(PROTOCOL, arm, None)


@pytest.mark.parametrize("weight_kg", [19.9, 300.1, 0])
def test_a_weight_outside_20_to_300_kg_is_refused_for_the_placebo_too(weight_kg):
    with pytest.raises(DoseError, match=r"weight_kg .* is outside 20-300 kg"):
        dose_instructions(PROTOCOL, "placebo", weight_kg)


# ---- the command line -----------------------------------------------------------------------------------------------
runner = CliRunner()


def test_the_command_line_prints_the_placebo_preparation():
    result = runner.invoke(app, ["dose", "impact-lvo", "--arm", "placebo", "--weight", "70"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "IMPACT-LVO dose sheet: Placebo, weight 70 kg" in text
    assert "draw up 3.5 mL: Sterile water for injection" in text
    assert "add 96.5 mL 0.9% sodium chloride: 100 mL in all" in text
    assert "give 100 mL, pump 3.3 mL/min (200 mL/h) over 30 min" in text
    assert "(intra-arterial)" in text and "intra_arterial" not in text
    assert "label: IMPACT-LVO study drug: Methylprednisolone sodium succinate or placebo" in text
    assert "dose 140 mg" not in text  # no drug in the placebo


def test_the_command_line_json_gives_both_arms_the_same_volumes():
    sheets = {}
    for arm in ("methylprednisolone", "placebo"):
        result = runner.invoke(app, ["dose", "impact-lvo", "--arm", arm, "--weight-kg", "120", "--json"])
        assert result.exit_code == 0, result.output
        sheets[arm] = {a["route"]: a for a in json.loads(result.stdout)["administrations"]}
    iv_active, iv_placebo = sheets["methylprednisolone"]["intravenous"], sheets["placebo"]["intravenous"]
    assert iv_active["amount"] == 160 and "amount" not in iv_placebo
    for key in ("draw_up_ml", "diluent_ml", "volume_ml", "rate_ml_min", "rate_ml_h", "infusion_minutes", "label"):
        assert iv_active[key] == iv_placebo[key], key
    assert iv_placebo["draw_up_ml"] == 4.0


@pytest.mark.parametrize(("args", "message"), [
    (["--weight", "10"], "weight_kg 10 is outside 20-300 kg; check the weight"),
    ([], "weight_kg is missing; a weight-based dose needs the patient's weight in kg"),
    (["--weight", "seventy"], "Invalid value for '--weight-kg' / '--weight': Input should be a valid number"),
])
def test_a_bad_weight_on_the_command_line_ends_with_one_line_and_exit_code_2(args, message):
    result = runner.invoke(app, ["dose", "impact-lvo", "--arm", "placebo", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and message in result.output, result.output


# ---- the protocol refuses a preparation it cannot follow ------------------------------------------------------------
def _protocol_data() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", "impact-lvo.yaml")
                          .read_text(encoding="utf-8"))


def _with(change) -> str:
    data = copy.deepcopy(_protocol_data())
    interventions = {i["id"]: i for i in data["interventions"]}
    change(interventions)
    for intervention in data["interventions"]:  # a field taken out takes its Chinese wording with it
        for step in intervention.get("steps", []):
            for words in (step.get("translations") or {}).values():
                for attribute in [a for a in words if a not in step]:
                    del words[attribute]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _iv(interventions) -> dict:
    return interventions["methylprednisolone"]["steps"][1]


@pytest.mark.parametrize(("change", "message"), [
    (lambda i: _iv(i).update(concentration_mg_per_ml=0),
     r"interventions\[1\]\.steps\[1\]\.concentration_mg_per_ml: Input should be greater than 0"),
    (lambda i: _iv(i).update(concentration_pct=2),
     r"interventions\[1\]\.steps\[1\]: give concentration_pct \(w/v %\) or concentration_mg_per_ml, not both"),
    (lambda i: _iv(i).pop("diluent"),
     r"steps\[1\]: final_volume_ml needs a diluent \(what the dose is made up with\)"),
    (lambda i: _iv(i).pop("final_volume_ml"),
     r"steps\[1\]: diluent needs final_volume_ml \(the volume the dose is made up to\)"),
    (lambda i: _iv(i).update(final_volume_ml=3),
     r"steps\[1\]: final_volume_ml 3 cannot hold the largest dose, 160 mg = 4 mL at 40 mg/mL"),
    (lambda i: _iv(i).update(unit="cells"), r"steps\[1\]: concentration_mg_per_ml needs a dose in g or mg; unit is "
                                            r"'cells'"),
    (lambda i: [_iv(i).pop(k) for k in ("concentration_mg_per_ml", "diluent", "final_volume_ml")],
     r"steps\[1\]: reconstitution says how the drug reaches concentration_mg_per_ml, which is not given"),
    (lambda i: [_iv(i).pop(k) for k in ("concentration_mg_per_ml", "reconstitution")],
     r"steps\[1\]: final_volume_ml needs concentration_mg_per_ml or concentration_pct"),
    (lambda i: i["placebo"]["steps"][1].update(infusion_minutes=30),
     r"interventions\[2\]: steps\[1\] \(intravenous\) states infusion_minutes: a matching placebo is "
     r"prepared as the methylprednisolone step it matches"),
    (lambda i: i["placebo"]["steps"][1].update(unit="mg", concentration_mg_per_ml=40),
     r"interventions\[2\]: steps\[1\] \(intravenous\) states unit, concentration_mg_per_ml"),
    (lambda i: i["placebo"]["steps"][0].update(amount=40, unit="mg"),
     r"interventions\[2\]: steps\[0\] \(intra_arterial\) states amount, unit"),
    (lambda i: i["placebo"].pop("matches"),
     r"interventions\[2\]: steps\[0\] \(intra_arterial\) states no amount: name the intervention this placebo "
     r"matches \(matches:\)"),
    (lambda i: i["methylprednisolone"].update(matches="placebo"),
     r"interventions\[1\]: matches: only a placebo matches another intervention; kind is drug"),
    (lambda i: i["placebo"].update(matches="placebo"), r"matches: a placebo cannot match itself \(placebo\)"),
    (lambda i: i["mechanical_thrombectomy"]["steps"][0].update(diluent="0.9% sodium chloride"),
     r"interventions\[0\]\.steps\[0\]: a procedure step is not prepared; remove diluent"),
])
def test_the_protocol_refuses_bad_preparation_fields_and_names_them(change, message):
    with pytest.raises(ProtocolError, match=message):
        parse_protocol(_with(change), "impact-lvo.yaml")


@pytest.mark.parametrize(("change", "message"), [
    (lambda i: i["placebo"].update(matches="mechanical_thrombectomy"),
     "matches: mechanical_thrombectomy is a procedure; a placebo matches a drug or a biological"),
    (lambda i: i["placebo"]["steps"][1].update(timing="once daily for the next 3 days"),
     "steps[1] (intravenous, timing 'once daily for the next 3 days') matches 0 steps of methylprednisolone"),
    (lambda i: i["placebo"]["steps"][1].update(repeat_days=2),
     "steps[1] (intravenous) repeat_days 2 differs from methylprednisolone's 3"),
    (lambda i: i["placebo"]["steps"].pop(0),
     "methylprednisolone is also given intra_arterial (immediately after recanalization), with no placebo step"),
])
def test_a_placebo_that_does_not_match_its_drug_is_refused_when_the_protocol_loads(change, message):
    with pytest.raises(ProtocolError, match=re.escape(f"interventions.placebo: {message}")):
        parse_protocol(_with(change), "impact-lvo.yaml")


def test_a_per_kg_dose_with_no_cap_that_outgrows_its_final_volume_is_refused_at_the_bedside():
    def uncapped(i):
        _iv(i).pop("max_amount")
        _iv(i).update(final_volume_ml=10)

    protocol = parse_protocol(_with(uncapped), "impact-lvo.yaml")  # no cap: the protocol cannot check it
    placebo = {a.route: a for a in dose_instructions(protocol, "placebo", 70)}["intravenous"]
    assert (placebo.draw_up_ml, placebo.diluent_ml, placebo.volume_ml) == (3.5, 6.5, 10)
    with pytest.raises(DoseError, match=r"^600 mg is 15 mL, more than final_volume_ml 10 of the protocol"):
        dose_instructions(protocol, "placebo", 300)


# ---- the dose-sheet page --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def impact_site(tmp_path_factory):
    """IMPACT-LVO at one site, patients of 70 and 120 kg, both arms among those of each weight."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('placebo') / 'placebo.db'}")
    db.migrate()
    with db.write() as session:
        trials.create_trial(session, SYSTEM, "impact-lvo", ["S1"])
        for name, role in (("coordinator", "coordinator"), ("pharmacist", "unblinded_pharmacist")):
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password="password-1")
    coordinator = accounts.Actor("coordinator", "coordinator", frozenset({"S1"}))
    pharmacist = accounts.Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
    from stroketrial.service import dose_sheet
    arms = {}
    # Patients of 70 kg get even numbers, of 120 kg odd ones; each weight is randomized until both arms are among
    # its patients (blocks of 2 or 4 make that quick), so every comparison below has its pair.
    for number, weight in ((0, 70), (1, 120)):
        seen: set[str] = set()
        while len(seen) < 2:
            assert number < 40, "both arms among 20 patients of one weight"
            code = f"W{number}"
            data = happening_now(impact_lvo.ELIGIBLE) | {"weight_kg": weight}
            attestations = data.pop("attestations")
            with db.write() as session:
                patients.register(session, coordinator, "impact-lvo", code, "S1", data, attestations)
            with db.write() as session:
                randomize.randomize(session, coordinator, "impact-lvo", code, str(uuid.uuid4()))
            with db.read() as session:
                arms[code] = dose_sheet.dose(session, pharmacist, "impact-lvo", code)["arm"]
            seen.add(arms[code])
            number += 2
    yield db, arms
    db.dispose()


def _signed_in(db, name: str) -> TestClient:
    client = TestClient(create_app(db))
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": name, "password": "password-1", "next": "/"})
    assert response.status_code == 200
    return client


def _cells(html: str, testid: str) -> list[str]:
    return [re.sub(r"\s+", " ", c).strip() for c in re.findall(rf'data-testid="{testid}">(.*?)</td>', html, re.S)]


def test_the_pharmacist_page_shows_the_placebo_preparation_with_labels_not_codes(impact_site):
    db, arms = impact_site
    assert set(arms.values()) == {"methylprednisolone", "placebo"}
    client = _signed_in(db, "pharmacist")
    pages = {}
    for code in arms:
        response = client.get(f"/trials/impact-lvo/patients/{code}/dose")
        assert response.status_code == 200, response.text
        pages[code] = response.text
    placebo = next(code for code, arm in arms.items() if arm == "placebo")
    html = pages[placebo]
    weight = 70 if int(placebo[1:]) % 2 == 0 else 120
    drawn = {70: "3.5", 120: "4"}[weight]
    assert "<td data-arm>Placebo</td>" in html
    assert f"{drawn} mL of Sterile water for injection" in _cells(html, "dose-draw-up")
    assert "1 mL of Sterile water for injection" in _cells(html, "dose-draw-up")
    assert f"{100 - float(drawn):g} mL 0.9% sodium chloride, to 100 mL in all" in _cells(html, "dose-diluent")
    assert _cells(html, "dose-rate") == ["1 mL/min = 60 mL/h over 10 min", "3.3 mL/min = 200 mL/h over 30 min"]
    assert "dose-amount" not in html  # the placebo holds no drug
    assert "intra-arterial" in html and "intra_arterial" not in html
    assert re.search(r"<th[^>]*>Due</th><td>\d{4}-\d\d-\d\d \d\d:\d\d UTC · ", html)
    # the label is the active arm's, word for word, with the kit, for a patient of the same weight
    active = next(code for code, arm in arms.items() if arm == "methylprednisolone"
                  and int(code[1:]) % 2 == int(placebo[1:]) % 2)
    strip_kit = [re.sub(r" · kit \S+$", "", label) for label in _cells(html, "dose-label")]
    assert strip_kit == [re.sub(r" · kit \S+$", "", label) for label in _cells(pages[active], "dose-label")]
    assert all("or placebo" in label and " · kit " in label for label in _cells(html, "dose-label"))
    for testid in ("dose-volume", "dose-rate"):
        assert _cells(html, testid) == _cells(pages[active], testid)


def test_a_blinded_user_gets_the_same_sheet_whichever_arm_the_kit_holds(impact_site):
    db, arms = impact_site
    client = _signed_in(db, "coordinator")
    by_arm = {}
    for code, arm in arms.items():
        if int(code[1:]) % 2 == 0:  # the 70 kg patients
            html = client.get(f"/trials/impact-lvo/patients/{code}/dose").text
            body = html[html.index('<div class="administration"'):html.index("Rounded to")]
            body = re.sub(r"<tr><th[^>]*>Due</th>.*?</tr>", "", body)  # the times of each patient's randomization
            by_arm.setdefault(arm, set()).add(re.sub(r"kit \S+?(?=[<\s])", "kit N", body))
    assert len(by_arm) == 2 and len(by_arm["placebo"] | by_arm["methylprednisolone"]) == 1
    body = next(iter(by_arm["placebo"]))
    assert "Sterile water" not in body and "data-arm" not in body and "Reconstitute" not in body
