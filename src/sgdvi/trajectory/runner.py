"""Train tiny-fc for a long trajectory, chunk by chunk, resuming where a killed run stopped.

Section IV-B of the paper: ``epochs`` epochs of SGD (batch 128, momentum 0.9, no weight
decay), learning rate ``lr_burn_in`` for the first ``burn_in`` epochs and ``lr`` afterwards.
The full-dataset gradient norm, loss and error (train-mode BN over the whole training set as one
batch; Fig. 3c) are recorded after every burn-in epoch and then after every ``full_pass_every``-th
epoch (and the last): the pass costs about half a training epoch, so recording it every epoch
(``full_pass_every = 1``, what the authors stored) makes the run ~1.5x slower for a curve that
10,000 points already resolve. After every post-burn-in epoch the weights are stored. See
:mod:`sgdvi.trajectory.storage` for the files.

Every chunk is checked before it is recorded: a non-finite weight, momentum, BN statistic,
loss or gradient norm stops the run with :class:`TrajectoryDiverged` naming the run and the
first bad epoch, and nothing of that chunk is recorded. The check runs in numpy, outside the
numba kernels, whose ``fastmath`` flags let LLVM assume that no value is NaN or infinite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sgdvi.infra.atomic import atomic_open
from sgdvi.infra.jobguard import job_guard
from sgdvi.schedule import burn_in_schedule, lr_at
from sgdvi.trajectory.batches import epoch_permutation
from sgdvi.trajectory.network import STATED_CLASSES, TinyFC
from sgdvi.trajectory.state import EpochStats, FullPass, initial_state
from sgdvi.trajectory.storage import ChunkStore, assemble

log = logging.getLogger(__name__)


class TrajectoryDiverged(RuntimeError):
    """A non-finite weight, loss or gradient norm; the message names the run and the epoch."""


@dataclass(frozen=True)
class TrajectorySettings:
    """Everything that determines a trajectory (config ``trajectory:`` plus the seed)."""

    seed: int
    epochs: int
    burn_in: int
    batch_size: int = 128
    lr_burn_in: float = 0.1
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    chunk_epochs: int = 1000
    dtype: str = "float32"
    engine: str = "numba"
    num_classes: int = STATED_CLASSES
    full_pass_every: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.burn_in < self.epochs:
            raise ValueError(
                f"burn_in ({self.burn_in}) must lie in [0, epochs) with epochs = {self.epochs}"
            )
        if self.full_pass_every < 1:
            raise ValueError(f"full_pass_every must be >= 1, got {self.full_pass_every}")
        if self.engine not in ("numba", "torch"):
            raise ValueError(f"engine must be numba or torch, got {self.engine!r}")

    def fingerprint(self) -> dict[str, Any]:
        """The settings as compared on resume; ``num_classes`` only when not the stated 5 and
        ``full_pass_every`` only when not 1, so that the chunks of runs made before these keys
        existed still resume."""
        out = asdict(self)
        if self.num_classes == STATED_CLASSES:
            del out["num_classes"]
        if self.full_pass_every == 1:
            del out["full_pass_every"]
        return out

    def full_pass_at(self, epoch: int) -> bool:
        """Whether the full-dataset pass runs after ``epoch`` finished epochs: every burn-in
        epoch, every ``full_pass_every``-th epoch after it, and the last."""
        after = epoch - self.burn_in
        return after <= 0 or after % self.full_pass_every == 0 or epoch == self.epochs


def data_digest(x: np.ndarray, y: np.ndarray) -> str:
    """Short SHA-1 of the training data (part of the resume fingerprint)."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _make_trainer(x, y, settings: TrajectorySettings, device: str):
    state = initial_state(settings.seed, settings.num_classes)
    args = (x, y, state, settings.batch_size, settings.momentum, settings.nesterov)
    kw = {"dtype": settings.dtype, "num_classes": settings.num_classes}
    if settings.engine == "numba":
        from sgdvi.trajectory.fast_trainer import FastTrainer

        return FastTrainer(*args, **kw)
    from sgdvi.trajectory.reference_trainer import ReferenceTrainer

    return ReferenceTrainer(*args, device=device, **kw)


def _epochs(trainer, settings: TrajectorySettings, e0: int, e1: int, n: int, pool) -> Iterator:
    """Train epochs ``e0 .. e1 - 1``; yield ``(epoch, lr, stats, params, full pass)``, the
    full pass None where :meth:`TrajectorySettings.full_pass_at` skips it.

    With a ``pool`` each full pass runs in its thread while the next epoch trains (the
    kernels release the GIL); the numbers are the same either way.
    """
    schedule = burn_in_schedule(settings.burn_in, settings.lr_burn_in, settings.lr)
    pending = None
    for e in range(e0, e1):
        lr = lr_at(schedule, e)
        stats = trainer.train_epoch(epoch_permutation(settings.seed, e, n), lr)
        params = trainer.params()
        if not settings.full_pass_at(e + 1):
            fp = None
        elif pool is None:
            fp = trainer.full_pass()
        else:
            fp = pool.submit(trainer.full_pass, params)
        if pending is not None:
            yield *pending[:4], _result(pending[4])
        pending = (e + 1, lr, stats, params, fp)
    if pending is not None:
        yield *pending[:4], _result(pending[4])


