"""Per-example gradients ``grad f_k(x)`` of the training loss, the rows of eq. (2)'s sum.

Section IV of Chaudhari & Soatto (2018) evaluates D(x) "with the network in evaluation mode":
BatchNorm uses its running statistics and dropout is off, so each example's loss
``f_k(x) = cross_entropy(net(x; input_k), label_k)`` depends on that example alone. The
weight-decay term of the training objective is the same for every k and cancels in D, so it is
left out. Gradients are flattened in ``model.parameters()`` order, like
:func:`sgdvi.models.flat_parameters`.

Per-example gradients come in chunks of ``chunk_size`` examples (bounding the memory), from
one batched backward pass with per-layer formulas (:func:`hooked_grad_fn`; Linear, Conv2d and
eval-mode BatchNorm, the paper's networks) or, for any other network, from
:func:`torch.func.vmap` over :func:`torch.func.grad`.
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


def per_example_grad_fn(
    model: nn.Module, method: str = "auto"
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return ``fn(x, y) -> (n, d)`` per-example gradients of the cross-entropy loss.

    ``x`` is a batch of inputs, ``y`` their labels; row k of the result is ``grad f_k(x)``
    flattened in ``model.parameters()`` order. The model must be in eval mode.
    ``method``: ``hooks`` (:func:`hooked_grad_fn`: one batched backward pass, then each
    layer's per-example weight gradients from its input and output gradient), ``vmap``
    (:func:`torch.func.vmap` over :func:`torch.func.grad`, any network), ``auto``: hooks when
    every layer with parameters is supported, else vmap.
    """
    _check_eval(model)
    if method not in ("auto", "hooks", "vmap"):
        raise ValueError(f"method must be auto, hooks or vmap, got {method!r}")
    if method == "hooks" or (method == "auto" and hooks_supported(model)):
        return hooked_grad_fn(model)
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


_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def hooks_supported(model: nn.Module) -> bool:
    """Whether :func:`hooked_grad_fn` handles ``model``: every module with its own parameters
    is a Linear, an ungrouped zero-padded Conv2d, or a BatchNorm on running statistics (eval
    mode), and every parameter requires a gradient."""
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if not own:
            continue
        if not all(p.requires_grad for p in own):
            return False
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                return False
        elif isinstance(m, _BN):
            if m.training or m.running_mean is None or m.running_var is None:
                return False
        elif not isinstance(m, nn.Linear):
            return False
    return True


def _patches(a: torch.Tensor, m: nn.Conv2d) -> torch.Tensor:
    """The columns of :func:`torch.nn.functional.unfold` (``n x (C kh kw) x L``) by strided
    views (F.unfold's im2col was ~50x slower on the CPU for small-lenet's first layer)."""
    if tuple(m.dilation) != (1, 1):
        return F.unfold(a, m.kernel_size, m.dilation, m.padding, m.stride)
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    if ph or pw:
        a = F.pad(a, (pw, pw, ph, ph))
    p = a.unfold(2, kh, sh).unfold(3, kw, sw)  # n x C x Ho x Wo x kh x kw
    n, c, ho, wo = p.shape[:4]
    return p.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def _layer_grads(m: nn.Module, a: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example gradients of ``m``'s parameters from its input ``a`` and the gradient
    ``g`` of the summed loss with respect to its output (row k: example k's alone, since
    in eval mode example k's loss depends on its own input only)."""
    n = a.shape[0]
    out: dict[str, torch.Tensor] = {}
    if isinstance(m, nn.Linear):
        a2, g2 = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])
        out["weight"] = torch.bmm(g2.transpose(1, 2), a2)
        out["bias"] = g2.sum(dim=1)
    elif isinstance(m, nn.Conv2d):
        cols = _patches(a, m)  # n x (C kh kw) x L, as F.unfold
        out["weight"] = torch.bmm(g.reshape(n, g.shape[1], -1), cols.transpose(1, 2))
        out["bias"] = g.reshape(n, g.shape[1], -1).sum(dim=2)
    else:  # BatchNorm in eval mode: y = (a - mean) / sqrt(var + eps) * weight + bias
        shape = (1, -1) + (1,) * (a.ndim - 2)
        xhat = (a - m.running_mean.reshape(shape)) * torch.rsqrt(
            m.running_var.reshape(shape) + m.eps
        )
        out["weight"] = (g * xhat).reshape(n, a.shape[1], -1).sum(dim=2)
        out["bias"] = g.reshape(n, a.shape[1], -1).sum(dim=2)
    return out


def hooked_grad_fn(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-example gradients from one batched forward and backward pass (``hooks``).

    Forward hooks keep each parametrised layer's input and output; the gradient of the
    summed loss ``sum_k f_k`` with respect to the outputs is row by row the gradient of
    ``f_k`` alone (eval mode); :func:`_layer_grads` turns each layer's input and output
    gradient into per-example parameter gradients (Linear: outer products; Conv2d: output
    gradient times unfolded input; BatchNorm: sums of output gradient times the normalised
    input). The same gradients as :func:`torch.func.vmap` over :func:`torch.func.grad`,
    without the batched convolution backward that dominates it.
    """
    if not hooks_supported(model):
        raise ValueError("the hooks method supports Linear, Conv2d and eval-mode BatchNorm only")
    owner = {}
    for mname, m in model.named_modules():
        for pname, _ in m.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = (mname, pname)
    names = [n for n, _ in model.named_parameters()]
    layers = {
        mname: m for mname, m in model.named_modules() if mname in {o[0] for o in owner.values()}
    }

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {k: [] for k in layers}

        def hook(name: str):
            return lambda mod, inp, out: seen[name].append((inp[0].detach(), out))

        handles = [m.register_forward_hook(hook(k)) for k, m in layers.items()]
        try:
            with torch.enable_grad():
                loss = F.cross_entropy(model(x), y, reduction="sum")
                if any(len(v) != 1 for v in seen.values()):
                    raise RuntimeError("a parametrised layer ran more or less than once")
                outs = [seen[k][0][1] for k in layers]
                gouts = torch.autograd.grad(loss, outs)
        finally:
            for h in handles:
                h.remove()
        grads = {}
        for (k, m), g in zip(layers.items(), gouts, strict=True):
            for pname, value in _layer_grads(m, seen[k][0][0], g).items():
                grads[(k, pname)] = value
        return torch.cat([grads[owner[n]].reshape(x.shape[0], -1) for n in names], dim=1)

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
