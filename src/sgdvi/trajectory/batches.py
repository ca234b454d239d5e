"""The mini-batches of every epoch of a trajectory (Section IV-B: batch 128, reshuffled).

The batch order of an epoch depends only on (seed, epoch): a resumed run sees the same
batches as an uninterrupted one. The learning rate of each epoch is
:func:`sgdvi.schedule.lr_at` of :func:`sgdvi.schedule.burn_in_schedule`.
"""

from __future__ import annotations

import numpy as np


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """Order in which epoch ``epoch`` (0-based) visits the ``n`` examples.

    A fresh ``numpy`` generator seeded with ``(seed, epoch)``: sampling without replacement,
    reshuffled every epoch, and reproducible from the epoch number alone.
    """
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each mini-batch of an epoch; the last one may be smaller.

    Raises if the last batch would hold a single example (BN cannot normalise it).
    """
    if n < 2:
        raise ValueError(f"need at least 2 training examples, got {n}")
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if bounds[-1][1] - bounds[-1][0] == 1:
        raise ValueError(
            f"{n} examples with batch_size {batch_size} leave a last mini-batch of one example, "
            "which BatchNorm cannot normalise; change trajectory.train_subset or batch_size"
        )
    return bounds
