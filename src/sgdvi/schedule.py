"""Learning-rate schedules: the one ``lr_at`` of the package.

The paper anneals the learning rate in steps (Section IV: "appropriate annealing"; Figs. 1, 2)
and runs the long trajectory of Section IV-B (Fig. 3) at one rate during burn-in and another
after it. Both are piecewise-constant schedules ``[[from_epoch, lr], ...]``.
"""

from __future__ import annotations

from collections.abc import Sequence


def lr_at(schedule: Sequence[Sequence[float]], epoch: int) -> float:
    """Learning rate of the piecewise-constant ``schedule`` during 0-based ``epoch``.

    ``schedule`` is ``[[from_epoch, lr], ...]`` with increasing ``from_epoch``, the first 0.
    """
    if not schedule or schedule[0][0] != 0:
        raise ValueError(f"lr_schedule must start at epoch 0, got {schedule!r}")
    lr = float(schedule[0][1])
    for start, value in schedule:
        if epoch >= start:
            lr = float(value)
    return lr


def burn_in_schedule(burn_in: int, lr_burn_in: float, lr: float) -> list[list[float]]:
    """Section IV-B's schedule: ``lr_burn_in`` for ``burn_in`` epochs, then ``lr``."""
    return [[0, lr_burn_in], [burn_in, lr]] if burn_in > 0 else [[0, lr]]
