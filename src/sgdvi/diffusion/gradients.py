"""Per-example gradients ``grad f_k(x)`` of the training loss, the rows of eq. (2)'s sum.

Section IV of Chaudhari & Soatto (2018) evaluates D(x) "with the network in evaluation mode":
BatchNorm uses its running statistics and dropout is off, so each example's loss
``f_k(x) = cross_entropy(net(x; input_k), label_k)`` depends on that example alone. The
weight-decay term of the training objective is the same for every k and cancels in D, so it is
left out. Gradients are flattened in ``model.parameters()`` order, like
:func:`sgdvi.models.flat_parameters`.

The batched path uses :func:`torch.func.vmap` over :func:`torch.func.grad` in chunks of
``chunk_size`` examples, which bounds the memory of the batched backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

#: (x_chunk, generator) -> transformed x_chunk, e.g. one random augmentation per example
InputTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _check_eval(model: nn.Module) -> None:
    if any(m.training for m in model.modules()):
        raise ValueError(
            "D(x) is evaluated with the network in evaluation mode (Section IV); "
            "call model.eval() first (sgdvi.snapshots.load_snapshot returns it in eval mode)"
        )


def per_example_grad_fn(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return ``fn(x, y) -> (n, d)`` per-example gradients of the cross-entropy loss.

    ``x`` is a batch of inputs, ``y`` their labels; row k of the result is ``grad f_k(x)``
    flattened in ``model.parameters()`` order. The model must be in eval mode.
    """
    _check_eval(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, frozen, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))

    batched = vmap(grad(loss_one), in_dims=(None, 0, 0))

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grads = batched(params, x, y)
        return torch.cat([grads[n].reshape(x.shape[0], -1) for n in names], dim=1)

    return fn


def iter_gradient_chunks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk_size: int,
    transform: InputTransform | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, G_chunk)``: per-example gradients of examples ``start:start+n``.

    ``x``/``y`` may live on the CPU while the model is on CUDA: each chunk is moved to the
    model's device and dtype. With ``transform`` (augmented experiments), each chunk of inputs
    is first replaced by ``transform(chunk, generator)``: one random augmentation per example,
    the same for a given seed whatever the device.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if transform is not None and generator is None:
        raise ValueError("an input transform needs a torch.Generator for its random draws")
    first = next(model.parameters())
    fn = per_example_grad_fn(model)
    for start in range(0, len(x), chunk_size):
        xb = x[start : start + chunk_size].to(device=first.device, dtype=first.dtype)
        yb = y[start : start + chunk_size].to(first.device)
        if transform is not None:
            xb = transform(xb, generator)
        yield start, fn(xb, yb)


def gradient_matrix(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk_size: int,
    transform: InputTransform | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """All per-example gradients as one ``(N, d)`` matrix on the model's device.

    Stored in the model's dtype (float32 for the paper's networks: 3.2 GB for small-lenet on
    60,000 examples). ``progress(done, N)`` is called after each chunk (for logging).
    """
    first = next(model.parameters())
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out = torch.empty((len(x), d), dtype=first.dtype, device=first.device)
    for start, chunk in iter_gradient_chunks(model, x, y, chunk_size, transform, generator):
        out[start : start + len(chunk)] = chunk
        if progress is not None:
            progress(start + len(chunk), len(x))
    return out
