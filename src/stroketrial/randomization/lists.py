"""Concealed lists made in advance: permuted-block allocation lists and blinded kit lists.

A block list holds, per stratum, a sequence of whole permuted blocks whose sizes
are drawn at random from the protocol's sizes, so a site cannot count its way to
the end of a block. A kit list holds, per site, numbered treatment packs in
permuted blocks; kit numbers are drawn at random, so neither the number nor its
order reveals the arm. The blinded user sees only the kit number.
"""

from __future__ import annotations

from .. import InputError

from collections.abc import Iterable, Sequence
from typing import Protocol


from pydantic import Field

from .draws import Draw
from .state import ArmSlots
from ..protocol.base import FrozenModel
from ..protocol.schemes import PermutedBlocks, RandomizationScheme

LIST_LENGTH_PER_STRATUM = 40  # entries made in advance per stratum; more are added, concealed, when used up
RESUPPLY_KITS = 2 * LIST_LENGTH_PER_STRATUM  # kits added to a site's list when its last kit is dispensed


class ListExhausted(InputError):
    """A stratum's or a site's concealed list has no entry left; generate more before randomizing."""



class ListEntry(FrozenModel):
    position: int  # 0-based, within the stratum
    block: int  # 1-based block number within the stratum
    block_size: int
    slot: str
    arm: str


class BlockList(FrozenModel):
    strata: dict[str, tuple[ListEntry, ...]] = Field(default_factory=dict)

    def entry(self, stratum: str, position: int) -> ListEntry:
        entries = self.strata.get(stratum, ())
        if position >= len(entries):
            raise ListExhausted(f"the concealed list for stratum {stratum!r} has {len(entries)} entries and all are "
                                "used; extend it (BlockList.extended) before randomizing")
        return entries[position]

    def extended(self, arms: ArmSlots, block_sizes: Sequence[int], stratum: str, n_entries: int,
                 draw: Draw) -> BlockList:
        """A copy with at least `n_entries` entries for the stratum, whole blocks appended."""
        entries = self.strata.get(stratum, ())
        more = blocks_after(arms, block_sizes, draw, entries[-1] if entries else None, n_entries)
        return BlockList(strata={**self.strata, stratum: (*entries, *more)})


class ConcealedBlocks(Protocol):
    """What an allocation reads of a block list: one entry (a `BlockList`, or a list kept in rows)."""

    def entry(self, stratum: str, position: int) -> ListEntry: ...


class ConcealedKits(Protocol):
    """What an allocation reads of a kit list: the site's next kit of an arm."""

    def next_kit(self, site: str, arm: str, dispensed: int) -> Kit: ...


def blocks_after(arms: ArmSlots, block_sizes: Sequence[int], draw: Draw, last: ListEntry | None,
                 n_entries: int) -> list[ListEntry]:
    """Whole permuted blocks that follow a stratum's `last` entry (None: an empty stratum) until the stratum
    has at least `n_entries` entries; only the new entries are returned."""
    have, block = (last.position + 1, last.block) if last is not None else (0, 0)
    more: list[ListEntry] = []
    while have + len(more) < n_entries:
        block += 1
        more.extend(permuted_block(arms, block_sizes, draw, block, have + len(more)))
    return more


