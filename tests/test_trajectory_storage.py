"""Chunked trajectory storage: resume after a stop or a kill, overlap, artefacts, plots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdvi.infra.parquet import read_table
from sgdvi.trajectory import plot
from sgdvi.trajectory.analysis import analyse_trajectory
from sgdvi.trajectory.network import STATED
from sgdvi.trajectory.runner import TrajectoryDiverged, TrajectorySettings, run_trajectory
from sgdvi.trajectory.storage import ResumeError
from sgdvi.trajectory.table import load_analyses, trajectory_table

D = STATED.d
SETTINGS = TrajectorySettings(
    seed=3, epochs=30, burn_in=6, batch_size=64, lr_burn_in=0.1, lr=0.05, chunk_epochs=7
)


def _data(n: int = 250, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 100, size=(n, 1, 7, 7)).astype(np.float32)
    for c in range(classes):
        x[y == c, 0, :, c] += 150
    return x, y


def _outputs(run_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    return np.load(run_dir / "weights.npy"), read_table(run_dir / "metrics.parquet")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("full")
    x, y = _data()
    run_trajectory(x, y, SETTINGS, run_dir)
    return run_dir


def test_artefacts_and_metrics(uninterrupted):
    w, m = _outputs(uninterrupted)
    assert w.dtype == np.float32 and w.shape == (SETTINGS.epochs - SETTINGS.burn_in, D)
    assert m["epoch"].tolist() == list(range(SETTINGS.epochs + 1))
    assert m["stored"].sum() == len(w) and not m["stored"][: SETTINGS.burn_in + 1].any()
    np.testing.assert_allclose(m["grad_norm_normalised"], m["grad_norm"] / np.sqrt(D))
    assert np.isnan(m["lr"][0]) and (m["lr"][1:7] == 0.1).all() and (m["lr"][7:] == 0.05).all()
    assert m["loss"].iloc[-1] < m["loss"].iloc[0]
    run = json.loads((uninterrupted / "run.json").read_text())
    assert run["n_stored"] == len(w) and run["first_stored_epoch"] == SETTINGS.burn_in + 1
    assert run["d"] == 917 and run["num_classes"] == 5
    assert not (uninterrupted / "chunks").exists()  # removed after assembly
    assert not (uninterrupted / "weights.partial.npy").exists()  # moved into place


def test_four_classes_store_900_weights(tmp_path):
    """The authors' Fig. 3 head: 4 outputs, d = 900, recorded in run.json."""
    x, y = _data(classes=4)
    settings = TrajectorySettings(**{**SETTINGS.__dict__, "num_classes": 4, "epochs": 10})
    summary = run_trajectory(x, y, settings, tmp_path, meta={"variant": "authors"})
    w, m = _outputs(tmp_path)
    assert w.shape == (10 - SETTINGS.burn_in, 900) and summary["d"] == 900
    assert summary["variant"] == "authors" and summary["weight_names"][-1] == "b2[3]"
    assert np.isfinite(w).all() and m["loss"].iloc[-1] < m["loss"].iloc[0]


def test_divergence_stops_the_run_and_writes_no_chunk(tmp_path):
    """A huge learning rate: the run stops naming variant, seed and epoch; the chunk in
    progress is not recorded (the fastmath kernels themselves cannot be trusted to notice)."""
    x, y = _data()
    settings = TrajectorySettings(**{**SETTINGS.__dict__, "lr_burn_in": 1e12, "lr": 1e12})
    with pytest.raises(TrajectoryDiverged, match=r"variant stated seed 3 diverged at epoch \d+"):
        run_trajectory(x, y, settings, tmp_path, meta={"variant": "stated"})
    assert not list((tmp_path / "chunks").glob("chunk_*.npz"))
    assert not (tmp_path / "weights.npy").exists()


def test_divergence_after_a_good_chunk_keeps_the_good_chunk(tmp_path):
    x, y = _data()
    # chunk 0 = the burn-in (epochs 1-6, lr 0.1); lr 1e12 from epoch 7, the first of chunk 1.
    # (With chunks of 7 epochs, whether epoch 7 already overflows depends on the machine: it
    # did not on 2026-11-27's CI machine and did on 2026-12-04's, which left no good chunk.)
    settings = TrajectorySettings(
        **{**SETTINGS.__dict__, "lr": 1e12, "chunk_epochs": SETTINGS.burn_in}
    )
    with pytest.raises(TrajectoryDiverged, match=r"seed 3 diverged at epoch (7|8|9|1\d)\b"):
        run_trajectory(x, y, settings, tmp_path)
    assert [p.name for p in (tmp_path / "chunks").glob("chunk_*.npz")] == ["chunk_000000.npz"]


@pytest.mark.slow
def test_metrics_are_bit_identical_between_processes(tmp_path):
    """Two uninterrupted runs in fresh processes, the first compiling the kernels into an
    empty numba cache and the second loading them from it (metrics must not depend on the
    cache: the loss columns used to differ by ~1e-17 between such runs): the same
    metrics.parquet bytes."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_trajectory_storage import SETTINGS, _data
        from sgdvi.trajectory.runner import run_trajectory
        x, y = _data()
        run_trajectory(x, y, SETTINGS, sys.argv[1], threads=2)
        """
    )
    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / run)], env=env, check=True)
    a, b = (read_table(tmp_path / r / "metrics.parquet") for r in "ab")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (tmp_path / "a" / "weights.npy").read_bytes() == (
        tmp_path / "b" / "weights.npy"
    ).read_bytes()


