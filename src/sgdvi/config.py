"""Configuration checks beyond the JSON schema, and small naming helpers.

The JSON schema (``workflow/schemas/config.schema.yaml``) rejects unknown keys, wrong types
and out-of-range values. :func:`check_config` adds the checks a schema cannot express
(cross-references between keys). Every error names the offending key and the fix.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: model -> datasets it can be trained on
MODEL_DATASETS: dict[str, tuple[str, ...]] = {
    "small-lenet": ("mnist28",),
    "small-fc": ("mnist7",),
    "tiny-fc": ("mnist7-5class",),
    "small-allcnn": ("cifar10-zca", "cifar100-zca"),
}

#: number of classes of each prepared dataset
DATASET_CLASSES: dict[str, int] = {
    "mnist28": 10,
    "mnist7": 10,
    "mnist7-5class": 5,
    "cifar10-zca": 10,
    "cifar100-zca": 100,
}

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


def fraction_tag(fraction: float) -> str:
    """Canonical text of a snapshot fraction used in file names: 0.2 -> '0.2', 1 -> '1.0'."""
    return repr(float(fraction))


def snapshot_epoch(fraction: float, epochs: int) -> int:
    """Epoch (1-based count of finished epochs) after which the snapshot ``fraction`` is kept.

    ``max(1, round(fraction * epochs))``: 0.2, 0.4, 1.0 of 50 epochs give 10, 20, 50
    (the authors' code kept epochs 11, 21, 50).
    """
    return max(1, min(epochs, round(fraction * epochs)))


def weight_count(model: str, num_classes: int) -> int:
    """Number of weights d of a network, in closed form (no torch import; the Snakefile uses it).

    Every conv/linear layer has a bias and BN has two affine weights per channel
    (``experimental-details.md``); tests/test_models.py checks it against the built networks.
    """

    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_out * (c_in * k * k + 1)

    if model == "small-lenet":
        return (
            conv(1, 8, 5)
            + 16
            + conv(8, 16, 5)
            + 32
            + conv(64, 128, 1)
            + 256
            + conv(128, num_classes, 1)
        )
    if model in ("small-fc", "tiny-fc"):
        hidden = 64 if model == "small-fc" else 16
        return conv(49, hidden, 1) + 2 * hidden + conv(hidden, num_classes, 1)
    if model == "small-allcnn":
        convs = [(3, 12), (12, 12), (12, 12), (12, 24), (24, 24), (24, 24), (24, 24), (24, 24)]
        d = sum(conv(a, b, 3) + 2 * b for a, b in convs)
        return d + conv(24, num_classes, 1) + 2 * num_classes
    raise ConfigError(f"unknown model {model!r}")


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks; raises :class:`ConfigError` naming the key."""
    experiments = config.get("experiments", {})
    for name in config.get("run", []):
        if name not in experiments:
            raise ConfigError(
                f"config key run: lists {name!r}, which is not a key of experiments: "
                f"(known: {sorted(experiments)}); add it under experiments: or remove it from run:"
            )
    for name, exp in experiments.items():
        key = f"experiments.{name}"
        model, dataset = exp["model"], exp["dataset"]
        if dataset not in MODEL_DATASETS[model]:
            raise ConfigError(
                f"{key}.dataset: model {model!r} cannot train on {dataset!r}; "
                f"use one of {list(MODEL_DATASETS[model])}"
            )
        schedule = exp["lr_schedule"]
        if schedule[0][0] != 0:
            raise ConfigError(f"{key}.lr_schedule: the first entry must start at epoch 0")
        starts = [int(s[0]) for s in schedule]
        if starts != sorted(set(starts)):
            raise ConfigError(
                f"{key}.lr_schedule: epochs must be strictly increasing, got {starts}"
            )
        if exp["augment"] and not dataset.startswith("cifar"):
            raise ConfigError(f"{key}.augment: augmentation is defined for CIFAR only")
        tags = [fraction_tag(f) for f in exp["snapshots"]]
        if len(set(tags)) != len(tags):
            raise ConfigError(f"{key}.snapshots: fractions must be distinct, got {tags}")
        epochs_at = [snapshot_epoch(f, exp["epochs"]) for f in exp["snapshots"]]
        if len(set(epochs_at)) != len(epochs_at):
            raise ConfigError(
                f"{key}.snapshots: fractions {tags} fall on the same epochs {epochs_at} "
                f"with epochs: {exp['epochs']}; raise epochs or space the fractions"
            )
    traj = config.get("trajectory")
    if traj and traj["burn_in"] >= traj["epochs"]:
        raise ConfigError(
            f"trajectory.burn_in ({traj['burn_in']}) must be smaller than trajectory.epochs "
            f"({traj['epochs']})"
        )
    diff = config.get("diffusion")
    if diff:
        for fig, exp_name in diff.get("figures", {}).items():
            if exp_name not in experiments:
                raise ConfigError(
                    f"diffusion.figures.{fig}: experiment {exp_name!r} is not defined under "
                    "experiments:"
                )


def validate_config(config: Mapping[str, Any]) -> None:
    """Schema validation plus :func:`check_config`, as the Snakefile does (for tests and tools)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "<top level>"
        raise ConfigError(f"config key {where}: {e.message}")
    check_config(config)


def uses_cuda(device: str) -> bool:
    """Whether rules that train or compute gradients run on CUDA for this ``device`` value.

    ``auto`` asks the machine that builds the DAG: ``nvidia-smi`` on PATH and torch seeing a GPU.
    """
    if device == "cuda":
        return True
    if device == "cpu":
        return False
    if shutil.which("nvidia-smi") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def concrete_device(device: str) -> str:
    """``cpu`` or ``cuda``: what the jobs get, decided once when the DAG is built."""
    return "cuda" if uses_cuda(device) else "cpu"
