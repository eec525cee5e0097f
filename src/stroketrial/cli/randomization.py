"""`stroketrial randomization ...`: show a trial's method, compare methods, make concealed lists, run a cohort."""

from __future__ import annotations

from typing import TYPE_CHECKING

import csv
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.console import Console
from rich.table import Table

from .support import command_group, JsonOption, command, emit_json, err, fail, out

if TYPE_CHECKING:
    from ..protocol import Protocol
    from ..protocol.schemes import RandomizationScheme
    from ..randomization import Randomizer


randomization_app = command_group("Central randomization: methods, concealed lists, balance diagnostics.")

TrialArgument = typer.Argument(..., help="Built-in id (amass-2, ...) or a protocol .yaml file.")


def _randomized(trial: str) -> tuple[Protocol, Randomizer]:
    from ..protocol import resolve
    from ..randomization import Randomizer

    protocol = resolve(trial)
    return protocol, Randomizer.for_protocol(protocol)


def _draw(seed: int | None):
    """The operating system's CSPRNG for real lists; a seeded generator only when asked (tests, training)."""
    from ..randomization import SeededDraw
    from ..randomization import SystemDraw

    if seed is None:
        return SystemDraw()
    err.print(f"[yellow]note:[/] seeded with {seed}: reproducible, so for testing and training only, never for a "
              "live trial", highlight=False)
    return SeededDraw(seed)


def _scheme_json(protocol: Protocol, r: RandomizationScheme) -> dict[str, Any]:
    from ..randomization import ArmSlots

    arms = ArmSlots.of(protocol.arms)
    return {"trial": protocol.id, "ratio": arms.label, "arms": list(arms.arms), "slots": list(arms.slots),
            **r.model_dump(mode="json")}


# ---- show ---------------------------------------------------------------------------------------
@command(randomization_app, "show", epilog="Example: stroketrial randomization show amass-2")
def show(trial: str = TrialArgument, as_json: bool = JsonOption) -> None:
    """Show how a trial randomizes: method, parameters, ratio, factors and their levels."""
    from ..protocol.schemes import PermutedBlocks

    protocol, randomizer = _randomized(trial)
    r = randomizer.scheme
    data = _scheme_json(protocol, r)
    if as_json:
        emit_json(data)
        return
    out.print(f"[bold]{protocol.acronym}[/] randomizes by [bold]{r.method.replace('_', ' ')}[/], ratio "
              f"{data['ratio']} ({' : '.join(data['arms'])}), {r.timing}.")
    params = {k: v for k, v in data.items() if k not in ("trial", "ratio", "arms", "slots", "method", "timing",
                                                           "factors", "assumption", "blinded_kits")}
    if params:
        out.print("Parameters: " + ", ".join(f"{k} = {'none' if v is None else v}" for k, v in params.items()))
    if r.blinded_kits:
        out.print("Double-blind: sites dispense numbered kits; blinded users see the kit number, never the arm.")
    if len(set(randomizer.arms.ratio)) > 1 and r.method == "minimization":
        out.print(f"Unequal ratio: minimization over equally allocated slots {', '.join(data['slots'])} "
                  "(Kuznetsova and Tymofyeyev, Stat Med 2012), which keeps the ratio at every allocation.")
    table = Table(title="Factors")
    for col in ("factor", "field", "levels", "weight", "role"):
        table.add_column(col, overflow="fold")
    stratified = set(r.stratify_by) if isinstance(r, PermutedBlocks) else set()
    for f in r.factors:
        if f.field == "site":
            levels = "one per site"
        elif f.cutpoints:
            levels = ", ".join(f.levels) + f"  (cut at {', '.join(f'{c:g}' for c in f.cutpoints)})"
        elif f.groups:
            levels = "; ".join(f"{name}: {', '.join(values)}" for name, values in f.groups.items())
        else:
            levels = ", ".join(f.levels)
        role = ("stratified" if f.name in stratified else "monitored") if isinstance(r, PermutedBlocks) else \
            ("minimized" if r.method == "minimization" else "monitored")
        table.add_row(f.name, f.field, levels, f"{f.weight:g}", role)
    out.print(table)
    if r.assumption:
        out.print(f"assumption: {r.assumption}", style="dim")


# ---- compare ------------------------------------------------------------------------------------
@command(randomization_app, "compare", epilog="Example: stroketrial randomization compare amass-2 --trials 10000 "
                                              "--seed 1 --plot amass-2-randomization.png")
