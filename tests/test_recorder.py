"""The trajectory recorder (sgdvi.trajectory.recorder): k float64 projections of any model's
weights from the user's own loop, resumable after a kill, and the probability-current test of
Sec. IV-B (Fig. 3, Remark 17) on them, checked against the full-weight analysis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import sgd
from sgdvi.models import build_model, flat_parameters
from sgdvi.trajectory import recorder as rc


# ------------------------------------------------------------------ toy model, unit tests
def _toy(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _step(model: torch.nn.Module, t: int) -> None:
    """A deterministic 'training step': a drift plus a rotation-free wiggle of every weight."""
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            g = torch.Generator().manual_seed(1000 * t + i)
            p.add_(0.01 + 0.1 * torch.randn(p.shape, generator=g))


def test_random_directions_orthonormal_and_chunk_independent():
    V = rc.random_directions(1000, 5, seed=3)
    assert np.allclose(V.T @ V, np.eye(5), atol=1e-13)
    assert np.array_equal(V, rc.random_directions(1000, 5, seed=3, chunk=7))
    assert not np.allclose(V, rc.random_directions(1000, 5, seed=4))
    big = rc.random_directions(10**6, 2, seed=0)  # 16 MB: no d x d matrix anywhere
    assert np.allclose(big.T @ big, np.eye(2), atol=1e-12)


def test_projections_equal_numpy(tmp_path):
    """Each row is the float32 weights, cast to float64, times the directions (numpy)."""
    model = _toy()
    d = sum(p.numel() for p in model.parameters())
    V = np.random.default_rng(1).standard_normal((d, 4))
    init = flat_parameters(model).double().numpy()
    W = []
    with rc.TrajectoryRecorder(model, tmp_path / "r", V, max_rows=2, every="step") as rec:
        for t in range(5):
            _step(model, t)
            W.append(flat_parameters(model).numpy().astype(np.float64))
            rec.on_epoch_end(model)  # every="step": the epoch callback does not record
            rec.on_step_end(model)
    got = rc.load_recording(tmp_path / "r")
    assert got.rows.shape == (5, 4) and got.header["kind"] == "given"
    np.testing.assert_allclose(got.rows, np.array(W) @ V, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(got.header["init_projection"], init @ V, rtol=1e-14)
    assert got.header["parameters"][0] == ["0.weight", [4, 3]]
    assert np.array_equal(got.directions(), V)


def test_drift_summary_matches_remove_drift(tmp_path):
    """Full-space drift sizes from the recorder's running sums = remove_drift on the stored
    post-burn-in weights; burn-in rows are recorded but excluded."""
    model, W = _toy(2), []
    with rc.TrajectoryRecorder(model, tmp_path / "r", k=3, seed=5, burn_in=4) as rec:
        for t in range(40):
            _step(model, t)
            W.append(flat_parameters(model).numpy().copy())
            rec.record()
    dr = es.remove_drift(np.array(W[4:]))
    got = rc.drift_summary(rc.load_recording(tmp_path / "r"))
    assert got["drift_per_epoch"] == pytest.approx(np.linalg.norm(dr.drift), rel=1e-12)
    assert got["drift_displacement"] == pytest.approx(dr.displacement, rel=1e-12)
    assert got["drift_relative"] == pytest.approx(dr.relative, rel=1e-10)
    assert rc.load_recording(tmp_path / "r").rows.shape == (40, 3)


def test_clear_errors(tmp_path):
    model = _toy()
    with pytest.raises(rc.RecordingMismatch, match=r"d = 26 weights but the directions"):
        rc.TrajectoryRecorder(model, tmp_path / "a", np.ones((25, 3)))
    with rc.TrajectoryRecorder(model, tmp_path / "b", k=3) as rec:
        rec.record()
        with pytest.raises(rc.RecordingMismatch, match=r"has 8 weights but the recording"):
            rec.record(torch.nn.Linear(3, 2))
    with pytest.raises(rc.RecordingMismatch, match=r"k: recorded 3, now 4"):
        rc.TrajectoryRecorder(model, tmp_path / "b", k=4)
    with pytest.raises(ValueError, match=r"m = 10 but .* k = 3"):
        rc.analyse_recording(tmp_path / "b", sgd.Settings(m=10))
    with pytest.raises(FileNotFoundError, match="not a trajectory recording"):
        rc.load_recording(tmp_path / "a")


_KILLED = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
from test_recorder import _step, _toy
from sgdvi.trajectory.recorder import TrajectoryRecorder
model = _toy()
rec = TrajectoryRecorder(model, {path!r}, k=3, seed=1, burn_in=2, max_rows=4)
for t in range(7):
    _step(model, t)
    rec.record()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _uninterrupted(path, n: int) -> rc.Recording:
    model = _toy()
    with rc.TrajectoryRecorder(model, path, k=3, seed=1, burn_in=2, max_rows=4) as rec:
        for t in range(n):
            _step(model, t)
            rec.record()
    return rc.load_recording(path)


def _same(a: rc.Recording, b: rc.Recording) -> None:
    assert np.array_equal(a.rows, b.rows)
    assert rc.drift_summary(a) == rc.drift_summary(b)
    assert a.header["init_projection"] == b.header["init_projection"]


def test_resume_after_sigkill(tmp_path):
    """A recorder SIGKILLed after 7 rows (capacity grown 4 -> 8) leaves 7 readable rows; the
    rerun resumes after them and the result equals an uninterrupted recording."""
    path = tmp_path / "killed"
    code = textwrap.dedent(_KILLED).format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert rc.load_recording(path).rows.shape == (7, 3)
    model = _toy()
    for t in range(7):
        _step(model, t)  # the user's loop restores its own checkpoint
    with rc.TrajectoryRecorder(model, path, k=3, seed=1, burn_in=2, max_rows=4) as rec:
        assert rec.n_rows == 7
        for t in range(7, 12):
            _step(model, t)
            rec.record()
    _same(rc.load_recording(path), _uninterrupted(tmp_path / "ref", 12))
    assert json.loads((path / rc.HEADER).read_text())["every"] == "epoch"


def test_uncommitted_row_is_redone(tmp_path, monkeypatch):
    """Killed inside a record, after the drift slot and the row were written but before the
    row count: the row is not there, and resuming redoes it exactly."""
    model = _toy()
    rec = rc.TrajectoryRecorder(model, tmp_path / "r", k=3, seed=1, burn_in=2, max_rows=4)
    for t in range(6):
        _step(model, t)
        rec.record()
    _step(model, 6)

    def killed(n: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rec, "_commit", killed)
    with pytest.raises(KeyboardInterrupt):
        rec.record()
    rec.close()
    assert rc.load_recording(tmp_path / "r").rows.shape == (6, 3)
    rec = rc.TrajectoryRecorder.resume(model, tmp_path / "r")
    rec.record()  # row 6 again, same weights
    for t in range(7, 12):
        _step(model, t)
        rec.record()
    rec.close()
    _same(rc.load_recording(tmp_path / "r"), _uninterrupted(tmp_path / "ref", 12))


# ------------------------------------------------------------------ tiny-fc: recorder = full
M = 6


@pytest.fixture(scope="module")
def tinyfc_run(tmp_path_factory):
    """A plain torch loop over tiny-fc on synthetic 7x7 data (200 examples, batch 25,
    momentum 0.9, weight decay 0.01): 50 burn-in epochs at lr 0.1, then 400 at lr 0.05, every
    epoch's weights kept in full *and* recorded on (i) the top-6 D(x) eigenvectors at the
    first stored epoch and (ii) the identity (k = d = 917)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 1, 7, 7)).astype(np.float32)
    logits = x.reshape(200, -1) @ rng.standard_normal((49, 5))
    y = np.argmax(logits + 2 * rng.standard_normal((200, 5)), axis=1)
    xt, yt, gen = torch.from_numpy(x), torch.from_numpy(y), torch.Generator().manual_seed(1)
    model = build_model("tiny-fc", num_classes=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)

    def epoch() -> None:
        for i in torch.randperm(200, generator=gen).split(25):
            opt.zero_grad()
            tF.cross_entropy(model(xt[i]), yt[i]).backward()
            opt.step()

    for _ in range(50):
        epoch()
    for group in opt.param_groups:
        group["lr"] = 0.05
    w0 = flat_parameters(model).double().numpy()
    V, _ = sgd.diffusion_directions(sgd.per_example_gradients(w0, x, y, 5), M)
    root = tmp_path_factory.mktemp("tinyfc")
    rec_d = rc.TrajectoryRecorder(model, root / "diffusion", V, kind="diffusion", max_rows=64)
    rec_i = rc.TrajectoryRecorder(model, root / "identity", np.eye(len(w0)), max_rows=64)
    weights = [flat_parameters(model).numpy().copy()]
    rec_d.record(), rec_i.record()
    for _ in range(400):
        epoch()
        weights.append(flat_parameters(model).numpy().copy())
        rec_d.on_epoch_end(model), rec_i.on_epoch_end(model)
    rec_d.close(), rec_i.close()
    return np.array(weights), V, root


