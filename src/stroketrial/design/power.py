"""Simulation-based power: whole trials, randomized by the protocol's method, analysed by its primary analysis.

Per chunk of simulated trials (each chunk seeded from one root seed, so the result is
the same however the chunks are spread over processes or a Dask cluster):

1. patients: drawn from the trial's eligible synthetic cohort (age, NIHSS, ASPECTS and
   the randomization factors as real thrombectomy populations have them);
2. randomization: the protocol's own method, vectorised (`randomization.simulate_slots`; permuted
   blocks by `power_blocks`, which gives the same slots stratum by stratum);
3. outcome: the 90-day mRS from a proportional-odds model (control distribution at
   average baseline, covariate effects for age, NIHSS and ASPECTS, the true common OR
   for treatment), or mRS 0-2 for a binary primary endpoint; then dropout;
4. analysis: covariate-adjusted proportional odds by the batched Newton fitter
   (`batched_po_fit`), or adjusted logistic regression (the same fitter with two categories);
   rejection when the two-sided p < alpha in the direction of benefit.

The code before issue 22 is kept in `power_reference`: the same seed gives the same trials and the
same estimates to 1e-8 there (tests/test_power_speed_equivalence.py), in about ten times the time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from collections.abc import Callable

import numpy as np
from scipy import stats

from ..protocol import Protocol
from ..protocol.schemes import PermutedBlocks, RandomizationScheme
from ..randomization import ArmSlots, simulate_slots
from ..randomization.batch_simulation import stratum_index
from . import batched_po_fit
from .power_blocks import block_slots
from .samplesize import DesignInputError, check_distribution

CONTROL_MRS = (0.10, 0.14, 0.16, 0.17, 0.15, 0.08, 0.20)  # thrombectomy arms, close to HERMES (Goyal 2016)
COVARIATE_EFFECTS = {"age": (0.035, 67.0), "nihss": (0.08, 16.0), "aspects": (-0.15, 8.0)}  # per unit, centre


def primary_endpoint(protocol: Protocol) -> tuple[str, float]:
    """What `design power` simulates for the protocol's primary endpoint, as its analysis plan declares it: the
    mRS shift, or a yes/no cut of the mRS (mRS 0-2: at most 2). Other primary endpoints are not simulated."""
    primary = protocol.primary_endpoints[0]
    a = primary.analysis
    if a is not None and a.outcome.assessment == "mrs":
        if a.method == "ordinal_shift":
            return "ordinal", 2
        if a.method == "binary" and a.outcome.at_most is not None:
            return "binary", a.outcome.at_most
    method = a.method if a is not None else "none declared"
    raise DesignInputError(f"{protocol.id}'s primary endpoint {primary.name!r} (analysis: {method}) is not an mRS "
                           "shift or an mRS cut; design power simulates those (give --endpoint to choose one)")


@dataclass(frozen=True)
class PowerSettings:
    trial: str
    n: int
    trials: int
    seed: int
    common_or: float
    control_mrs: tuple[float, ...] = CONTROL_MRS
    endpoint: str = "ordinal"  # or "binary": mRS 0 to `mrs_at_most`
    alpha: float = 0.05
    dropout: float = 0.05
    adjust: tuple[str, ...] = ("age", "nihss", "aspects")
    chunk: int = 500
    mrs_at_most: float = 2


@dataclass(frozen=True)
class PowerResult:
    settings: dict
    power: float
    mc_se: float
    estimates: dict = field(default_factory=dict)
    non_converged: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def chunk_seeds(seed: int, trials: int, chunk: int) -> list[tuple[np.random.SeedSequence, int]]:
    sizes = [min(chunk, trials - start) for start in range(0, trials, chunk)]
    return list(zip(np.random.SeedSequence(seed).spawn(len(sizes)), sizes, strict=True))


_POOLS: dict = {}


def _scheme(protocol: Protocol) -> RandomizationScheme:
    if protocol.randomization is None:
        raise DesignInputError(f"{protocol.id} is not randomized")
    return protocol.randomization


def _pool(protocol: Protocol):
    """The eligible synthetic cohort: factor codes and the covariates of the outcome model (cached per trial)."""
    if protocol.id not in _POOLS:
        from ..cohort import synthesize
        from ..eligibility import encode_cohort, statuses
        from ..randomization.factors import code_cohort

        factors = _scheme(protocol).factors
        frame = synthesize(40_000, 20_261, protocol)
        fields = sorted({f.field for f in factors} | {"age", "nihss"})
        frame = frame[statuses(protocol, encode_cohort(protocol, frame)) == "eligible"]
        frame = frame[frame[fields].notna().all(axis=1)]
        codes = code_cohort(factors, frame)
        aspects = frame["aspects"].astype(float).fillna(8.0) if "aspects" in frame else np.full(len(frame), 8.0)
        covariates = np.column_stack([frame["age"].astype(float), frame["nihss"].astype(float), aspects])
        _POOLS[protocol.id] = (codes.codes, [len(lv) for lv in codes.levels], covariates)
    return _POOLS[protocol.id]


def run_chunk(protocol: Protocol, settings: PowerSettings, seed: np.random.SeedSequence, trials: int) -> dict:
    """Simulate and analyse `trials` trials; returns the arrays to combine (pure: same seed, same arrays)."""
    y, X, k = simulate_trials(protocol, settings, seed, trials)
    fitted = batched_po_fit.fit(y, X, k)
    beta, se = fitted.beta[:, 0], fitted.se[:, 0]
    with np.errstate(invalid="ignore"):
        z = -beta / se  # above 0 favours treatment (shift toward lower mRS / more mRS 0-2)
        reject = (2 * stats.norm.sf(np.abs(z)) < settings.alpha) & (z > 0) & fitted.converged
    return {"reject": reject, "log_or": -beta, "converged": fitted.converged, "analysed": y.shape[1]}


def simulate_trials(protocol: Protocol, settings: PowerSettings, seed: np.random.SeedSequence,
                    trials: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The analysed outcomes y [trials, patients], covariates X [trials, patients, p] (treatment first) and
    the number of outcome categories of `trials` simulated trials.

    The random draws are made in today's order and shapes (`power_reference.run_chunk_reference`), so a
    seed gives the same simulated trials; what follows them is arranged for speed."""
    codes_pool, n_levels, cov_pool = _pool(protocol)
    scheme = _scheme(protocol)
    rng = np.random.default_rng(seed)
    n = settings.n
    pick = rng.integers(0, len(cov_pool), size=(trials, n))
    arms = ArmSlots.of(protocol.arms)
    u, v = rng.random((trials, n)), rng.random((trials, n))
    if isinstance(scheme, PermutedBlocks):
        names = [f.name for f in scheme.factors]
        pool_stratum, n_strata = stratum_index(codes_pool, [names.index(s) for s in scheme.stratify_by], n_levels)
        slots = block_slots(scheme, arms.n_slots, pool_stratum[pick], n_strata, u, v)
    else:
        slots = simulate_slots(scheme, arms, codes_pool[pick], n_levels, u, v)
    treatment = next(i for i, a in enumerate(protocol.arms) if a.role == "experimental")
    treated = np.asarray(arms.slot_arm)[slots] == treatment
    # per pool patient: the covariates as centred for the model, and their part of the linear predictor
    centred = [cov_pool[:, j] - centre for j, (_, centre) in enumerate(COVARIATE_EFFECTS.values())]
    eta = sum(effect * (cov_pool[:, j] - centre) for j, (effect, centre) in enumerate(COVARIATE_EFFECTS.values()))
    mrs = _mrs(settings, treated, np.asarray(eta)[pick], rng.random((trials, n)))
    observed = rng.random((trials, n)) >= settings.dropout
    # Dropouts leave the analysis; keep arrays rectangular by analysing a fixed number per trial (the
    # smallest observed count in the chunk, taking observed patients first, in enrolment order).
    keep = int(observed.sum(axis=1).min())
    analysed = observed & (np.cumsum(observed, axis=1) <= keep)
    mrs, pick, treated = mrs[analysed].reshape(trials, keep), pick[analysed].reshape(trials, keep), \
        treated[analysed].reshape(trials, keep)
    y = mrs if settings.endpoint == "ordinal" else (mrs > settings.mrs_at_most).astype(int)
    k = 7 if settings.endpoint == "ordinal" else 2
    columns = [treated.astype(float)] + [centred[j][pick] for j, name in enumerate(COVARIATE_EFFECTS)
                                         if name in settings.adjust]
    return y, np.stack(columns, axis=2), k