def _result(fp):
    """A full pass, the result of a submitted one, or None."""
    return fp.result() if hasattr(fp, "result") else fp


def _metrics_row(
    epoch: int, lr: float, stats: EpochStats | None, fp: FullPass | None, burn_in: int
) -> dict:
    """One row of ``metrics.parquet``; NaN gradient norm, loss and error without a full pass."""
    return {
        "epoch": epoch,
        "lr": np.nan if stats is None else lr,
        "full_pass": fp is not None,
        "grad_norm": np.nan if fp is None else fp.grad_norm,
        "loss": np.nan if fp is None else fp.loss,
        "error": np.nan if fp is None else fp.error,
        "batch_loss": np.nan if stats is None else stats.batch_loss,
        "batch_error": np.nan if stats is None else stats.batch_error,
        "stored": epoch > burn_in and stats is not None,
    }


def _check_finite(rows: list[dict], finite_params: list[bool], state, where: str) -> None:
    """Raise :class:`TrajectoryDiverged` at the first epoch of a chunk with a non-finite value."""
    for row, ok in zip(rows, finite_params, strict=True):
        keys = ("loss", "grad_norm", "batch_loss") if row["full_pass"] else ("batch_loss",)
        bad = [k for k in keys if not np.isfinite(row[k])]
        bad += [] if ok else ["weights"]
        if bad and not (row["epoch"] == 0 and bad == ["batch_loss"]):
            raise TrajectoryDiverged(
                f"trajectory {where} diverged at epoch {row['epoch']}: non-finite "
                f"{', '.join(bad)} (loss {row['loss']:.4g}, grad norm {row['grad_norm']:.4g}, "
                f"lr {row['lr']:g}); nothing of this chunk was written: lower the learning rate"
            )
    for name in ("params", "momentum_buffer", "running_mean", "running_var"):
        if not np.isfinite(getattr(state, name)).all():
            raise TrajectoryDiverged(
                f"trajectory {where} diverged by epoch {state.epoch}: non-finite {name}"
            )


def _train_chunk(
    trainer, store: ChunkStore, settings, c: int, n: int, pool, where: str, init: dict | None
) -> dict:
    """Train chunk ``c``, check it, write its rows and record it (with the epoch-0 row
    ``init`` for the first chunk); return its metrics."""
    chunk = settings.chunk_epochs
    e0, e1 = c * chunk, min((c + 1) * chunk, settings.epochs)
    rows, finite, stored = [], [], []
    for epoch, lr, stats, params, fp in _epochs(trainer, settings, e0, e1, n, pool):
        rows.append(_metrics_row(epoch, lr, stats, fp, settings.burn_in))
        finite.append(bool(np.isfinite(params).all()))
        if epoch > settings.burn_in:
            stored.append(params.astype(np.float32))
    state = trainer.state()
    _check_finite(rows, finite, state, where)
    if stored:
        store.write_rows(max(e0, settings.burn_in) - settings.burn_in, np.array(stored))
    metrics = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    metrics["epoch"] = metrics["epoch"].astype(np.int64)
    store.write(c, metrics, state, init)
    return metrics


def _log_progress(where, settings, e1, done_epochs, t_start, metrics, d) -> None:
    per_epoch = (time.perf_counter() - t_start) / max(1, done_epochs)
    last = np.flatnonzero(metrics["full_pass"])
    k = last[-1] if len(last) else -1
    log.info(
        "%s epoch %d/%d: grad norm/sqrt(d) %.4g, loss %.4f, error %.4f at epoch %d "
        "(%.2f ms/epoch, %.0f s left)",
        where,
        e1,
        settings.epochs,
        metrics["grad_norm"][k] / np.sqrt(d),
        metrics["loss"][k],
        metrics["error"][k],
        metrics["epoch"][k],
        1e3 * per_epoch,
        per_epoch * (settings.epochs - e1),
    )


def _summary(settings: TrajectorySettings, net: TinyFC, n: int, digest: str, n_stored: int):
    """The run's settings and the layout of its files (``run.json``)."""
    return {
        "settings": asdict(settings),
        "n_train": n,
        "data_sha1_16": digest,
        "num_classes": settings.num_classes,
        "d": net.d,
        "n_stored": n_stored,
        "first_stored_epoch": settings.burn_in + 1,
        "weights": "weights.npy: (n_stored, d) float32, row k = weights after epoch "
        "first_stored_epoch + k, columns in model.parameters() order (see weight_names)",
        "grad_norm": "full training set, BN in train mode with full-batch statistics; after "
        f"every burn-in epoch, then every {settings.full_pass_every} (and the last)",
        "weight_names": net.weight_names(),
    }


def _write_summary(run_dir: Path, summary: dict) -> None:
    """``run.json``, atomically (a complete file or none)."""
    with atomic_open(run_dir / "run.json", "w", encoding="utf-8") as fh:
        fh.write(json.dumps(summary, indent=1))


