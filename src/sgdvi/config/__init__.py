"""The workflow's configuration: one entry point, :func:`load`, and the helpers rules use.

``sgdvi.config.load(config)`` fills in every ``default:`` of
``workflow/schemas/config.schema.yaml`` (the one place a default is written), validates the
result against the schema (unknown keys, wrong types and out-of-range values stop the run in
a few lines naming the key), runs the checks between keys, and updates ``config`` in place. The
Snakefile calls it once; rules and scripts then read every key directly, without fallbacks.

Modules: :mod:`.loader` (:func:`load`), :mod:`.schema` (defaults, validation, error text),
:mod:`.checks` (cross-key checks), :mod:`.datasets` (dataset options, head and training-set
sizes), :mod:`.base` (weight counts, snapshot names, devices; no torch import).
"""

from sgdvi.config.base import (
    CIFAR_DATASETS,
    CIFAR_TRAIN_SIZE,
    DATASET_CLASSES,
    MODEL_INPUT,
    SCHEMA_PATH,
    ConfigError,
    concrete_device,
    fraction_tag,
    snapshot_epoch,
    uses_cuda,
    weight_count,
)
from sgdvi.config.datasets import (
    MNIST_TRAIN_PER_DIGIT,
    check_dataset_use,
    dataset_max_label,
    dataset_names,
    dataset_num_classes,
    dataset_options,
    dataset_train_size,
    experiment_num_classes,
    used_train_size,
)
from sgdvi.config.loader import load
from sgdvi.config.schema import fill_defaults, format_schema_error, read_schema, schema_default

__all__ = [
    "CIFAR_DATASETS",
    "CIFAR_TRAIN_SIZE",
    "DATASET_CLASSES",
    "MNIST_TRAIN_PER_DIGIT",
    "MODEL_INPUT",
    "SCHEMA_PATH",
    "ConfigError",
    "check_dataset_use",
    "concrete_device",
    "dataset_max_label",
    "dataset_names",
    "dataset_num_classes",
    "dataset_options",
    "dataset_train_size",
    "experiment_num_classes",
    "fill_defaults",
    "format_schema_error",
    "fraction_tag",
    "load",
    "read_schema",
    "schema_default",
    "snapshot_epoch",
    "used_train_size",
    "uses_cuda",
    "weight_count",
]
