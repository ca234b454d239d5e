"""The training loop: epochs of mini-batches, per-epoch metrics and snapshots, checkpoints,
divergence checks and stop requests (:func:`train`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sgdvi.data import Prepared
from sgdvi.schedule import lr_at
from sgdvi.snapshots import save_snapshot
from sgdvi.training.checkpoint import checkpoint_state, resume, save_checkpoint
from sgdvi.training.divergence import (
    DIVERGENCE_FACTOR,
    FINITE_CHECK_EVERY,
    Divergence,
    TrainingDiverged,
)
from sgdvi.training.inputs import check_data, data_fingerprint
from sgdvi.training.outputs import remove_snapshots, snapshot_meta, write_outputs
from sgdvi.training.settings import LOG, TrainPaths, TrainSettings
from sgdvi.training.signals import StopRequest, TrainingInterrupted
from sgdvi.training.state import Run, new_run

#: called after every optimiser step: (model, finished epochs, 1-based step, steps per epoch)
StepHook = Callable[[nn.Module, int, int, int], None]


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[float, float]:
    """Mean cross-entropy and error rate of ``model`` in eval mode, in batches of ``batch_size``.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(y), batch_size):
        out = model(x[start : start + batch_size])
        yb = y[start : start + batch_size]
        loss_sum += F.cross_entropy(out, yb, reduction="sum").double()
        wrong += (out.argmax(1) != yb).sum()
    model.train(was_training)
    return float(loss_sum) / len(y), int(wrong) / len(y)


def format_seconds(s: float) -> str:
    """``1h02m03s`` or ``2m03s``."""
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def train_epoch(
    run: Run,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    batch_size: int,
    lr: float,
    stop: StopRequest,
    guard: Divergence,
    interrupt: Callable[[], None],
    on_step: StepHook | None = None,
) -> float:
    """Finish the current epoch from ``run.step``; returns its seconds (resumed part too)."""
    n, b = len(y_train), batch_size
    steps = n // b
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.model.train()
    t0 = time.perf_counter()
    if run.perm is None:
        run.perm = torch.randperm(n, generator=run.shuffle_gen).to(x_train.device)
    else:
        run.perm = run.perm.to(x_train.device)
    while run.step < steps:
        idx = run.perm[run.step * b : (run.step + 1) * b]
        xb = x_train.index_select(0, idx)
        yb = y_train.index_select(0, idx)
        if run.augment is not None:
            xb = run.augment(xb)
        out = run.model(xb)
        loss = F.cross_entropy(out, yb)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        with torch.no_grad():
            run.loss_sum += loss.detach().double()
            run.wrong += (out.argmax(1) != yb).sum()
        run.step += 1
        if on_step is not None:
            on_step(run.model, run.epoch, run.step, steps)
        if run.initial_loss is None:
            run.initial_loss = float(loss.detach())
        if run.step % FINITE_CHECK_EVERY == 0:
            guard.check_loss("the running training loss", float(run.loss_sum) / run.step, lr)
        if stop.requested and run.step < steps:
            run.epoch_seconds += time.perf_counter() - t0
            interrupt()
    return run.epoch_seconds + time.perf_counter() - t0


def log_epoch(settings: TrainSettings, row: Mapping[str, Any], eta: float) -> None:
    """One progress line per epoch: lr, train and test loss and error, seconds, ETA."""
    LOG.info(
        "%s epoch %d/%d lr %.4g | train loss %.4f err %.2f%% | test loss %.4f err %.2f%% "
        "| %.1f s + eval %.1f s | ETA %s",
        settings.experiment,
        row["epoch"],
        settings.epochs,
        row["lr"],
        row["train_loss"],
        100 * row["train_error"],
        row["test_loss"],
        100 * row["test_error"],
        row["seconds"],
        row["eval_seconds"],
        format_seconds(eta),
    )


