"""The weights of tiny-fc: shapes and offsets in the flat weight vector (Section IV-B).

tiny-fc is ``Flatten -> Linear(49, 16) -> BatchNorm1d(16) -> ReLU -> Linear(16, C)``
(:func:`sgdvi.models.tiny_fc`) with C = 5 classes in the paper's text (d = 917) and C = 4 in
the authors' Fig. 3 run (d = 900). Its weights, flattened in ``model.parameters()`` order (the
order of every stored trajectory), are

=========  =======  ========  =========================================
name       shape    offset    note
=========  =======  ========  =========================================
w1         (16,49)  0         first linear layer
b1         (16,)    784       gradient identically zero under train-mode BN
gamma      (16,)    800       BN scale
beta       (16,)    816       BN shift
w2         (C,16)   832       second linear layer
b2         (C,)     832+16C
=========  =======  ========  =========================================

The first-layer bias ``b1`` only shifts the BN input, which BN's batch mean removes again:
its gradient is exactly zero, it never moves, and the analysis drops it (constant weights).

This module is the one home of tiny-fc's architecture: :func:`sgdvi.models.tiny_fc` takes its
width from here (``N_IN``, ``N_HIDDEN``); the fused trainer (:mod:`.fast_trainer`) and the
per-example gradients of the current analysis
(:func:`sgdvi.irreversibility.sgd.per_example_gradients`, through :meth:`TinyFC.unflatten` and
:func:`logits`) read the shapes and the forward pass from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

N_IN = 49
N_HIDDEN = 16
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
#: classes of the paper's stated setting (digits 0-4)
STATED_CLASSES = 5


@dataclass(frozen=True)
class TinyFC:
    """Shapes and flat offsets of tiny-fc's weights for ``num_classes`` outputs."""

    num_classes: int = STATED_CLASSES

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"tiny-fc needs at least 2 classes, got {self.num_classes}")

    @property
    def param_shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(name, shape) of each parameter in ``model.parameters()`` order."""
        c = self.num_classes
        return (
            ("w1", (N_HIDDEN, N_IN)),
            ("b1", (N_HIDDEN,)),
            ("gamma", (N_HIDDEN,)),
            ("beta", (N_HIDDEN,)),
            ("w2", (c, N_HIDDEN)),
            ("b2", (c,)),
        )

    @cached_property
    def offsets(self) -> dict[str, tuple[int, int]]:
        """``name -> (start, stop)`` of each parameter in the flat weight vector."""
        out, start = {}, 0
        for name, shape in self.param_shapes:
            size = int(np.prod(shape))
            out[name] = (start, start + size)
            start += size
        return out

    @property
    def d(self) -> int:
        """Number of weights: ``16 * 49 + 3 * 16 + 17 * C`` (917 for 5 classes, 900 for 4)."""
        return self.offsets["b2"][1]

    def slice(self, name: str) -> slice:
        return slice(*self.offsets[name])

    def unflatten(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat weight vector -> named tensors (views), in ``model.parameters()`` order."""
        if w.numel() != self.d:
            raise ValueError(
                f"tiny-fc with {self.num_classes} classes has {self.d} weights, got {w.numel()}"
            )
        return {name: w[self.slice(name)].reshape(shape) for name, shape in self.param_shapes}

    def weight_names(self) -> list[str]:
        """One label per flat weight, e.g. ``w1[3,17]``, in ``model.parameters()`` order."""
        names = []
        for name, shape in self.param_shapes:
            names += [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]
        return names


#: the stated setting's network (d = 917)
STATED = TinyFC(STATED_CLASSES)


def logits(
    p: dict[str, torch.Tensor], x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
) -> torch.Tensor:
    """tiny-fc's output for one flattened example ``x`` (49,) with BatchNorm normalising by the
    given batch statistics ``mean``, ``var`` (biased) of the first layer's output: the forward
    pass of :func:`sgdvi.models.tiny_fc` in train mode, written as a pure function of the named
    weights ``p`` (:meth:`TinyFC.unflatten`) so that :mod:`torch.func` can differentiate it."""
    h = p["w1"] @ x + p["b1"]
    z = p["gamma"] * (h - mean) / (var + BN_EPS).sqrt() + p["beta"]
    return p["w2"] @ z.relu() + p["b2"]
