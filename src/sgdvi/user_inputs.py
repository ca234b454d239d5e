"""Checks of a user's own network and data, before any job runs.

An experiment whose ``model`` is given by import path, or whose dataset is not one of the
paper's MNIST/CIFAR sets (``datasets.<name>.kind``: ``fashion-mnist``, ``idx``, ``npz``,
``image-folder``), is checked when the workflow is built (:func:`check_user_inputs`, called
by the config entry point), so that a mistake costs seconds, not a training job:

1. the dataset's files exist and have the right shape: IDX magic and header, the arrays and
   dims of an ``.npz``, as many labels as images, integer labels >= 0, an image folder's
   classes (:func:`sgdvi.data.kinds.inspect_dataset`, headers and labels only);
2. the model's import path resolves: the module imports, the attribute exists
   (:func:`sgdvi.models_registry.resolve_model`);
3. the network, built with the experiment's ``num_classes`` and ``dropout``, maps one batch of
   the dataset's input shape on the CPU to logits ``(B, C)`` with ``C`` > the largest label
   (:func:`sgdvi.models_registry.check_model_output`).

Each failure is one short :class:`sgdvi.config.ConfigError` naming the key
(``experiments.<name>.model``, ``datasets.<name>``) and the fix. The facts found (input shape,
head size, weight count d) serve the workflow's resource estimates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sgdvi.config.user import is_user_experiment
from sgdvi.data.kinds import CIFAR_FACTS, DatasetFacts, inspect_dataset
from sgdvi.data.sources import DatasetFileError
from sgdvi.models_registry import (
    ModelSpecError,
    add_python_path,
    build_network,
    check_model_output,
)


@dataclass(frozen=True)
class ExperimentFacts:
    """What the checks established for one experiment."""

    input_shape: tuple[int, ...]
    num_classes: int
    max_label: int
    num_weights: int


def _config_error(message: str) -> Exception:
    from sgdvi.config import ConfigError

    return ConfigError(message)


def dataset_entry(config: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The ``datasets:`` entry of ``name`` (None for the built-in CIFAR sets)."""
    return (config.get("datasets") or {}).get(name)


def dataset_facts(config: Mapping[str, Any], name: str) -> DatasetFacts:
    """:func:`sgdvi.data.kinds.inspect_dataset` of ``name``, errors as ConfigError."""
    if name not in CIFAR_FACTS and dataset_entry(config, name) is None:
        known = [*(config.get("datasets") or {}), *CIFAR_FACTS]
        raise _config_error(f"dataset {name!r} is not a key of datasets: (known: {known})")
    try:
        return inspect_dataset(name, dataset_entry(config, name))
    except DatasetFileError as exc:
        raise _config_error(str(exc)) from exc


def check_experiment(config: Mapping[str, Any], name: str) -> ExperimentFacts:
    """Checks 1-3 of the module docstring for experiment ``name``."""
    exp = config["experiments"][name]
    key = f"experiments.{name}"
    facts = dataset_facts(config, exp["dataset"])
    n_cls = int(exp.get("num_classes") or facts.num_classes)
    try:
        model = build_network(exp["model"], n_cls, float(exp["dropout"]), key=f"{key}.model")
        out = check_model_output(model, facts.input_shape, facts.max_label, f"{key}.model")
    except ModelSpecError as exc:
        raise _config_error(str(exc)) from exc
    if exp.get("augment") and facts.input_shape[0] != 3:
        raise _config_error(
            f"{key}.augment: the flip-and-crop augmentation is for 3-channel images; "
            f"dataset {exp['dataset']!r} has shape {facts.input_shape}"
        )
    return ExperimentFacts(facts.input_shape, out.num_outputs, facts.max_label, out.num_weights)


def check_user_inputs(
    config: Mapping[str, Any], names: Iterable[str] | None = None, base: str | Path = "."
) -> dict[str, ExperimentFacts]:
    """Check every experiment of ``names`` (default: ``run:``) that uses a network by import
    path or a user dataset; ``python_path:`` (relative to ``base``) is put on ``sys.path`` and
    ``PYTHONPATH`` first. Returns the facts by experiment name."""
    add_python_path(config.get("python_path"), base)
    names = list(config.get("run", []) if names is None else names)
    return {n: experiment_facts(config, n) for n in names if is_user_experiment(config, n)}


#: facts already established, by the experiment's and its dataset's settings
_FACTS: dict[str, ExperimentFacts] = {}


def experiment_facts(config: Mapping[str, Any], name: str) -> ExperimentFacts:
    """:func:`check_experiment` of ``name``, once per distinct settings (the workflow asks
    again for resource estimates)."""
    import torch

    exp = config["experiments"][name]
    key = json.dumps(
        [exp, dataset_entry(config, exp["dataset"]), config.get("python_path")],
        sort_keys=True,
        default=str,
    )
    if key not in _FACTS:
        with torch.random.fork_rng(devices=[]):  # building a network draws from the RNG
            _FACTS[key] = check_experiment(config, name)
    return _FACTS[key]


def spectrum_job_mb(config: Mapping[str, Any], name: str) -> int:
    """``mem_mb`` of rule diffusion_spectrum for user experiment ``name``
    (:func:`sgdvi.diffusion.memory.job_mb` with d and the input size of the built network)."""
    import math

    from sgdvi.config import used_train_size
    from sgdvi.diffusion.memory import job_mb

    exp, diff = config["experiments"][name], config["diffusion"]
    facts = experiment_facts(config, name)
    n = used_train_size(config, exp["dataset"], diff["subset"], exp["train_subset"])
    return job_mb(n, facts.num_weights, diff, input_size=math.prod(facts.input_shape))
