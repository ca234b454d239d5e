"""The state of an SGD run on tiny-fc and what one epoch or one full pass reports.

Shared by the fused trainer (:mod:`sgdvi.trajectory.fast_trainer`) and the plain PyTorch loop
(:mod:`sgdvi.trajectory.reference_trainer`), which do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdvi.models import build_model, flat_parameters
from sgdvi.trajectory.network import N_HIDDEN, STATED_CLASSES


@dataclass
class TrainState:
    """Everything that determines the rest of an SGD run, in ``model.parameters()`` order.

    ``params`` and ``momentum_buffer`` are flat (d,), ``running_mean``/``running_var`` (16,)
    are the BN buffers (updated as torch does: momentum 0.1, unbiased batch variance), and
    ``epoch`` counts finished epochs.
    """

    params: np.ndarray
    momentum_buffer: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    num_batches_tracked: int
    epoch: int

    def copy(self) -> TrainState:
        return TrainState(
            self.params.copy(),
            self.momentum_buffer.copy(),
            self.running_mean.copy(),
            self.running_var.copy(),
            int(self.num_batches_tracked),
            int(self.epoch),
        )


def initial_state(seed: int, num_classes: int = STATED_CLASSES) -> TrainState:
    """PyTorch's default initialisation of tiny-fc after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    model = build_model("tiny-fc", num_classes=num_classes)
    params = flat_parameters(model).double().numpy()
    return TrainState(
        params=params,
        momentum_buffer=np.zeros(len(params)),
        running_mean=np.zeros(N_HIDDEN),
        running_var=np.ones(N_HIDDEN),
        num_batches_tracked=0,
        epoch=0,
    )


@dataclass(frozen=True)
class FullPass:
    """Loss, error and gradient over the whole training set (train-mode BN, one batch)."""

    loss: float
    error: float
    grad: np.ndarray  # (d,) in model.parameters() order

    @property
    def grad_norm(self) -> float:
        return float(np.linalg.norm(self.grad))


@dataclass(frozen=True)
class EpochStats:
    """Mean mini-batch loss and error seen while training one epoch."""

    batch_loss: float
    batch_error: float
