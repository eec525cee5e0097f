"""`stroketrial design ...`: sample size, group-sequential boundaries, simulated power, and the built-in trials'
sample-size derivations, one subcommand each with its own options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from .support import command_group, JsonOption, command, emit_json, err, fail, out

if TYPE_CHECKING:
    from ..design.samplesize import SampleSize

design_app = command_group("Plan a trial: sample size, group-sequential boundaries, simulated power, and the "
                              "built-in trials' sample-size derivations.")
samplesize_app = command_group("Sample size for a binary, ordinal (mRS shift) or continuous primary endpoint, "
                                  "fixed or group-sequential.")


def register(app: typer.Typer) -> None:
    app.add_typer(design_app, name="design")
    design_app.add_typer(samplesize_app, name="samplesize")


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} {text!r} is a comma-separated list of numbers")


def _optional_floats(text: str | None, option: str) -> list[float] | None:
    return None if text is None else _floats(text, option)


# Options shared by the sample-size commands (and, for the group-sequential ones, by `boundaries`).
AlphaOption = typer.Option(0.05, "--alpha", help="Significance level (two-sided unless --sided 1).")
PowerOption = typer.Option(0.8, "--power", help="Power.")
RatioOption = typer.Option(1.0, "--ratio", help="Allocation ratio n treatment / n control.")
SidedOption = typer.Option(2, "--sided", help="1 or 2.")
DropoutOption = typer.Option(0.0, "--dropout", help="Proportion lost to follow-up: n / (1 - dropout).")
NonAdherenceOption = typer.Option(0.0, "--non-adherence", help="Inflation n x (1 + r).")
LooksOption = typer.Option(None, "--looks", help="A group-sequential design with this many analyses (2 or more).")
InformationOption = typer.Option(None, "--information", help="Information fraction at each look, e.g. "
                                                             "0.33,0.67,1 (default: equally spaced).")
SpendingOption = typer.Option("obf", "--spending", help="Lan-DeMets alpha spending: obf or pocock.")
FutilityOption = typer.Option(None, "--futility", help="Non-binding futility z per interim look.")


def _report_sample_size(result: SampleSize, as_json: bool, looks: int | None, alpha: float, power: float,
                        sided: int, spending: str, information: str | None, futility: str | None) -> None:
    from ..design import groupseq, samplesize

    data: dict[str, Any] = result.to_json()
    if looks is not None:
        if looks < 2:
            fail(f"--looks is {looks}; a group-sequential design has 2 or more looks (leave it out for a fixed one)")
        b = groupseq.boundaries(looks, alpha, sided, spending, _optional_floats(information, "--information"),
                                _optional_floats(futility, "--futility"))
        info = groupseq.inflation(b, power)
        # the maximum is rounded up per arm (rpact's maxNumberOfSubjects1 and 2), not as a total
        maximum = samplesize.group_sequential_max(result, info["inflation_factor"])
        data["group_sequential"] = b.to_json() | info | {
            "n_max": maximum.n_total, "n_max_per_arm": maximum.n_per_arm, "n_max_steps": maximum.steps,
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
                  + ", ".join(f"{z:.3f}" for z in gs["z"]) + f"; maximum n = {gs['n_max']} "
                  f"({gs['n_max_per_arm']['treatment']} treatment, {gs['n_max_per_arm']['control']} control; x "
                  f"{gs['inflation_factor']:.4f}), expected n {gs['expected_n_h0']:g} under H0 and "
                  f"{gs['expected_n_h1']:g} under H1")
        for step in gs["n_max_steps"]:
            out.print(f"    {step}")


@command(samplesize_app, "binary", epilog="Example: stroketrial design samplesize binary --p-control 0.30 "
                                          "--p-treatment 0.45 --json")
def samplesize_binary(p_control: float = typer.Option(..., "--p-control", help="Control-arm proportion."),
                      p_treatment: float = typer.Option(..., "--p-treatment", help="Treatment-arm proportion."),
                      continuity: bool = typer.Option(False, "--continuity", help="Continuity correction."),
                      alpha: float = AlphaOption, power: float = PowerOption, ratio: float = RatioOption,
                      sided: int = SidedOption, dropout: float = DropoutOption,
                      non_adherence: float = NonAdherenceOption, looks: int | None = LooksOption,
                      information: str | None = InformationOption, spending: str = SpendingOption,
                      futility: str | None = FutilityOption, as_json: bool = JsonOption) -> None:
    """Patients for a difference between two proportions (e.g. mRS 0-2 at 90 days)."""
    from ..design import samplesize

    result = samplesize.two_proportions(p_control, p_treatment, alpha, power, ratio, sided, continuity, dropout,
                                        non_adherence)
    _report_sample_size(result, as_json, looks, alpha, power, sided, spending, information, futility)


@command(samplesize_app, "ordinal", epilog="Example: stroketrial design samplesize ordinal --control-mrs "
                                           "0.05,0.10,0.15,0.20,0.20,0.10,0.20 --common-or 1.5")
def samplesize_ordinal(control_mrs: str = typer.Option(..., "--control-mrs", help="Control arm's mRS 0-6 "
                                                                                   "proportions."),
                       common_or: float = typer.Option(1.5, "--common-or", help="Common OR for a better mRS."),
                       alpha: float = AlphaOption, power: float = PowerOption, ratio: float = RatioOption,
                       sided: int = SidedOption, dropout: float = DropoutOption,
                       non_adherence: float = NonAdherenceOption, looks: int | None = LooksOption,
                       information: str | None = InformationOption, spending: str = SpendingOption,
                       futility: str | None = FutilityOption, as_json: bool = JsonOption) -> None:
    """Patients for an mRS shift analysis by proportional odds (Whitehead 1993)."""
    from ..design import samplesize

    result = samplesize.ordinal_shift(_floats(control_mrs, "--control-mrs"), common_or, alpha, power, ratio, sided,
                                      dropout, non_adherence)
    _report_sample_size(result, as_json, looks, alpha, power, sided, spending, information, futility)


@command(samplesize_app, "continuous", epilog="Examples: stroketrial design samplesize continuous --delta 10 "
                                              "--sd 30  ·  stroketrial design samplesize continuous --delta 10 "
                                              "--sd 30 --t --looks 3")
def samplesize_continuous(delta: float = typer.Option(..., "--delta", help="Difference in means."),
                          sd: float = typer.Option(..., "--sd", help="Standard deviation."),
                          t_test: bool = typer.Option(False, "--t/--normal",
                                                      help="--t: from the t-test's power (noncentral t), as "
                                                           "rpact's default; --normal (the default): the normal "
                                                           "approximation, a patient or two fewer per arm."),
                          alpha: float = AlphaOption, power: float = PowerOption, ratio: float = RatioOption,
                          sided: int = SidedOption, dropout: float = DropoutOption,
                          non_adherence: float = NonAdherenceOption, looks: int | None = LooksOption,
                          information: str | None = InformationOption, spending: str = SpendingOption,
                          futility: str | None = FutilityOption, as_json: bool = JsonOption) -> None:
    """Patients for a difference in means (e.g. infarct volume)."""
    from ..design import samplesize

    result = samplesize.continuous(delta, sd, alpha, power, ratio, sided, dropout, non_adherence,
                                   normal_approximation=not t_test)
    _report_sample_size(result, as_json, looks, alpha, power, sided, spending, information, futility)


@command(design_app, "boundaries", epilog="Example: stroketrial design boundaries --looks 3 --alpha 0.025 --sided 1 "
                                          "--spending obf --json")
def boundaries(looks: int = typer.Option(3, "--looks", help="Number of analyses, the final one included."),
               alpha: float = AlphaOption, power: float = PowerOption, sided: int = SidedOption,
               information: str | None = InformationOption, spending: str = SpendingOption,
               futility: str | None = FutilityOption, as_json: bool = JsonOption) -> None:
    """Group-sequential efficacy boundaries by Lan-DeMets alpha spending, with the sample-size inflation."""
    from ..design import groupseq

    b = groupseq.boundaries(looks, alpha, sided, spending, _optional_floats(information, "--information"),
                            _optional_floats(futility, "--futility"))
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


@command(design_app, "power", epilog="Examples: stroketrial design power impact-lvo --trials 10000 --common-or 1.3 "
                                     "--seed 1  ·  stroketrial design power amass-2 --workers 2  ·  "
                                     "stroketrial design power amass-2 --scheduler tcp://10.0.0.5:8786")
def power_cmd(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml file."),
              trials: int = typer.Option(1000, "--trials", help="Simulated trials."),
              n: int | None = typer.Option(None, "--n", help="Patients (default: the protocol's sample size)."),
              common_or: float = typer.Option(1.5, "--common-or", help="True common OR for a better mRS."),
              control_mrs: str | None = typer.Option(None, "--control-mrs", help="Control arm's mRS 0-6 "
                                                     "proportions (default: the HERMES thrombectomy arms)."),
              endpoint: str | None = typer.Option(None, "--endpoint", help="ordinal (shift) or binary (mRS 0-2); "
                                                  "default: the primary endpoint as the protocol's plan declares it."),
              alpha: float = AlphaOption,
              dropout: float = typer.Option(0.05, "--dropout", help="Proportion lost to follow-up."),
              seed: int = typer.Option(1, "--seed", help="Root seed."),
              workers: int | None = typer.Option(None, "--workers", help="Start a local Dask cluster."),
              scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address."),
              as_json: bool = JsonOption) -> None:
    """Power by simulating whole trials: the protocol's eligibility and randomization, a proportional-odds
    outcome with covariate effects, dropout, and the planned analysis."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from ..design.power import CONTROL_MRS, PowerSettings, primary_endpoint, simulate_power
    from ..protocol import resolve

    if endpoint not in (None, "ordinal", "binary"):
        fail(f"--endpoint {endpoint!r} is not ordinal or binary")
    protocol = resolve(trial)
    # (an unrandomized trial is refused by the simulation itself, naming that)
    declared, at_most = (primary_endpoint(protocol) if endpoint is None and protocol.randomization is not None
                         else (endpoint or "ordinal", 2))
    mrs = tuple(_floats(control_mrs, "--control-mrs")) if control_mrs else CONTROL_MRS
    settings = PowerSettings(protocol.id, n or protocol.sample_size.total, trials, seed, common_or, mrs, declared,
                             alpha, dropout, mrs_at_most=at_most)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err.console, transient=True) as bar:
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


@command(design_app, "derivation", epilog="Example: stroketrial design derivation impact-lvo --json")
def derivation_cmd(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml file."),
                   as_json: bool = JsonOption) -> None:
    """A built-in trial's stated sample size, reproduced from its assumptions where the source gives them."""
    from ..design.seed_sample_sizes import derivation
    from ..protocol import resolve

    protocol = resolve(trial)
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