def _mrs(settings: PowerSettings, treated: np.ndarray, eta: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The 90-day mRS: the number of cumulative probabilities P(mRS <= j) that the uniform r exceeds.

    Compared on the logit scale (one log per patient instead of six logistic functions); where r lies
    within 1e-6 (logit) of a threshold the comparison is redone as today's code makes it, so the
    same uniforms give the same mRS to the last rounding."""
    p = check_distribution(settings.control_mrs)
    cuts = np.log(np.cumsum(p)[:-1] / (1 - np.cumsum(p)[:-1]))
    log_or = np.log(settings.common_or)
    with np.errstate(divide="ignore"):
        value = np.log(r / (1 - r)) + eta - log_or * treated  # r > F(cut + log_or * treated - eta)
    mrs = np.searchsorted(cuts, value, side="left")
    bounds = np.concatenate([[-np.inf], cuts, [np.inf]])
    near = np.minimum(value - bounds[mrs], bounds[mrs + 1] - value) < 1e-6
    if near.any():
        cumulative = 1 / (1 + np.exp(-(cuts + log_or * treated[near].astype(float)[:, None] - eta[near][:, None])))
        mrs[near] = (r[near][:, None] > cumulative).sum(axis=-1)
    return mrs


def simulate_power(protocol: Protocol, settings: PowerSettings,
                   progress: Callable[[int], None] | None = None, scheduler: str | None = None,
                   workers: int | None = None) -> PowerResult:
    import time

    if protocol.randomization is None:
        raise DesignInputError(f"{protocol.id} is not randomized")
    if settings.common_or <= 0:
        raise DesignInputError("--common-or must be positive")
    if not 10 <= settings.n <= 20_000:
        raise DesignInputError(f"--n {settings.n} must be 10 to 20000 patients")
    if not 1 <= settings.trials <= 1_000_000:
        raise DesignInputError(f"--trials {settings.trials} must be 1 to 1000000")
    started = time.perf_counter()
    pieces = chunk_seeds(settings.seed, settings.trials, settings.chunk)
    if scheduler or workers:
        results = _dask(protocol, settings, pieces, scheduler, workers, progress)
    else:
        _pool(protocol)
        results = []
        for seed, size in pieces:
            results.append(run_chunk(protocol, settings, seed, size))
            if progress:
                progress(size)
    reject = np.concatenate([r["reject"] for r in results])
    log_or = np.concatenate([r["log_or"] for r in results])
    converged = np.concatenate([r["converged"] for r in results])
    power = float(reject.mean())
    good = log_or[converged]
    estimates = {"mean_common_or": float(np.exp(good.mean())) if len(good) else None,
                 "median_common_or": float(np.exp(np.median(good))) if len(good) else None,
                 "q025": float(np.exp(np.quantile(good, 0.025))) if len(good) else None,
                 "q975": float(np.exp(np.quantile(good, 0.975))) if len(good) else None}
    return PowerResult(asdict(settings), power, float(np.sqrt(power * (1 - power) / len(reject))), estimates,
                       int((~converged).sum()), time.perf_counter() - started)


def _run_chunks(protocol: Protocol, pool: tuple, settings: PowerSettings,
                pieces: list[tuple[np.random.SeedSequence, int]]) -> list:
    _POOLS.setdefault(protocol.id, pool)  # a worker need not synthesize the cohort again
    _keep_freed_memory()
    return [run_chunk(protocol, settings, seed, size) for seed, size in pieces]


def _keep_freed_memory() -> None:
    """Let this process's malloc reuse freed arrays instead of handing them back to the kernel.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_ set, which in glibc also freezes the mmap
    threshold at 128 kB: every array larger than that is then a fresh mapping, faulted in page by page,
    and a chunk's arrays are megabytes (measured: as much system time as computing time, and 3x the
    one-process wall time on two workers). Raising both thresholds keeps them in the heap. glibc only."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except OSError:
        pass


