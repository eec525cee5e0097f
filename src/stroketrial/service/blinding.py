"""Blinding and allocation concealment, in one place: who may see an arm, the machinery behind
an allocation, or counts per arm; and the blinded projection of an allocation record.

Pages, API, exports and the audit export all ask here. Nothing a blinded user receives
may be computed from a hidden field: projections drop hidden keys (never replace them with
a marker whose presence or length depends on them), and exports of redacted records carry
no hashes.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from ..protocol import Protocol
from ..protocol.schemes import PermutedBlocks

RECRUITERS = ("investigator", "coordinator")  # they enrol the next patient
# The unblinded trial statistician, the DSMB and the platform's admin may study how allocation
# ran (strata, block positions, minimization margins), but only in trials where they see arms.
MACHINERY_READERS = ("admin", "dsmb", "unblinded_statistician")

ARM_KEYS = frozenset({"arm", "slot"})
MACHINERY_KEYS = frozenset({"stratum", "list_position", "block", "probabilities", "scores", "levels", "method"})


def sees_arm(role: str, masking: str) -> bool:
    """Whether a role may see allocated arms in a trial with this masking.

    The blinded statistician never does; the unblinded pharmacist, the unblinded statistician
    and the DSMB always do; everyone else only in open-label trials (PROBE designs hide the arm
    from the outcome assessor, who works outside the platform).
    """
    if role == "blinded_statistician":
        return False
    if role in ("unblinded_pharmacist", "unblinded_statistician", "dsmb"):
        return True
    return masking not in ("double_blind", "single_blind")


def sees_allocation_machinery(role: str, masking: str) -> bool:
    """Strata, block numbers, list positions, minimization scores: enough, with one known arm, to
    work out others (a block partner) or the next allocation. Never for those who recruit."""
    return role in MACHINERY_READERS and sees_arm(role, masking)


def allocation_depends_on_counts(protocol: Protocol) -> bool:
    """Minimization and permuted blocks choose the next arm from the arms given so far."""
    scheme = protocol.randomization
    if scheme is None:
        return False
    return isinstance(scheme, PermutedBlocks) or scheme.method != "simple"


def sees_arm_counts(role: str, protocol: Protocol) -> bool:
    """Counts per arm (margins, arm totals, safety per arm). Those who recruit never see them in a
    trial whose next allocation depends on them: from the margins anyone can compute the arm
    minimization prefers for the next patient."""
    if not sees_arm(role, protocol.design.masking):
        return False
    return not (role in RECRUITERS and allocation_depends_on_counts(protocol))


def allocation_projection(record: Mapping[str, Any], role: str, masking: str) -> dict[str, Any]:
    """An allocation record (the randomize event's document) as this role may see it."""
    hidden: set[str] = set()
    if not sees_arm(role, masking):
        hidden |= ARM_KEYS
    if not sees_allocation_machinery(role, masking):
        hidden |= MACHINERY_KEYS
    return {k: v for k, v in record.items() if k not in hidden}