def finish_epoch(
    run: Run,
    settings: TrainSettings,
    paths: TrainPaths,
    data: tuple[torch.Tensor, torch.Tensor],
    lr: float,
    seconds: float,
    eval_batch_size: int,
    guard: Divergence,
) -> dict[str, Any]:
    """Epoch metrics, divergence checks, then the snapshots due after this epoch."""
    steps = run.step
    train_loss = float(run.loss_sum) / steps
    train_error = int(run.wrong) / (steps * settings.batch_size)
    guard.check_loss("the training loss", train_loss, lr)
    guard.check_state(lr)
    t1 = time.perf_counter()
    test_loss, test_error = evaluate(run.model, *data, eval_batch_size)
    eval_seconds = time.perf_counter() - t1
    guard.check_loss("the test loss", test_loss, lr)
    run.epoch += 1
    run.step, run.perm, run.epoch_seconds = 0, None, 0.0
    run.loss_sum.zero_()
    run.wrong.zero_()
    row = {
        "epoch": run.epoch,
        "lr": lr,
        "train_loss": train_loss,
        "train_error": train_error,
        "test_loss": test_loss,
        "test_error": test_error,
        "seconds": seconds,
        "eval_seconds": eval_seconds,
    }
    run.rows.append(row)
    for tag, at in settings.snapshot_epochs().items():
        if at == run.epoch:
            meta = snapshot_meta(settings, run.epoch, tag, lr, row)
            sd = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
            run.taken[tag] = {"state_dict": sd, "meta": meta}
            save_snapshot(paths.snapshot(tag), run.model, meta)
    return row


def interrupter(
    run: Run,
    settings: TrainSettings,
    paths: TrainPaths,
    fingerprint: str,
    device: torch.device,
    stop: StopRequest,
    steps: int,
) -> Callable[[], None]:
    """The action on a stop request: save a checkpoint, then raise
    :class:`TrainingInterrupted` naming the signal, the epoch and the step."""

    def interrupt() -> None:
        save_checkpoint(paths.checkpoint, checkpoint_state(run, settings, fingerprint, device))
        signame = signal.Signals(stop.signum).name if stop.signum else "a stop request"
        raise TrainingInterrupted(
            f"{settings.experiment}: interrupted by {signame} at epoch {run.epoch + 1}, step "
            f"{run.step}/{steps}; state saved to {paths.checkpoint}. Rerun the same command to "
            "resume from there",
            stop.signum,
            paths.checkpoint,
        )

    return interrupt


def train(
    settings: TrainSettings,
    data: Prepared,
    paths: TrainPaths,
    device: str | torch.device = "cpu",
    eval_batch_size: int = 2048,
    checkpoint_every: int = 1,
    stop: StopRequest | None = None,
    divergence_factor: float | None = DIVERGENCE_FACTOR,
    on_step: StepHook | None = None,
) -> pd.DataFrame:
    """Train ``settings.model`` on ``data``; write snapshots and the metrics table; return it.

    Resumes from ``paths.checkpoint`` if it holds a run with the same settings and data
    (otherwise it is ignored with a warning and overwritten). Raises
    :class:`TrainingDiverged` (and removes the run's snapshots) on a non-finite loss, weight
    or BN statistic or a loss above ``divergence_factor`` times the first mini-batch loss
    (``None``: no bound), and :class:`TrainingInterrupted` after saving a checkpoint when
    ``stop`` is requested. ``on_step(model, epoch, step, steps)`` runs after every optimiser
    step (e.g. :class:`sgdvi.recording_hook.RecordingHook`).
    """
    device = torch.device(device)
    stop = stop if stop is not None else StopRequest()
    check_data(settings, data)
    fingerprint = data_fingerprint(data)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    test = (data.x_test.to(device), data.y_test.to(device))
    steps = len(y_train) // settings.batch_size
    run = new_run(settings, device)
    resume(run, settings, paths, fingerprint, device, steps)
    guard = Divergence(settings, run, divergence_factor)
    interrupt = interrupter(run, settings, paths, fingerprint, device, stop, steps)
    started, epochs_timed = time.perf_counter(), 0
    try:
        while run.epoch < settings.epochs:
            lr = lr_at(settings.lr_schedule, run.epoch)
            seconds = train_epoch(
                run, x_train, y_train, settings.batch_size, lr, stop, guard, interrupt, on_step
            )
            row = finish_epoch(run, settings, paths, test, lr, seconds, eval_batch_size, guard)
            epochs_timed += 1
            elapsed = time.perf_counter() - started
            log_epoch(settings, row, elapsed / epochs_timed * (settings.epochs - run.epoch))
            if run.epoch < settings.epochs:
                if stop.requested:
                    interrupt()
                if run.epoch % checkpoint_every == 0:
                    save_checkpoint(
                        paths.checkpoint, checkpoint_state(run, settings, fingerprint, device)
                    )
    except TrainingDiverged:
        remove_snapshots(run, paths)
        raise
    return write_outputs(run, settings, paths)
