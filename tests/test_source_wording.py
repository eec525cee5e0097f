"""Every criterion quotes its source document verbatim, so a clinician can check it line by line.

Criteria the source does not state are marked "(not in the abstract)" or "(protocol paper)" and carry
an assumption instead; "..." in a quotation elides words between the quoted parts.
"""

import os
import re
from pathlib import Path

import pytest

from stroketrial.protocol import BUILTIN_IDS, load_builtin

SHARED = Path(__file__).resolve().parents[2] / "shared"


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def require_seeds() -> Path:
    """The seed documents in ../shared/seeds. Without them these checks skip, unless STROKETRIAL_REQUIRE_SEEDS
    is set (as `make test` sets it), when they fail: a run that should check the wording must not pass quietly."""
    if not (SHARED / "seeds").is_dir():
        message = f"the seed documents live in {SHARED / 'seeds'}, which does not exist"
        if os.environ.get("STROKETRIAL_REQUIRE_SEEDS", "") not in ("", "0"):
            pytest.fail(f"STROKETRIAL_REQUIRE_SEEDS is set but {message}")
        pytest.skip(message)
    return SHARED / "seeds"


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_criterion_wording_is_quoted_from_the_seed_document(trial):
    require_seeds()
    protocol = load_builtin(trial)
    document = normalised((SHARED / protocol.source).read_text(encoding="utf-8"))
    for criterion in protocol.criteria:
        if criterion.text.startswith("("):
            assert criterion.assumption, f"{criterion.id}: not from the source, so it needs an assumption"
            continue
        position = 0
        for part in normalised(criterion.text).split("..."):
            found = document.find(part.strip(), position)
            assert found >= 0, f"{trial} {criterion.id}: {part.strip()!r} is not in {protocol.source}"
            position = found + len(part.strip())


@pytest.mark.parametrize("trial", BUILTIN_IDS)
def test_the_blinded_assessment_is_quoted_from_the_seed_and_who_assesses_is_an_assumption(trial):
    """A visit that reserves assessments for the blinded outcome assessor quotes the source's blinding wording
    (assessor_only_text); no seed names who assesses, so each such visit carries an assumption too."""
    require_seeds()
    protocol = load_builtin(trial)
    document = normalised((SHARED / protocol.source).read_text(encoding="utf-8"))
    for visit in (v for v in protocol.visits if v.assessor_only):
        assert visit.assessor_only_text and visit.assumption, f"{trial} {visit.id}"
        position = 0
        for part in normalised(visit.assessor_only_text).split("..."):
            found = document.find(part.strip(), position)
            assert found >= 0, f"{trial} {visit.id}: {part.strip()!r} is not in {protocol.source}"
            position = found + len(part.strip())
