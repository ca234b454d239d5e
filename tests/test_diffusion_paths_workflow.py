"""Rule diffusion_spectrum on the paths of ``sgdvi.diffusion.spectrum``: matrix-free (no stored
per-example gradients) on two processes started by torchrun, against the rule's default exact
solver on the same snapshot; the memory model, the config checks and the launcher."""

from __future__ import annotations

import copy
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_diffusion_workflow import fake_inputs

from sgdvi.config import ConfigError, load
from sgdvi.data import load_prepared
from sgdvi.diffusion import launch, memory
from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.gradients import gradient_matrix
from sgdvi.snapshots import load_snapshot

import dag_tools
from conftest import run_snakemake

REPO = Path(__file__).resolve().parents[1]
TARGET = "results/fc-mnist7/diffusion/1.0.npz"


def _read(path: Path) -> dict:
    return load(yaml.safe_load(path.read_text()))


def _diffusion(**over):
    return {**_read(REPO / "config" / "config.yaml")["diffusion"], **over}


def test_default_config_keeps_the_exact_solvers_and_their_memory_model():
    diff = _diffusion()
    assert not memory.uses_spectrum_api(diff)
    # the exact solver's model, unchanged: gram for N = 200 < d = 3,978
    assert memory.job_mb(200, 3978, diff, input_size=49) == memory.peak_mb(
        200, 3978, "gram", input_size=49, chunk_size=diff["chunk_size"]
    )
    for over in ({"solver": "matrix-free"}, {"solver": "gram-tiles"}, {"k": 10},
                 {"memory_budget_mb": 500}):  # fmt: skip
        assert memory.uses_spectrum_api(_diffusion(**over)), over
    assert memory.uses_spectrum_api(diff, processes=2)


def test_spectrum_paths_memory_model_per_process_and_budget():
    one = _diffusion(solver="matrix-free", chunk_size=100)
    per = memory.api_peak_mb(60000, 269434, one, input_size=784)
    # the Krylov basis (4 blocks of 64 x d float64 x 6) and one chunk of gradients dominate
    krylov = memory.KRYLOV_BYTES_PER * 269434 * 256
    chunk = memory.CHUNK_BYTES_PER * 100 * 269434
    assert per == int((krylov + chunk + 4 * 60000 * 784) / 2**20) + memory.BASE_MB
    # no N x d matrix: far below the stored gradients' 4 N d bytes
    assert per * 2**20 < 4 * 60000 * 269434 / 10
    two = {**one, "processes": 2}
    assert memory.job_mb(60000, 269434, two, input_size=784) == 2 * per
    budget = {**one, "memory_budget_mb": 3000}
    assert memory.api_peak_mb(100, 1000, budget, input_size=49) == 3000 + memory.BASE_MB


def _write_config(tmp_path: Path, diffusion: dict) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["diffusion"] = {**cfg["diffusion"], **diffusion}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("diffusion", "words"),
    [
        ({"processes": 2, "solver": "dense"}, ["diffusion.processes", "diffusion.solver"]),
        ({"processes": 2, "solver": "fast"}, ["matrix-free, gram-tiles or auto"]),
        ({"k": 5, "solver": "gram-tiles"}, ["diffusion.k", "every eigenvalue"]),
    ],
)
def test_settings_a_path_cannot_run_stop_with_the_key(tmp_path, diffusion, words):
    with pytest.raises(ConfigError) as err:
        _read(_write_config(tmp_path, diffusion))
    for word in words:
        assert word in str(err.value)


def test_launcher_is_srun_inside_a_slurm_job_else_torchrun(tmp_path):
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    here = {"PATH": "/usr/bin:/bin"}
    cmd = launch.worker_command("job.json", 3, here)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3", "-m"]
    assert cmd[-2:] == ["sgdvi.diffusion.launch", "job.json"]
    # srun on the PATH but no allocation: still torchrun
    assert "torch.distributed.run" in launch.launcher(2, {"PATH": str(tmp_path)})
    job = {"PATH": f"{tmp_path}:/usr/bin", "SLURM_JOB_ID": "17"}
    assert launch.launcher(4, job)[:3] == ["srun", "--ntasks=4", "--kill-on-bad-exit=1"]
    with pytest.raises(ValueError, match="2 or more"):
        launch.launcher(1, here)


def _set_diffusion(work: Path, **over) -> None:
    path = work / "config" / "tiny.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["diffusion"] = {**cfg.get("diffusion", {}), **over}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _reference_trace(work: Path) -> float:
    """tr D = mean |g_i - g|^2 in float64 numpy from the snapshot's per-example gradients on
    the rule's examples (the first diffusion.subset = 200)."""
    model, _ = load_snapshot(work / "results" / "fc-mnist7" / "snapshots" / "1.0.pt", "cpu")
    data = load_prepared(work / "results" / "data" / "mnist7.npz", train_subset=200)
    g = gradient_matrix(model, data.x_train, data.y_train, chunk_size=50).double().numpy()
    gc = g - g.mean(axis=0)
    return float(np.sum(gc * gc) / len(g))


def test_rule_runs_matrix_free_on_two_processes_and_agrees_with_the_exact_solver(tiny_workdir):
    work = tiny_workdir
    fake_inputs(work)
    run_snakemake(work, "--cores", "2", TARGET)
    exact = load_result(work / TARGET)
    assert exact["solver"] == "gram" and exact["n"] == 200

    _set_diffusion(work, solver="matrix-free", processes=2, trace_square="exact")
    planned = dag_tools.dry_run(work, TARGET, "--forcerun", "diffusion_spectrum")
    res = planned[0].resources
    assert planned[0].rule == "diffusion_spectrum"
    assert (res["mpi"], res["tasks"], res["cpus_per_task"]) == ("srun", "2", "2")
    exact_copy = copy.deepcopy(exact)
    (work / TARGET).unlink()
    run_snakemake(work, "--cores", "2", TARGET)
    mf = load_result(work / TARGET)
    log = (work / "logs" / "diffusion" / "fc-mnist7" / "1.0.log").read_text()
    assert "2 processes" in log and "torch.distributed.run" in log
    assert (
        mf["spectrum_path"] == "matrix-free"
        and mf["processes"] == 2
        and mf["solver"] == "matrix-free"
    )

    # the same D(x): every eigenvalue above the threshold to 1e-6, the same rank; the trace to
    # 1e-10 of a float64 numpy reference (the Gram path's own, from float32 stored gradients,
    # agrees to 1e-8)
    assert mf["trace"] == pytest.approx(_reference_trace(work), rel=1e-10)
    assert mf["trace"] == pytest.approx(exact_copy["trace"], rel=1e-8)
    assert mf["rank"] == exact_copy["rank"] > 0
    r = mf["rank"]
    np.testing.assert_allclose(mf["eigenvalues"][:r], exact_copy["eigenvalues"][:r], rtol=1e-6)
    # tr(D^2) exact from the Gram tiles: the sum of the squared eigenvalues of the exact path
    assert mf["trace_square"] == pytest.approx(np.sum(exact_copy["eigenvalues"] ** 2), rel=1e-8)
    assert mf["effective_rank"] == pytest.approx(mf["trace"] ** 2 / mf["trace_square"])
