"""Training the networks of Section IV with SGD, keeping snapshots, resumable.

The paper trains every network "with SGD with appropriate learning rate annealing and
Nesterov's momentum set to 0.9" (Section IV) and studies the weights after 20%, 40% and 100%
of training (Figs. 1 and 2). This module implements that run:

- SGD as :class:`torch.optim.SGD` (momentum, ``nesterov`` true or false, L2 weight decay on
  every parameter), a piecewise-constant learning rate (:func:`lr_at`).
- Each epoch draws one permutation of the training set from a seeded :class:`torch.Generator`
  and walks through it in ``floor(N / b)`` mini-batches of exactly ``b`` examples (sampling
  without replacement); the ``N mod b`` examples left at the end of a permutation are not seen
  in that epoch (a different set each epoch). Every mini-batch thus has the size ``b`` of the
  paper's noise model, ``var(grad f_b) = D(x) / b`` (Definition 1).
- Data live on the training device as tensors; a mini-batch is one ``index_select``.
- Optional augmentation (Fig. 2c) with :func:`sgdvi.data.augment.random_flip_crop`, driven by
  its own generator (seed + 1) so the shuffling order does not depend on ``augment``.
- Per epoch: the running mean of the mini-batch losses and errors seen during the epoch
  (train mode: dropout on, BN batch statistics, weights changing during the epoch) and the test
  loss and error in eval mode.
- Snapshots after epoch :func:`sgdvi.config.snapshot_epoch` of each fraction.
- A checkpoint with the full training state (weights and BN buffers, optimizer state, the
  shuffling/augmentation generators, torch's global RNG used by dropout, position within the
  epoch, metrics and snapshots so far) every ``checkpoint_every`` epochs and when a stop is
  requested (SIGTERM/SIGINT via :func:`stop_on_signals`); :func:`train` resumes from it and
  ends with the same weights, bit for bit on CPU, as an uninterrupted run. The checkpoint is
  deleted once all outputs are written.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sgdvi.config import DATASET_CLASSES, fraction_tag, snapshot_epoch
from sgdvi.data import Prepared
from sgdvi.models import MODEL_SPECS, build_model
from sgdvi.snapshots import save_snapshot

LOG = logging.getLogger("sgdvi.training")

#: version of the checkpoint layout; a checkpoint with another version is not resumed
CHECKPOINT_FORMAT = 1

#: mini-batches between checks that the running training loss is finite (each check syncs)
FINITE_CHECK_EVERY = 50

METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "seconds",
    "eval_seconds",
)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """A stop was requested (SIGTERM/SIGINT); the state was saved to a checkpoint."""

    def __init__(self, message: str, signum: int | None, checkpoint: Path) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines a training run (one entry of ``experiments:``)."""

    experiment: str
    dataset: str
    model: str
    num_classes: int
    epochs: int
    batch_size: int
    lr_schedule: tuple[tuple[int, float], ...]
    momentum: float
    nesterov: bool
    weight_decay: float
    dropout: float
    augment: bool
    seed: int
    snapshots: tuple[float, ...]
    train_subset: int | None = None

    @classmethod
    def from_config(cls, name: str, exp: Mapping[str, Any]) -> TrainSettings:
        """Settings of experiment ``name`` from its ``experiments.<name>`` config entry."""
        return cls(
            experiment=name,
            dataset=exp["dataset"],
            model=exp["model"],
            num_classes=DATASET_CLASSES[exp["dataset"]],
            epochs=int(exp["epochs"]),
            batch_size=int(exp["batch_size"]),
            lr_schedule=tuple((int(e), float(lr)) for e, lr in exp["lr_schedule"]),
            momentum=float(exp["momentum"]),
            nesterov=bool(exp["nesterov"]),
            weight_decay=float(exp["weight_decay"]),
            dropout=float(exp["dropout"]),
            augment=bool(exp["augment"]),
            seed=int(exp["seed"]),
            snapshots=tuple(float(f) for f in exp["snapshots"]),
            train_subset=exp.get("train_subset"),
        )

    def identity(self) -> dict[str, Any]:
        """Plain-dict form, stored in checkpoints to refuse resuming a different run."""
        d = asdict(self)
        d["lr_schedule"] = [list(s) for s in self.lr_schedule]
        d["snapshots"] = list(self.snapshots)
        return d

    def snapshot_epochs(self) -> dict[str, int]:
        """fraction tag -> epoch (1-based count of finished epochs) after which it is kept."""
        return {fraction_tag(f): snapshot_epoch(f, self.epochs) for f in self.snapshots}


