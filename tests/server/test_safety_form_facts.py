"""The safety counts' judgement of each watched form (service/safety.py `form_facts`), kept per form's text: the
same answer as the protocol's definition on that form alone (analysis/planned_outcomes.py `event_on_form`), whether
the form is judged with others, alone, first or again; a changed form is judged afresh."""

from __future__ import annotations

import itertools
import json

from stroketrial.analysis.planned_outcomes import event_on_form
from stroketrial.protocol import load_builtin
from stroketrial.service.safety import _sich_outcome, form_facts

PROTOCOL = load_builtin("amass-2")
SICH = _sich_outcome(PROTOCOL)


def _forms() -> list[dict]:
    """Imaging forms over the definition's components: each class, increases around the threshold, yes, no and
    blank answers (a blank leaves the definition undecided unless another component fails)."""
    out = []
    for cls, increase, item, causal in itertools.product(
            ["ph2", "hi1", "none", None], [3, 4, 4.0, None], [True, False, None], [True, False, None]):
        values = {"haemorrhage_class": cls, "nihss_increase": increase, "nihss_item_increase": item,
                  "major_intervention": False, "haemorrhage_causal": causal, "death": cls == "ph2" and causal}
        out.append({k: v for k, v in values.items() if v is not None})
    return out


def test_each_form_is_judged_as_the_definition_judges_it_alone_cold_or_warm():
    assert SICH is not None and SICH.all_of is not None
    forms = _forms()
    texts = [json.dumps(f, sort_keys=True) for f in forms]
    expected = [(bool(f.get("death")), event_on_form(SICH, f)) for f in forms]
    assert any(bled for _, bled in expected) and not all(bled for _, bled in expected)
    assert form_facts(SICH, [(SICH.visit, t) for t in texts]) == expected  # judged together
    assert form_facts(SICH, [(SICH.visit, t) for t in reversed(texts)]) == expected[::-1]  # known already
    for text, facts in zip(texts, expected, strict=True):
        assert form_facts(SICH, [(SICH.visit, " " + text)]) == [facts]  # a new text: judged alone
    # Another visit's form records a death but never an sICH by the imaging definition.
    assert form_facts(SICH, [("d90", t) for t in texts]) == [(death, False) for death, _ in expected]
    # A plan without an sICH definition reads the form's own sich answer.
    assert form_facts(None, [("d7", json.dumps({"sich": True})), ("d7", json.dumps({"sich": "yes"}))]) == [
        (False, True), (False, False)]
