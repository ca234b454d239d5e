"""Networks the sgdvi package has never seen, for tests/test_user_models.py.

The workflow imports them by path (``model: {import: "user_model_fixture:make_net"}``) with
this directory on the config's ``python_path:``. Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

import torch
from torch import nn


class SkipNet(nn.Module):
    """conv-BN-ReLU, a residual conv-BN block, global average pool, linear head."""

    def __init__(self, num_classes: int = 10, width: int = 4, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = torch.relu(h + self.block(h))
        return self.head(h.mean(dim=(2, 3)))


def make_net(num_classes: int = 10, width: int = 4, in_channels: int = 1) -> SkipNet:
    """The factory an experiment names: ``user_model_fixture:make_net``."""
    return SkipNet(num_classes=num_classes, width=width, in_channels=in_channels)


def three_outputs(in_features: int = 784) -> nn.Module:
    """A network with only 3 logits (too few for 10 labels)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 3))


def flat_output(in_features: int = 784) -> nn.Module:
    """A network returning one number per example, not logits (B, C)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 1), nn.Flatten(0))


NOT_A_FUNCTION = 3
