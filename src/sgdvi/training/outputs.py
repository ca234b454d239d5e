"""What a run leaves: snapshots (with the metadata of the run and epoch), the metrics table;
none of them after a divergence."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sgdvi.infra.atomic import atomic_path
from sgdvi.models_registry import build_network as build_model  # by name or import path
from sgdvi.models_registry import model_label
from sgdvi.snapshots import save_snapshot
from sgdvi.training.settings import TrainPaths, TrainSettings
from sgdvi.training.state import Run

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


def snapshot_meta(
    settings: TrainSettings, epoch: int, tag: str, lr: float, row: Mapping[str, Any]
) -> dict[str, Any]:
    """What a snapshot records about its run and epoch (read by the diffusion stage)."""
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


def write_snapshot(path: Path, settings: TrainSettings, blob: dict[str, Any]) -> None:
    """Write a snapshot kept in a checkpoint (Snakemake deletes outputs of a failed job)."""
    with torch.random.fork_rng(devices=[]):  # building a network draws from the global RNG
        model = build_model(settings.model, settings.num_classes, settings.dropout)
    model.load_state_dict(blob["state_dict"])
    save_snapshot(path, model, blob["meta"])


def write_outputs(run: Run, settings: TrainSettings, paths: TrainPaths) -> pd.DataFrame:
    """Metrics table (atomically), any snapshot missing on disk; then drop the checkpoint."""
    metrics = pd.DataFrame(run.rows, columns=list(METRIC_COLUMNS))
    with atomic_path(paths.metrics) as tmp:
        metrics.to_parquet(tmp, index=False)
    for tag, blob in run.taken.items():
        if not paths.snapshot(tag).exists():
            write_snapshot(paths.snapshot(tag), settings, blob)
    paths.checkpoint.unlink(missing_ok=True)
    return metrics


def remove_snapshots(run: Run, paths: TrainPaths) -> None:
    """A diverged run leaves no snapshot behind (nothing downstream may use it)."""
    for tag in run.taken:
        paths.snapshot(tag).unlink(missing_ok=True)
