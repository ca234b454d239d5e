"""SGD training (sgdvi.training): optimizer, schedule, snapshots, resume, divergence, signals.

Every test trains on small random data written with ``save_prepared`` into ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sgdvi.config import fraction_tag, snapshot_epoch
from sgdvi.data import load_prepared, save_prepared
from sgdvi.infra.parquet import read_table
from sgdvi.models import build_model
from sgdvi.snapshots import load_snapshot
from sgdvi.training import (
    CheckpointError,
    StopRequest,
    TrainingDiverged,
    TrainingInterrupted,
    TrainPaths,
    TrainSettings,
    evaluate,
    lr_at,
    make_optimizer,
    stop_on_signals,
    train,
)

SHAPES = {"small-fc": (1, 7, 7), "small-lenet": (1, 28, 28), "small-allcnn": (3, 32, 32)}
DATASETS = {"small-fc": "mnist7", "small-lenet": "mnist28", "small-allcnn": "cifar10-zca"}


def make_data(tmp_path: Path, model: str = "small-fc", n_train: int = 64, n_test: int = 40):
    """Random inputs, labels from a fixed random linear teacher (learnable), via the npz format."""
    rng = np.random.default_rng(0)
    shape = SHAPES[model]
    x = rng.normal(size=(n_train + n_test, *shape)).astype(np.float32)
    teacher = rng.normal(size=(10, int(np.prod(shape))))
    y = (x.reshape(len(x), -1) @ teacher.T).argmax(1)
    path = tmp_path / f"{DATASETS[model]}.npz"
    save_prepared(
        path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:]
    )
    return load_prepared(path)


def make_settings(model: str = "small-fc", **kw) -> TrainSettings:
    base = {
        "dataset": DATASETS[model],
        "model": model,
        "epochs": 3,
        "batch_size": 16,
        "lr_schedule": [[0, 0.1], [2, 0.02]],
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 1e-3,
        "dropout": 0.1 if model == "small-lenet" else 0.0,
        "augment": False,
        "seed": 42,
        "snapshots": [0.4, 1.0],
        "train_subset": None,
    }
    return TrainSettings.from_config("toy", base | kw)


def make_paths(root: Path) -> TrainPaths:
    return TrainPaths(root / "trained", root / "metrics.parquet", root / "checkpoint.pt")


def state(paths: TrainPaths, fraction: float) -> dict[str, torch.Tensor]:
    blob = torch.load(paths.snapshot(fraction_tag(fraction)), weights_only=True)
    return blob["state_dict"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- schedule and optimizer -------------------------------------------------------------------


def test_lr_schedule_is_piecewise_constant():
    schedule = [[0, 0.1], [15, 0.01], [30, 0.001]]
    got = [lr_at(schedule, e) for e in range(50)]
    assert got == [0.1] * 15 + [0.01] * 15 + [0.001] * 20
    assert lr_at([[0, 0.5]], 1000) == 0.5
    with pytest.raises(ValueError, match="epoch 0"):
        lr_at([[1, 0.1]], 0)


@pytest.mark.parametrize("nesterov", [False, True])
def test_optimizer_matches_hand_written_momentum_update(nesterov):
    """Least squares in float64 against a numpy momentum / Nesterov loop with weight decay."""
    rng = np.random.default_rng(1)
    A, t, w0 = rng.normal(size=(20, 3)), rng.normal(size=20), rng.normal(size=3)
    lrs, mu, wd = [0.1, 0.1, 0.05, 0.05, 0.01, 0.01], 0.9, 0.01

    w = torch.tensor(w0, requires_grad=True)
    opt = make_optimizer([w], lrs[0], mu, nesterov, wd)
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        loss = 0.5 * ((torch.tensor(A) @ w - torch.tensor(t)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    x, v = w0.copy(), np.zeros(3)
    for lr in lrs:
        g = A.T @ (A @ x - t) / len(t) + wd * x
        v = mu * v + g
        x = x - lr * (g + mu * v if nesterov else v)
    np.testing.assert_allclose(w.detach().numpy(), x, rtol=1e-12, atol=1e-14)


def test_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError, match="momentum > 0"):
        make_optimizer([torch.zeros(2, requires_grad=True)], 0.1, 0.0, True, 0.0)


@pytest.mark.parametrize("nesterov", [False, True])
def test_training_loop_matches_manual_sgd(tmp_path, nesterov):
    """train() against a hand-written loop: seed, shuffling without replacement, full batches
    only (70 = 4 * 16 + 6 examples), lr schedule, weight decay, momentum, BN buffers."""
    data = make_data(tmp_path, n_train=70)
    s = make_settings(nesterov=nesterov)
    paths = make_paths(tmp_path)
    metrics = train(s, data, paths)

    torch.manual_seed(42)
    model = build_model("small-fc")
    params = list(model.parameters())
    bufs = [torch.zeros_like(p) for p in params]
    gen = torch.Generator().manual_seed(42)
    losses = []
    for epoch in range(3):
        lr = 0.1 if epoch < 2 else 0.02
        perm = torch.randperm(70, generator=gen)
        epoch_loss = 0.0
        for k in range(4):
            idx = perm[16 * k : 16 * (k + 1)]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            grads = torch.autograd.grad(loss, params)
            epoch_loss += loss.item() / 4
            with torch.no_grad():
                for p, g, v in zip(params, grads, bufs, strict=True):
                    d = g + 1e-3 * p
                    v.mul_(0.9).add_(d)
                    p.sub_(lr * (d + 0.9 * v if nesterov else v))
        losses.append(epoch_loss)

    got = state(paths, 1.0)
    for k, ref in model.state_dict().items():
        torch.testing.assert_close(got[k], ref, rtol=1e-5, atol=1e-6, msg=k)
    np.testing.assert_allclose(metrics["train_loss"], losses, rtol=1e-5)
    assert list(metrics["lr"]) == [0.1, 0.1, 0.02]


# --- outputs ----------------------------------------------------------------------------------


def test_snapshots_and_metrics(tmp_path):
    data = make_data(tmp_path)
    s = make_settings(epochs=5, lr_schedule=[[0, 0.1], [3, 0.01]], snapshots=[0.4, 1.0])
    paths = make_paths(tmp_path / "long")
    metrics = train(s, data, paths, eval_batch_size=7)

    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5]
    assert list(metrics["lr"]) == [0.1, 0.1, 0.1, 0.01, 0.01]
    assert metrics.notna().all().all()
    assert ((metrics[["train_error", "test_error"]] >= 0) & (metrics[["train_error"]] <= 1)).all(
        axis=None
    )
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    pd.testing.assert_frame_equal(read_table(paths.metrics), metrics)
    assert not paths.checkpoint.exists()

    model, meta = load_snapshot(paths.snapshot("0.4"))
    assert snapshot_epoch(0.4, 5) == 2
    assert meta["epoch"] == 2 and meta["fraction"] == 0.4 and meta["lr"] == 0.1
    expected = {
        "model": "small-fc",
        "num_classes": 10,
        "dropout": 0.0,
        "experiment": "toy",
        "dataset": "mnist7",
        "epochs": 5,
        "batch_size": 16,
        "seed": 42,
    }
    assert {k: meta[k] for k in expected} == expected
    assert load_snapshot(paths.snapshot("1.0"))[1]["lr"] == 0.01
    # the snapshot's network (eval mode) reproduces the test loss logged for its epoch
    loss = F.cross_entropy(model(data.x_test), data.y_test).item()
    assert loss == pytest.approx(metrics["test_loss"].iloc[1], rel=1e-5)
    assert evaluate(model, data.x_test, data.y_test, 9)[0] == pytest.approx(loss, rel=1e-5)

    # the same weights as a run stopped after 2 epochs
    short = make_paths(tmp_path / "short")
    train(dataclasses.replace(s, epochs=2, snapshots=(1.0,)), data, short)
    assert_same_state(model.state_dict(), state(short, 1.0))


def test_bad_data_is_refused(tmp_path):
    data = make_data(tmp_path)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        train(make_settings("small-lenet"), data, make_paths(tmp_path))
    with pytest.raises(ValueError, match="lower batch_size"):
        train(make_settings(batch_size=100), data, make_paths(tmp_path))


# --- divergence -------------------------------------------------------------------------------


def no_files_but(directory: Path, *allowed: str) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file() and p.name not in allowed)


@pytest.mark.parametrize("model", ["small-fc", "small-lenet"])
@pytest.mark.parametrize("factor", [100.0, None])
def test_divergence_stops_with_experiment_and_epoch_and_no_snapshot(tmp_path, model, factor):
    """Divergence must fail loudly: lr 1e6. With the default bound the loss bound fires in
    epoch 1; without it, a non-finite loss or weight does. Either way: no snapshot, no
    metrics, no debris."""
    data = make_data(tmp_path, model, n_train=64, n_test=20)
    s = make_settings(model, lr_schedule=[[0, 1e6]], epochs=5, snapshots=[0.2, 1.0])
    paths = make_paths(tmp_path / "run")
    with pytest.raises(TrainingDiverged, match=r"experiment toy diverged in epoch 1 .*lower") as e:
        train(s, data, paths, divergence_factor=factor)
    if factor is not None:
        assert "more than training.divergence_factor (100) times the initial loss" in str(e.value)
    assert not paths.metrics.exists()
    assert no_files_but(tmp_path / "run") == []


def test_nonfinite_bn_statistic_stops_although_the_loss_is_finite(tmp_path, monkeypatch):
    """The issue's lenet case: BN running_var inf in the snapshot while the train-mode loss is
    finite. An inf is injected into a BN buffer during epoch 2; the snapshot of epoch 1 is
    removed too, the loss bound is off, and the error names the buffer."""
    data = make_data(tmp_path, "small-lenet", n_train=50, n_test=20)
    s = make_settings("small-lenet", epochs=3, snapshots=[0.4, 1.0])  # 0.4 -> epoch 1
    paths = make_paths(tmp_path / "run")
    import sgdvi.training.state as training  # where a run builds its network and optimizer

    real_build, real_optimizer = training.build_model, training.make_optimizer
    built = {}

    def build(*a, **kw):
        built["model"] = real_build(*a, **kw)
        return built["model"]

    def optimizer_with_hook(*a, **kw):
        opt = real_optimizer(*a, **kw)
        calls = {"n": 0}

        def poison(optimizer, args, kwargs):
            calls["n"] += 1
            if calls["n"] == 4:  # 3 steps per epoch: the first step of epoch 2
                bn = [m for m in built["model"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
                with torch.no_grad():
                    bn[-1].running_var[0] = math.inf

        opt.register_step_post_hook(poison)
        return opt

    monkeypatch.setattr(training, "make_optimizer", optimizer_with_hook)
    monkeypatch.setattr(training, "build_model", build)
    with pytest.raises(TrainingDiverged, match=r"in epoch 2 .*BN statistic \S+running_var"):
        train(s, data, paths, divergence_factor=None)
    assert not paths.snapshot("0.4").exists()
    assert no_files_but(tmp_path / "run", "checkpoint.pt") == []


def test_loss_bound_catches_a_finite_explosion(tmp_path):
    """lr 30 on small-fc: every loss stays finite (up to ~1e21) and without a bound the run
    'succeeds'; with training.divergence_factor it stops in epoch 1."""
    data = make_data(tmp_path)
    s = make_settings(lr_schedule=[[0, 30.0]], epochs=2, snapshots=[1.0])
    unbounded = train(s, data, make_paths(tmp_path / "a"), divergence_factor=None)
    assert unbounded["train_loss"].iloc[-1] > 1e6  # diverged, finite, silent
    with pytest.raises(TrainingDiverged, match="epoch 1 .*divergence_factor"):
        train(s, data, make_paths(tmp_path / "b"))
    assert no_files_but(tmp_path / "b") == []


# --- resume -----------------------------------------------------------------------------------


def sigterm_after(model: torch.nn.Module, n_steps: int):
    """Forward hook sending this process SIGTERM during the n-th training forward pass."""
    calls = {"n": 0}

    def hook(module, args, out):
        if module.training:
            calls["n"] += 1
            if calls["n"] == n_steps:
                signal.raise_signal(signal.SIGTERM)

    return model.register_forward_hook(hook)


@pytest.mark.parametrize(("interrupt_after", "checkpoint_every"), [(2, 1), (3, 1), (5, 100)])
def test_interrupted_run_resumes_bit_exactly(
    tmp_path, monkeypatch, interrupt_after, checkpoint_every
):
    """small-lenet (dropout and BN), 3 steps per epoch; SIGTERM mid-epoch (2, 5) or at an epoch
    end (3); the snapshot outputs are deleted in between, as Snakemake does on failure."""
    data = make_data(tmp_path, "small-lenet", n_train=50, n_test=20)
    s = make_settings("small-lenet", epochs=3, snapshots=[0.4, 1.0])
    ref_paths = make_paths(tmp_path / "ref")
    ref = train(s, data, ref_paths)

    paths = make_paths(tmp_path / "cut")
    import sgdvi.training.state as training  # where a run builds its network and optimizer

    real_build = training.build_model
    hooked = {}

    def build_with_hook(*a, **kw):
        model = real_build(*a, **kw)
        hooked["handle"] = sigterm_after(model, interrupt_after)
        return model

    monkeypatch.setattr(training, "build_model", build_with_hook)
    with stop_on_signals(StopRequest()) as stop, pytest.raises(TrainingInterrupted) as exc:
        train(s, data, paths, checkpoint_every=checkpoint_every, stop=stop)
    monkeypatch.setattr(training, "build_model", real_build)
    assert "Rerun the same command to resume" in str(exc.value)
    assert exc.value.signum == signal.SIGTERM
    assert paths.checkpoint.exists()
    for f in paths.snapshot_dir.glob("*.pt"):
        f.unlink()

    resumed = train(s, data, paths, checkpoint_every=checkpoint_every)
    for f in (0.4, 1.0):
        assert_same_state(state(paths, f), state(ref_paths, f))
    cols = ["epoch", "lr", "train_loss", "train_error", "test_loss", "test_error"]
    pd.testing.assert_frame_equal(resumed[cols], ref[cols])
    assert not paths.checkpoint.exists()


def test_checkpoint_of_other_settings_is_ignored(tmp_path, caplog):
    data = make_data(tmp_path)
    paths = make_paths(tmp_path / "a")
    stop = StopRequest()
    stop.request()
    with pytest.raises(TrainingInterrupted):
        train(make_settings(), data, paths, stop=stop)
    assert paths.checkpoint.exists()

    other = make_settings(lr_schedule=[[0, 0.05]])
    with caplog.at_level(logging.WARNING, logger="sgdvi.training"):
        train(other, data, paths)
    assert "starting over" in caplog.text
    fresh = make_paths(tmp_path / "b")
    train(other, data, fresh)
    assert_same_state(state(paths, 1.0), state(fresh, 1.0))


def test_corrupt_checkpoint_says_delete_it(tmp_path):
    data = make_data(tmp_path)
    paths = make_paths(tmp_path)
    paths.checkpoint.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match=r"Delete it \(rm .*checkpoint.pt\)"):
        train(make_settings(), data, paths)


def test_signal_handler_flags_then_interrupts():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(StopRequest()) as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGINT)
        assert stop.requested and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


# --- augmentation -----------------------------------------------------------------------------


def test_augmented_training_runs_and_resumes(tmp_path):
    pytest.importorskip("sgdvi.data.augment")
    data = make_data(tmp_path, "small-allcnn", n_train=16, n_test=8)
    s = make_settings("small-allcnn", augment=True, batch_size=8, epochs=2, snapshots=[1.0])
    ref_paths = make_paths(tmp_path / "ref")
    ref = train(s, data, ref_paths)
    plain = make_paths(tmp_path / "plain")
    train(dataclasses.replace(s, augment=False), data, plain)
    assert not torch.equal(state(ref_paths, 1.0)["0.weight"], state(plain, 1.0)["0.weight"])

    paths = make_paths(tmp_path / "cut")
    stop = StopRequest()
    stop.request()
    with pytest.raises(TrainingInterrupted):
        train(s, data, paths, stop=stop)
    resumed = train(s, data, paths)
    assert_same_state(state(paths, 1.0), state(ref_paths, 1.0))
    assert math.isclose(resumed["train_loss"].iloc[-1], ref["train_loss"].iloc[-1])