def compare_cmd(trial: str = TrialArgument,
                trials: int = typer.Option(10_000, "--trials", help="Simulated trials per method."),
                seed: int = typer.Option(1, "--seed", help="Root seed; the same seed prints the same figures."),
                patients: int | None = typer.Option(None, "--patients", help="Patients per trial (default: the "
                                                                               "protocol's sample size)."),
                plot: Path | None = typer.Option(None, "--plot", help="Also draw imbalance distributions "
                                                                         "(.png, .svg or .pdf)."),
                as_json: bool = JsonOption) -> None:
    """Run every randomization method on the trial's own factors and ratio with synthetic cohorts.

    Imbalance is counted in patients away from the target ratio (|n_A - n_B| for 1:1):
    overall at the end, summed over strata (all factors crossed), and the worst factor
    level. Predictability is the chance a recruiter who has seen every earlier allocation
    at the site guesses the next arm (convergence strategy).
    """
    from ..randomization import compare
    from ..randomization.compare import candidates

    protocol, _ = _randomized(trial)
    if trials < 1 or trials > 1_000_000:
        fail(f"--trials is {trials}; allowed: 1 to 1000000")
    if patients is not None and not 2 <= patients <= 100_000:
        fail(f"--patients is {patients}; allowed: 2 to 100000")
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        fail(f"--plot {plot}: the figure is written as .png, .svg or .pdf")
    methods = candidates(protocol)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err.console, transient=True) as progress:
        task = progress.add_task(f"simulating {protocol.id}", total=trials * len(methods))

        def advance(label: str, n: int) -> None:
            progress.update(task, advance=n, description=f"{protocol.id}: {label}")

        result = compare(protocol, trials, seed, patients, methods, progress=advance)
    elapsed = time.perf_counter() - started
    if plot is not None:
        from ..randomization.imbalance_figure import plot_comparison
        plot_comparison(result, plot)
    if as_json:
        emit_json(result.to_json())
        return
    table = Table(title=f"{protocol.acronym}: {trials:,} simulated trials of {result.patients} patients, ratio "
                        f"{result.ratio}, seed {seed}")
    for col in ("method", "mean final imbalance", "max final", "95th pct", "within strata", "worst level (mean)",
                "treatment share", "guessed (site)", "guessed (trial)"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=col == "method")
    for r in result.results:
        style = "bold" if r.method.endswith("(protocol)") else None
        table.add_row(r.method, f"{r.mean_final_imbalance:.2f}", f"{r.max_final_imbalance:.1f}",
                      f"{r.p95_final_imbalance:.1f}", f"{r.mean_stratum_imbalance:.1f}",
                      f"{r.mean_worst_marginal_imbalance:.1f}", f"{r.ratio_reached:.4f}", f"{r.predictability:.3f}",
                      f"{r.predictability_overall:.3f}", style=style)
    # A nine-column table: print it whole even when stdout is a pipe (Rich assumes 80 columns).
    Console(width=max(out.width, 150), soft_wrap=False).print(table)
    out.print(f"Imbalance in patients away from the target ratio; guessed: predictability, the share of "
              f"allocations a recruiter guesses right by the convergence strategy. Target treatment share "
              f"{result.results[0].ratio_target:.4f}; cohorts drawn from {result.pool:,} eligible synthetic "
              f"patients; {elapsed:.1f} s")
    if plot is not None:
        out.print(f"figure: {plot}")


# ---- concealed lists ----------------------------------------------------------------------------
@command(randomization_app, "list", epilog="Example: stroketrial randomization list angel-rescue --site S1 "
                                           "--site S2 --per-stratum 60 --out angel-rescue-list.csv")
def list_cmd(trial: str = TrialArgument,
             sites: list[str] = typer.Option([], "--site", help="Site code (repeat for each site)."),
             per_stratum: int = typer.Option(100, "--per-stratum", help="Entries per stratum (whole blocks)."),
             seed: int | None = typer.Option(None, "--seed", help="Reproducible list for testing only; "
                                                                      "without it the OS CSPRNG is used."),
             out_path: Path = typer.Option(..., "--out", help="CSV file for the concealed list."),
             as_json: bool = JsonOption) -> None:
    """Generate a block design's concealed allocation list, per stratum, in permuted blocks."""
    from ..protocol.schemes import PermutedBlocks
    from ..randomization import BlockList

    protocol, randomizer = _randomized(trial)
    scheme = randomizer.scheme
    if not isinstance(scheme, PermutedBlocks):
        fail(f"{protocol.id} randomizes by {scheme.method.replace('_', ' ')}: each allocation is made when the "
             "patient is randomized, so there is no list to generate")
    if not 1 <= per_stratum <= 100_000:
        fail(f"--per-stratum is {per_stratum}; allowed: 1 to 100000")
    if any(f.field == "site" for f in scheme.factors if f.name in scheme.stratify_by) and not sites:
        fail("the list is stratified by site: give each site with --site")
    draw = _draw(seed)
    block_list = BlockList()
    strata = randomizer.strata_for_sites(sites)
    for stratum in strata:
        block_list = block_list.extended(randomizer.arms, scheme.block_sizes, stratum, per_stratum, draw)
    rows = [{"stratum": s, **e.model_dump()} for s in strata for e in block_list.strata[s]]
    _write_csv(out_path, rows)
    summary = {"path": str(out_path), "strata": len(strata), "entries": len(rows), "seeded": seed is not None}
    emit_json(summary) if as_json else out.print(f"wrote {len(rows)} entries in {len(strata)} strata to {out_path}")


@command(randomization_app, "kits", epilog="Example: stroketrial randomization kits impact-lvo --site S1 --site S2 "
                                           "--per-site 40 --out kits.csv --packing-list packing.csv")