def permuted_block(arms: ArmSlots, block_sizes: Sequence[int], draw: Draw, block: int = 1,
                   start: int = 0) -> list[ListEntry]:
    """One block: its size drawn uniformly from block_sizes, then its slots in random order.

    The order is drawn one position at a time without replacement (each remaining
    slot copy equally likely), which gives every arrangement of the block the same
    probability, and uses one uniform per position, as the simulations do.
    """
    size = block_sizes[min(int(draw.random() * len(block_sizes)), len(block_sizes) - 1)]
    if size % arms.n_slots:
        raise InputError(f"block size {size} is not a multiple of {arms.n_slots} (ratio {arms.label})")
    remaining = [size // arms.n_slots] * arms.n_slots
    entries = []
    for i in range(size):
        u = draw.random() * sum(remaining)
        k, acc = 0, remaining[0]
        while u >= acc:
            k += 1
            acc += remaining[k]
        remaining[k] -= 1
        slot = arms.slots[k]
        entries.append(ListEntry(position=start + i, block=block, block_size=size, slot=slot, arm=arms.arm_of(slot)))
    return entries


class Kit(FrozenModel):
    kit_number: str
    site: str
    arm: str
    block: int


class KitList(FrozenModel):
    kits: tuple[Kit, ...] = ()

    def next_kit(self, site: str, arm: str, dispensed: int) -> Kit:
        """The site's next undispensed kit of the arm, in list order."""
        of_arm = [k for k in self.kits if k.site == site and k.arm == arm]
        if dispensed >= len(of_arm):
            raise ListExhausted(f"site {site!r} has no kit left for the allocated treatment ({len(of_arm)} shipped, "
                                "all dispensed); resupply the site before randomizing")
        return of_arm[dispensed]

    def sites(self) -> list[str]:
        return sorted({k.site for k in self.kits})

    def without_arms(self) -> list[dict[str, str]]:
        """The list as a site pharmacy's blinded packing list shows it: by site and kit number.

        Never in list order: kits of an arm are dispensed in list order, so with the list's order a
        blinded reader who sees a later patient given an earlier kit than another knows the two are on
        different arms. Kit numbers are drawn at random, so their order says nothing of the dispensing."""
        return [{"kit_number": k.kit_number, "site": k.site}
                for k in sorted(self.kits, key=lambda k: (k.site, int(k.kit_number)))]


def generate_kit_list(arms: ArmSlots, sites: Iterable[str], kits_per_site: int, block_sizes: Sequence[int],
                      draw: Draw, digits: int = 6, existing: KitList | None = None) -> KitList:
    """Kits for each site in permuted blocks, numbered at random without repeats."""
    existing = existing or KitList()
    more = new_kits(arms, sites, kits_per_site, block_sizes, draw, {k.kit_number for k in existing.kits}, digits)
    return KitList(kits=(*existing.kits, *more))


def new_kits(arms: ArmSlots, sites: Iterable[str], kits_per_site: int, block_sizes: Sequence[int], draw: Draw,
             used: set[str], digits: int = 6) -> list[Kit]:
    """Kits for each site in permuted blocks, numbered at random, none with a number in `used` (which grows)."""
    if kits_per_site < 1:
        raise InputError(f"kits per site is {kits_per_site}; ship at least one kit")
    kits: list[Kit] = []
    capacity = 9 * 10 ** (digits - 1)
    for site in sites:
        blocks = BlockList()
        blocks = blocks.extended(arms, block_sizes, site, kits_per_site, draw)
        for entry in blocks.strata[site]:
            if len(used) >= capacity:
                raise InputError(f"all {capacity} kit numbers of {digits} digits are used")
            while True:
                number = str(10 ** (digits - 1) + int(draw.random() * capacity))
                if number not in used:
                    break
            used.add(number)
            kits.append(Kit(kit_number=number, site=site, arm=entry.arm, block=entry.block))
    return kits


def kit_block_sizes(scheme: RandomizationScheme, arms: ArmSlots) -> list[int]:
    """Kits are packed in the allocation list's own block sizes; a trial not randomized in blocks
    (minimization, biased coins) packs them in blocks of two rounds of its ratio, so a site's
    shelf never runs short of one arm's packs."""
    return list(scheme.block_sizes) if isinstance(scheme, PermutedBlocks) else [2 * arms.n_slots]


def initial_kits_per_site(planned_total: int) -> int:
    """Kits listed for a site when it joins: a quarter of the planned sample, and never fewer than a resupply."""
    return max(RESUPPLY_KITS, planned_total // 4)
