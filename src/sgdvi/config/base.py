"""Names and closed forms the workflow needs when it builds the DAG (no torch import).

The network input sizes and weight counts of Section IV (``experimental-details.md``), the
canonical snapshot names, and the device choice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: CIFAR datasets (prepared by rule prepare_cifar_zca) -> their number of classes
CIFAR_DATASETS: dict[str, int] = {"cifar10-zca": 10, "cifar100-zca": 100}

#: training images of the CIFAR datasets (both have 50,000)
CIFAR_TRAIN_SIZE = 50000

#: model -> the input it takes: an MNIST image size (28 or 7) or "cifar" (32x32x3)
MODEL_INPUT: dict[str, int | str] = {
    "small-lenet": 28,
    "small-fc": 7,
    "tiny-fc": 7,
    "small-allcnn": "cifar",
}

#: head size of the built-in dataset names, for callers without a config (the workflow uses
#: :func:`sgdvi.config.experiment_num_classes`, which reads the config's ``datasets:``)
DATASET_CLASSES: dict[str, int] = {
    "mnist28": 10,
    "mnist7": 10,
    "mnist7-5class": 5,
    **CIFAR_DATASETS,
}

#: the JSON schema of the workflow's configuration (keys, types, defaults, descriptions)
#: the schema ships inside the package (a pip-installed sgdvi has it too);
#: workflow/schemas/config.schema.yaml is a symbolic link to it, where Snakemake tools look
SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"


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