SETTINGS = sgd.Settings(m=M, n_blocks=10, n_surrogates=49, n_boot=20)


def _assert_same_projection(p: sgd.Projection, q: sgd.Projection, z_sur_atol: float) -> None:
    assert np.allclose(p.y, q.y, rtol=0, atol=1e-12 * np.abs(q.y).max())
    np.testing.assert_allclose(p.area.L, q.area.L, rtol=1e-10, atol=1e-10 * np.abs(q.area.L).max())
    np.testing.assert_allclose(p.area.z, q.area.z, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p.z_sur, q.z_sur, rtol=0, atol=z_sur_atol)
    for a, b in zip(
        es.rank_among(p.area.z, p.z_sur), es.rank_among(q.area.z, q.z_sur), strict=True
    ):
        assert np.array_equal(a, b)  # surrogate ranks and permutation p-values
    assert np.array_equal(p.stat.stationary, q.stat.stationary)
    np.testing.assert_allclose(p.stat.growth, q.stat.growth, rtol=1e-9)
    assert p.fit.ratio == pytest.approx(q.fit.ratio, rel=1e-8, nan_ok=True)
    assert p.tau == pytest.approx(q.tau, rel=1e-9)


def test_diffusion_recording_equals_full_weight_analysis(tinyfc_run):
    """Projection (a) on the recorded D(x) directions = analyse_current on all weights: L_hat,
    z to 1e-10 relative, surrogate z to 1e-5 (float32 increments, projected vs full-space),
    identical ranks, permutation p-values and stationarity flags; the same drift sizes; the
    same verdict from (a), and from (a) with the full-space held-out PCs."""
    weights, V, root = tinyfc_run
    full, (fa, fb) = sgd.analyse_current(weights, V, SETTINGS)
    rec, (ra, rb) = rc.analyse_recording(root / "diffusion", SETTINGS)
    assert ra.name == fa.name == "diffusion" and rec["directions"] == "diffusion"
    _assert_same_projection(ra, fa, z_sur_atol=1e-5)
    for k in ("drift_per_epoch", "drift_displacement", "drift_relative"):
        assert rec[k] == pytest.approx(full[k], rel=1e-10)
    assert rec["n_epochs"] == full["n_epochs"] == 401
    assert sgd.verdict([ra], 0.01) == sgd.verdict([fa], 0.01)
    assert sgd.verdict([ra, fb], 0.01) == {k: full[k] for k in sgd.verdict([fa, fb], 0.01)}
    assert sgd.verdict([ra], 0.01)["n_pairs_tested"] > 0  # stationary pairs were tested
    # (b) here are held-out PCs of the 6-dimensional recorded walk: a rotation of (a)'s space
    assert rb.extra["directions"].shape == (M, M)


