"""Chunked, resumable storage of a long SGD trajectory (Section IV-B).

A run writes one file per chunk of ``chunk_epochs`` epochs,
``{run_dir}/chunks/chunk_{index:06d}.npz``, atomically (temporary file + rename). Each chunk
holds the per-epoch metrics of its epochs, the weights after each of its post-burn-in epochs
(float32), the complete training state at its end (weights, momentum buffer, BN running
statistics) and a fingerprint of the settings. A killed run resumes from the state of the last
complete chunk and loses at most the chunk in progress; since the batch order of an epoch
depends only on (seed, epoch), the resumed trajectory is identical to an uninterrupted one.

:func:`assemble` turns the chunks into the final artefacts of a seed:

- ``weights.npy``: (n_stored, d) float32, row k = weights after epoch ``first_stored + k``
  (``numpy.load(..., mmap_mode="r")`` reads columns without loading the file);
- ``metrics.parquet``: one row per epoch 0..E (see :data:`METRIC_COLUMNS`);
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

from sgdvi.trajectory.layout import D, TrainState

#: per-epoch metrics; row ``epoch`` describes the weights after ``epoch`` finished epochs
METRIC_COLUMNS = {
    "epoch": "finished epochs (0 = initial weights)",
    "lr": "learning rate of the epoch just finished (NaN at epoch 0)",
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
    """The chunk files of one run directory."""

    def __init__(self, run_dir: str | Path, settings: Mapping[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "chunks"
        self.fingerprint = fingerprint(settings)

    def path(self, index: int) -> Path:
        return self.dir / f"chunk_{index:06d}.npz"

    def write(
        self,
        index: int,
        metrics: Mapping[str, np.ndarray],
        weights: np.ndarray,
        state: TrainState,
        init_metrics: Mapping[str, float] | None = None,
    ) -> Path:
        """Write chunk ``index`` atomically: metrics of its epochs, stored weights, end state."""
        self.dir.mkdir(parents=True, exist_ok=True)
        weights = np.asarray(weights, dtype=np.float32).reshape(-1, D)
        arrays = {f"m_{k}": np.asarray(v) for k, v in metrics.items()}
        if init_metrics is not None:
            arrays |= {f"init_{k}": np.asarray(v) for k, v in init_metrics.items()}
        path = self.path(index)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            weights=weights,
            params=state.params,
            momentum_buffer=state.momentum_buffer,
            running_mean=state.running_mean,
            running_var=state.running_var,
            num_batches_tracked=np.int64(state.num_batches_tracked),
            epoch=np.int64(state.epoch),
            fingerprint=np.array(self.fingerprint),
            **arrays,
        )
        os.replace(tmp, path)
        return path

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
        """Delete the chunk files (after :func:`assemble`)."""
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
    """Concatenate ``n_chunks`` chunks into ``weights.npy`` and ``metrics.parquet``.

    Reads one chunk at a time (memory: one chunk). Returns (stored epochs, metrics table).
    """
    weights_path, metrics_path = Path(weights_path), Path(metrics_path)
    n_stored = 0
    frames = []
    for i in range(n_chunks):
        blob = store.read(i)
        n_stored += blob["weights"].shape[0]
        if i == 0:
            init = {k[5:]: blob[k] for k in blob if k.startswith("init_")}
            frames.append(pd.DataFrame({k: [v] for k, v in init.items()}))
        frames.append(pd.DataFrame({k[2:]: blob[k] for k in blob if k.startswith("m_")}))
    metrics = pd.concat(frames, ignore_index=True)
    for col in _FLOAT_METRICS:
        metrics[col] = metrics[col].astype(np.float64)
    metrics["epoch"] = metrics["epoch"].astype(np.int64)
    metrics["stored"] = metrics["stored"].astype(bool)
    metrics["grad_norm_normalised"] = metrics["grad_norm"] / np.sqrt(D)
    metrics = metrics[list(METRIC_COLUMNS)]
    if not (np.diff(metrics["epoch"]) == 1).all() or metrics["epoch"].iloc[0] != 0:
        raise RuntimeError(f"chunks in {store.dir} do not cover consecutive epochs from 0")
    if int(metrics["stored"].sum()) != n_stored:
        raise RuntimeError(f"chunks in {store.dir}: stored flags disagree with the weights")

    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(weights_path.name + ".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_stored, D))
    row = 0
    for i in range(n_chunks):
        w = store.read(i)["weights"]
        out[row : row + len(w)] = w
        row += len(w)
    out.flush()
    del out
    os.replace(tmp, weights_path)
    tmp = metrics_path.with_name(metrics_path.name + ".tmp")
    metrics.to_parquet(tmp, index=False)
    os.replace(tmp, metrics_path)
    return n_stored, metrics
