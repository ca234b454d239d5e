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

from sgdvi.trajectory import plot
from sgdvi.trajectory.analysis import analyse_trajectory
from sgdvi.trajectory.layout import D
from sgdvi.trajectory.runner import TrajectorySettings, run_trajectory
from sgdvi.trajectory.storage import ResumeError

SETTINGS = TrajectorySettings(
    seed=3, epochs=30, burn_in=6, batch_size=64, lr_burn_in=0.1, lr=0.05, chunk_epochs=7
)


def _data(n: int = 250) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, n)
    x = rng.integers(0, 100, size=(n, 1, 7, 7)).astype(np.float32)
    for c in range(5):
        x[y == c, 0, :, c] += 150
    return x, y


def _outputs(run_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    return np.load(run_dir / "weights.npy"), pd.read_parquet(run_dir / "metrics.parquet")


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
    assert not (uninterrupted / "chunks").exists()  # removed after assembly


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
    analyses = plot.load_analyses([3], [path])
    for name, fig in (
        ("fig3a", plot.fig3a(analyses, lr=0.05)),
        ("fig3b", plot.fig3b(analyses)),
        ("fig3c", plot.fig3c({3: pd.read_parquet(uninterrupted / "metrics.parquet")}, 6)),
    ):
        plot.save(fig, tmp_path / f"{name}.pdf", tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    table = plot.trajectory_table(
        [3], [path], [uninterrupted / "metrics.parquet"], [uninterrupted / "run.json"]
    )
    assert len(table) == 1 and table["d_active"].iloc[0] == analysis["d_active"] <= D - 16
    assert table["n"].iloc[0] == SETTINGS.epochs - SETTINGS.burn_in
    assert 0 < table["low_freq_p_value"].iloc[0] <= 1