def test_resume_after_a_stop_is_identical(uninterrupted, tmp_path):
    x, y = _data()
    assert run_trajectory(x, y, SETTINGS, tmp_path, max_chunks=2) is None
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [
        "chunk_000000.npz",
        "chunk_000001.npz",
    ]
    summary = run_trajectory(x, y, SETTINGS, tmp_path)
    assert summary["resumed_after_chunks"] == 2
    w0, m0 = _outputs(uninterrupted)
    w1, m1 = _outputs(tmp_path)
    np.testing.assert_array_equal(w0, w1)
    pd.testing.assert_frame_equal(m0, m1)


def test_resume_after_sigkill_is_identical(uninterrupted, tmp_path):
    """Kill a training process with SIGKILL mid-run, resume here: the same trajectory."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_trajectory_storage import SETTINGS, _data
        from sgdvi.trajectory.runner import run_trajectory
        x, y = _data()
        run_trajectory(x, y, SETTINGS, {str(tmp_path)!r}, on_chunk=lambda c: time.sleep(0.4))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        target = tmp_path / "chunks" / "chunk_000001.npz"
        deadline = time.time() + 120
        while not target.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert target.exists(), "the child never wrote its second chunk"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "weights.npy").exists()
    x, y = _data()
    summary = run_trajectory(x, y, SETTINGS, tmp_path)
    assert 2 <= summary["resumed_after_chunks"] < 5
    w0, m0 = _outputs(uninterrupted)
    w1, m1 = _outputs(tmp_path)
    np.testing.assert_array_equal(w0, w1)
    pd.testing.assert_frame_equal(m0, m1)


def test_overlapped_full_pass_gives_the_same_numbers(uninterrupted, tmp_path):
    x, y = _data()
    run_trajectory(x, y, SETTINGS, tmp_path, threads=2)
    w0, m0 = _outputs(uninterrupted)
    w1, m1 = _outputs(tmp_path)
    np.testing.assert_array_equal(w0, w1)
    pd.testing.assert_frame_equal(m0, m1)


@pytest.mark.parametrize("threads", [1, 2])
def test_full_pass_every_thins_fig3c_only(uninterrupted, tmp_path, threads):
    """``full_pass_every = 4``: the full pass after every burn-in epoch, every 4th epoch after
    it and the last; there its numbers equal the every-epoch run's bit for bit, elsewhere
    NaN; the weights (and so the rest of the metrics) are unchanged. Resuming keeps it."""
    x, y = _data()
    thin = TrajectorySettings(**{**SETTINGS.__dict__, "full_pass_every": 4})
    assert run_trajectory(x, y, thin, tmp_path, max_chunks=2, threads=threads) is None
    run_trajectory(x, y, thin, tmp_path, threads=threads)
    w0, m0 = _outputs(uninterrupted)
    w1, m1 = _outputs(tmp_path)
    np.testing.assert_array_equal(w0, w1)
    b = SETTINGS.burn_in
    want = [e <= b or (e - b) % 4 == 0 or e == SETTINGS.epochs for e in m1["epoch"]]
    assert m1["full_pass"].tolist() == want and m0["full_pass"].all()
    assert m1["full_pass"].sum() == b + 1 + 6  # 0..6, then 10, 14, ..., 30 (the last)
    full = ["grad_norm", "grad_norm_normalised", "loss", "error"]
    pd.testing.assert_frame_equal(m1[m1.full_pass][full], m0[m1.full_pass][full])
    assert m1[~m1.full_pass][full].isna().all().all()
    rest = ["epoch", "lr", "batch_loss", "batch_error", "stored"]
    pd.testing.assert_frame_equal(m1[rest], m0[rest])
    fig = plot.fig3c({3: m1}, b)
    assert len(fig.axes[0].lines[0].get_xdata()) == m1["full_pass"].sum()
    plot.plt.close(fig)


def test_chunks_without_their_weight_file_are_refused(tmp_path):
    x, y = _data()
    run_trajectory(x, y, SETTINGS, tmp_path, max_chunks=2)
    (tmp_path / "weights.partial.npy").unlink()
    with pytest.raises(ResumeError, match="weights.partial.npy is unreadable.*delete"):
        run_trajectory(x, y, SETTINGS, tmp_path)


def test_chunks_of_other_settings_are_refused(tmp_path):
    x, y = _data()
    run_trajectory(x, y, SETTINGS, tmp_path, max_chunks=1)
    other = TrajectorySettings(**{**SETTINGS.__dict__, "lr": 0.01})
    with pytest.raises(ResumeError, match="delete .*chunks"):
        run_trajectory(x, y, other, tmp_path)


def test_analysis_table_and_figures_from_a_run(uninterrupted, tmp_path):
    analysis = analyse_trajectory(uninterrupted / "weights.npy", n_permutations=5, seed=3)
    path = tmp_path / "analysis.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in analysis.items()})
    analyses = load_analyses([3], [path])
    for name, fig in (
        ("fig3a", plot.fig3a(analyses, lr=0.05)),
        ("fig3b", plot.fig3b(analyses)),
        ("fig3c", plot.fig3c({3: read_table(uninterrupted / "metrics.parquet")}, 6)),
    ):
        plot.save(fig, tmp_path / f"{name}.pdf", tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    table = trajectory_table(
        [3], [path], [uninterrupted / "metrics.parquet"], [uninterrupted / "run.json"]
    )
    assert len(table) == 1 and table["d_active"].iloc[0] == analysis["d_active"] <= D - 16
    assert table["n"].iloc[0] == SETTINGS.epochs - SETTINGS.burn_in
    assert 0 < table["low_freq_p_value"].iloc[0] <= 1
    m = read_table(uninterrupted / "metrics.parquet")
    first_after = m[m["epoch"] == SETTINGS.burn_in + 1]["grad_norm_normalised"].iloc[0]
    assert table["grad_norm_normalised_after_burn_in"].iloc[0] == first_after
    assert table["grad_norm_normalised_initial"].iloc[0] == m["grad_norm_normalised"].iloc[0]
