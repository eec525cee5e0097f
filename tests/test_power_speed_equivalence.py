"""Issue 22: the fast power simulation gives today's results for the same seed, and runs on a Dask
scheduler started as its own processes (`dask scheduler`, `dask worker`).

Today's code is kept in `stroketrial.design.power_reference` (`run_chunk_reference`, `fit_reference`):
the same seeds through both paths give the same simulated trials, the same rejections, and the same
estimates to 1e-8."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stroketrial.cli import app

from stroketrial.design import batched_po_fit
from stroketrial.design.power import PowerSettings, chunk_seeds, run_chunk, simulate_power, _pool, _scheme
from stroketrial.design.power_blocks import block_slots
from stroketrial.design.power_reference import fit_reference, run_chunk_reference
from stroketrial.protocol import load_builtin
from stroketrial.randomization import ArmSlots, simulate_slots
from stroketrial.randomization.batch_simulation import stratum_index

SRC = Path(__file__).resolve().parents[1] / "src"


def _ordinal_data(trials, n, seed):
    rng = np.random.default_rng(seed)
    X = np.stack([rng.integers(0, 2, (trials, n)).astype(float), rng.normal(0, 13, (trials, n)),
                  rng.normal(0, 6, (trials, n)), rng.normal(0, 1.5, (trials, n))], axis=2)
    eta = X @ np.array([-0.26, 0.035, 0.08, -0.15])
    cuts = np.array([-2.2, -1.2, -0.4, 0.3, 1.1, 1.6])
    y = (rng.random((trials, n))[..., None] > 1 / (1 + np.exp(-(cuts - eta[..., None])))).sum(axis=-1)
    return y, X


def test_the_fit_equals_todays_fit():
    y, X = _ordinal_data(40, 500, 9)
    y[3][y[3] == 6] = 5  # a trial missing a category: not converged, in both
    old, new = fit_reference(y, X, 7), batched_po_fit.fit(y, X, 7)
    assert (old.converged == new.converged).all() and old.converged.sum() == 39
    ok = old.converged
    for name in ("alpha", "beta", "se", "loglik"):
        assert np.abs(getattr(old, name)[ok] - getattr(new, name)[ok]).max() < 1e-8, name
    binary = (y > 2).astype(int)
    old, new = fit_reference(binary, X[..., :2], 2), batched_po_fit.fit(binary, X[..., :2], 2)
    assert (old.converged == new.converged).all()
    assert np.abs(old.beta[old.converged] - new.beta[new.converged]).max() < 1e-8
    y[7, :] = 0  # one category only: today's fitter stops on the singular information; this one reports it
    new = batched_po_fit.fit(y, X, 7)
    assert not new.converged[7] and np.isnan(new.se[7]).all() and new.converged.sum() == 38
    # small trials with strong effects (slow, far from normal likelihoods): the standard errors too
    rng = np.random.default_rng(3)
    X = np.stack([rng.integers(0, 2, (100, 60)).astype(float), rng.normal(0, 13, (100, 60)),
                  rng.normal(0, 6, (100, 60))], axis=2)
    eta = X @ np.array([-3.0, 0.09, 0.24])
    y = (rng.random((100, 60))[..., None] > 1 / (1 + np.exp(-(np.array([-2.2, -1.2, -0.4, 0.3, 1.1, 1.6])
                                                               - eta[..., None])))).sum(axis=-1)
    old, new = fit_reference(y, X, 7), batched_po_fit.fit(y, X, 7)
    assert (old.converged == new.converged).all() and old.converged.sum() > 90
    ok = old.converged
    assert np.abs(old.beta[ok] - new.beta[ok]).max() < 1e-8 and np.abs(old.se[ok] - new.se[ok]).max() < 1e-8


def test_step_halving_brings_an_overshooting_step_back(monkeypatch):
    """Newton from the marginal thresholds does not overshoot on these data; force it (steps 8x too long
    on the first two iterations) and the line search still reaches today's maximum."""
    y, X = _ordinal_data(20, 300, 2)
    today = fit_reference(y, X, 7)
    solve, calls = batched_po_fit._solve, []

    def overshoot(hess, grad):
        calls.append(1)
        return solve(hess, grad) * (8.0 if len(calls) <= 2 else 1.0)

    monkeypatch.setattr(batched_po_fit, "_solve", overshoot)
    forced = batched_po_fit.fit(y, X, 7)
    assert forced.converged.all() and forced.iterations > today.iterations
    assert np.abs(forced.beta - today.beta).max() < 1e-8 and np.abs(forced.se - today.se).max() < 1e-8


