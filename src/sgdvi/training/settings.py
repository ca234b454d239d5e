"""What determines a training run (one entry of ``experiments:``) and where it writes; the
logger of every :mod:`sgdvi.training` module."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sgdvi.config import DATASET_CLASSES, fraction_tag, snapshot_epoch

LOG = logging.getLogger("sgdvi.training")


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
