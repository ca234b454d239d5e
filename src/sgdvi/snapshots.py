"""Snapshot files: the weights and BN statistics of a network at a point of training.

A snapshot (``results/{experiment}/snapshots/{fraction}.pt``) is a dict saved with
:func:`torch.save`::

    {"state_dict": ..., "model": "small-lenet", "num_classes": 10, "dropout": 0.1,
     "experiment": "lenet-mnist", "dataset": "mnist28", "epoch": 10, "fraction": 0.2,
     "epochs": 50, "lr": 0.1, "batch_size": 128}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sgdvi.infra.atomic import atomic_path
from sgdvi.models_registry import build_network

REQUIRED_KEYS = ("state_dict", "model", "num_classes", "dropout")


def save_snapshot(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model``'s state and ``meta`` atomically (:func:`sgdvi.infra.atomic.atomic_path`)."""
    missing = [k for k in ("model", "num_classes", "dropout") if k not in meta]
    if missing:
        raise ValueError(f"snapshot meta lacks {missing}")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({**meta, "state_dict": state}, tmp)


def load_snapshot(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of a snapshot, load its weights, put it in eval mode.

    Returns ``(model, meta)``; ``meta`` is the saved dict without ``state_dict``.
    """
    path = Path(path)
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # corrupt or truncated file
        raise RuntimeError(
            f"cannot read snapshot {path}: {exc}. Delete it (rm {path}) and run "
            f"`snakemake {path}`: only the snapshot's own rule runs again (if the experiment's "
            f"trained/ copy is damaged too, delete that folder to retrain)"
        ) from exc
    missing = [k for k in REQUIRED_KEYS if k not in blob]
    if missing:
        raise RuntimeError(f"snapshot {path} lacks {missing}; it was not written by sgdvi")
    spec = blob.get("model_spec", blob["model"])  # a network by import path keeps its spec
    model = build_network(spec, num_classes=blob["num_classes"], dropout=blob["dropout"])
    model.load_state_dict(blob["state_dict"])
    model.to(device).eval()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return model, meta
