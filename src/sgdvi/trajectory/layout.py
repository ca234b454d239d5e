"""The weights of tiny-fc, its initial state, and the per-epoch batch order (Section IV-B).

tiny-fc is ``Flatten -> Linear(49, 16) -> BatchNorm1d(16) -> ReLU -> Linear(16, 5)``
(:func:`sgdvi.models.tiny_fc`). Its d = 917 weights, flattened in ``model.parameters()`` order
(the order of every stored trajectory), are

=========  =======  ======  =========================================
name       shape    offset  note
=========  =======  ======  =========================================
w1         (16,49)  0       first linear layer
b1         (16,)    784     gradient identically zero under train-mode BN
gamma      (16,)    800     BN scale
beta       (16,)    816     BN shift
w2         (5,16)   832     second linear layer
b2         (5,)     912
=========  =======  ======  =========================================

The first-layer bias ``b1`` only shifts the BN input, which BN's batch mean removes again:
its gradient is exactly zero, it never moves, and the analysis drops it (constant weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdvi.models import build_model, flat_parameters

N_IN = 49
N_HIDDEN = 16
N_OUT = 5
BN_EPS = 1e-5
BN_MOMENTUM = 0.1

#: (name, shape) of each parameter in ``model.parameters()`` order
PARAM_SHAPES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("w1", (N_HIDDEN, N_IN)),
    ("b1", (N_HIDDEN,)),
    ("gamma", (N_HIDDEN,)),
    ("beta", (N_HIDDEN,)),
    ("w2", (N_OUT, N_HIDDEN)),
    ("b2", (N_OUT,)),
)
D = sum(int(np.prod(s)) for _, s in PARAM_SHAPES)  # 917


def param_offsets() -> dict[str, tuple[int, int]]:
    """``name -> (start, stop)`` of each parameter in the flat weight vector."""
    out, start = {}, 0
    for name, shape in PARAM_SHAPES:
        size = int(np.prod(shape))
        out[name] = (start, start + size)
        start += size
    return out


def weight_names() -> list[str]:
    """One label per flat weight, e.g. ``w1[3,17]``, in ``model.parameters()`` order."""
    names = []
    for name, shape in PARAM_SHAPES:
        names += [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]
    return names


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


def initial_state(seed: int) -> TrainState:
    """PyTorch's default initialisation of tiny-fc after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    model = build_model("tiny-fc")
    params = flat_parameters(model).double().numpy()
    return TrainState(
        params=params,
        momentum_buffer=np.zeros(D),
        running_mean=np.zeros(N_HIDDEN),
        running_var=np.ones(N_HIDDEN),
        num_batches_tracked=0,
        epoch=0,
    )


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """Order in which epoch ``epoch`` (0-based) visits the ``n`` examples.

    A fresh ``numpy`` generator seeded with ``(seed, epoch)``: sampling without replacement,
    reshuffled every epoch, and reproducible from the epoch number alone (so a resumed run
    sees the same batches as an uninterrupted one).
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


def lr_at(epoch: int, burn_in: int, lr_burn_in: float, lr: float) -> float:
    """Learning rate of epoch ``epoch`` (0-based): ``lr_burn_in`` during burn-in, then ``lr``."""
    return lr_burn_in if epoch < burn_in else lr
