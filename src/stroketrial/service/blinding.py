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

from ..protocol import Protocol, Visit
from ..protocol.schemes import PermutedBlocks
from .roles import OUTCOME_ASSESSORS, SUPPLY_MANAGERS

RECRUITERS = ("investigator", "coordinator")  # they enrol the next patient
# The unblinded trial statistician, the DSMB and the platform's admin may study how allocation
# ran (strata, block positions, minimization margins), but only in trials where they see arms.
MACHINERY_READERS = ("admin", "dsmb", "unblinded_statistician")

ARM_KEYS = frozenset({"arm", "slot"})
MACHINERY_KEYS = frozenset({"stratum", "list_position", "block", "probabilities", "scores", "levels", "method"})


def sees_arm(role: str, masking: str) -> bool:
    """Whether a role may see allocated arms in a trial with this masking.

    The blinded statistician and the outcome assessor never do; the unblinded pharmacist, the
    unblinded statistician and the DSMB always do; everyone else only in open-label trials (a PROBE
    design, open_label_blinded_endpoint, hides the arm from its outcome assessor alone).
    """
    if role == "blinded_statistician" or role in OUTCOME_ASSESSORS:
        return False
    if role in ("unblinded_pharmacist", "unblinded_statistician", "dsmb"):
        return True
    return masking not in ("double_blind", "single_blind")


def sees_susar_arm(role: str, masking: str) -> bool:
    """The arm of a patient whose SAE is a SUSAR: whoever sees arms, and the sponsor's pharmacovigilance, which
    unblinds a SUSAR alone because the expedited report to the authorities must name the treatment; it sees no
    other arm of a blinded trial, and what it sees never reaches the blinded trial team."""
    return sees_arm(role, masking) or role == "pharmacovigilance"


def sees_kit(role: str) -> bool:
    """Kit numbers. The outcome assessor never needs one, and a kit number is a key to the arm for anyone
    who has seen a packing list or a dispensing log. The supply manager, who sees the arm of every kit, never
    learns which patient was given which."""
    return role not in OUTCOME_ASSESSORS and role not in SUPPLY_MANAGERS


def readable_assessments(role: str, visit: Visit) -> list[str]:
    """The assessments of a visit whose recorded values this role may read. The outcome assessor reads only
    those the protocol reserves for the blinded assessor (`assessor_only`): the rest of a patient's follow-up
    (an SAE, a haemorrhage on the 24-hour scan, a treatment given) can tell the arm. Everyone else reads all."""
    if role in OUTCOME_ASSESSORS:
        return list(visit.assessor_only)
    return list(visit.assessments)


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


def sees_kit_arms(role: str, protocol: Protocol) -> bool:
    """The arm of each kit and the stock per arm (service/supply.py): the supply manager and the unblinded
    pharmacist, and whoever may see counts per arm (the stock dispensed per arm at a site is such a count).
    Everyone else sees stock pooled over the arms."""
    return role in SUPPLY_MANAGERS or sees_arm_counts(role, protocol)