def kits_cmd(trial: str = TrialArgument,
             sites: list[str] = typer.Option(..., "--site", help="Site code (repeat for each site)."),
             per_site: int = typer.Option(40, "--per-site", help="Kits shipped to each site (whole blocks)."),
             seed: int | None = typer.Option(None, "--seed", help="Reproducible list for testing only."),
             out_path: Path = typer.Option(..., "--out", help="Unblinded kit list (kit number -> arm), for the "
                                                              "unblinded pharmacist and the sponsor's IWRS only."),
             packing: Path | None = typer.Option(None, "--packing-list", help="Blinded packing list: kit numbers "
                                                                                  "and sites, no arms."),
             as_json: bool = JsonOption) -> None:
    """Generate a double-blind trial's kit list: numbered packs per site in permuted blocks."""
    from ..randomization import generate_kit_list
    from ..randomization.lists import kit_block_sizes

    protocol, randomizer = _randomized(trial)
    scheme = randomizer.scheme
    if not scheme.blinded_kits:
        fail(f"{protocol.id} is {protocol.design.masking.replace('_', ' ')}: it dispenses no blinded kits")
    if not 1 <= per_site <= 100_000:
        fail(f"--per-site is {per_site}; allowed: 1 to 100000")
    sizes = kit_block_sizes(scheme, randomizer.arms)
    kits = generate_kit_list(randomizer.arms, sites, per_site, sizes, _draw(seed))
    _write_csv(out_path, [k.model_dump() for k in kits.kits])
    if packing is not None:
        _write_csv(packing, kits.without_arms())
    summary = {"path": str(out_path), "packing_list": str(packing) if packing else None, "kits": len(kits.kits),
               "sites": kits.sites(), "seeded": seed is not None}
    emit_json(summary) if as_json else out.print(f"wrote {len(kits.kits)} kits for {len(sites)} sites to {out_path}")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix.lower() != ".csv":
        fail(f"{path}: write lists as .csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)


# ---- run a cohort --------------------------------------------------------------------------------
@command(randomization_app, "run", epilog="Example: stroketrial randomization run amass-2 cohort.csv --seed 1 "
                                          "--out allocations.csv")
def run_cmd(trial: str = TrialArgument,
            cohort: Path = typer.Argument(..., help="Cohort .csv or .parquet (e.g. from `stroketrial cohort synth`)."),
            seed: int | None = typer.Option(None, "--seed", help="Seeded draws (reproducible); default: OS CSPRNG."),
            limit: int | None = typer.Option(None, "--limit", help="Randomize at most this many eligible patients."),
            out_path: Path | None = typer.Option(None, "--out", help="CSV of the allocations."),
            as_json: bool = JsonOption) -> None:
    """Randomize a cohort's eligible patients in file order, one at a time, with the trial's own method.

    Prints the balance per factor level, and checks that the state rebuilt from the
    allocation history equals the state carried forward.
    """
    from ..eligibility import encode_cohort
    from ..eligibility import read_cohort
    from ..eligibility import statuses

    from ..randomization.cohort_run import margins_by_arm, randomize_cohort

    if limit is not None and limit < 1:
        fail(f"--limit is {limit}; allowed: 1 or more")
    protocol, randomizer = _randomized(trial)
    frame = read_cohort(cohort)
    eligible = frame[statuses(protocol, encode_cohort(protocol, frame)) == "eligible"]
    run = randomize_cohort(randomizer, eligible, _draw(seed), str(cohort), limit)
    allocations, held_back = run.allocations, run.held_back
    if out_path is not None:
        _write_csv(out_path, run.rows())
    counts = run.arm_counts(randomizer.arms.arms)
    margins = margins_by_arm(randomizer, run.state)
    if as_json:
        emit_json({"trial": protocol.id, "method": randomizer.method, "randomized": len(allocations), "arms": counts,
                   "held_back_missing_factor": held_back, "margins": margins, "state_rebuilt_identical": True,
                   "out": str(out_path) if out_path else None})
        return
    out.print(f"randomized {len(allocations)} eligible patients of {cohort} by {randomizer.method.replace('_', ' ')}: "
              + ", ".join(f"{arm} {n}" for arm, n in counts.items()))
    for field, n in held_back.items():
        out.print(f"[yellow]held back[/]: {n} eligible patients without {field}, which randomization needs")
    table = Table(title="Balance by factor level")
    table.add_column("factor")
    table.add_column("level")
    for arm in randomizer.arms.arms:
        table.add_column(arm, justify="right")
    for f, by_level in margins.items():
        factor = randomizer.scheme.factor(f)
        order = factor.levels if factor.levels else sorted(by_level)
        for lv, by_arm in sorted(by_level.items(), key=lambda item: order.index(item[0])):
            table.add_row(f, lv, *(str(by_arm[a]) for a in randomizer.arms.arms))
    out.print(table)
    out.print("state rebuilt from the allocation history: identical to the state carried forward")
    if out_path is not None:
        out.print(f"allocations: {out_path}")
