"""Training the networks of Section IV with SGD, keeping snapshots, resumable.

The paper trains every network "with SGD with appropriate learning rate annealing and
Nesterov's momentum set to 0.9" (Section IV) and studies the weights after 20%, 40% and 100%
of training (Figs. 1 and 2). This module implements that run:

- SGD as :class:`torch.optim.SGD` (momentum, ``nesterov`` true or false, L2 weight decay on
  every parameter), a piecewise-constant learning rate (:func:`sgdvi.schedule.lr_at`).
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
- Divergence (a non-finite loss, weight or BN statistic, or a loss above
  ``divergence_factor`` times the first mini-batch loss) stops the run with
  :class:`TrainingDiverged` naming experiment and epoch, and leaves no snapshot.
"""

from __future__ import annotations

import hashlib
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sgdvi.config import DATASET_CLASSES, fraction_tag, snapshot_epoch
from sgdvi.data import Prepared
from sgdvi.infra.atomic import atomic_path
from sgdvi.models import MODEL_SPECS
from sgdvi.models_registry import build_network as build_model  # by name or import path
from sgdvi.models_registry import check_model_output, is_builtin, model_label
from sgdvi.schedule import lr_at  # the package's one lr_at (also imported from here)
from sgdvi.snapshots import save_snapshot

LOG = logging.getLogger("sgdvi.training")

#: version of the checkpoint layout; a checkpoint with another version is not resumed
CHECKPOINT_FORMAT = 1

#: mini-batches between checks that the running training loss is finite (each check syncs)
FINITE_CHECK_EVERY = 50

#: default of ``training.divergence_factor``: a loss above this multiple of the first
#: mini-batch's loss counts as divergence
DIVERGENCE_FACTOR = 100.0

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


#: called after every optimiser step: (model, finished epochs, 1-based step, steps per epoch)
StepHook = Callable[[nn.Module, int, int, int], None]


class TrainingDiverged(RuntimeError):
    """A loss, weight or BN statistic became non-finite, or the loss exceeded its bound."""


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
    model: Any  # a network of the paper by name, or {import:, kwargs:} (sgdvi.models_registry)
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
            num_classes=int(exp.get("num_classes") or DATASET_CLASSES[exp["dataset"]]),
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