@pytest.mark.parametrize("trial,n,endpoint,dropout", [
    ("impact-lvo", 1060, "ordinal", 0.05),  # permuted blocks by site
    ("impact-lvo", 500, "binary", 0.10),
    ("angel-rescue", 300, "ordinal", 0.0),
    ("amass-2", 306, "ordinal", 0.05),  # minimization
])
def test_the_same_seed_gives_todays_trials_and_estimates(trial, n, endpoint, dropout):
    protocol = load_builtin(trial)
    settings = PowerSettings(trial, n, 60, 21, 1.4, endpoint=endpoint, dropout=dropout, chunk=30)
    for seed, size in chunk_seeds(settings.seed, settings.trials, settings.chunk):
        old = run_chunk_reference(protocol, settings, seed, size)
        new = run_chunk(protocol, settings, seed, size)
        assert old["analysed"] == new["analysed"]
        assert (old["converged"] == new["converged"]).all() and (old["reject"] == new["reject"]).all()
        ok = old["converged"]
        assert np.abs(old["log_or"][ok] - new["log_or"][ok]).max() < 1e-8


def test_block_randomization_by_stratum_equals_the_patient_by_patient_simulation():
    protocol = load_builtin("impact-lvo")
    codes, n_levels, _ = _pool(protocol)
    scheme = _scheme(protocol)
    rng = np.random.default_rng(4)
    pick = rng.integers(0, len(codes), (50, 400))
    u, v = rng.random((50, 400)), rng.random((50, 400))
    stratum, n_strata = stratum_index(codes, [0], n_levels)
    arms = ArmSlots.of(protocol.arms)
    today = simulate_slots(scheme, arms, codes[pick], n_levels, u, v)
    assert (block_slots(scheme, arms.n_slots, stratum[pick], n_strata, u, v) == today).all()
    # 2:1 (three slots), blocks of 3 or 6
    unequal, three = scheme.model_copy(update={"block_sizes": [3, 6]}), ArmSlots(("drug", "placebo"), (2, 1))
    today = simulate_slots(unequal, three, codes[pick], n_levels, u, v)
    assert (block_slots(unequal, three.n_slots, stratum[pick], n_strata, u, v) == today).all()


def _dask_cli():
    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    if dask is None:
        pytest.skip("the dask command line (distributed) is not installed")
    return dask


def test_power_runs_on_a_dask_scheduler_and_worker_started_as_processes(tmp_path):
    """`--scheduler tcp://...`: a cluster the statistician started elsewhere, here `dask scheduler` and one
    `dask worker` process (which imports stroketrial from this checkout)."""
    from dask.distributed import Client

    dask = _dask_cli()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    address_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                                  str(address_file), *common], env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists() or not address_file.read_text().strip():
            assert time.monotonic() < deadline and scheduler.poll() is None, "the dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        assert address.startswith("tcp://")
        worker = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--local-directory", str(tmp_path), *common], env=env, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        protocol = load_builtin("impact-lvo")
        settings = PowerSettings("impact-lvo", 400, 120, 5, 1.5, chunk=40)
        remote = simulate_power(protocol, settings, scheduler=address)
        local = simulate_power(protocol, settings)
        assert remote.power == local.power and remote.estimates == local.estimates
        cli = CliRunner().invoke(app, ["design", "power", "impact-lvo", "--n", "400", "--trials", "120", "--seed", "5",
                                       "--common-or", "1.5", "--endpoint", "ordinal", "--scheduler", address, "--json"])
        assert cli.exit_code == 0, cli.output
        direct = simulate_power(protocol, PowerSettings("impact-lvo", 400, 120, 5, 1.5))  # the CLI's chunks of 500
        assert json.loads(cli.stdout)["power"] == direct.power
        with Client(address, timeout=60) as client:  # the chunks ran there, in that worker process
            ran = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert sum(ran.values()) >= 3
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
        for process in (worker, scheduler):
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
