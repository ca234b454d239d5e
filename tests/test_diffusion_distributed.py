"""D(x) over several processes: two gloo processes give what one process gives.

The data passes (mean gradient and trace, every D v, the Gram tiles of tr(D^2)) are split
over the processes and their float64 partial sums all-reduced; the chunk boundaries do not
depend on the process count, so the results agree to float64 rounding of the sums.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgdvi.diffusion import spectrum
from sgdvi.diffusion.distributed import env_ranks, first_host, rendezvous
from sgdvi.models import build_model
from sgdvi.snapshots import load_snapshot, save_snapshot

N, CHUNK, BUDGET = 240, 60, 2000
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A briefly trained small-fc snapshot and an .npz of its N examples."""
    tmp = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = build_model("small-fc")
    x = torch.randn(N, 1, 7, 7, generator=gen)
    y = x.flatten(1)[:, :10].argmax(dim=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(10):
        opt.zero_grad()
        F.cross_entropy(
            model(x[step * 20 : step * 20 + 32]), y[step * 20 : step * 20 + 32]
        ).backward()
        opt.step()
    snap, data = tmp / "net.pt", tmp / "data.npz"
    save_snapshot(snap, model.eval(), {"model": "small-fc", "num_classes": 10, "dropout": 0.0})
    np.savez(data, x=x.numpy(), y=y.numpy())
    return snap, data, (x, y)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_"))}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    return {**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **extra}


def _cli(snap: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m", "sgdvi.diffusion.distributed", "--model", str(snap), "--data", str(data),
        "--out", str(out), "--chunk-size", str(CHUNK), "--memory-budget-mb", str(BUDGET),
        "--backend", "gloo", *extra,
    ]  # fmt: skip


def _assert_same(out: Path, one, world: int) -> None:
    with np.load(out) as z:
        assert int(z["world_size"]) == world and str(z["path"]) == "matrix-free"
        np.testing.assert_allclose(z["eigenvalues"], one.eigenvalues, rtol=1e-10, atol=0)
        assert float(z["trace"]) == pytest.approx(one.trace, rel=1e-12)
        assert float(z["trace_square"]) == pytest.approx(one.trace_square, rel=1e-12)
        assert int(z["rank"]) == one.rank and int(z["rank_upper"]) == one.rank_upper
        assert str(z["rank_check"]) == one.rank_check


def test_two_gloo_processes_by_torchrun_match_one(inputs, tmp_path):
    """``torchrun --nproc-per-node 2 -m sgdvi.diffusion.distributed``: every eigenvalue above
    the threshold (1e-10 relative), trace, tr(D^2) and certified rank as one process."""
    snap, data, xy = inputs
    out = tmp_path / "two.npz"
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", *_cli(snap, data, out)]
    cmd += ["--path", "matrix-free", "--method", "chunks"]  # auto: Gram tiles for N < d
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = spectrum(
        load_snapshot(snap)[0], xy, path="matrix-free", method="chunks", chunk_size=CHUNK,
        memory_budget_mb=BUDGET,
    )  # fmt: skip
    assert one.rank_check == "gram-ldl" and one.rank > 50
    _assert_same(out, one, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_from_slurm_variables_match_one(inputs, tmp_path):
    """Ranks from SLURM_PROCID/SLURM_NTASKS, the address from SLURM_JOB_NODELIST (what
    ``srun --ntasks 2`` sets), forward-mode products, the 6 largest eigenvalues."""
    snap, data, xy = inputs
    out = tmp_path / "slurm.npz"
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, *_cli(snap, data, out, "--method", "jvp", "--k", "6")],
            env=_env(
                SLURM_PROCID=str(r),
                SLURM_NTASKS="2",
                SLURM_LOCALID=str(r),
                SLURM_JOB_NODELIST="localhost",
                MASTER_PORT=port,
            ),  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors[0][-3000:] + errors[1][-3000:]
    one = spectrum(
        load_snapshot(snap)[0], xy, k=6, path="matrix-free", method="jvp", chunk_size=CHUNK,
        memory_budget_mb=BUDGET,
    )  # fmt: skip
    _assert_same(out, one, 2)


def test_ranks_and_rendezvous_from_the_environment():
    assert env_ranks({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (3, 8, 1)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "2"}
    assert env_ranks(slurm) == (5, 6, 2)
    assert env_ranks({}) == (0, 1, 0)
    assert first_host("gpu[03-05,09],cpu1") == "gpu03"
    assert first_host("node7,node8") == "node7"
    assert first_host("c[12]") == "c12"
    assert rendezvous({"SLURM_JOB_NODELIST": "n[2-4]", "SLURM_JOB_ID": "123456"}) == ("n2", 29956)
    assert rendezvous({"MASTER_ADDR": "h", "MASTER_PORT": "1234"}) == ("h", 1234)
    assert rendezvous({}) == ("127.0.0.1", 29500)