def _dask(protocol, settings, pieces, scheduler, workers, progress):
    """The chunks on a Dask cluster: the protocol and its eligible cohort (under 1 MB) go to each worker
    once, each task gets only seeds, and each returns only its trials' estimates.

    A task should be worth sending: about 300,000 simulated patients (a tenth of a CPU-second; one chunk
    of 500 IMPACT-LVO trials is more), yet leave at least two tasks per worker, so the workers finish
    together."""
    import math
    import uuid

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        import sys

        import dask

        # Forked workers start with this process's imports and eligible cohort: a tenth of a second, where
        # spawned ones take seconds to import the package and rebuild the cohort (Linux; elsewhere spawn).
        # No dashboard, so no statistical profiler either (it sampled the stack every 10 ms: 5% of the CPU).
        method = "fork" if sys.platform == "linux" else dask.config.get("distributed.worker.multiprocessing-method")
        _pool(protocol)
        with dask.config.set({"distributed.worker.multiprocessing-method": method,
                              "distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        if not client.scheduler_info()["workers"]:
            client.wait_for_workers(1, timeout=120)  # a scheduler whose workers are still starting
        n_workers = len(client.scheduler_info()["workers"])
        per_task = max(1, min(math.ceil(300_000 / (settings.chunk * settings.n)), len(pieces) // (2 * n_workers)))
        groups = [pieces[i:i + per_task] for i in range(0, len(pieces), per_task)]
        shared, pool = client.scatter([protocol, _pool(protocol)], broadcast=True)
        run = uuid.uuid4().hex[:8]  # keys unique to this run: a shared scheduler may hold another's
        futures = [client.submit(_run_chunks, shared, pool, settings, group, pure=False, key=f"power-{run}-{i}")
                   for i, group in enumerate(groups)]
        sizes = {f.key: sum(size for _, size in group) for f, group in zip(futures, groups, strict=True)}
        for future in as_completed(futures):
            if progress:
                progress(sizes[future.key])
        return [chunk for part in client.gather(futures) for chunk in part]  # in chunk order
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
