"""The resumable checkpoint: the full training state written atomically, read back only for the
same settings and data, so that a resumed run ends bit for bit as an uninterrupted one (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sgdvi.infra.atomic import atomic_path
from sgdvi.training.outputs import write_snapshot
from sgdvi.training.rng import rng_state, set_rng_state
from sgdvi.training.settings import LOG, TrainPaths, TrainSettings
from sgdvi.training.state import Run

#: version of the checkpoint layout; a checkpoint with another version is not resumed
CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read."""


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


def checkpoint_state(
    run: Run, settings: TrainSettings, fingerprint: str, device: torch.device
) -> dict[str, Any]:
    """Everything :func:`resume` needs to continue ``run`` bit for bit, with the settings and
    data fingerprint it may only be resumed for."""
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
        "rng": rng_state(device, run.shuffle_gen, run.aug_gen),
        "metrics": run.rows,
        "snapshots": run.taken,
    }


def resume(
    run: Run,
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
    set_rng_state(state["rng"], device, run.shuffle_gen, run.aug_gen)
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
            write_snapshot(paths.snapshot(tag), settings, blob)
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
