"""Train tiny-fc for a long trajectory, chunk by chunk, resuming where a killed run stopped.

Section IV-B of the paper: ``epochs`` epochs of SGD (batch 128, momentum 0.9, no weight
decay), learning rate ``lr_burn_in`` for the first ``burn_in`` epochs and ``lr`` afterwards.
After every epoch the full-dataset gradient norm, loss and error are recorded (train-mode BN
over the whole training set as one batch); after every post-burn-in epoch the weights are
stored. See :mod:`sgdvi.trajectory.storage` for the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sgdvi.trajectory.fast_trainer import EpochStats, FastTrainer, FullPass
from sgdvi.trajectory.layout import D, epoch_permutation, initial_state, lr_at, weight_names
from sgdvi.trajectory.storage import ChunkStore, assemble

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
        if not 0 <= self.burn_in < self.epochs:
            raise ValueError(
                f"burn_in ({self.burn_in}) must lie in [0, epochs) with epochs = {self.epochs}"
            )
        if self.engine not in ("numba", "torch"):
            raise ValueError(f"engine must be numba or torch, got {self.engine!r}")


def data_digest(x: np.ndarray, y: np.ndarray) -> str:
    """Short SHA-1 of the training data (part of the resume fingerprint)."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _make_trainer(x, y, settings: TrajectorySettings, device: str):
    state = initial_state(settings.seed)
    args = (x, y, state, settings.batch_size, settings.momentum, settings.nesterov)
    if settings.engine == "numba":
        return FastTrainer(*args, dtype=settings.dtype)
    from sgdvi.trajectory.reference_trainer import ReferenceTrainer

    return ReferenceTrainer(*args, dtype=settings.dtype, device=device)


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
) -> dict | None:
    """Train (or resume) one seed's trajectory and assemble its artefacts in ``run_dir``.

    ``threads >= 2`` overlaps each epoch's full-dataset pass with the next epoch's training
    (numba engine; same numbers, less wall time). ``max_chunks`` stops after that many chunks
    exist, without assembling (used to test resuming). Returns the run summary written to
    ``run.json``, or None when stopped early.
    """
    run_dir = Path(run_dir)
    x = np.asarray(x).reshape(len(x), -1)
    y = np.asarray(y)
    n = len(y)
    key = asdict(settings) | {"n": n, "data": data_digest(x, y)}
    store = ChunkStore(run_dir, key)
    trainer = _make_trainer(x, y, settings, device)
    chunk = settings.chunk_epochs
    n_chunks = -(-settings.epochs // chunk)

    done = min(store.completed(), n_chunks)
    if done:
        trainer.set_state(store.state_after(done - 1))
        log.info("resuming seed %d after chunk %d (epoch %d)", settings.seed, done, trainer.epoch)
    t_start = time.perf_counter()
    overlap = threads >= 2 and settings.engine == "numba"
    pool = ThreadPoolExecutor(1) if overlap else None
    init_metrics = None
    if done == 0:
        fp = trainer.full_pass()
        init_metrics = {
            "epoch": 0,
            "lr": np.nan,
            "grad_norm": fp.grad_norm,
            "loss": fp.loss,
            "error": fp.error,
            "batch_loss": np.nan,
            "batch_error": np.nan,
            "stored": False,
        }
        log.info("seed %d epoch 0: grad norm %.4g, loss %.4f", settings.seed, fp.grad_norm, fp.loss)
    try:
        for c in range(done, n_chunks):
            if max_chunks is not None and c >= max_chunks:
                return None
            e0, e1 = c * chunk, min((c + 1) * chunk, settings.epochs)
            rows: list[tuple[int, float, EpochStats, FullPass]] = []
            weights = []
            pending: Future | None = None
            prev: tuple[int, float, EpochStats] | None = None
            for e in range(e0, e1):
                lr = lr_at(e, settings.burn_in, settings.lr_burn_in, settings.lr)
                stats = trainer.train_epoch(epoch_permutation(settings.seed, e, n), lr)
                params = trainer.params()
                if e >= settings.burn_in:
                    weights.append(params.astype(np.float32))
                if overlap:
                    if pending is not None:
                        rows.append((*prev, pending.result()))
                    pending = pool.submit(trainer.full_pass, params)
                    prev = (e + 1, lr, stats)
                else:
                    rows.append((e + 1, lr, stats, trainer.full_pass()))
            if pending is not None:
                rows.append((*prev, pending.result()))
            metrics = {
                "epoch": np.array([r[0] for r in rows], np.int64),
                "lr": np.array([r[1] for r in rows]),
                "grad_norm": np.array([r[3].grad_norm for r in rows]),
                "loss": np.array([r[3].loss for r in rows]),
                "error": np.array([r[3].error for r in rows]),
                "batch_loss": np.array([r[2].batch_loss for r in rows]),
                "batch_error": np.array([r[2].batch_error for r in rows]),
                "stored": np.array([r[0] > settings.burn_in for r in rows]),
            }
            w = np.array(weights, np.float32).reshape(-1, D)
            store.write(c, metrics, w, trainer.state(), init_metrics if c == 0 else None)
            elapsed = time.perf_counter() - t_start
            per_epoch = elapsed / (e1 - done * chunk)
            log.info(
                "seed %d epoch %d/%d: grad norm/sqrt(d) %.4g, loss %.4f, error %.4f "
                "(%.2f ms/epoch, %.0f s left)",
                settings.seed,
                e1,
                settings.epochs,
                metrics["grad_norm"][-1] / np.sqrt(D),
                metrics["loss"][-1],
                metrics["error"][-1],
                1e3 * per_epoch,
                per_epoch * (settings.epochs - e1),
            )
            if on_chunk is not None:
                on_chunk(c)
    finally:
        if pool is not None:
            pool.shutdown()
    wall = time.perf_counter() - t_start

    n_stored, metrics = assemble(
        store, n_chunks, run_dir / "weights.npy", run_dir / "metrics.parquet"
    )
    summary = {
        "settings": asdict(settings),
        "n_train": n,
        "data_sha1_16": key["data"],
        "d": D,
        "n_stored": n_stored,
        "first_stored_epoch": settings.burn_in + 1,
        "resumed_after_chunks": done,
        "wall_seconds_this_session": wall,
        "threads": threads,
        "weights": "weights.npy: (n_stored, d) float32, row k = weights after epoch "
        "first_stored_epoch + k, columns in model.parameters() order (see weight_names)",
        "grad_norm": "full training set, BN in train mode with full-batch statistics",
        "weight_names": weight_names(),
    }
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, run_dir / "run.json")
    if not keep_chunks:
        store.remove()
    return summary
