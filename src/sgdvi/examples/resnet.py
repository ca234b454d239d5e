"""ResNet-20 (He et al. 2016, Sec. 4.2, the CIFAR network) adapted to 1x28x28 images.

The paper's networks (Section IV) are small and plain; this is a modern residual network with
BatchNorm, to ask whether D(x) is low-rank there too (``config/examples/fashion-resnet20.yaml``).
Layout as in He et al.'s CIFAR ResNets: a 3x3 convolution with 16 channels, then three stages
of ``blocks`` basic blocks (two 3x3 convolutions with BatchNorm, ReLU after the sum) with 16,
32 and 64 channels, the first block of stages 2 and 3 halving the resolution (28 -> 14 -> 7);
global average pooling and a linear head. Shortcuts are option A (identity; when the shape
changes, subsample by 2 and pad the new channels with zeros), so they have no weights, and
convolutions have no bias (BatchNorm follows each). With ``blocks=3`` (6n+2 = 20 layers) and
one input channel it has 269,722 - 288 = 269,434 weights for 10 classes (He et al.: 0.27 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the (option A) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.pad = c_out - c_in

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Identity, or (shape change) every other pixel with zero channels appended."""
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2) with ``n = blocks`` and ``width`` base channels."""

    def __init__(
        self, blocks: int = 3, num_classes: int = 10, in_channels: int = 1, width: int = 16
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.stages(out)
        return self.fc(out.mean(dim=(2, 3)))


def resnet20(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> ResNet:
    """ResNet-20: 3 stages of 3 basic blocks, 16/32/64 channels (0.27 M weights)."""
    return ResNet(blocks=3, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet_weights(blocks: int, num_classes: int, in_channels: int, width: int = 16) -> int:
    """Weight count in closed form (checked against the built network in the tests)."""
    w = width
    total = 9 * in_channels * w + 2 * w  # stem conv + BN
    c_in = w
    for c_out in (w, 2 * w, 4 * w):
        for _ in range(blocks):
            total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out
            c_in = c_out
    return total + c_in * num_classes + num_classes