def stop_orphaned(stop: StopRequest) -> None:
    """The Snakemake job that started the trainer is gone: request a clean stop (a checkpoint,
    then :class:`TrainingInterrupted`), once; the ``on_orphaned`` of
    :func:`sgdvi.infra.jobguard.job_guard` for the trainer."""
    if not stop.requested:
        LOG.error("the Snakemake job that started this trainer is gone; stopping")
        stop.request(signal.SIGTERM)


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
    shape = tuple(data.x_train.shape[1:])
    if not is_builtin(settings.model):  # a user's network: one forward pass on this shape
        top = int(max(data.y_train.max(), data.y_test.max()))
        with torch.random.fork_rng(devices=[]):
            net = build_model(settings.model, settings.num_classes, settings.dropout)
            check_model_output(net, shape, top, f"experiments.{settings.experiment}.model")
    spec = MODEL_SPECS.get(settings.model) if is_builtin(settings.model) else None
    if spec is not None and shape != spec.input_shape:
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
    """Write ``state`` atomically (:func:`sgdvi.infra.atomic.atomic_path`): a kill or a full disk
    leaves the previous checkpoint intact and no temporary file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


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


@dataclass
class _Run:
    """Mutable state of a training run: what a checkpoint saves and :func:`train` advances."""

    model: nn.Module
    optimizer: torch.optim.SGD
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    loss_sum: torch.Tensor
    wrong: torch.Tensor
    epoch: int = 0  # finished epochs
    step: int = 0  # finished steps of the current epoch
    perm: torch.Tensor | None = None
    epoch_seconds: float = 0.0
    initial_loss: float | None = None  # first mini-batch loss: scale of the divergence bound
    rows: list[dict[str, Any]] = field(default_factory=list)
    taken: dict[str, dict[str, Any]] = field(default_factory=dict)


def _new_run(settings: TrainSettings, device: torch.device) -> _Run:
    """Seeded network, optimizer and generators of a run that starts at epoch 0."""
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

    return _Run(
        model=model,
        optimizer=optimizer,
        shuffle_gen=shuffle_gen,
        aug_gen=aug_gen,
        augment=augment,
        loss_sum=torch.zeros((), dtype=torch.float64, device=device),
        wrong=torch.zeros((), dtype=torch.int64, device=device),
    )


def _checkpoint_state(
    run: _Run, settings: TrainSettings, fingerprint: str, device: torch.device
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "settings": settings.identity(),
        "data": fingerprint,
        "epoch": run.epoch,
        "step": run.step,
        "perm": run.perm.cpu() if run.perm is not None else None,
        "loss_sum": run.loss_sum.cpu(),
        "wrong": run.wrong.cpu(),
        "epoch_seconds": run.epoch_seconds,
        "initial_loss": run.initial_loss,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "rng": _rng_state(device, run.shuffle_gen, run.aug_gen),
        "metrics": run.rows,
        "snapshots": run.taken,
    }


def _resume(
    run: _Run,
    settings: TrainSettings,
    paths: TrainPaths,
    fingerprint: str,
    device: torch.device,
    steps: int,
) -> None:
    """Load ``paths.checkpoint`` into ``run`` if it was written for these settings and data."""
    if not paths.checkpoint.exists():
        return
    name = settings.experiment
    state = load_checkpoint(paths.checkpoint)
    if state["settings"] != settings.identity() or state["data"] != fingerprint:
        LOG.warning(
            "%s: checkpoint %s was written for other settings or data; starting over",
            name,
            paths.checkpoint,
        )
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"], device, run.shuffle_gen, run.aug_gen)
    run.epoch, run.step = state["epoch"], state["step"]
    run.perm = state["perm"]
    run.loss_sum = state["loss_sum"].to(device)
    run.wrong = state["wrong"].to(device)
    run.epoch_seconds = state["epoch_seconds"]
    run.initial_loss = state.get("initial_loss")
    run.rows = list(state["metrics"])
    run.taken = dict(state["snapshots"])
    for tag, blob in run.taken.items():
        if not paths.snapshot(tag).exists():
            _write_snapshot(paths.snapshot(tag), settings, blob)
    LOG.info(
        "%s: resuming from %s: epoch %d, after step %d/%d",
        name,
        paths.checkpoint,
        run.epoch + 1,
        run.step,
        steps,
    )


def describe_checkpoint(path: Path) -> str:
    """One line saying where a rerun starts from (for the attempt header of the log)."""
    path = Path(path)
    if not path.exists():
        return "nothing: no checkpoint, training starts at epoch 1"
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        return f"unreadable checkpoint {path}"
    return (
        f"checkpoint {path}: epoch {state['epoch'] + 1}, after step {state['step']} "
        "(used if settings and data match)"
    )


class _Divergence:
    """Raises :class:`TrainingDiverged` naming experiment and epoch (issue 10, case 1).

    Divergence is a non-finite loss, weight or BN statistic, or a loss above ``factor`` times
    the loss of the first mini-batch (``factor`` = ``training.divergence_factor``).
    """

    def __init__(self, settings: TrainSettings, run: _Run, factor: float | None) -> None:
        self.name = settings.experiment
        self.run = run
        self.factor = factor

    def error(self, what: str, lr: float) -> TrainingDiverged:
        return TrainingDiverged(
            f"experiment {self.name} diverged in epoch {self.run.epoch + 1} (lr {lr:g}): {what}. "
            f"No snapshot was kept. The learning rate is probably too large: lower "
            f"experiments.{self.name}.lr_schedule"
        )

    def bound(self) -> float:
        if self.factor is None or self.run.initial_loss is None:
            return math.inf
        return self.factor * max(self.run.initial_loss, 1e-12)

    def check_loss(self, what: str, value: float, lr: float) -> None:
        if not math.isfinite(value):
            raise self.error(f"{what} became {value}", lr)
        if value > self.bound():
            raise self.error(
                f"{what} became {value:.4g}, more than training.divergence_factor "
                f"({self.factor:g}) times the initial loss {self.run.initial_loss:.4g}",
                lr,
            )

    def check_state(self, lr: float) -> None:
        """Every weight and BN buffer (running_mean, running_var) must be finite."""
        with torch.no_grad():
            for key, value in self.run.model.state_dict().items():
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    kind = (
                        "BN statistic"
                        if key.endswith(("running_mean", "running_var"))
                        else "weight"
                    )
                    raise self.error(f"{kind} {key} is no longer finite (inf/nan)", lr)


def _train_epoch(
    run: _Run,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    batch_size: int,
    lr: float,
    stop: StopRequest,
    guard: _Divergence,
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


def _snapshot_meta(
    settings: TrainSettings, epoch: int, tag: str, lr: float, row: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "model": model_label(settings.model),
        "model_spec": settings.model,  # rebuilds a network given by import path
        "num_classes": settings.num_classes,
        "dropout": settings.dropout,
        "experiment": settings.experiment,
        "dataset": settings.dataset,
        "epoch": epoch,
        "fraction": float(tag),
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "lr": lr,
        "momentum": settings.momentum,
        "nesterov": settings.nesterov,
        "weight_decay": settings.weight_decay,
        "seed": settings.seed,
        "train_subset": settings.train_subset,
        "augment": settings.augment,
        **{k: row[k] for k in ("train_loss", "train_error", "test_loss", "test_error")},
    }


def _log_epoch(settings: TrainSettings, row: Mapping[str, Any], eta: float) -> None:
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
        _format_seconds(eta),
    )


def _finish_epoch(
    run: _Run,
    settings: TrainSettings,
    paths: TrainPaths,
    data: tuple[torch.Tensor, torch.Tensor],
    lr: float,
    seconds: float,
    eval_batch_size: int,
    guard: _Divergence,
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
            meta = _snapshot_meta(settings, run.epoch, tag, lr, row)
            sd = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
            run.taken[tag] = {"state_dict": sd, "meta": meta}
            save_snapshot(paths.snapshot(tag), run.model, meta)
    return row


def _write_outputs(run: _Run, settings: TrainSettings, paths: TrainPaths) -> pd.DataFrame:
    """Metrics table (atomically), any snapshot missing on disk; then drop the checkpoint."""
    metrics = pd.DataFrame(run.rows, columns=list(METRIC_COLUMNS))
    with atomic_path(paths.metrics) as tmp:
        metrics.to_parquet(tmp, index=False)
    for tag, blob in run.taken.items():
        if not paths.snapshot(tag).exists():
            _write_snapshot(paths.snapshot(tag), settings, blob)
    paths.checkpoint.unlink(missing_ok=True)
    return metrics


def _remove_snapshots(run: _Run, paths: TrainPaths) -> None:
    """A diverged run leaves no snapshot behind (issue 10: nothing downstream may use it)."""
    for tag in run.taken:
        paths.snapshot(tag).unlink(missing_ok=True)


def _interrupter(
    run: _Run,
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
        save_checkpoint(paths.checkpoint, _checkpoint_state(run, settings, fingerprint, device))
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
    _check_data(settings, data)
    fingerprint = data_fingerprint(data)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    test = (data.x_test.to(device), data.y_test.to(device))
    steps = len(y_train) // settings.batch_size
    run = _new_run(settings, device)
    _resume(run, settings, paths, fingerprint, device, steps)
    guard = _Divergence(settings, run, divergence_factor)
    interrupt = _interrupter(run, settings, paths, fingerprint, device, stop, steps)
    started, epochs_timed = time.perf_counter(), 0
    try:
        while run.epoch < settings.epochs:
            lr = lr_at(settings.lr_schedule, run.epoch)
            seconds = _train_epoch(
                run, x_train, y_train, settings.batch_size, lr, stop, guard, interrupt, on_step
            )
            row = _finish_epoch(run, settings, paths, test, lr, seconds, eval_batch_size, guard)
            epochs_timed += 1
            elapsed = time.perf_counter() - started
            _log_epoch(settings, row, elapsed / epochs_timed * (settings.epochs - run.epoch))
            if run.epoch < settings.epochs:
                if stop.requested:
                    interrupt()
                if run.epoch % checkpoint_every == 0:
                    save_checkpoint(
                        paths.checkpoint, _checkpoint_state(run, settings, fingerprint, device)
                    )
    except TrainingDiverged:
        _remove_snapshots(run, paths)
        raise
    return _write_outputs(run, settings, paths)
