"""Chunked, resumable storage of a long SGD trajectory (Section IV-B).

The stored weights go straight into their final place: ``{run_dir}/weights.partial.npy``, a
preallocated (n_stored, d) float32 ``.npy`` memmap that each chunk fills in place (row k =
weights after epoch ``first_stored + k``) and flushes before the chunk's record is written.
A run writes one record per chunk of ``chunk_epochs`` epochs,
``{run_dir}/chunks/chunk_{index:06d}.npz``, atomically (:mod:`sgdvi.infra.atomic`: temporary file
+ rename, the temporary file removed on any failure): the
per-epoch metrics of its epochs, the complete training state at its end (weights, momentum
buffer, BN running statistics) and a fingerprint of the settings. A killed run resumes from
the state of the last complete chunk and rewrites the rows of the chunk in progress; since the
batch order of an epoch depends only on (seed, epoch), the resumed trajectory is identical to
an uninterrupted one.

:func:`assemble` checks the chunks and turns them into the final artefacts of a seed:

- ``weights.npy``: (n_stored, d) float32, row k = weights after epoch ``first_stored + k``
  (``numpy.load(..., mmap_mode="r")`` reads columns without loading the file);
- ``metrics.parquet``: one row per epoch 0..E (see :data:`METRIC_COLUMNS`; the full-dataset
  columns only where ``full_pass``), written atomically;
- ``run.json``: settings, sizes, timing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.disk import reserved_memmap
from sgdvi.trajectory.state import TrainState

#: per-epoch metrics; row ``epoch`` describes the weights after ``epoch`` finished epochs
METRIC_COLUMNS = {
    "epoch": "finished epochs (0 = initial weights)",
    "lr": "learning rate of the epoch just finished (NaN at epoch 0)",
    "full_pass": "whether the full-dataset pass ran after this epoch (else the next 3 are NaN)",
    "grad_norm": "||grad f(x)||_2 over the full training set, train-mode BN (full-batch stats)",
    "grad_norm_normalised": "grad_norm / sqrt(d), Fig. 3c",
    "loss": "full-dataset cross-entropy, same pass as grad_norm",
    "error": "full-dataset error, same pass as grad_norm",
    "batch_loss": "mean mini-batch loss seen while training the epoch (NaN at epoch 0)",
    "batch_error": "mean mini-batch error seen while training the epoch (NaN at epoch 0)",
    "stored": "whether the weights after this epoch are in weights.npy",
}
_FLOAT_METRICS = ("lr", "grad_norm", "loss", "error", "batch_loss", "batch_error")


class ResumeError(RuntimeError):
    """Chunks on disk that belong to another run; the message says what to delete."""


def fingerprint(settings: Mapping[str, Any]) -> str:
    """Canonical JSON of the settings that determine a trajectory (compared on resume)."""
    return json.dumps(dict(settings), sort_keys=True, default=str)


class ChunkStore:
    """The chunk records and the partial weight file of one run directory.

    ``n_stored`` rows of ``d`` weights will be stored in all (``settings`` fingerprint the run).
    """

    def __init__(
        self, run_dir: str | Path, settings: Mapping[str, Any], n_stored: int, d: int
    ) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "chunks"
        self.fingerprint = fingerprint(settings)
        self.shape = (int(n_stored), int(d))
        self.weights_path = self.run_dir / "weights.partial.npy"
        self._weights: np.memmap | None = None

    def open_weights(self, resume: bool) -> np.memmap:
        """The partial weight file: created afresh, or reopened to resume (shape checked)."""
        if resume:
            try:
                mm = np.load(self.weights_path, mmap_mode="r+")
            except (OSError, ValueError) as exc:
                raise ResumeError(
                    f"{self.dir} holds chunks but {self.weights_path} is unreadable ({exc}); "
                    f"delete {self.dir} to start this run afresh"
                ) from exc
            if mm.shape != self.shape or mm.dtype != np.float32:
                raise ResumeError(
                    f"{self.weights_path} is {mm.dtype}{mm.shape}, expected float32{self.shape}; "
                    f"delete {self.dir} to start this run afresh"
                )
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            mm = reserved_memmap(self.weights_path, np.float32, self.shape)
        self._weights = mm
        return mm

    def write_rows(self, first_row: int, rows: np.ndarray) -> None:
        """Weights of consecutive stored epochs, from row ``first_row`` on (in place)."""
        if self._weights is None:
            raise RuntimeError("open_weights() first")
        self._weights[first_row : first_row + len(rows)] = rows

    def path(self, index: int) -> Path:
        return self.dir / f"chunk_{index:06d}.npz"

    def write(
        self,
        index: int,
        metrics: Mapping[str, np.ndarray],
        state: TrainState,
        init_metrics: Mapping[str, float] | None = None,
    ) -> Path:
        """Record chunk ``index`` atomically (metrics of its epochs, end state), after flushing
        the rows it wrote with :meth:`write_rows` to the weight file."""
        if self._weights is not None:
            self._weights.flush()
        self.dir.mkdir(parents=True, exist_ok=True)
        arrays = {f"m_{k}": np.asarray(v) for k, v in metrics.items()}
        if init_metrics is not None:
            arrays |= {f"init_{k}": np.asarray(v) for k, v in init_metrics.items()}
        return atomic_write(
            self.path(index),
            np.savez,
            params=state.params,
            momentum_buffer=state.momentum_buffer,
            running_mean=state.running_mean,
            running_var=state.running_var,
            num_batches_tracked=np.int64(state.num_batches_tracked),
            epoch=np.int64(state.epoch),
            fingerprint=np.array(self.fingerprint),
            **arrays,
        )

    def _read(self, index: int) -> dict[str, np.ndarray] | None:
        path = self.path(index)
        if not path.exists():
            return None
        try:
            with np.load(path) as z:
                blob = {k: z[k] for k in z.files}
        except Exception:  # a truncated file (cannot happen with os.replace, but be safe)
            return None
        if str(blob["fingerprint"]) != self.fingerprint:
            raise ResumeError(
                f"{path} was written by a run with other settings:\n  {blob['fingerprint']}\n"
                f"now:\n  {self.fingerprint}\ndelete {self.dir} to start this run afresh"
            )
        return blob

    def completed(self) -> int:
        """Number of consecutive complete chunks 0, 1, ... on disk."""
        count = 0
        while self._read(count) is not None:
            count += 1
        return count

    def state_after(self, index: int) -> TrainState:
        """Training state at the end of chunk ``index``."""
        blob = self._read(index)
        if blob is None:
            raise FileNotFoundError(self.path(index))
        return TrainState(
            params=blob["params"],
            momentum_buffer=blob["momentum_buffer"],
            running_mean=blob["running_mean"],
            running_var=blob["running_var"],
            num_batches_tracked=int(blob["num_batches_tracked"]),
            epoch=int(blob["epoch"]),
        )

    def read(self, index: int) -> dict[str, np.ndarray]:
        blob = self._read(index)
        if blob is None:
            raise FileNotFoundError(self.path(index))
        return blob

    def remove(self) -> None:
        """Delete the chunk records (after :func:`assemble`)."""
        if self.dir.exists():
            for p in sorted(self.dir.glob("chunk_*.npz")):
                p.unlink()
            try:
                self.dir.rmdir()
            except OSError:
                pass


def assemble(
    store: ChunkStore,
    n_chunks: int,
    weights_path: str | Path,
    metrics_path: str | Path,
) -> tuple[int, pd.DataFrame]:
    """Check ``n_chunks`` chunk records, write ``metrics.parquet`` and move the filled weight
    file to ``weights_path``. Reads each record once (memory: the metrics). Returns (stored
    epochs, metrics table)."""
    weights_path, metrics_path = Path(weights_path), Path(metrics_path)
    frames = []
    for i in range(n_chunks):
        blob = store.read(i)
        if i == 0:
            init = {k[5:]: blob[k] for k in blob if k.startswith("init_")}
            frames.append(pd.DataFrame({k: [v] for k, v in init.items()}))
        frames.append(pd.DataFrame({k[2:]: blob[k] for k in blob if k.startswith("m_")}))
    metrics = pd.concat(frames, ignore_index=True)
    for col in _FLOAT_METRICS:
        metrics[col] = metrics[col].astype(np.float64)
    metrics["epoch"] = metrics["epoch"].astype(np.int64)
    metrics["stored"] = metrics["stored"].astype(bool)
    if "full_pass" not in metrics:  # chunks recorded before full_pass_every existed
        metrics["full_pass"] = True
    metrics["full_pass"] = metrics["full_pass"].astype(bool)
    metrics["grad_norm_normalised"] = metrics["grad_norm"] / np.sqrt(store.shape[1])
    metrics = metrics[list(METRIC_COLUMNS)]
    if not (np.diff(metrics["epoch"]) == 1).all() or metrics["epoch"].iloc[0] != 0:
        raise RuntimeError(f"chunks in {store.dir} do not cover consecutive epochs from 0")
    n_stored = int(metrics["stored"].sum())
    if n_stored != store.shape[0]:
        raise RuntimeError(
            f"chunks in {store.dir}: {n_stored} stored epochs, the weight file has {store.shape[0]}"
        )
    if store._weights is not None:
        store._weights.flush()
        store._weights = None
    atomic_write(metrics_path, metrics.to_parquet, index=False)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(store.weights_path, weights_path)
    return n_stored, metrics
