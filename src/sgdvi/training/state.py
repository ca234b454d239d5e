"""The mutable state of a run (network, SGD optimizer, generators, position within the epoch,
metrics and snapshots so far): what a checkpoint saves and :func:`sgdvi.training.train`
advances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sgdvi.models_registry import build_network as build_model  # by name or import path
from sgdvi.schedule import lr_at
from sgdvi.training.rng import generators
from sgdvi.training.settings import TrainSettings


def make_optimizer(
    params: Any, lr: float, momentum: float, nesterov: bool, weight_decay: float
) -> torch.optim.SGD:
    """SGD of the paper: ``v <- mu v + (g + wd x)``; ``x <- x - lr v`` (heavy ball) or
    ``x <- x - lr (g + wd x + mu v)`` (Nesterov), torch.optim.SGD semantics, dampening 0."""
    if nesterov and momentum <= 0:
        raise ValueError("nesterov: true needs momentum > 0; set nesterov: false or momentum > 0")
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


@dataclass
class Run:
    """Mutable state of a training run: what a checkpoint saves and
    :func:`sgdvi.training.train` advances."""

    model: nn.Module
    optimizer: torch.optim.SGD
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    loss_sum: torch.Tensor
    wrong: torch.Tensor
    epoch: int = 0  # finished epochs
    step: int = 0  # finished steps of the current epoch
    perm: torch.Tensor | None = None
    epoch_seconds: float = 0.0
    initial_loss: float | None = None  # first mini-batch loss: scale of the divergence bound
    rows: list[dict[str, Any]] = field(default_factory=list)
    taken: dict[str, dict[str, Any]] = field(default_factory=dict)


def new_run(settings: TrainSettings, device: torch.device) -> Run:
    """Seeded network, optimizer and generators of a run that starts at epoch 0."""
    torch.manual_seed(settings.seed)
    model = build_model(settings.model, settings.num_classes, settings.dropout).to(device)
    optimizer = make_optimizer(
        model.parameters(),
        lr_at(settings.lr_schedule, 0),
        settings.momentum,
        settings.nesterov,
        settings.weight_decay,
    )
    shuffle_gen, aug_gen = generators(settings.seed)
    augment = None
    if settings.augment:
        from sgdvi.data.augment import random_flip_crop

        def augment(xb: torch.Tensor) -> torch.Tensor:
            return random_flip_crop(xb, aug_gen, pad=4)

    return Run(
        model=model,
        optimizer=optimizer,
        shuffle_gen=shuffle_gen,
        aug_gen=aug_gen,
        augment=augment,
        loss_sum=torch.zeros((), dtype=torch.float64, device=device),
        wrong=torch.zeros((), dtype=torch.int64, device=device),
    )
