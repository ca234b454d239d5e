"""Checks a JSON schema cannot express: cross-references between keys.

:func:`cross_check` runs after the schema defaults are filled in and the schema validated
(:func:`sgdvi.config.load`); every error names the offending key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sgdvi.config.base import CIFAR_DATASETS, ConfigError, fraction_tag, snapshot_epoch
from sgdvi.config.datasets import check_dataset_use
from sgdvi.config.user import check_user, is_user_experiment


def _check_names(config: Mapping[str, Any]) -> None:
    """Dataset names do not shadow CIFAR's; ``run:`` lists defined experiments only."""
    experiments = config["experiments"]
    clash = sorted(set(config["datasets"]) & set(CIFAR_DATASETS))
    if clash:
        raise ConfigError(
            f"datasets.{clash[0]}: the name is taken by the CIFAR dataset of rule "
            "prepare_cifar_zca; choose another name"
        )
    for name in config["run"]:
        if name not in experiments:
            raise ConfigError(
                f"config key run: lists {name!r}, which is not a key of experiments: "
                f"(known: {sorted(experiments)}); add it under experiments: or remove it from run:"
            )


def _check_experiment(config: Mapping[str, Any], name: str, exp: Mapping[str, Any]) -> None:
    """One experiment: its dataset, learning-rate schedule, augmentation and snapshots."""
    key = f"experiments.{name}"
    model, dataset = exp["model"], exp["dataset"]
    if not is_user_experiment(config, name):  # else checked by building it (check_user)
        check_dataset_use(config, key, model, dataset, exp["num_classes"])
    schedule = exp["lr_schedule"]
    if schedule[0][0] != 0:
        raise ConfigError(f"{key}.lr_schedule: the first entry must start at epoch 0")
    starts = [int(s[0]) for s in schedule]
    if starts != sorted(set(starts)):
        raise ConfigError(f"{key}.lr_schedule: epochs must be strictly increasing, got {starts}")
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


def _check_trajectory(config: Mapping[str, Any]) -> None:
    """The trajectory's dataset (and each variant's) fits tiny-fc; burn-in < epochs.

    A variant holds only the keys it overrides (no defaults are filled into it): the others
    are inherited from the base ``trajectory:`` keys.
    """
    traj = config["trajectory"]
    check_dataset_use(config, "trajectory", "tiny-fc", traj["dataset"], traj["num_classes"])
    if traj["burn_in"] >= traj["epochs"]:
        raise ConfigError(
            f"trajectory.burn_in ({traj['burn_in']}) must be smaller than trajectory.epochs "
            f"({traj['epochs']})"
        )
    for variant, over in traj["variants"].items():
        if over is None:  # a variant switched off
            continue
        merged = {**traj, **over}
        check_dataset_use(
            config,
            f"trajectory.variants.{variant}",
            "tiny-fc",
            merged["dataset"],
            merged["num_classes"],
        )
        if merged["burn_in"] >= merged["epochs"]:
            raise ConfigError(
                f"trajectory.variants.{variant}: burn_in ({merged['burn_in']}) must be smaller "
                f"than epochs ({merged['epochs']})"
            )


def _check_figures(config: Mapping[str, Any]) -> None:
    """Every experiment named by ``diffusion.figures`` is defined."""
    experiments = config["experiments"]
    for fig, exp_name in config["diffusion"]["figures"].items():
        if exp_name not in experiments:
            raise ConfigError(
                f"diffusion.figures.{fig}: experiment {exp_name!r} is not defined under "
                "experiments:"
            )


def _check_diffusion(config: Mapping[str, Any]) -> None:
    """Several processes only run the paths whose data passes split (gram-tiles,
    matrix-free); ``k`` (only the k largest) is a Lanczos path's."""
    diff = config["diffusion"]
    if diff["processes"] > 1 and diff["solver"] not in ("auto", "matrix-free", "gram-tiles"):
        raise ConfigError(
            f"diffusion.processes is {diff['processes']} but diffusion.solver is "
            f"{diff['solver']!r}, which runs in one process; set diffusion.solver to "
            "matrix-free, gram-tiles or auto, or diffusion.processes to 1"
        )
    if diff["k"] is not None and diff["solver"] in ("dense", "gram", "gram-tiles"):
        raise ConfigError(
            f"diffusion.k is {diff['k']} but diffusion.solver {diff['solver']!r} computes "
            "every eigenvalue; set diffusion.solver to matrix-free, fast or auto, or "
            "diffusion.k to null"
        )


def cross_check(config: Mapping[str, Any]) -> None:
    """Cross-key checks of a schema-valid config with its defaults filled in; raises
    :class:`ConfigError` naming the key."""
    _check_names(config)
    for name, exp in config["experiments"].items():
        _check_experiment(config, name, exp)
    _check_trajectory(config)
    _check_figures(config)
    _check_diffusion(config)
    check_user(config)