@dataclass(frozen=True)
class TrainPaths:
    """Where a training run writes: snapshots, metrics table, resumable checkpoint."""

    snapshot_dir: Path
    metrics: Path
    checkpoint: Path

    def snapshot(self, tag: str) -> Path:
        return Path(self.snapshot_dir) / f"{tag}.pt"


class StopRequest:
    """Flag set by a signal handler; :func:`train` checks it after every optimizer step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.requested = False

    def request(self, signum: int | None = None) -> None:
        self.signum = signum
        self.requested = True


@contextmanager
def stop_on_signals(
    stop: StopRequest, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[StopRequest]:
    """Turn the first SIGTERM/SIGINT into ``stop.request()``; a second one interrupts at once.

    The training loop then saves a checkpoint at the next step boundary and raises
    :class:`TrainingInterrupted`. The previous handlers are restored on exit.
    """

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}")
        stop.request(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def lr_at(schedule: Sequence[Sequence[float]], epoch: int) -> float:
    """Learning rate of the piecewise-constant ``schedule`` during 0-based ``epoch``.

    ``schedule`` is ``[[from_epoch, lr], ...]`` with increasing ``from_epoch``, the first 0.
    """
    if not schedule or schedule[0][0] != 0:
        raise ValueError(f"lr_schedule must start at epoch 0, got {schedule!r}")
    lr = float(schedule[0][1])
    for start, value in schedule:
        if epoch >= start:
            lr = float(value)
    return lr


def make_optimizer(
    params: Any, lr: float, momentum: float, nesterov: bool, weight_decay: float
) -> torch.optim.SGD:
    """SGD of the paper: ``v <- mu v + (g + wd x)``; ``x <- x - lr v`` (heavy ball) or
    ``x <- x - lr (g + wd x + mu v)`` (Nesterov), torch.optim.SGD semantics, dampening 0."""
    if nesterov and momentum <= 0:
        raise ValueError("nesterov: true needs momentum > 0; set nesterov: false or momentum > 0")
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


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


def data_fingerprint(data: Prepared) -> str:
    """Hash of the training and test tensors: a checkpoint is only resumed on the same data."""
    h = hashlib.blake2b(digest_size=16)
    for t in data:
        arr = t.detach().cpu().contiguous().numpy()
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(arr)
    return h.hexdigest()


def _check_data(settings: TrainSettings, data: Prepared) -> None:
    spec = MODEL_SPECS[settings.model]
    shape = tuple(data.x_train.shape[1:])
    if shape != spec.input_shape:
        raise ValueError(
            f"experiment {settings.experiment}: model {settings.model} expects inputs of shape "
            f"{spec.input_shape}, dataset {settings.dataset} has {shape}; check its dataset: key"
        )
    n = len(data.y_train)
    if n < settings.batch_size:
        raise ValueError(
            f"experiment {settings.experiment}: {n} training examples are fewer than "
            f"batch_size {settings.batch_size}; lower batch_size or raise train_subset"
        )
    top = int(max(data.y_train.max(), data.y_test.max()))
    if top >= settings.num_classes:
        raise ValueError(
            f"experiment {settings.experiment}: label {top} in {settings.dataset} but the model "
            f"has {settings.num_classes} classes; the prepared dataset does not match its name"
        )


def _rng_state(device: torch.device, shuffle: torch.Generator, aug: torch.Generator) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "augment": aug.get_state(),
        "cuda": None,
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device, shuffle, aug) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    aug.set_state(state["augment"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (temp file, fsync, rename): a kill leaves the old one intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; a corrupt or foreign file raises :class:`CheckpointError`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read training checkpoint {path} ({type(exc).__name__}: {exc}). "
            f"Delete it (rm {path}) and rerun: training then restarts from epoch 0"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a training checkpoint of format {CHECKPOINT_FORMAT}. "
            f"Delete it (rm {path}) and rerun: training then restarts from epoch 0"
        )
    return state


def _format_seconds(s: float) -> str:
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def _write_snapshot(path: Path, settings: TrainSettings, blob: dict[str, Any]) -> None:
    """Write a snapshot kept in a checkpoint (Snakemake deletes outputs of a failed job)."""
    with torch.random.fork_rng(devices=[]):  # building a network draws from the global RNG
        model = build_model(settings.model, settings.num_classes, settings.dropout)
    model.load_state_dict(blob["state_dict"])
    save_snapshot(path, model, blob["meta"])


def train(
    settings: TrainSettings,
    data: Prepared,
    paths: TrainPaths,
    device: str | torch.device = "cpu",
    eval_batch_size: int = 2048,
    checkpoint_every: int = 1,
    stop: StopRequest | None = None,
) -> pd.DataFrame:
    """Train ``settings.model`` on ``data``; write snapshots and the metrics table; return it.

    Resumes from ``paths.checkpoint`` if it holds a run with the same settings and data
    (otherwise it is ignored with a warning and overwritten). Raises
    :class:`TrainingDiverged` on a non-finite loss and :class:`TrainingInterrupted` after
    saving a checkpoint when ``stop`` is requested.
    """
    device = torch.device(device)
    stop = stop if stop is not None else StopRequest()
    _check_data(settings, data)
    name = settings.experiment
    fingerprint = data_fingerprint(data)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    n, b = len(y_train), settings.batch_size
    steps = n // b
    snap_epochs = settings.snapshot_epochs()

    torch.manual_seed(settings.seed)
    model = build_model(settings.model, settings.num_classes, settings.dropout).to(device)
    optimizer = make_optimizer(
        model.parameters(),
        lr_at(settings.lr_schedule, 0),
        settings.momentum,
        settings.nesterov,
        settings.weight_decay,
    )
    shuffle_gen = torch.Generator().manual_seed(settings.seed)
    aug_gen = torch.Generator().manual_seed(settings.seed + 1)
    augment = None
    if settings.augment:
        from sgdvi.data.augment import random_flip_crop

        def augment(xb: torch.Tensor) -> torch.Tensor:
            return random_flip_crop(xb, aug_gen, pad=4)

    epoch, step = 0, 0  # finished epochs; finished steps of the current epoch
    perm: torch.Tensor | None = None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    epoch_seconds = 0.0
    rows: list[dict[str, Any]] = []
    taken: dict[str, dict[str, Any]] = {}

    if paths.checkpoint.exists():
        state = load_checkpoint(paths.checkpoint)
        if state["settings"] != settings.identity() or state["data"] != fingerprint:
            LOG.warning(
                "%s: checkpoint %s was written for other settings or data; starting over",
                name,
                paths.checkpoint,
            )
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], device, shuffle_gen, aug_gen)
            epoch, step = state["epoch"], state["step"]
            perm = state["perm"]
            loss_sum = state["loss_sum"].to(device)
            wrong = state["wrong"].to(device)
            epoch_seconds = state["epoch_seconds"]
            rows = list(state["metrics"])
            taken = dict(state["snapshots"])
            for tag, blob in taken.items():
                if not paths.snapshot(tag).exists():
                    _write_snapshot(paths.snapshot(tag), settings, blob)
            LOG.info(
                "%s: resuming from %s: epoch %d, after step %d/%d",
                name,
                paths.checkpoint,
                epoch + 1,
                step,
                steps,
            )

    def checkpoint() -> None:
        save_checkpoint(
            paths.checkpoint,
            {
                "format": CHECKPOINT_FORMAT,
                "settings": settings.identity(),
                "data": fingerprint,
                "epoch": epoch,
                "step": step,
                "perm": perm.cpu() if perm is not None else None,
                "loss_sum": loss_sum.cpu(),
                "wrong": wrong.cpu(),
                "epoch_seconds": epoch_seconds,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(device, shuffle_gen, aug_gen),
                "metrics": rows,
                "snapshots": taken,
            },
        )

    def interrupt() -> None:
        checkpoint()
        signame = signal.Signals(stop.signum).name if stop.signum else "a stop request"
        raise TrainingInterrupted(
            f"{name}: interrupted by {signame} at epoch {epoch + 1}, step {step}/{steps}; "
            f"state saved to {paths.checkpoint}. Rerun the same command to resume from there",
            stop.signum,
            paths.checkpoint,
        )

    def diverged(what: str, value: float, lr: float) -> TrainingDiverged:
        return TrainingDiverged(
            f"experiment {name}: {what} became {value} in epoch {epoch + 1} (lr {lr:g}). "
            f"The learning rate is probably too large: lower experiments.{name}.lr_schedule"
        )

    started = time.perf_counter()
    epochs_timed, seconds_timed = 0, 0.0
    while epoch < settings.epochs:
        lr = lr_at(settings.lr_schedule, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        t0 = time.perf_counter()
        if perm is None:
            perm = torch.randperm(n, generator=shuffle_gen).to(device)
        else:
            perm = perm.to(device)
        while step < steps:
            idx = perm[step * b : (step + 1) * b]
            xb = x_train.index_select(0, idx)
            yb = y_train.index_select(0, idx)
            if augment is not None:
                xb = augment(xb)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss.detach().double()
                wrong += (out.argmax(1) != yb).sum()
            step += 1
            if step % FINITE_CHECK_EVERY == 0 and not math.isfinite(float(loss_sum)):
                raise diverged("the training loss", float(loss_sum), lr)
            if stop.requested and step < steps:
                epoch_seconds += time.perf_counter() - t0
                interrupt()
        train_loss = float(loss_sum) / steps
        train_error = int(wrong) / (steps * b)
        if not math.isfinite(train_loss):
            raise diverged("the training loss", train_loss, lr)
        seconds = epoch_seconds + time.perf_counter() - t0
        t1 = time.perf_counter()
        test_loss, test_error = evaluate(model, x_test, y_test, eval_batch_size)
        eval_seconds = time.perf_counter() - t1
        if not math.isfinite(test_loss):
            raise diverged("the test loss", test_loss, lr)
        epoch += 1
        step, perm, epoch_seconds = 0, None, 0.0
        loss_sum.zero_()
        wrong.zero_()
        rows.append(
            {
                "epoch": epoch,
                "lr": lr,
                "train_loss": train_loss,
                "train_error": train_error,
                "test_loss": test_loss,
                "test_error": test_error,
                "seconds": seconds,
                "eval_seconds": eval_seconds,
            }
        )
        epochs_timed += 1
        seconds_timed = time.perf_counter() - started
        eta = seconds_timed / epochs_timed * (settings.epochs - epoch)
        LOG.info(
            "%s epoch %d/%d lr %.4g | train loss %.4f err %.2f%% | test loss %.4f err %.2f%% "
            "| %.1f s + eval %.1f s | ETA %s",
            name,
            epoch,
            settings.epochs,
            lr,
            train_loss,
            100 * train_error,
            test_loss,
            100 * test_error,
            seconds,
            eval_seconds,
            _format_seconds(eta),
        )
        for tag, at in snap_epochs.items():
            if at == epoch:
                meta = {
                    "model": settings.model,
                    "num_classes": settings.num_classes,
                    "dropout": settings.dropout,
                    "experiment": name,
                    "dataset": settings.dataset,
                    "epoch": epoch,
                    "fraction": float(tag),
                    "epochs": settings.epochs,
                    "batch_size": b,
                    "lr": lr,
                    "momentum": settings.momentum,
                    "nesterov": settings.nesterov,
                    "weight_decay": settings.weight_decay,
                    "seed": settings.seed,
                    "train_subset": settings.train_subset,
                    "augment": settings.augment,
                    "train_loss": train_loss,
                    "train_error": train_error,
                    "test_loss": test_loss,
                    "test_error": test_error,
                }
                state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                taken[tag] = {"state_dict": state_dict, "meta": meta}
                save_snapshot(paths.snapshot(tag), model, meta)
        if epoch < settings.epochs:
            if stop.requested:
                interrupt()
            if epoch % checkpoint_every == 0:
                checkpoint()

    metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.metrics.with_name(paths.metrics.name + ".tmp")
    metrics.to_parquet(tmp, index=False)
    os.replace(tmp, paths.metrics)
    for tag, blob in taken.items():
        if not paths.snapshot(tag).exists():
            _write_snapshot(paths.snapshot(tag), settings, blob)
    paths.checkpoint.unlink(missing_ok=True)
    return metrics
