"""The config's named datasets: their options, head sizes, training-set sizes, and whether an
experiment's model fits its dataset.

Every function takes the configuration as returned by :func:`sgdvi.config.load` (schema
defaults filled in): none of them supplies a default of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sgdvi.config.base import CIFAR_DATASETS, CIFAR_TRAIN_SIZE, MODEL_INPUT, ConfigError
from sgdvi.config.user import is_user_dataset, user_dataset_facts

#: training images of each digit 0..9 in the official MNIST (60,000 in all); the same table
#: as ``sgdvi.data.mnist.OFFICIAL_TRAIN_PER_DIGIT`` (tested), here without a torch import
MNIST_TRAIN_PER_DIGIT = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)


def dataset_names(config: Mapping[str, Any]) -> list[str]:
    """Every dataset an experiment may name: the keys of ``datasets:`` and the CIFAR ones."""
    return [*config["datasets"], *CIFAR_DATASETS]


def dataset_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The resolved options of MNIST dataset ``name`` (``sgdvi.data.mnist.MnistOptions``).

    ``normalisation: null`` means ``data.mnist.normalisation``; every other option is the
    entry's value (its schema default where the config leaves it out).
    """
    datasets = config["datasets"]
    if name not in datasets:
        raise ConfigError(f"dataset {name!r} is not a key of datasets: (known: {sorted(datasets)})")
    entry = datasets[name]
    classes, per_class = entry["classes"], entry["per_class"]
    return {
        "size": int(entry["size"]),
        "classes": None if classes is None else [int(c) for c in classes],
        "per_class": None if per_class is None else int(per_class),
        "sample_seed": int(entry["sample_seed"]),
        "authors_wrap": bool(entry["authors_wrap"]),
        "normalisation": entry["normalisation"] or config["data"]["mnist"]["normalisation"],
    }


def dataset_train_size(config: Mapping[str, Any], name: str) -> int:
    """Training images of the prepared dataset ``name``, known when the DAG is built.

    CIFAR: 50,000. MNIST: the official count of each kept digit (``classes``; e.g. 12,665 for
    digits 0/1), capped at ``per_class`` per digit (512 x 4 digits: 2,048). Exact for the
    official MNIST files (``prepare_mnist`` checks these counts), an upper bound otherwise.
    """
    if name in CIFAR_DATASETS:
        return CIFAR_TRAIN_SIZE
    if is_user_dataset(config, name):  # fashion-mnist, idx, npz, image-folder: from its files
        return user_dataset_facts(config, name).n_train
    options = dataset_options(config, name)
    digits = range(10) if options["classes"] is None else options["classes"]
    cap = options["per_class"]
    return sum(
        MNIST_TRAIN_PER_DIGIT[d] if cap is None else min(cap, MNIST_TRAIN_PER_DIGIT[d])
        for d in digits
    )


def used_train_size(config: Mapping[str, Any], dataset: str, *subsets: int | None) -> int:
    """Training images a job uses: the dataset's (:func:`dataset_train_size`) capped by the
    first of ``subsets`` that is set (e.g. ``diffusion.subset``, then the experiment's
    ``train_subset``: the precedence of rule diffusion_spectrum)."""
    n = dataset_train_size(config, dataset)
    for subset in subsets:
        if subset is not None:
            return min(n, int(subset))
    return n


def dataset_num_classes(config: Mapping[str, Any], name: str) -> int:
    """Default head size for dataset ``name``: ``len(classes)``, else 10 (MNIST) / 10 or 100."""
    if name in CIFAR_DATASETS:
        return CIFAR_DATASETS[name]
    if is_user_dataset(config, name):
        return user_dataset_facts(config, name).num_classes
    classes = dataset_options(config, name)["classes"]
    return 10 if classes is None else len(classes)


def dataset_max_label(config: Mapping[str, Any], name: str) -> int:
    """Largest label dataset ``name`` keeps (labels stay the digits of a class subset)."""
    if name in CIFAR_DATASETS:
        return CIFAR_DATASETS[name] - 1
    if is_user_dataset(config, name):
        return user_dataset_facts(config, name).max_label
    classes = dataset_options(config, name)["classes"]
    return 9 if classes is None else max(classes)


def experiment_num_classes(config: Mapping[str, Any], name: str) -> int:
    """Head size of experiment ``name``: its ``num_classes``, else its dataset's default.

    The authors' small-fc kept a 10-way output on digits 0 and 1 (``experimental-details.md``),
    so the head size is a key of its own; d = :func:`sgdvi.config.weight_count` (model, this).
    """
    exp = config["experiments"][name]
    if exp["num_classes"] is not None:
        return int(exp["num_classes"])
    return dataset_num_classes(config, exp["dataset"])


def _input_of(config: Mapping[str, Any], dataset: str) -> int | str:
    if is_user_dataset(config, dataset):  # fits no network of the paper by name here
        return f"kind {config['datasets'][dataset]['kind']}"
    return "cifar" if dataset in CIFAR_DATASETS else dataset_options(config, dataset)["size"]


def check_dataset_use(
    config: Mapping[str, Any], key: str, model: str, dataset: str, num_classes: int | None
) -> None:
    """``dataset`` exists, fits ``model``'s input, and ``num_classes`` covers its labels.

    ``key``: the config key of the user (e.g. ``experiments.fc-mnist7``), named in errors.
    """
    names = dataset_names(config)
    if dataset not in names:
        raise ConfigError(
            f"{key}.dataset: {dataset!r} is not a key of datasets: nor a CIFAR dataset; "
            f"use one of {names} or define it under datasets:"
        )
    wanted = MODEL_INPUT[model]
    have = _input_of(config, dataset)
    if have != wanted:
        fits = [n for n in names if _input_of(config, n) == wanted]
        what = "CIFAR images" if wanted == "cifar" else f"{wanted}x{wanted} MNIST images"
        raise ConfigError(
            f"{key}.dataset: model {model!r} takes {what}, but dataset {dataset!r} "
            f"{'is CIFAR' if have == 'cifar' else f'has size {have}'}; use one of {fits}"
        )
    n_cls = dataset_num_classes(config, dataset) if num_classes is None else int(num_classes)
    top = dataset_max_label(config, dataset)
    if n_cls <= top:
        raise ConfigError(
            f"{key}.num_classes: {n_cls} outputs cannot hold label {top} of dataset "
            f"{dataset!r} (labels stay the digits); set num_classes to at least {top + 1}"
        )
