"""The four networks of Section IV of the paper.

Architectures follow ``experimental-details.md`` (read from the authors' code): every
convolution and linear layer has a bias, and BatchNorm affine parameters count as weights.

==============  ==================  =======================
name            input               weights
==============  ==================  =======================
small-lenet     1x28x28 MNIST       13,338
small-fc        7x7 MNIST           3,978
tiny-fc         7x7 MNIST 0-4       917
small-allcnn    3x32x32 CIFAR       26,982 (10) / 29,412 (100)
==============  ==================  =======================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sgdvi.trajectory.network import N_HIDDEN, N_IN


@dataclass(frozen=True)
class ModelSpec:
    """Static facts about a network: its input shape and default settings."""

    input_shape: tuple[int, ...]
    num_classes: int
    dropout: float


MODEL_SPECS: dict[str, ModelSpec] = {
    "small-lenet": ModelSpec((1, 28, 28), 10, 0.1),
    "small-fc": ModelSpec((1, 7, 7), 10, 0.0),
    "tiny-fc": ModelSpec((1, 7, 7), 5, 0.0),
    "small-allcnn": ModelSpec((3, 32, 32), 10, 0.5),
}


def small_lenet(num_classes: int = 10, dropout: float = 0.1) -> nn.Sequential:
    """small-lenet: two 5x5 conv layers (8, 16 channels) with BN and dropout, FC 128."""
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=5),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=3),
        nn.Dropout(dropout),
        nn.Conv2d(8, 16, kernel_size=5),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2, stride=2),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(64, 128),
        nn.BatchNorm1d(128),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(128, num_classes),
    )


def _fc(hidden: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(N_IN, hidden),  # 7x7 pixels
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def small_fc(num_classes: int = 10, dropout: float = 0.0) -> nn.Sequential:
    """small-fc: 49 -> 64 (BN, ReLU) -> classes, on 7x7 MNIST. No dropout."""
    if dropout:
        raise ValueError("small-fc has no dropout layer; set dropout: 0 for this experiment")
    return _fc(64, num_classes)


def tiny_fc(num_classes: int = 5, dropout: float = 0.0) -> nn.Sequential:
    """tiny-fc: 49 -> 16 (BN, ReLU) -> 5, the network of Section IV-B (Fig. 3)."""
    if dropout:
        raise ValueError("tiny-fc has no dropout layer; set dropout: 0 for this experiment")
    return _fc(N_HIDDEN, num_classes)  # the one definition of its width: trajectory.network


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel_size=kernel, stride=stride, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]


def small_allcnn(num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """small-allcnn: All-CNN-C [19] with 12 and 24 channels, BN after every conv."""
    layers: list[nn.Module] = []
    layers += _conv_bn_relu(3, 12) + _conv_bn_relu(12, 12) + _conv_bn_relu(12, 12, stride=2)
    layers.append(nn.Dropout(dropout))
    layers += _conv_bn_relu(12, 24) + _conv_bn_relu(24, 24) + _conv_bn_relu(24, 24, stride=2)
    layers.append(nn.Dropout(dropout))
    layers += _conv_bn_relu(24, 24) + _conv_bn_relu(24, 24) + _conv_bn_relu(24, num_classes, 1)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


_BUILDERS = {
    "small-lenet": small_lenet,
    "small-fc": small_fc,
    "tiny-fc": tiny_fc,
    "small-allcnn": small_allcnn,
}


def build_model(
    name: str, num_classes: int | None = None, dropout: float | None = None
) -> nn.Sequential:
    """Build one of the paper's networks by name.

    ``num_classes`` and ``dropout`` default to the values in :data:`MODEL_SPECS`.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(_BUILDERS)}")
    spec = MODEL_SPECS[name]
    return _BUILDERS[name](
        num_classes=spec.num_classes if num_classes is None else num_classes,
        dropout=spec.dropout if dropout is None else dropout,
    )


def count_weights(model: nn.Module) -> int:
    """Number of trainable weights (the d of the paper), BN affine parameters included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """All trainable weights concatenated into one vector (a copy), in ``parameters()`` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])
