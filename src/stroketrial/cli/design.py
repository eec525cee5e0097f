"""`stroketrial design`: sample size, group-sequential boundaries, simulated power, and the built-in trials'
sample-size derivations."""

from __future__ import annotations


import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .support import JsonOption, emit_json, err, fail, out
from ..protocol import resolve


def register(app: typer.Typer, command) -> None:
    command(app, "design", epilog=(
        "Examples: stroketrial design samplesize binary --p-control 0.30 --p-treatment 0.45 --json  ·  "
        "stroketrial design samplesize ordinal --control-mrs 0.05,0.10,0.15,0.20,0.20,0.10,0.20 --common-or 1.5  ·  "
        "stroketrial design boundaries --looks 3 --alpha 0.025 --sided 1 --spending obf --json  ·  "
        "stroketrial design power impact-lvo --trials 10000 --common-or 1.3 --seed 1  ·  stroketrial design impact-lvo"
    ))(design)


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} {text!r} is a comma-separated list of numbers")


def design(what: str = typer.Argument(..., help="samplesize, boundaries, power, or a trial id (its derivation)."),
           kind: str | None = typer.Argument(None, help="samplesize: binary, ordinal or continuous; power: trial."),
           p_control: float | None = typer.Option(None, "--p-control", help="binary: control-arm proportion."),
           p_treatment: float | None = typer.Option(None, "--p-treatment", help="binary: treatment proportion."),
           control_mrs: str | None = typer.Option(None, "--control-mrs", help="ordinal/power: control mRS 0-6 "
                                                                                 "proportions."),
           common_or: float = typer.Option(1.5, "--common-or", help="ordinal/power: common OR for a better mRS."),
           delta: float | None = typer.Option(None, "--delta", help="continuous: difference in means."),
           sd: float | None = typer.Option(None, "--sd", help="continuous: standard deviation."),
           alpha: float = typer.Option(0.05, "--alpha", help="Significance level (two-sided for sample sizes)."),
           power: float = typer.Option(0.8, "--power", help="Power."),
           ratio: float = typer.Option(1.0, "--ratio", help="Allocation ratio n treatment / n control."),
           sided: int = typer.Option(2, "--sided", help="1 or 2."),
           continuity: bool = typer.Option(False, "--continuity", help="binary: continuity correction."),
           dropout: float | None = typer.Option(None, "--dropout", help="Proportion lost to follow-up "
                                                    "(default 0 for a sample size, 0.05 for power)."),
           non_adherence: float = typer.Option(0.0, "--non-adherence", help="Inflation n x (1 + r)."),
           looks: int | None = typer.Option(None, "--looks", help="boundaries: number of analyses (default 3); "
                                                                     "samplesize: a group-sequential design with this "
                                                                     "many looks."),
           information: str | None = typer.Option(None, "--information", help="boundaries: information fractions."),
           spending: str = typer.Option("obf", "--spending", help="boundaries: obf or pocock."),
           futility: str | None = typer.Option(None, "--futility", help="boundaries: non-binding futility z per "
                                                                          "interim."),
           trials: int = typer.Option(1000, "--trials", help="power: simulated trials."),
           n: int | None = typer.Option(None, "--n", help="power: patients (default: the protocol's)."),
           seed: int = typer.Option(1, "--seed", help="power: root seed."),
           endpoint: str = typer.Option("ordinal", "--endpoint", help="power: ordinal (shift) or binary (mRS 0-2)."),
           workers: int | None = typer.Option(None, "--workers", help="power: start a local Dask cluster."),
           scheduler: str | None = typer.Option(None, "--scheduler", help="power: Dask scheduler address."),
           as_json: bool = JsonOption) -> None:
    """Plan a trial: sample size, group-sequential boundaries, simulated power, or a built-in trial's derivation."""
    from ..design import groupseq, samplesize  # SciPy and the simulators load when a design is asked for
    from ..design.power import CONTROL_MRS, PowerSettings, simulate_power
    from ..design.seed_sample_sizes import derivation

    if what == "samplesize":
        if kind == "binary":
            if p_control is None or p_treatment is None:
                fail("binary sample size needs --p-control and --p-treatment")
            result = samplesize.two_proportions(p_control, p_treatment, alpha, power, ratio, sided, continuity,
                                                dropout or 0.0, non_adherence)
        elif kind == "ordinal":
            if control_mrs is None:
                fail("ordinal sample size needs --control-mrs, the control arm's mRS 0-6 proportions")
            result = samplesize.ordinal_shift(_floats(control_mrs, "--control-mrs"), common_or, alpha, power, ratio,
                                              sided, dropout or 0.0, non_adherence)
        elif kind == "continuous":
            if delta is None or sd is None:
                fail("continuous sample size needs --delta and --sd")
            result = samplesize.continuous(delta, sd, alpha, power, ratio, sided, dropout or 0.0, non_adherence)
        else:
            fail(f"samplesize {kind!r}: choose binary, ordinal or continuous")
        data = result.to_json()
        if looks and looks > 1:
            b = groupseq.boundaries(looks, alpha, sided, spending, _floats(information, "--information"),
                                    _floats(futility, "--futility"))
            info = groupseq.inflation(b, power)
            data["group_sequential"] = b.to_json() | info | {
                "n_max": int(-(-result.n_total * info["inflation_factor"] // 1)),
                "expected_n_h0": round(result.n_total * info["expected_fraction_h0"], 1),
                "expected_n_h1": round(result.n_total * info["expected_fraction_h1"], 1)}
        if as_json:
            emit_json(data)
            return
        out.print(f"[bold]{result.endpoint}[/]: n = {result.n_total} ({result.n_per_arm['treatment']} treatment, "
                  f"{result.n_per_arm['control']} control)")
        for step in result.steps:
            out.print(f"  {step}")
        if "group_sequential" in data:
            gs = data["group_sequential"]
            out.print(f"  group-sequential, {looks} looks, {spending} spending: z = "
                      + ", ".join(f"{z:.3f}" for z in gs["z"]) + f"; maximum n = {gs['n_max']} (x "
                      f"{gs['inflation_factor']:.4f}), expected n {gs['expected_n_h0']:g} under H0 and "
                      f"{gs['expected_n_h1']:g} under H1")
        return
    if what == "boundaries":
        looks = looks or 3
        b = groupseq.boundaries(looks, alpha, sided, spending, _floats(information, "--information"),
                                _floats(futility, "--futility"))
        data = b.to_json() | groupseq.inflation(b, power)
        if as_json:
            emit_json(data)
            return
        out.print(f"[bold]Lan-DeMets {spending} spending[/], {looks} looks, alpha {alpha:g} ({sided}-sided)")
        for k, (t, z, p, a) in enumerate(zip(b.information, b.z, b.nominal_p, b.cumulative_alpha, strict=True), 1):
            out.print(f"  look {k}: information {t:.3f}  z {z:.4f}  nominal p {p:.5f}  cumulative alpha {a:.5f}")
        out.print(f"  maximum sample size = {data['inflation_factor']:.4f} x fixed design; expected "
                  f"{data['expected_fraction_h0']:.4f} under H0, {data['expected_fraction_h1']:.4f} under H1 "
                  f"(power {power:g})")
        return
    if what == "power":
        if kind is None:
            fail("power needs the trial, e.g. stroketrial design power impact-lvo")
        protocol = resolve(kind)
        mrs = tuple(_floats(control_mrs, "--control-mrs")) if control_mrs else CONTROL_MRS
        settings = PowerSettings(protocol.id, n or protocol.sample_size.total, trials, seed, common_or, mrs,
                                 endpoint, alpha, 0.05 if dropout is None else dropout)
        if endpoint not in ("ordinal", "binary"):
            fail(f"--endpoint {endpoint!r} is not ordinal or binary")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task(f"simulating {protocol.id}", total=trials)
            result = simulate_power(protocol, settings, lambda k: bar.update(task, advance=k), scheduler, workers)
        if as_json:
            emit_json(result.to_json())
            return
        out.print(f"[bold]{protocol.acronym}[/]: power {result.power:.3f} (Monte-Carlo SE {result.mc_se:.3f}) with "
                  f"{settings.n} patients, true common OR {common_or:g}, {trials:,} simulated trials, "
                  f"{result.seconds:.1f} s")
        est = result.estimates
        if est["median_common_or"]:
            out.print(f"  estimated common OR: median {est['median_common_or']:.3f}, 95% of trials "
                      f"{est['q025']:.3f} to {est['q975']:.3f}; not converged: {result.non_converged}")
        return
    protocol = resolve(what)
    data = derivation(protocol)
    if as_json:
        emit_json(data)
        return
    out.print(f"[bold]{protocol.acronym}[/] stated sample size {data['stated_total']} ({data['method']})")
    for step in data["steps"]:
        out.print(f"  {step}")
    if data["reproduced"] is not None:
        out.print(f"  reproduced: {'yes' if data['reproduced'] else 'no'}")
    for missing in data["missing_assumptions"]:
        out.print(f"  not stated by the source: {missing}", style="dim")
    for implied in data["implied"]:
        out.print(f"  implied ({implied['label']}): " + ", ".join(f"{k} = {v}" for k, v in implied.items()
                                                                  if k.startswith(("common_or_", "p_treatment_"))))
        out.print(f"    assumption: {implied['assumption']}", style="dim")
