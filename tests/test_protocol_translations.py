"""The protocol files carry the Chinese of every wording the site's pages show (issue 20, defect 6): each
criterion and its attestation, arm, intervention and dose instruction, visit, endpoint, consent, edit check and
DLT, beside the seed's English; `i18n.protocol_text` shows it on a Chinese page, the English elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ValidationError

from stroketrial import i18n
from stroketrial.protocol import BUILTIN_IDS, load_builtin
from stroketrial.protocol.model import Arm, Criterion, Translated


def translated_parts(part: object, where: str) -> Iterator[tuple[str, Translated]]:
    """Every part of a protocol that has wording to translate, with where it is."""
    if isinstance(part, Translated):
        yield where, part
    if isinstance(part, BaseModel):
        for name in type(part).model_fields:
            yield from translated_parts(getattr(part, name), f"{where}.{name}")
    elif isinstance(part, list):
        for i, item in enumerate(part):
            yield from translated_parts(item, f"{where}[{getattr(item, 'id', i)}]")


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_every_wording_the_pages_show_has_its_chinese_in_the_protocol_file(trial):
    protocol = load_builtin(trial)
    parts = list(translated_parts(protocol, trial))
    kinds = {type(p).__name__ for _, p in parts}
    assert {"Protocol", "Criterion", "Arm", "Visit", "Endpoint", "EditCheck", "Intervention", "DoseStep"} <= kinds
    missing = [f"{where}.{attribute}" for where, part in parts for attribute in part.untranslated(i18n.CHINESE)]
    assert not missing, f"{trial}: {len(missing)} wordings without Chinese: {missing[:20]}"
    for where, part in parts:
        for attribute, chinese in (part.translations or {}).get(i18n.CHINESE, {}).items():
            assert chinese != getattr(part, attribute), f"{where}.{attribute} is left in English"


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_protocol_text_is_the_chinese_on_a_chinese_page_and_the_seed_words_otherwise(trial):
    protocol = load_builtin(trial)
    criterion = protocol.inclusion[0]
    arm = protocol.arms[0]
    visit = protocol.visits[-1]
    chinese = (criterion.translations or {})[i18n.CHINESE]
    with i18n.use(i18n.CHINESE):
        assert i18n.protocol_text(criterion, "text") == chinese["text"]
        assert i18n.protocol_text(arm, "name") == (arm.translations or {})[i18n.CHINESE]["name"]
        assert i18n.protocol_text(visit, "name") == (visit.translations or {})[i18n.CHINESE]["name"]
        assert i18n.protocol_text(protocol, "title") == (protocol.translations or {})[i18n.CHINESE]["title"]
        attested = next(c for c in protocol.criteria if c.attestation is not None)
        assert i18n.protocol_text(attested, "attestation").endswith("\uff1f")  # a question in Chinese
    assert i18n.protocol_text(criterion, "text") == criterion.text
    assert i18n.protocol_text(arm, "name") == arm.name


def test_the_chinese_of_the_trials_reads_as_a_stroke_team_writes_it():
    with i18n.use(i18n.CHINESE):
        rescue = load_builtin("angel-rescue")
        assert i18n.protocol_text(rescue.arms[1], "name") == "继续取栓组"
        impact = load_builtin("impact-lvo")
        step = impact.interventions[1].steps[0]
        assert "甲泼尼龙琥珀酸钠40 mg" in i18n.protocol_text(step, "text")
        assert i18n.protocol_text(step, "diluent") == "0.9%氯化钠注射液"
        amass = load_builtin("amass-2")
        assert "eTICI≥2b" in i18n.protocol_text(amass.inclusion[1], "text")


def test_a_translation_is_refused_for_a_language_not_offered_or_a_wording_the_part_does_not_have():
    with pytest.raises(ValidationError, match="'fr' is not a language to translate into"):
        Arm(id="a", name="A", role="control", description="d", translations={"fr": {"name": "Bras A"}})
    with pytest.raises(ValidationError, match="'role' is not a translated wording of this part"):
        Arm(id="a", name="A", role="control", description="d", translations={"zh_Hans": {"role": "对照"}})
    with pytest.raises(ValidationError, match="has no attestation to translate"):
        Criterion(id="c", text="Age ≥ 18", rule={"field": "age", "op": ">=", "value": 18},
                  translations={"zh_Hans": {"attestation": "是否"}})
    with pytest.raises(ValidationError, match="is empty"):
        Arm(id="a", name="A", role="control", description="d", translations={"zh_Hans": {"name": " "}})
    arm = Arm(id="a", name="A", role="control", description="d", translations={"zh_Hans": {"name": "对照组"}})
    assert arm.untranslated(i18n.CHINESE) == ["description"]
