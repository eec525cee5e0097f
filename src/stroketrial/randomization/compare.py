"""Every randomization method, run on one trial's own factors and arms with synthetic cohorts.

The cohorts are eligible patients of the trial drawn from `cohort.synthesize`, so the
factor levels come in the proportions a thrombectomy population has (most patients
at the busiest sites, M1 the commonest occlusion, ...). All methods see the same
simulated cohorts and the same uniforms (common random numbers), so differences
between them are the methods', not the dice's. The same seed gives the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from collections.abc import Callable, Sequence

import numpy as np

from ..cohort import synthesize
from ..eligibility import encode_cohort, statuses
from ..protocol import Protocol
from ..protocol.schemes import (BigStick, EfronBiasedCoin, Minimization, PermutedBlocks, RandomizationScheme,
                                SimpleRandomization)
from .diagnostics import BalanceSummary, CohortGroups, summarize
from .factors import CodedCohort, code_cohort
from .randomizer import RandomizationError
from .batch_simulation import simulate_slots
from .state import ArmSlots

POOL_SIZE = 40_000
MIN_POOL = 2_000


@dataclass(frozen=True)
class Candidate:
    label: str
    scheme: RandomizationScheme
    naive_unequal: bool = False
    is_protocol: bool = False


@dataclass(frozen=True)
class Comparison:
    trial: str
    trials: int
    patients: int
    seed: int
    ratio: str
    pool: int
    results: list[BalanceSummary] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)

    def to_json(self) -> list[dict]:
        return [{**r.to_json(), "protocol_method": c.is_protocol,
                 "scheme": c.scheme.model_dump(mode="json", exclude={"timing", "factors", "assumption"})}
                for r, c in zip(self.results, self.candidates, strict=True)]


def _same(a: RandomizationScheme, b: RandomizationScheme) -> bool:
    keep = {"timing", "assumption", "blinded_kits"}
    return a.model_dump(exclude=keep) == b.model_dump(exclude=keep)


def candidates(protocol: Protocol) -> list[Candidate]:
    """The methods worth comparing for this trial, its own declared method among them."""
    own = protocol.randomization
    if own is None:
        raise RandomizationError(f"{protocol.id} is not randomized; nothing to compare")
    arms = ArmSlots.of(protocol.arms)
    s = arms.n_slots
    timing, factors = own.timing, own.factors  # every candidate keeps the protocol's timing and factors
    names = [f.name for f in factors]
    out: list[Candidate] = [Candidate("simple", SimpleRandomization(method="simple", timing=timing,
                                                                    factors=factors))]
    sizes = [s, 2 * s] if s > 2 else [2, 4]
    if "site" in names:
        out.append(Candidate(f"blocks {','.join(map(str, sizes))} by site", PermutedBlocks(
            method="permuted_blocks", block_sizes=sizes, stratify_by=["site"], timing=timing, factors=factors)))
    if names:
        out.append(Candidate(f"blocks {','.join(map(str, sizes))} by all factors", PermutedBlocks(
            method="permuted_blocks", block_sizes=sizes, stratify_by=names, timing=timing, factors=factors)))
    if s == 2:
        out.append(Candidate("efron p=2/3", EfronBiasedCoin(method="efron", timing=timing, factors=factors)))
    out.append(Candidate("big stick b=3", BigStick(method="big_stick", max_imbalance=3, timing=timing,
                                                   factors=factors)))
    if names:
        settings: tuple[tuple[Literal["range", "variance"], float, int | None], ...] = (
            ("range", 0.8, None), ("range", 1.0, None), ("variance", 0.8, None), ("range", 0.8, 3))
        for measure, p, mti in settings:
            label = f"minimization {measure} p={p:g}" + (f" mti={mti}" if mti else "")
            out.append(Candidate(label, Minimization(method="minimization", imbalance=measure, p_preferred=p,
                                                     max_imbalance=mti, timing=timing, factors=factors)))
        if len(set(arms.ratio)) > 1:
            out.append(Candidate("minimization range p=0.8 naive ratio weights", Minimization(
                method="minimization", imbalance="range", p_preferred=0.8, timing=timing, factors=factors),
                naive_unequal=True))
    marked = [Candidate(c.label + " (protocol)", c.scheme, c.naive_unequal, True)
              if not c.naive_unequal and _same(c.scheme, own) else c for c in out]
    if not any(c.is_protocol for c in marked):
        marked.append(Candidate(f"{own.method} (protocol)", own, False, True))
    return marked


def _scheme(protocol: Protocol) -> RandomizationScheme:
    if protocol.randomization is None:
        raise RandomizationError(f"{protocol.id} is not randomized; it has no randomization to simulate")
    return protocol.randomization


def eligible_pool(protocol: Protocol, seed: np.random.SeedSequence, size: int = POOL_SIZE) -> CodedCohort:
    """Factor codes of the eligible patients in a synthetic cohort (rows with a missing factor dropped).

    Trials with narrow criteria (ANGEL-RESCUE takes only failed thrombectomies) get a
    larger synthetic cohort, until at least MIN_POOL eligible patients are drawn from.
    """
    factors = _scheme(protocol).factors
    fields = [f.field for f in factors]
    while True:
        frame = synthesize(size, int(seed.generate_state(1)[0]), protocol)
        frame = frame[statuses(protocol, encode_cohort(protocol, frame)) == "eligible"]
        frame = frame[frame[fields].notna().all(axis=1)] if fields else frame
        if len(frame) >= MIN_POOL or size >= 8 * POOL_SIZE:
            break
        size *= 2
    if len(frame) < 100:
        raise RandomizationError(f"only {len(frame)} of {size} synthetic patients are eligible for {protocol.id} "
                                 "with every factor recorded; too few to simulate its cohorts")
    return code_cohort(factors, frame)


def compare(protocol: Protocol, trials: int, seed: int, patients: int | None = None,
            methods: Sequence[Candidate] | None = None, chunk: int = 2500,
            progress: Callable[[str, int], None] | None = None) -> Comparison:
    """Simulate `trials` trials of `patients` (default: the protocol's sample size) under each method."""
    if trials < 1:
        raise RandomizationError(f"--trials is {trials}; simulate at least 1 trial")
    patients = patients or protocol.sample_size.total
    if patients < 2:
        raise RandomizationError(f"--patients is {patients}; a trial needs at least 2 patients")
    methods = list(methods) if methods is not None else candidates(protocol)
    arms = ArmSlots.of(protocol.arms)
    slot_arm = np.asarray(arms.slot_arm, dtype=np.int8)
    factors = _scheme(protocol).factors
    root = np.random.SeedSequence(seed)
    pool_seed, *chunk_seeds = root.spawn(1 + -(-trials // chunk))
    pool = eligible_pool(protocol, pool_seed)
    n_levels = [len(lv) for lv in pool.levels]
    # Small codes keep the (trials, patients, factors) cohorts a few bytes per patient.
    pool_codes = pool.codes.astype(np.int8) if max(n_levels, default=0) <= np.iinfo(np.int8).max else pool.codes
    all_codes: list[np.ndarray] = []
    allocated: dict[str, list[np.ndarray]] = {c.label: [] for c in methods}
    for k, chunk_seed in enumerate(chunk_seeds):
        n = min(chunk, trials - k * chunk)
        rng = np.random.default_rng(chunk_seed)
        codes = pool_codes[rng.integers(0, pool.n, size=(n, patients))]
        u = rng.random((n, patients))
        v = rng.random((n, patients))
        all_codes.append(codes)
        for c in methods:
            slots = simulate_slots(c.scheme, arms, codes, n_levels, u, v, naive_unequal=c.naive_unequal)
            allocated[c.label].append(slots if c.naive_unequal else slot_arm[slots])
            if progress:
                progress(c.label, n)
    codes = np.concatenate(all_codes)
    names = [f.name for f in factors]
    site = names.index("site") if "site" in names else None
    treatment = next(i for i, a in enumerate(protocol.arms) if a.role == "experimental")
    groups = CohortGroups.of_cohorts(codes, n_levels)  # every method is scored on the same cohorts
    results = [summarize(c.label, np.concatenate(allocated[c.label]), codes, n_levels, names, arms.ratio, site,
                         treatment, groups) for c in methods]
    return Comparison(protocol.id, trials, patients, seed, arms.label, pool.n, results, methods)
