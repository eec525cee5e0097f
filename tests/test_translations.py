"""The words the pages show from data (issue 20, defect 6) and the screening record's validation messages (defect
7), in Chinese on a Chinese page: every label, help text, unit word, grade and choice of the data dictionary, the
follow-up forms and the safety forms has its translation, and a value refused on a page says so in the page's
language, with the field's name in it. The CLI and the API keep the English."""

# Chinese punctuation is full width (comma, colon, brackets), which ruff takes for look-alikes of ASCII.
# ruff: noqa: RUF001

from __future__ import annotations

import re

import pytest

from stroketrial import i18n
from stroketrial.clinical import PatientDataError, parse_patient
from stroketrial.clinical.assessments import ASSESSMENTS
from stroketrial.clinical.dictionary import VARIABLES
from stroketrial.clinical.scales import MRS_GRADES
from stroketrial.web.data_words import dictionary_messages
from stroketrial.web.pages.base import choice_label

PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|\{\w+\}")


def test_every_word_from_data_has_its_chinese_translation():
    words = dictionary_messages()
    assert len(words) > 200  # the data dictionary, the follow-up forms, the safety forms, the roles
    missing = {w: where for w, where in words.items() if not i18n.has_translation(w, i18n.CHINESE)}
    assert not missing, f"{len(missing)} words without a Chinese translation: " + "; ".join(
        f"{where} {w!r}" for w, where in list(missing.items())[:40])


def test_the_data_words_listed_cover_what_the_pages_show():
    words = dictionary_messages()
    for var in VARIABLES.values():
        assert var.label in words and var.description in words, var.name
    for a in ASSESSMENTS.values():
        assert a.label in words and set(a.choice_labels) <= set(words), a.key
    assert set(MRS_GRADES.values()) <= set(words)
    assert {"yes", "no", "years", "million cells"} <= set(words)
    assert "kg" not in words and "mmHg" not in words  # symbols read the same in Chinese


def test_the_label_filter_gives_each_choice_in_the_pages_language():
    assert choice_label("possible", "relatedness") == "possibly related"
    assert choice_label(True, "death") == "yes"
    with i18n.use(i18n.CHINESE):
        assert choice_label("possible", "relatedness") == "可能有关"
        assert choice_label("recovering", "outcome") == "正在恢复/缓解中"
        assert choice_label(["death", "life_threatening"], "criteria") == "死亡, 危及生命"
        assert choice_label(True, "death") == "是" and choice_label(False, "sich") == "否"
        assert choice_label("tandem_ica_m1", "occlusion_site") == "颈内动脉+M1串联闭塞"
        assert choice_label("female", "sex") == "女"
        assert choice_label("ph2", "haemorrhage_class").startswith("2 PH2：")
        assert choice_label("dose_interrupted", "action_taken") == "暂停给药"
        assert i18n.gettext(MRS_GRADES[3]) == "中度残疾：需部分帮助，但能独立行走"
        assert i18n.gettext(VARIABLES["last_known_well"].label) == "最后正常时间"


def test_a_refused_value_says_why_in_the_pages_language_with_the_fields_label():
    record = {"nihss": 45, "pregnant": "no", "sex": "f", "last_known_well": "yesterday", "age": 130,
              "creatinine_umol_l": {"value": 2, "unit": "g/L"},
              "arterial_puncture": "2026-03-01T08:00", "recanalization": "2026-03-01T07:00"}
    with i18n.use(i18n.CHINESE), pytest.raises(PatientDataError) as refused:
        parse_patient(record)
    messages = {e.field: e.message for e in refused.value.errors}
    assert messages["nihss"] == "45超出范围：NIHSS评分须为0至42之间的整数"
    assert messages["pregnant"] == "'no'无效：妊娠只能为是（true）或否（false）"
    assert messages["last_known_well"] == "'yesterday'无效：最后正常时间须为日期和时间，例如 2026-03-01 08:30"
    assert messages["age"] == "130超出范围：年龄须为0至120 岁之间的整数"
    assert messages["sex"] == "'f'无效：性别须为以下之一：女, 男"
    assert messages["creatinine_umol_l"].startswith("血清肌酐不能使用单位'g/L'")
    assert messages["recanalization"].startswith("血管再通 2026-03-01T07:00:00早于动脉穿刺")
    for message in messages.values():
        assert not re.search(r"[a-z]+_[a-z_]+", message), message  # no field code on a page


def test_the_cli_and_the_api_keep_the_english_and_a_date_is_asked_for_as_people_type_it():
    with pytest.raises(PatientDataError) as refused:
        parse_patient({"last_known_well": "yesterday", "nihss": 45,
                       "arterial_puncture": "2026-03-01T08:00", "recanalization": "2026-03-01T07:00"})
    text = str(refused.value)
    assert "last_known_well: 'yesterday' is not allowed; last known well is a date and time such as " \
           "2026-03-01 08:30" in text
    assert "ISO 8601" not in text
    assert "nihss: 45 is out of range; NIHSS is a whole number from 0 to 42" in text
    assert "recanalization 2026-03-01T07:00:00 is before arterial_puncture 2026-03-01T08:00:00" in text
    # what the message asks for is read
    assert parse_patient({"last_known_well": "2026-03-01 08:30"})["last_known_well"].hour == 8


def test_a_visit_forms_choices_are_named_in_words_on_a_chinese_page():
    imaging = ASSESSMENTS["ct_or_mri"]
    assert imaging.allowed() == "follow-up imaging is one of ct (CT), mri (MRI), not_done (not done)"
    with i18n.use(i18n.CHINESE):
        assert imaging.allowed() == "随访影像检查须为以下之一：CT, MRI, 未做"
        assert ASSESSMENTS["barthel"].allowed() == "Barthel指数须为0至100之间的整数，以5为间隔"


def test_each_translated_message_keeps_the_values_it_names():
    catalog = i18n.catalog(i18n.CHINESE)
    for english in dictionary_messages():
        chinese = catalog[english]
        assert sorted(PLACEHOLDER.findall(english)) == sorted(PLACEHOLDER.findall(chinese)), english
