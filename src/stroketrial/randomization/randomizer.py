"""One allocation at a time: state in, allocation and next state out.

`Randomizer` reads the method, its parameters and its factors from the protocol,
and has no I/O and no hidden state: the server passes in the stored state (and,
for block designs and blinded trials, the concealed lists) and stores what comes
back, in one transaction.
"""

from __future__ import annotations

from .. import InputError

import itertools
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..clinical import PatientRecord
from ..protocol import Protocol
from ..protocol.schemes import (BigStick, EfronBiasedCoin, Factor, Minimization, PermutedBlocks, RandomizationScheme,
                                SimpleRandomization)
from . import probabilities as P
from .draws import Draw
from .factors import FactorValueError, patient_levels
from .lists import BlockList, ConcealedBlocks, ConcealedKits, KitList
from .state import Allocation, ArmSlots, RandomizationState


class RandomizationError(InputError):
    """A patient who cannot be randomized as asked; the message says why."""


class Randomizer:
    def __init__(self, scheme: RandomizationScheme, arms: ArmSlots):
        self.scheme = scheme
        self.arms = arms
        if isinstance(scheme, EfronBiasedCoin) and arms.n_slots != 2:
            raise RandomizationError(f"Efron's biased coin is defined for two arms 1:1, not {arms.label}")
        if isinstance(scheme, PermutedBlocks):
            bad = [b for b in scheme.block_sizes if b % arms.n_slots]
            if bad:
                raise RandomizationError(f"block sizes {bad} are not multiples of {arms.n_slots} (ratio {arms.label})")
        self._weights = np.array([f.weight for f in scheme.factors], dtype=float)

    @classmethod
    def for_protocol(cls, protocol: Protocol) -> Randomizer:
        if protocol.randomization is None:
            raise RandomizationError(f"{protocol.id} is not randomized ({protocol.design.model.replace('_', ' ')})")
        return cls(protocol.randomization, ArmSlots.of(protocol.arms))

    @property
    def method(self) -> str:
        return self.scheme.method

    @property
    def factors(self) -> list[Factor]:
        return list(self.scheme.factors)

    def initial_state(self) -> RandomizationState:
        return RandomizationState()

    # ---- the patient's levels ---------------------------------------------------------------
    def levels(self, patient: PatientRecord | Mapping[str, Any]) -> dict[str, str]:
        return patient_levels(self.scheme.factors, patient)

    def _check_levels(self, levels: Mapping[str, str]) -> dict[str, str]:
        names = [f.name for f in self.scheme.factors]
        problems = [f"factor {n} has no level for this patient" for n in names if n not in levels]
        problems += [f"{n!r} is not a factor of this trial ({', '.join(names) or 'none'})" for n in levels
                     if n not in names]
        for factor in self.scheme.factors:
            level = levels.get(factor.name)
            if level is None:
                continue
            if factor.field == "site":
                if not isinstance(level, str) or not level.strip():
                    problems.append(f"factor {factor.name}: site {level!r} must be a non-empty site code")
            elif level not in factor.levels:
                problems.append(f"factor {factor.name}: level {level!r} is not one of {', '.join(factor.levels)}")
        if problems:
            raise FactorValueError("; ".join(problems))
        return {n: levels[n] for n in names}

    def stratum(self, levels: Mapping[str, str]) -> str | None:
        """The block design's stratum key, e.g. 'site=S1|circulation=anterior' (one list when unstratified)."""
        if not isinstance(self.scheme, PermutedBlocks):
            return None
        return _stratum_key(self.scheme, levels)

    def strata_for_sites(self, sites: Sequence[str]) -> list[str]:
        """Every stratum key a block design can meet at these sites (the lists to make in advance)."""
        if not isinstance(self.scheme, PermutedBlocks):
            return []
        options = []
        for name in self.scheme.stratify_by:
            factor = self.scheme.factor(name)
            options.append([f"{name}={s}" for s in sites] if factor.field == "site" else
                           [f"{name}={lv}" for lv in factor.levels])
        return ["|".join(c) for c in itertools.product(*options)] if options else ["all"]

    # ---- probabilities ----------------------------------------------------------------------
    def _margins(self, state: RandomizationState, levels: Mapping[str, str]) -> np.ndarray:
        slots = self.arms.slots
        return np.array([[state.margins.get(f.name, {}).get(levels[f.name], {}).get(s, 0) for s in slots]
                         for f in self.scheme.factors], dtype=float).reshape(len(self.scheme.factors), len(slots))

    def slot_probabilities(self, state: RandomizationState, levels: Mapping[str, str]) -> tuple[np.ndarray,
                                                                                                 np.ndarray | None]:
        """Each slot's probability for this patient (and the minimization scores behind it)."""
        scheme, n_slots = self.scheme, self.arms.n_slots
        totals = np.array([state.slots.get(s, 0) for s in self.arms.slots], dtype=float)
        if isinstance(scheme, SimpleRandomization):
            return P.uniform(n_slots), None
        if isinstance(scheme, EfronBiasedCoin):
            return P.efron_probabilities(totals, scheme.p), None
        if isinstance(scheme, BigStick):
            return P.big_stick_probabilities(totals, scheme.max_imbalance), None
        if isinstance(scheme, Minimization):
            scores = P.minimization_scores(self._margins(state, levels), self._weights, scheme.imbalance)
            allowed = P.tolerated(totals, scheme.max_imbalance)
            return P.preferred_probabilities(scores, allowed, scheme.p_preferred), scores
        raise RandomizationError(f"{scheme.method} allocates from a concealed list, not from probabilities")

    # ---- one allocation -----------------------------------------------------------------------
    def allocate(self, state: RandomizationState, patient_id: str, levels: Mapping[str, str], draw: Draw, *,
                 block_list: ConcealedBlocks | None = None, kit_list: ConcealedKits | None = None,
                 site: str | None = None, choose_kit: Callable[[str], str | None] | None = None,
                 ) -> tuple[Allocation, RandomizationState]:
        """Randomize one patient; the state is not changed, the next one is returned. `choose_kit(arm)`, when
        given, names the physical kit of the allocated arm (None: allocated without a kit) in place of the
        concealed kit list. That the patient was not randomized before is the caller's to know (`run` keeps the
        ids it has randomized; the server has one allocation row per patient, unique in the database)."""
        if not patient_id or not str(patient_id).strip():
            raise RandomizationError("patient_id is empty; every allocation belongs to a patient")
        levels = self._check_levels(levels)
        site = levels.get("site", site)
        stratum = self.stratum(levels)
        entry = None
        if isinstance(self.scheme, PermutedBlocks):
            if block_list is None:
                raise RandomizationError("a block design allocates from its concealed list; pass block_list")
            stratum = _stratum_key(self.scheme, levels)
            entry = block_list.entry(stratum, sum(state.strata.get(stratum, {}).values()))
            slot, scores = entry.slot, None
            probabilities = {a: float(a == entry.arm) for a in self.arms.arms}
        else:
            p, scores = self.slot_probabilities(state, levels)
            slot = self.arms.slots[int(P.choose(p, draw.random()))]
            probabilities = {a: float(p[np.array(self.arms.slot_arm) == k].sum()) for k, a in enumerate(self.arms.arms)}
        arm = self.arms.arm_of(slot)
        kit = None
        if self.scheme.blinded_kits and choose_kit is not None:
            kit = choose_kit(arm)
        elif self.scheme.blinded_kits:
            if kit_list is None:
                raise RandomizationError("a blinded trial dispenses kits; pass kit_list")
            if not site:
                raise RandomizationError("a blinded trial dispenses kits by site; the patient's site is missing")
            kit = kit_list.next_kit(site, arm, state.kits.get(site, {}).get(arm, 0)).kit_number
        allocation = Allocation(
            sequence=state.allocated + 1, patient_id=str(patient_id), arm=arm, slot=slot, method=self.method,
            levels=levels, site=site, stratum=stratum,
            list_position=entry.position if entry else None, block=entry.block if entry else None, kit=kit,
            probabilities=probabilities,
            scores={s: float(v) for s, v in zip(self.arms.slots, scores, strict=True)} if scores is not None else {})
        return allocation, self.advance(state, allocation)

    def advance(self, state: RandomizationState, allocation: Allocation) -> RandomizationState:
        """The state after one more allocation."""
        if allocation.sequence != state.allocated + 1:
            raise RandomizationError(f"allocation {allocation.sequence} follows {state.allocated}: the sequence must "
                                     "have no gaps or repeats")
        if allocation.slot not in self.arms.slots or self.arms.arm_of(allocation.slot) != allocation.arm:
            raise RandomizationError(f"allocation {allocation.sequence}: slot {allocation.slot!r} and arm "
                                     f"{allocation.arm!r} do not match the arms {self.arms.slots}")
        slot = allocation.slot
        slots = dict(state.slots)
        slots[slot] = slots.get(slot, 0) + 1
        margins = {f: {lv: dict(c) for lv, c in by_level.items()} for f, by_level in state.margins.items()}
        for factor, level in allocation.levels.items():
            counts = margins.setdefault(factor, {}).setdefault(level, {})
            counts[slot] = counts.get(slot, 0) + 1
        strata = dict(state.strata)
        # A stratum's count is its position in the concealed list; an envelope's allocation came from the site's
        # own envelope blocks, not from that list, so it counts in the totals and margins but leaves the list alone.
        if allocation.stratum is not None and allocation.envelope is None:
            counts = dict(strata.get(allocation.stratum, {}))
            counts[slot] = counts.get(slot, 0) + 1
            strata[allocation.stratum] = counts
        kits = dict(state.kits)
        if allocation.kit is not None:
            if allocation.site is None:
                raise RandomizationError(f"allocation {allocation.sequence}: kit {allocation.kit} was dispensed "
                                         "without a site; kits are dispensed by site")
            counts = dict(kits.get(allocation.site, {}))
            counts[allocation.arm] = counts.get(allocation.arm, 0) + 1
            kits[allocation.site] = counts
        return RandomizationState(allocated=allocation.sequence, slots=slots, margins=margins, strata=strata, kits=kits)

    def rebuild(self, history: Iterable[Allocation]) -> RandomizationState:
        """The state from the allocation history alone (in sequence order)."""
        state, seen = self.initial_state(), set()
        for allocation in sorted(history, key=lambda a: a.sequence):
            if allocation.patient_id in seen:
                raise RandomizationError(f"patient {allocation.patient_id} appears twice in the allocation history")
            seen.add(allocation.patient_id)
            state = self.advance(state, allocation)
        return state

    # ---- many patients (seeded runs, demos) -------------------------------------------------------
    def run(self, patients: Sequence[tuple[str, Mapping[str, str], str | None]], draw: Draw, *,
            block_list: BlockList | None = None, kit_list: KitList | None = None,
            list_draw: Draw | None = None) -> tuple[list[Allocation], RandomizationState, BlockList | None]:
        """Randomize (patient_id, levels, site) in order, extending a block list from `list_draw`
        (default `draw`) whenever a stratum's list runs out."""
        state = self.initial_state()
        allocations = []
        if isinstance(self.scheme, PermutedBlocks) and block_list is None:
            block_list = BlockList()
        randomized: set[str] = set()
        for patient_id, levels, site in patients:
            if patient_id in randomized:
                raise RandomizationError(f"patient {patient_id} is already randomized; a patient is randomized once")
            randomized.add(patient_id)
            if isinstance(self.scheme, PermutedBlocks):
                assert block_list is not None  # made above for a block design when none was passed
                key = _stratum_key(self.scheme, self._check_levels(levels))
                used = sum(state.strata.get(key, {}).values())
                if used >= len(block_list.strata.get(key, ())):
                    block_list = block_list.extended(self.arms, self.scheme.block_sizes, key, used + 1,
                                                     list_draw or draw)
            allocation, state = self.allocate(state, patient_id, levels, draw, block_list=block_list,
                                              kit_list=kit_list, site=site)
            allocations.append(allocation)
        return allocations, state, block_list


def _stratum_key(scheme: PermutedBlocks, levels: Mapping[str, str]) -> str:
    """A block design's stratum key, e.g. 'site=S1|circulation=anterior' ('all' when unstratified)."""
    return "|".join(f"{n}={levels[n]}" for n in scheme.stratify_by) or "all"