def _start(trainer, store: ChunkStore, n_chunks: int, where: str) -> tuple[int, dict | None]:
    """``(chunks done, epoch-0 row)``: resume after the chunks already recorded (no epoch-0
    row), or start afresh with the checked metrics row of the initial weights."""
    done = min(store.completed(), n_chunks)
    store.open_weights(resume=done > 0)
    if done:
        trainer.set_state(store.state_after(done - 1))
        log.info("resuming %s after chunk %d (epoch %d)", where, done, trainer.epoch)
        return done, None
    init = _metrics_row(0, np.nan, None, trainer.full_pass(), 0)
    _check_finite([init], [True], trainer.state(), where)
    return done, init


def run_trajectory(
    x: np.ndarray,
    y: np.ndarray,
    settings: TrajectorySettings,
    run_dir: str | Path,
    *,
    threads: int = 1,
    device: str = "cpu",
    max_chunks: int | None = None,
    keep_chunks: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict | None:
    """Train (or resume) one seed's trajectory and assemble its artefacts in ``run_dir``.

    ``threads >= 2`` overlaps each epoch's full-dataset pass with the next epoch's training
    (numba engine; same numbers, less wall time). ``max_chunks`` stops after that many chunks
    exist, without assembling (used to test resuming). ``meta`` (e.g. variant and dataset
    name) goes into ``run.json`` and the log lines. Returns the run summary written to
    ``run.json``, or None when stopped early.
    """
    run_dir, meta = Path(run_dir), dict(meta or {})
    x, y = np.asarray(x).reshape(len(x), -1), np.asarray(y)
    net = TinyFC(settings.num_classes)
    where = " ".join(f"{k} {v}" for k, v in meta.items() if k in ("variant",))
    where = f"{where} seed {settings.seed}".strip()
    key = settings.fingerprint() | {"n": len(y), "data": data_digest(x, y)}
    store = ChunkStore(run_dir, key, settings.epochs - settings.burn_in, net.d)
    trainer = _make_trainer(x, y, settings, device)
    n_chunks = -(-settings.epochs // settings.chunk_epochs)
    done, init = _start(trainer, store, n_chunks, where)
    t_start = time.perf_counter()
    pool = ThreadPoolExecutor(1) if threads >= 2 and settings.engine == "numba" else None
    try:
        for c in range(done, n_chunks):
            if max_chunks is not None and c >= max_chunks:
                return None
            first = init if c == 0 else None
            metrics = _train_chunk(trainer, store, settings, c, len(y), pool, where, first)
            e1 = int(metrics["epoch"][-1])
            _log_progress(where, settings, e1, e1 - done * settings.chunk_epochs, t_start,
                          metrics, net.d)  # fmt: skip
            if on_chunk is not None:
                on_chunk(c)
    finally:
        if pool is not None:
            pool.shutdown()
    wall = time.perf_counter() - t_start
    n_stored, _ = assemble(store, n_chunks, run_dir / "weights.npy", run_dir / "metrics.parquet")
    summary = meta | _summary(settings, net, len(y), key["data"], n_stored)
    summary |= {"resumed_after_chunks": done, "wall_seconds_this_session": wall, "threads": threads}
    _write_summary(run_dir, summary)
    if not keep_chunks:
        store.remove()
    return summary


def lock_target(run_dir: str | Path) -> Path:
    """What :func:`run_guard` locks: the run's ``chunks`` (lock file ``chunks.lock`` beside)."""
    return Path(run_dir) / "chunks"


@contextmanager
def run_guard(run_dir: str | Path, where: str) -> Iterator[Path]:
    """One runner per seed directory, and none outliving its Snakemake job (no orphan
    writing the same chunks).

    :func:`sgdvi.infra.jobguard.job_guard` on the run's chunks (a second runner of the same
    ``run_dir`` refuses at once with :class:`sgdvi.infra.jobguard.CheckpointLocked`, naming the
    holder's PID); when the parent or Snakemake above the script's bash dies, the run ends with
    ``SystemExit(128 + SIGTERM)`` in the main thread, so a chunk being written is removed
    (:mod:`sgdvi.infra.atomic`) and the chunks recorded so far stay for the rerun to resume from.
    Call from the main thread (it installs a signal handler, restored on exit).
    """

    def parent_died() -> None:
        # a signal handler: it may interrupt the logger inside a write to the same file, where a
        # log call fails ("reentrant call") and the message is lost; write to the fds directly
        msg = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR trajectory {where}: the Snakemake job "
            "that started it is gone; stopping (the recorded chunks stay, a rerun resumes from "
            "them)\n"
        ).encode()
        logger: logging.Logger | None = log
        while logger is not None:
            for handler in logger.handlers:
                try:
                    os.write(handler.stream.fileno(), msg)  # type: ignore[attr-defined]
                except (AttributeError, OSError, ValueError):
                    pass
            logger = logger.parent if logger.propagate else None
        raise SystemExit(128 + signal.SIGTERM)

    with job_guard(lock_target(run_dir), f"trajectory runner of {where}", parent_died) as lock:
        yield lock