def test_identity_recording_reproduces_whole_analysis(tinyfc_run):
    """Recording all d coordinates (k = d): every statistic of both projections and the verdict
    are bitwise those of analyse_current (only drift_relative comes from running sums)."""
    weights, _, root = tinyfc_run
    eye = np.eye(weights.shape[1])[:, :M]
    full, fp = sgd.analyse_current(weights, eye, SETTINGS)
    rec, rp = rc.analyse_recording(root / "identity", SETTINGS)
    for p, q in zip(rp, fp, strict=True):
        _assert_same_projection(p, q, z_sur_atol=0.0)
        assert np.array_equal(p.area.L, q.area.L) and np.array_equal(p.z_sur, q.z_sur)
    assert np.array_equal(rp[1].extra["directions"], fp[1].extra["directions"])
    full["strongest"] = full["strongest"].replace("diffusion", "given")  # (a)'s name
    for k, v in full.items():
        assert rec[k] == (v if isinstance(v, str) else pytest.approx(v, rel=1e-10, nan_ok=True))
    assert full["n_pairs_tested"] > 0
    table = sgd.current_table(rp, rec | {"variant": "user", "seed": 0})
    assert set(table.projection) == {"given", "pca-heldout"}
    arrays = sgd.current_arrays(rp, np.zeros(M), rec)
    assert {"given_L", "pca_L"} <= arrays.keys()
