"""The data dictionary: scales as types, exact unit conversion, strict records."""

import pytest

from stroketrial.clinical import (ASPECTS, ETICI, MRS, NIHSS, ClinicalValueError, OcclusionSite, PatientDataError,
                                  PrestrokeMRS, parse_patient)
from stroketrial.clinical.units import CREATININE_MOLAR_MASS, GLUCOSE_MOLAR_MASS


class TestScales:
    @pytest.mark.parametrize("scale, low, high", [(NIHSS, 0, 42), (ASPECTS, 0, 10), (MRS, 0, 6),
                                                  (PrestrokeMRS, 0, 5)])
    def test_bounds_are_inclusive(self, scale, low, high):
        assert scale(low) == low and scale(high) == high
        with pytest.raises(ClinicalValueError, match=f"from {low} to {high}"):
            scale(high + 1)
        with pytest.raises(ClinicalValueError):
            scale(low - 1)

    @pytest.mark.parametrize("raw", [True, "12", 12.5, None])
    def test_nihss_refuses_what_is_not_a_whole_number(self, raw):
        with pytest.raises(ClinicalValueError, match="NIHSS"):
            NIHSS(raw)

    def test_a_nihss_is_its_own_type(self):
        assert isinstance(NIHSS(7), NIHSS) and repr(NIHSS(7)) == "NIHSS(7)"

    def test_etici_grades_are_ordered(self):
        order = [ETICI.parse(g) for g in ("0", "1", "2a", "2b50", "2b67", "2c", "3")]
        assert [g.ranks[0] for g in order] == list(range(7))

    def test_bare_2b_spans_2b50_and_2b67(self):
        assert ETICI.parse("2b").ranks == (3, 4) and ETICI.parse("2B").is_ambiguous

    @pytest.mark.parametrize("raw", ["2d", "4", 2, "tici3"])
    def test_unknown_etici_is_refused(self, raw):
        with pytest.raises(ClinicalValueError, match="eTICI is one of"):
            ETICI.parse(raw)

    def test_occlusion_sites_know_their_circulation(self):
        assert OcclusionSite.BASILAR.circulation.value == "posterior"
        assert OcclusionSite.TANDEM_ICA_M1.circulation.value == "anterior"


class TestUnits:
    def test_creatinine_mg_dl_converts_by_molar_mass(self):
        record = parse_patient({"creatinine_umol_l": {"value": 2.0, "unit": "mg/dL"}})
        assert record["creatinine_umol_l"] == pytest.approx(2.0 * 10_000 / float(CREATININE_MOLAR_MASS), rel=1e-15)
        assert record["creatinine_umol_l"] == pytest.approx(176.80, abs=0.01)

    def test_glucose_mg_dl_converts_by_molar_mass(self):
        record = parse_patient({"glucose_mmol_l": {"value": 400, "unit": "mg/dl"}})
        assert record["glucose_mmol_l"] == pytest.approx(400 * 10 / float(GLUCOSE_MOLAR_MASS), rel=1e-15)

    @pytest.mark.parametrize("unit", ["µmol/L", "umol/L", "μmol/L"])
    def test_the_canonical_unit_may_be_spelt_as_people_type_it(self, unit):
        assert parse_patient({"creatinine_umol_l": {"value": 90, "unit": unit}})["creatinine_umol_l"] == 90

    def test_weight_in_pounds_is_converted_exactly(self):
        assert parse_patient({"weight_kg": {"value": 200, "unit": "lb"}})["weight_kg"] == pytest.approx(90.718474)

    def test_unknown_unit_is_refused_naming_field_value_and_allowed_units(self):
        with pytest.raises(PatientDataError) as err:
            parse_patient({"creatinine_umol_l": {"value": 2.0, "unit": "mg/L"}})
        assert str(err.value) == ("creatinine_umol_l: unit 'mg/L' is not allowed for serum creatinine; "
                                  "use one of µmol/L, mg/dL")

    def test_a_unit_on_a_value_that_has_none_is_refused(self):
        with pytest.raises(PatientDataError, match="hematocrit_pct"):
            parse_patient({"hematocrit_pct": {"value": 40, "unit": "%"}})

    def test_converted_value_is_range_checked(self):
        with pytest.raises(PatientDataError, match="out of range"):
            parse_patient({"creatinine_umol_l": {"value": 40, "unit": "mg/dL"}})  # 3536 µmol/L


class TestRecords:
    def test_every_problem_is_reported_at_once(self):
        with pytest.raises(PatientDataError) as err:
            parse_patient({"age": 70.5, "nihss": 45, "nihs": 3, "sex": "m", "pregnant": "no"})
        fields = [e.field for e in err.value.errors]
        assert fields == ["age", "nihss", "nihs", "sex", "pregnant"]
        messages = str(err.value)
        assert "nihss: 45 is out of range; NIHSS is a whole number from 0 to 42" in messages
        assert "did you mean 'nihss'?" in messages
        assert "'no' is not allowed; pregnant is true or false" in messages

    @pytest.mark.parametrize("raw", ["12", True, [12]])
    def test_no_silent_coercion_of_types(self, raw):
        with pytest.raises(PatientDataError, match="nihss"):
            parse_patient({"nihss": raw})

    def test_null_means_not_recorded(self):
        assert parse_patient({"nihss": None})["nihss"] is None

    def test_intervals_are_derived_from_the_times(self):
        record = parse_patient({"last_known_well": "2026-01-01T22:00", "arterial_puncture": "2026-01-02T03:30",
                                "recanalization": "2026-01-02T04:15"})
        assert record["lkw_to_puncture_h"] == 5.5
        assert record["puncture_to_recanalization_min"] == 45

    def test_a_puncture_before_last_known_well_is_refused(self):
        with pytest.raises(PatientDataError, match=r"arterial_puncture .* is before last_known_well"):
            parse_patient({"last_known_well": "2026-01-01T10:00", "arterial_puncture": "2026-01-01T09:00"})

    def test_time_zones_must_be_consistent(self):
        with pytest.raises(PatientDataError, match="time zone"):
            parse_patient({"last_known_well": "2026-01-01T10:00+08:00", "arterial_puncture": "2026-01-01T11:00"})

    def test_derived_intervals_cannot_be_given_directly(self):
        with pytest.raises(PatientDataError, match="derived from last_known_well and arterial_puncture"):
            parse_patient({"lkw_to_puncture_h": 3})

    def test_record_round_trips_to_json(self):
        data = {"age": 70, "nihss": 12, "etici": "2b67", "occlusion_site": "m1", "pregnant": False,
                "last_known_well": "2026-01-01T08:00:00", "attestations": {"informed_consent": True}}
        assert parse_patient(data).to_json() == data

    def test_a_record_must_be_an_object(self):
        with pytest.raises(PatientDataError, match="JSON object"):
            parse_patient([1, 2])


def test_the_documented_dictionary_is_up_to_date():
    from pathlib import Path

    from stroketrial.clinical.docs import dictionary_markdown

    doc = Path(__file__).parent.parent / "docs" / "data-dictionary.md"
    assert doc.read_text(encoding="utf-8") == dictionary_markdown(), "regenerate docs/data-dictionary.md"
