"""Divergence: a non-finite loss, weight or BN statistic, or a loss above
``divergence_factor`` times the first mini-batch loss, stops the run with
:class:`TrainingDiverged` naming experiment and epoch."""

from __future__ import annotations

import math

import torch

from sgdvi.training.settings import TrainSettings
from sgdvi.training.state import Run

#: mini-batches between checks that the running training loss is finite (each check syncs)
FINITE_CHECK_EVERY = 50

#: default of ``training.divergence_factor``: a loss above this multiple of the first
#: mini-batch's loss counts as divergence
DIVERGENCE_FACTOR = 100.0


class TrainingDiverged(RuntimeError):
    """A loss, weight or BN statistic became non-finite, or the loss exceeded its bound."""


class Divergence:
    """Raises :class:`TrainingDiverged` naming experiment and epoch (a too-large lr fails loudly).

    Divergence is a non-finite loss, weight or BN statistic, or a loss above ``factor`` times
    the loss of the first mini-batch (``factor`` = ``training.divergence_factor``).
    """

    def __init__(self, settings: TrainSettings, run: Run, factor: float | None) -> None:
        self.name = settings.experiment
        self.run = run
        self.factor = factor

    def error(self, what: str, lr: float) -> TrainingDiverged:
        return TrainingDiverged(
            f"experiment {self.name} diverged in epoch {self.run.epoch + 1} (lr {lr:g}): {what}. "
            f"No snapshot was kept. The learning rate is probably too large: lower "
            f"experiments.{self.name}.lr_schedule"
        )

    def bound(self) -> float:
        if self.factor is None or self.run.initial_loss is None:
            return math.inf
        return self.factor * max(self.run.initial_loss, 1e-12)

    def check_loss(self, what: str, value: float, lr: float) -> None:
        if not math.isfinite(value):
            raise self.error(f"{what} became {value}", lr)
        if value > self.bound():
            raise self.error(
                f"{what} became {value:.4g}, more than training.divergence_factor "
                f"({self.factor:g}) times the initial loss {self.run.initial_loss:.4g}",
                lr,
            )

    def check_state(self, lr: float) -> None:
        """Every weight and BN buffer (running_mean, running_var) must be finite."""
        with torch.no_grad():
            for key, value in self.run.model.state_dict().items():
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    kind = (
                        "BN statistic"
                        if key.endswith(("running_mean", "running_var"))
                        else "weight"
                    )
                    raise self.error(f"{kind} {key} is no longer finite (inf/nan)", lr)
