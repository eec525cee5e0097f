"""Sealed emergency envelopes: a site's allocations made in advance, for when the platform cannot be reached.

A site's envelopes are drawn per stratum in whole permuted blocks (`BlockList.extended`), in the scheme's own
block sizes and ratio (or, for minimization, the protocol's documented fallback), from the draw passed in. They
are not taken from the concealed online list, which stays whole and balanced: an allocation from an envelope
counts in the arm totals and the minimization margins, never as a position of that list
(`Randomizer.advance`). Each envelope's number is printed with a check code, an HMAC under the platform's
audit key over what the envelope holds, so an envelope made or re-written without the key is detected when it
is recorded, and a code is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..protocol.envelopes import EmergencyRandomization
from ..protocol.schemes import RandomizationScheme
from .draws import Draw
from .lists import BlockList, ListEntry
from .state import ArmSlots

CODE_LENGTH = 8  # base32 characters: 40 bits


@dataclass(frozen=True)
class Stratum:
    key: str  # 'circulation=anterior' ('all' when unstratified); the site is the set's own
    levels: tuple[tuple[str, str], ...]  # (factor, level) in the protocol's order

    def label(self) -> str:
        return ", ".join(f"{f.replace('_', ' ')}: {lv}" for f, lv in self.levels) or "all patients"


def envelope_strata(scheme: RandomizationScheme, emergency: EmergencyRandomization) -> list[Stratum]:
    """Every stratum a site's envelopes are made for."""
    names = emergency.stratify_by(scheme)
    options = [[(n, lv) for lv in scheme.factor(n).levels] for n in names]
    return [_stratum(combination) for combination in itertools.product(*options)]


def envelope_stratum(scheme: RandomizationScheme, emergency: EmergencyRandomization,
                     levels: Mapping[str, str]) -> Stratum:
    """The stratum of a patient's envelopes, from the patient's factor levels."""
    return _stratum(tuple((n, levels[n]) for n in emergency.stratify_by(scheme)))


def _stratum(levels: tuple[tuple[str, str], ...]) -> Stratum:
    return Stratum("|".join(f"{f}={lv}" for f, lv in levels) or "all", levels)


def stratum_label(key: str) -> str:
    """A stored stratum key as people read it."""
    if key == "all":
        return "all patients"
    return ", ".join(f"{f.replace('_', ' ')}: {lv}" for f, _, lv in (part.partition("=") for part in key.split("|")))


def envelope_blocks(arms: ArmSlots, block_sizes: Sequence[int], per_stratum: int, strata: Sequence[Stratum],
                    draw: Draw) -> dict[str, tuple[ListEntry, ...]]:
    """Per stratum, whole permuted blocks holding at least `per_stratum` allocations."""
    blocks = BlockList()
    for stratum in strata:
        blocks = blocks.extended(arms, block_sizes, stratum.key, per_stratum, draw)
    return dict(blocks.strata)


def envelope_label(site: str, number: int) -> str:
    """How an envelope is named on paper and on the platform: the site and its number there."""
    return f"{site}-{number:03d}"


def check_code(key: bytes, trial: str, site: str, number: int, set_id: int, stratum: str, allocation: str) -> str:
    """The envelope's check code, 'ABCD-EFGH': an HMAC under the audit key (domain-separated) over the trial, the
    site, the number, the set, the stratum and the allocation inside (an arm, or a kit number)."""
    derived = hmac.new(key, b"stroketrial emergency envelope check code", hashlib.sha256).digest()
    message = "\x1f".join((trial, site, str(number), str(set_id), stratum, allocation)).encode("utf-8")
    text = base64.b32encode(hmac.new(derived, message, hashlib.sha256).digest()).decode("ascii")[:CODE_LENGTH]
    return f"{text[:4]}-{text[4:]}"


def same_code(given: str, expected: str) -> bool:
    """A code as typed (any case, with or without the dash and spaces) against the expected one, in constant time."""
    typed = re.sub(r"[\s-]", "", given).upper()
    return hmac.compare_digest(typed.encode("utf-8"), expected.replace("-", "").encode("utf-8"))
