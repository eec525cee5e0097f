"""A trial's concealed allocation lists as the database keeps them: a row per block-list entry and per kit.

An allocation reads only the entry (or kit) it uses, so its cost does not grow with the trial; making more
entries appends rows. The lists are drawn here from the OS CSPRNG (the caller's `SystemDraw`), inside the
write transaction that needs them, and are never shown: they carry each entry's arm.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ..randomization import Draw, Kit, ListEntry, ListExhausted
from ..randomization.lists import blocks_after, new_kits
from ..randomization.state import ArmSlots
from ..store.models import ConcealedBlockEntry, ConcealedKit


class StoredBlockList:
    """A trial's block lists, read an entry at a time (the `ConcealedBlocks` an allocation reads)."""

    def __init__(self, session: Session, trial_id: str) -> None:
        self.session, self.trial_id = session, trial_id

    def entry(self, stratum: str, position: int) -> ListEntry:
        row = self.session.execute(select(ConcealedBlockEntry).where(
            ConcealedBlockEntry.trial_id == self.trial_id, ConcealedBlockEntry.stratum == stratum,
            ConcealedBlockEntry.position == position)).scalar_one_or_none()
        if row is None:
            raise ListExhausted(f"the concealed list for stratum {stratum!r} has {self.length(stratum)} entries and "
                                "all are used; extend it before randomizing")
        return ListEntry(position=row.position, block=row.block, block_size=row.block_size, slot=row.slot,
                         arm=row.arm)

    def length(self, stratum: str) -> int:
        return self.session.execute(select(func.count()).where(ConcealedBlockEntry.trial_id == self.trial_id,
                                                               ConcealedBlockEntry.stratum == stratum)).scalar_one()

    def extend(self, arms: ArmSlots, block_sizes: Sequence[int], stratum: str, n_entries: int, draw: Draw) -> None:
        """Whole blocks appended until the stratum has at least `n_entries` entries."""
        last = self.session.execute(select(ConcealedBlockEntry).where(
            ConcealedBlockEntry.trial_id == self.trial_id, ConcealedBlockEntry.stratum == stratum)
            .order_by(ConcealedBlockEntry.position.desc()).limit(1)).scalar_one_or_none()
        previous = None if last is None else ListEntry(position=last.position, block=last.block,
                                                       block_size=last.block_size, slot=last.slot, arm=last.arm)
        more = blocks_after(arms, block_sizes, draw, previous, n_entries)
        if more:
            self.session.execute(insert(ConcealedBlockEntry), [
                {"trial_id": self.trial_id, "stratum": stratum, **e.model_dump()} for e in more])


class StoredKitList:
    """A blinded trial's kit list, read a kit at a time (the `ConcealedKits` an allocation reads)."""

    def __init__(self, session: Session, trial_id: str) -> None:
        self.session, self.trial_id = session, trial_id

    def next_kit(self, site: str, arm: str, dispensed: int) -> Kit:
        """The site's next undispensed kit of the arm, in list order (its `dispensed`-th, from 0)."""
        row = self.session.execute(select(ConcealedKit).where(
            ConcealedKit.trial_id == self.trial_id, ConcealedKit.site == site, ConcealedKit.arm == arm)
            .order_by(ConcealedKit.position).offset(dispensed).limit(1)).scalar_one_or_none()
        if row is None:
            listed = self.session.execute(select(func.count()).where(
                ConcealedKit.trial_id == self.trial_id, ConcealedKit.site == site, ConcealedKit.arm == arm)
            ).scalar_one()
            raise ListExhausted(f"site {site!r} has no kit left for the allocated treatment ({listed} shipped, "
                                "all dispensed); resupply the site before randomizing")
        return Kit(kit_number=row.kit_number, site=row.site, arm=row.arm, block=row.block)

    def add(self, arms: ArmSlots, sites: Iterable[str], kits_per_site: int, block_sizes: Sequence[int],
            draw: Draw) -> None:
        """Kits appended for each site, in permuted blocks, numbered at random without repeating a number the
        trial's list has (read only here, when kits are added, not at each allocation)."""
        used = set(self.session.execute(select(ConcealedKit.kit_number)
                                        .where(ConcealedKit.trial_id == self.trial_id)).scalars())
        start = self.session.execute(select(func.coalesce(func.max(ConcealedKit.position) + 1, 0))
                                     .where(ConcealedKit.trial_id == self.trial_id)).scalar_one()
        kits = new_kits(arms, sites, kits_per_site, block_sizes, draw, used)
        self.session.execute(insert(ConcealedKit), [
            {"trial_id": self.trial_id, "position": start + i, **k.model_dump()} for i, k in enumerate(kits)])
