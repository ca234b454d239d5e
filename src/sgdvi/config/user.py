"""Cross-key checks and DAG-time facts for a user's own network and data (no torch import).

An experiment is a *user experiment* when its ``model`` is given by import path
(``{import: "module:function", kwargs: {...}}``) or its dataset is of a kind other than the
paper's MNIST (``datasets.<name>.kind``: ``fashion-mnist``, ``idx``, ``npz``,
``image-folder``). The paper's checks (a network's fixed input size, MNIST label ranges) do not
apply to it; instead :func:`check_user` runs :func:`sgdvi.user_inputs.check_user_inputs` when
the configuration is loaded: the data files' headers, the import path, and one forward pass of
the network on a batch of the dataset's shape, before any job runs. Torch is imported only
when the configuration has a user experiment.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from sgdvi.config.base import CIFAR_DATASETS, ConfigError


def is_user_dataset(config: Mapping[str, Any], name: str) -> bool:
    """Whether dataset ``name`` is of a kind other than the paper's MNIST (or CIFAR)."""
    if name in CIFAR_DATASETS:
        return False
    entry = config["datasets"].get(name)
    return entry is not None and entry.get("kind", "mnist") != "mnist"


def is_user_experiment(config: Mapping[str, Any], name: str) -> bool:
    """Whether experiment ``name`` uses a network by import path or a user dataset."""
    exp = config["experiments"][name]
    return not isinstance(exp["model"], str) or is_user_dataset(config, exp["dataset"])


@functools.lru_cache(maxsize=64)
def _dataset_facts(name: str, entry_json: str) -> Any:
    from sgdvi.data.kinds import inspect_dataset
    from sgdvi.data.sources import DatasetFileError

    try:
        return inspect_dataset(name, json.loads(entry_json))
    except DatasetFileError as exc:
        raise ConfigError(str(exc)) from exc


def user_dataset_facts(config: Mapping[str, Any], name: str) -> Any:
    """:class:`sgdvi.data.kinds.DatasetFacts` of a user dataset (headers and labels read once
    per entry): input shape, largest label, number of classes, training examples."""
    return _dataset_facts(name, json.dumps(config["datasets"][name], sort_keys=True))


def _check_current(config: Mapping[str, Any], name: str, exp: Mapping[str, Any]) -> None:
    current = exp["current"]
    if not current.get("enabled"):
        return
    key = f"experiments.{name}.current"
    start = current.get("from_epoch")
    if start is not None and start >= exp["epochs"]:
        raise ConfigError(
            f"{key}.from_epoch: {start} is not an epoch of the run (epochs: {exp['epochs']}); "
            "set it below epochs"
        )
    if current.get("k", 10) < config["irreversibility"]["m"]:
        raise ConfigError(
            f"{key}.k: {current['k']} projections are fewer than irreversibility.m "
            f"({config['irreversibility']['m']}) the test uses; raise k"
        )


def check_user(config: Mapping[str, Any]) -> None:
    """Checks of every user experiment (:func:`sgdvi.user_inputs.check_user_inputs`: data
    files, import path, one forward pass), and of every experiment's ``current:`` key."""
    for name, exp in config["experiments"].items():
        _check_current(config, name, exp)
    names = [n for n in config["experiments"] if is_user_experiment(config, n)]
    if names or config["python_path"]:
        from sgdvi.user_inputs import check_user_inputs

        check_user_inputs(config, names)
