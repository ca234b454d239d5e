"""D(x) of eq. (2)/(A1) without storing the ``N x d`` per-example gradients.

Every quantity here comes from passes over the data, chunk by chunk, keeping at most one
chunk's worth of per-example quantities:

- :func:`gradient_moments`: the exact full gradient ``g = (1/N) sum_i g_i`` and the exact
  ``sum_i |g_i - g|^2`` (so ``tr D``) in ONE pass: per-chunk per-example gradients (the
  per-layer formulas of :mod:`sgdvi.diffusion.gradients`, ``vmap(grad)`` for any other
  layer), per-chunk float64 means and centred sums of squares merged with the pairwise
  formula of Chan, Golub & LeVeque (1979): no ``E|g_i|^2 - |g|^2`` cancellation;
- :class:`MatrixFreeOperator`: ``v -> D v`` for a block of vectors, one data pass per call.
  ``method="jvp"``: with the per-example losses ``l(theta) in R^B`` of a chunk,
  ``u = J v`` by forward mode (:func:`torch.func.jvp`: ``g_i . v`` for all i), then
  ``c = scale * (u - g . v)`` (the centring: ``(g_i - g) . v = u_i - g . v``) and
  ``J^T c`` by one backward (:func:`torch.func.vjp`); ``D v = sum_chunks J^T c - g sum_i c_i``.
  ``method="chunks"``: the chunk's per-example gradients ``G_c`` (``B x d``) are computed,
  used for ``G_c^T (G_c v)`` and dropped;
- :func:`gram_tiles`: the exact ``tr(D^2) = scale^2 sum_{a,b} ||G_a G_b^T||_F^2`` of the
  centred gradients over pairs of chunks (``O(N^2 d)``), optionally keeping the ``N x N``
  Gram matrix ``scale * G G^T`` (for the rank certificate of
  :func:`sgdvi.diffusion.eigen.certify_rank_gram`);
- :func:`hutchinson_trace_square`: ``tr(D^2) = E |D z|^2`` over Rademacher probes ``z``, with
  its standard error.

Every data pass runs on one :class:`Shard` of the chunks: a contiguous run of whole chunks
per process, partial sums added over processes by ``shard.reduce`` in float64
(:mod:`sgdvi.diffusion.distributed` supplies a ``torch.distributed`` all-reduce; one process:
the identity). Chunk boundaries do not depend on the number of processes, so each chunk's
float32 arithmetic is the same in one process and in several.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from sgdvi.diffusion.gradients import per_example_grad_fn

#: ``loss(outputs, targets) -> (B,)`` per-example losses (no reduction)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper's training loss per example (Section IV): cross-entropy, no reduction."""
    return F.cross_entropy(outputs, targets, reduction="none")


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


@dataclass(frozen=True)
class Shard:
    """This process's part of a data pass: ``rank`` of ``world`` processes, and ``reduce``,
    which sums a float64 tensor over the processes in place and returns it."""

    rank: int = 0
    world: int = 1
    reduce: Callable[[torch.Tensor], torch.Tensor] = _identity


LOCAL = Shard()


def chunk_ranges(n: int, chunk_size: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the chunks of process ``rank`` of ``world``.

    The chunks ``[0, c), [c, 2c), ...`` are split into ``world`` contiguous runs of whole
    chunks, so the chunk boundaries are the same for any number of processes.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    starts = list(range(0, n, chunk_size))
    lo, hi = rank * len(starts) // world, (rank + 1) * len(starts) // world
    return [(s, min(s + chunk_size, n)) for s in starts[lo:hi]]


class Examples:
    """The training examples, as tensors ``(x, y)`` or a map-style ``torch.utils.data.Dataset``
    whose items are ``(input, target)``; read in chunks (:meth:`chunk`)."""

    def __init__(self, data: Any) -> None:
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.dataset: Any = None
        if isinstance(data, Examples):
            self.x, self.y, self.dataset = data.x, data.y, data.dataset
        elif isinstance(data, tuple | list) and len(data) == 2:
            x, y = (torch.as_tensor(t) for t in data)
            if len(x) != len(y):
                raise ValueError(f"data: {len(x)} inputs but {len(y)} targets; give (x, y)")
            self.x, self.y = x, y
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            self.dataset = data
        else:
            raise TypeError(
                "data must be a pair of tensors (x, y) or a map-style torch Dataset of "
                f"(input, target) items, got {type(data).__name__}"
            )
        self.n = len(self.x) if self.x is not None else len(self.dataset)
        if self.n == 0:
            raise ValueError("data holds no examples")

    def chunk(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples ``start:stop`` as two batched tensors."""
        if self.x is not None:
            return self.x[start:stop], self.y[start:stop]
        from torch.utils.data import default_collate

        items = [self.dataset[i] for i in range(start, stop)]
        x, y = default_collate(items)[:2]
        return torch.as_tensor(x), torch.as_tensor(y)


def _to(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A chunk on the model's device; floating inputs in the model's dtype."""
    first = next(model.parameters())
    if x.is_floating_point():
        x = x.to(device=first.device, dtype=first.dtype)
    else:
        x = x.to(first.device)
    y = y.to(first.device)
    if y.is_floating_point():
        y = y.to(first.dtype)
    return x, y


def trainable(model: nn.Module) -> tuple[list[str], int]:
    """Names of the trainable parameters (``model.parameters()`` order) and their count d."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return names, sum(p.numel() for p in model.parameters() if p.requires_grad)


def _require_eval(model: nn.Module) -> None:
    if any(m.training for m in model.modules()):
        raise ValueError(
            "D(x) is evaluated with the network in evaluation mode (Section IV: BatchNorm on "
            "its running statistics, no dropout); call model.eval() first"
        )


def _functional(model: nn.Module, loss: Loss):
    """``(params, f)``: the trainable parameters (detached dict) and
    ``f(params, x, y) -> (B,)`` per-example losses, everything else held fixed."""
    names, _ = trainable(model)
    named = dict(model.named_parameters())
    params = {n: named[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in named.items() if n not in params}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def f(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, ({**p, **frozen}, buffers), (x,)), y)

    return params, f


def per_example_gradients(
    model: nn.Module, loss: Loss | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``fn(x, y) -> (B, d)`` per-example gradients in ``model.parameters()`` order.

    Cross-entropy (``loss`` None or :func:`cross_entropy_per_example`): the per-layer formulas
    of :func:`sgdvi.diffusion.gradients.per_example_grad_fn` where every layer has one
    (Linear, Conv2d, eval-mode BatchNorm), else ``vmap(grad)``. Any other ``loss``:
    ``vmap(grad)`` of ``loss(model(x_i[None]), y_i[None])[0]``.
    """
    _require_eval(model)
    if loss is None or loss is cross_entropy_per_example:
        return per_example_grad_fn(model)
    names, _ = trainable(model)
    params, f = _functional(model, loss)

    def one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return f(p, x.unsqueeze(0), y.unsqueeze(0))[0]

    batched = vmap(grad(one), in_dims=(None, 0, 0))

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grads = batched(params, x, y)
        return torch.cat([grads[n].reshape(x.shape[0], -1) for n in names], dim=1)

    return fn


def iter_chunk_gradients(
    model: nn.Module,
    examples: Examples,
    ranges: Sequence[tuple[int, int]],
    loss: Loss | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, G)`` for each chunk ``(start, stop)`` of ``ranges``: its per-example
    gradients (``B x d``, the model's dtype, on its device)."""
    fn = per_example_gradients(model, loss)
    for start, stop in ranges:
        yield start, fn(*_to(model, *examples.chunk(start, stop)))


# --------------------------------------------------------------------------- mean and trace


@dataclass
class GradientMoments:
    """The exact full gradient and the centred sum of squares of the per-example gradients.

    ``scatter_trace = sum_i |g_i - g|^2`` (float64), so ``tr D = scatter_trace * scale``
    (:func:`sgdvi.diffusion.moments.formula_scale`: ``1/N`` for (A1), ``1/(N-1)`` for (A2)).
    """

    n: int
    mean: torch.Tensor
    scatter_trace: float


def chan_merge(
    a: tuple[int, torch.Tensor, torch.Tensor], b: tuple[int, torch.Tensor, torch.Tensor]
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Merge ``(count, mean, centred sum of squares)`` of two groups (Chan et al. 1979):
    ``M2 = M2_a + M2_b + |mean_b - mean_a|^2 n_a n_b / n``, all in float64."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    if n_a == 0:
        return b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta.dot(delta) * (n_a * n_b / n)


def chunk_moments(g: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """``(count, mean, sum |g_i - mean|^2)`` of a chunk of rows, in float64."""
    c = g.to(torch.float64)
    mean = c.mean(dim=0)
    return c.shape[0], mean, (c - mean).square().sum()


def _merge_across(
    shard: Shard, n: int, mean: torch.Tensor, m2: torch.Tensor, d: int
) -> GradientMoments:
    """Combine the processes' ``(n_r, mean_r, M2_r)``: the global mean from the all-reduced
    sums ``n_r mean_r``, then ``sum_r M2_r + n_r |mean_r - g|^2`` (exact, no cancellation)."""
    device = mean.device if n else m2.device
    mean = mean if n else torch.zeros(d, dtype=torch.float64, device=device)
    buf = torch.cat([mean * n, torch.tensor([float(n)], dtype=torch.float64, device=device)])
    shard.reduce(buf)
    total = int(round(float(buf[-1])))
    g = buf[:-1] / total
    part = (m2 + n * (mean - g).dot(mean - g)).reshape(1).to(torch.float64)
    shard.reduce(part)
    return GradientMoments(total, g, float(part[0]))


def gradient_moments(
    model: nn.Module,
    data: Any,
    *,
    loss: Loss | None = None,
    chunk_size: int = 256,
    shard: Shard = LOCAL,
    progress: Callable[[int, int], None] | None = None,
) -> GradientMoments:
    """Exact full gradient and ``sum_i |g_i - g|^2`` in one pass (float64, Chan's merge).

    Per-example gradients live one chunk at a time (``chunk_size x d``); nothing of size
    ``N x d`` is kept. Over several processes (``shard``) each takes its contiguous chunks.
    """
    examples = Examples(data)
    _, d = trainable(model)
    ranges = chunk_ranges(examples.n, chunk_size, shard.rank, shard.world)
    device = next(model.parameters()).device
    acc = (0, torch.zeros(d, dtype=torch.float64, device=device), torch.zeros((), **_f64(device)))
    for start, g in iter_chunk_gradients(model, examples, ranges, loss):
        acc = chan_merge(acc, chunk_moments(g))
        if progress is not None:
            progress(start + len(g), examples.n)
    return _merge_across(shard, acc[0], acc[1], acc[2], d)


def _f64(device: torch.device) -> dict[str, Any]:
    return {"dtype": torch.float64, "device": device}


# --------------------------------------------------------------------------- D v


def double_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` (weights and buffers exactly the float32 values), for the
    float64 operator passes of the jvp method."""
    return copy.deepcopy(model).to(torch.float64).eval()


class MatrixFreeOperator:
    """``v -> D v`` (float64 ``d x k`` in and out) by one pass over the data per call.

    ``precision="single"``: products in the model's dtype; ``"double"``: in float64 (the jvp
    method runs a float64 copy of the model; the chunks method promotes each chunk's
    gradients). ``mean`` is the exact full gradient (:func:`gradient_moments`), ``scale``
    the formula's factor. ``max_vectors``: the jvp method pushes at most this many vectors
    through one vmapped forward/backward (memory ``~ chunk_size x max_vectors x``
    activations). The interface of :func:`sgdvi.diffusion.eigen.operator_spectrum`.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        mean: torch.Tensor,
        scale: float,
        *,
        loss: Loss | None = None,
        chunk_size: int = 256,
        method: str = "jvp",
        max_vectors: int = 64,
        shard: Shard = LOCAL,
    ) -> None:
        if method not in ("jvp", "chunks"):
            raise ValueError(f"method must be jvp or chunks, got {method!r}")
        _require_eval(model)
        self.model, self.examples, self.loss = model, Examples(data), loss
        self.names, self.d = trainable(model)
        self.mean, self.scale = mean.to(torch.float64), float(scale)
        self.method, self.max_vectors, self.shard = method, max(1, int(max_vectors)), shard
        self.ranges = chunk_ranges(self.examples.n, chunk_size, shard.rank, shard.world)
        self.device = next(model.parameters()).device
        self.passes = {"single": 0, "double": 0}
        self._models: dict[str, nn.Module] = {"single": model}

    def _model(self, precision: str) -> nn.Module:
        if precision not in ("single", "double"):
            raise ValueError(f"precision must be single or double, got {precision!r}")
        if precision not in self._models:
            self._models[precision] = double_copy(self.model)
        return self._models[precision]

    def __call__(self, v: torch.Tensor, precision: str = "double") -> torch.Tensor:
        self.passes[precision] += 1
        v = v.to(**_f64(self.device))
        gv = self.mean @ v  # g . v, one per vector
        out = torch.zeros((self.d + 1, v.shape[1]), **_f64(self.device))  # [J^T c ; sum c]
        if self.method == "chunks":
            self._chunks_pass(v, gv, precision, out)
        else:
            self._jvp_pass(v, gv, precision, out)
        self.shard.reduce(out)
        return out[: self.d] - self.mean[:, None] * out[self.d]

    def _chunks_pass(self, v, gv, precision: str, out: torch.Tensor) -> None:
        """Per chunk: ``G`` (per-layer formulas), ``c = scale (G v - g . v)``, ``G^T c``."""
        double = precision == "double"
        model = self._model("single")
        v_lo = v if double else v.to(next(model.parameters()).dtype)
        for _, g in iter_chunk_gradients(model, self.examples, self.ranges, self.loss):
            g = g.to(torch.float64) if double else g
            c = (g @ v_lo).to(torch.float64).sub_(gv).mul_(self.scale)
            out[: self.d] += (g.T @ c.to(g.dtype)).to(torch.float64)
            out[self.d] += c.sum(dim=0)

    def _jvp_pass(self, v, gv, precision: str, out: torch.Tensor) -> None:
        """Per chunk: ``u = J v`` (vmapped jvp), ``c = scale (u - g . v)``, ``J^T c`` (vmapped
        vjp on one forward), at most ``max_vectors`` vectors at a time."""
        model = self._model(precision)
        params, f = _functional(model, self.loss or cross_entropy_per_example)
        dtype = next(model.parameters()).dtype
        shapes = [params[n].shape for n in self.names]
        sizes = [math.prod(s) for s in shapes]
        for start, stop in self.ranges:
            x, y = _to(model, *self.examples.chunk(start, stop))

            def fx(p: dict[str, torch.Tensor], x=x, y=y) -> torch.Tensor:
                return f(p, x, y)

            _, pullback = vjp(fx, params)
            push = vmap(lambda t, fx=fx: jvp(fx, (params,), (t,))[1])
            for j in range(0, v.shape[1], self.max_vectors):
                vb = v[:, j : j + self.max_vectors].to(dtype)
                parts = torch.split(vb.T, sizes, dim=1)
                tangents = {
                    n: t.reshape(vb.shape[1], *s)
                    for n, t, s in zip(self.names, parts, shapes, strict=True)
                }
                u = push(tangents)  # k x B: g_i . v for every example of the chunk
                c = u.to(torch.float64).sub_(gv[j : j + vb.shape[1], None]).mul_(self.scale)
                (back,) = vmap(pullback)(c.to(dtype))
                flat = torch.cat([back[n].reshape(vb.shape[1], -1) for n in self.names], 1)
                out[: self.d, j : j + vb.shape[1]] += flat.T.to(torch.float64)
                out[self.d, j : j + vb.shape[1]] += c.sum(dim=1)


# --------------------------------------------------------------------------- tr(D^2)


@dataclass
class TraceSquare:
    """``tr(D^2)`` with its standard error (0 when exact) and how it was computed; ``gram``:
    the ``N x N`` matrix ``scale * G G^T`` of the centred gradients when it was kept."""

    value: float
    stderr: float
    method: str
    gram: torch.Tensor | None = None


def _tile_pairs(n_chunks: int, shard: Shard) -> list[tuple[int, int]]:
    pairs = [(a, b) for a in range(n_chunks) for b in range(a, n_chunks)]
    return pairs[shard.rank :: shard.world]


def gram_tiles(
    model: nn.Module,
    data: Any,
    mean: torch.Tensor,
    scale: float,
    *,
    loss: Loss | None = None,
    chunk_size: int = 256,
    keep_gram: bool = False,
    shard: Shard = LOCAL,
) -> TraceSquare:
    """Exact ``tr(D^2) = ||scale G G^T||_F^2 = scale^2 sum_{a<=b} (2 - [a=b]) ||G_a G_b^T||_F^2``
    of the centred gradients ``G_a = (g_i - g)_{i in chunk a}`` (float64), over pairs of
    chunks; the chunks are recomputed, never stored together. Cost ``O(N^2 d)`` flops and
    ``n_chunks^2 / 2`` chunk gradient passes (spread over the processes round robin).
    ``keep_gram``: also return ``K = scale G G^T`` (``8 N^2`` bytes), whose non-zero
    eigenvalues are D's."""
    examples = Examples(data)
    ranges = chunk_ranges(examples.n, chunk_size)
    device = mean.device
    gram = torch.zeros((examples.n, examples.n), **_f64(device)) if keep_gram else None
    total = torch.zeros(1, **_f64(device))
    grad_fn = per_example_gradients(model, loss)
    cached: tuple[int, torch.Tensor] | None = None

    def centred(i: int) -> torch.Tensor:
        return grad_fn(*_to(model, *examples.chunk(*ranges[i]))).to(torch.float64) - mean

    for a, b in _tile_pairs(len(ranges), shard):
        if cached is None or cached[0] != a:
            cached = (a, centred(a))
        ga = cached[1]
        gb = ga if b == a else centred(b)
        tile = ga @ gb.T
        total += tile.square().sum() * (1.0 if a == b else 2.0)
        if gram is not None:
            (a0, a1), (b0, b1) = ranges[a], ranges[b]
            gram[a0:a1, b0:b1] = tile
            gram[b0:b1, a0:a1] = tile.T
    shard.reduce(total)
    if gram is not None:
        shard.reduce(gram)
        gram.mul_(scale)
    return TraceSquare(float(total[0]) * scale * scale, 0.0, "gram-tiles", gram)


def hutchinson_trace_square(
    operator: Callable[..., torch.Tensor],
    d: int,
    probes: int = 32,
    seed: int = 0,
    block: int = 32,
) -> TraceSquare:
    """``tr(D^2) = E |D z|^2`` for Rademacher ``z`` (``E z z^T = I``): the mean of
    ``|D z_j|^2`` over ``probes`` probes (float64 operator passes) and its standard error
    ``std(ddof=1) / sqrt(probes)``. The probes depend only on ``seed`` (same on every process)."""
    if probes < 2:
        raise ValueError(f"Hutchinson needs at least 2 probes for an error bar, got {probes}")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for j in range(0, probes, block):
        b = min(block, probes - j)
        z = torch.randint(0, 2, (d, b), generator=gen, dtype=torch.float64).mul_(2).sub_(1)
        dz = operator(z, "double")
        values.append(dz.square().sum(dim=0).cpu())
    vals = torch.cat(values)
    stderr = float(vals.std(correction=1)) / math.sqrt(probes)
    return TraceSquare(float(vals.mean()), stderr, "hutchinson")


# --------------------------------------------------------------------------- method choice


def time_methods(
    model: nn.Module,
    data: Any,
    *,
    loss: Loss | None = None,
    chunk_size: int = 256,
    block: int = 64,
    max_vectors: int = 64,
    shard: Shard = LOCAL,
) -> dict[str, float]:
    """Seconds of one float32 product ``D V`` (``block`` vectors) on this process's first
    chunk, for each method (the second of two calls: the first pays one-off set-up), summed
    over the processes so that every process sees the same numbers.

    Which method is faster depends on the network: the ``chunks`` method writes ``B x d``
    per-example gradients per chunk (memory traffic ``~ B d``), the ``jvp`` method pushes the
    vectors through the network (``~ 3 B k`` forward costs, weight sharing included, plus a
    fixed vmap overhead per chunk). Measured on a 784-h-10 MLP, N = 2,000, k = 10:
    chunks 5x faster at d = 10^4, jvp 4x faster at d = 3 x 10^5
    (``benchmarks/bench_matrix_free.py --jvp``).
    """
    examples = Examples(data)
    _, d = trainable(model)
    device = next(model.parameters()).device
    first = chunk_ranges(examples.n, chunk_size, shard.rank, shard.world)[:1]
    v = torch.randn((d, block), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    times = []
    for method in ("chunks", "jvp"):
        op = MatrixFreeOperator(
            model, examples, torch.zeros(d, **_f64(device)), 1.0, loss=loss,
            chunk_size=chunk_size, method=method, max_vectors=max_vectors,
        )  # fmt: skip
        op.ranges = first
        op(v, "single")
        t0 = time.perf_counter()
        op(v, "single")
        times.append(time.perf_counter() - t0)
    total = shard.reduce(torch.tensor(times, **_f64(device)))
    return {"chunks": float(total[0]), "jvp": float(total[1])}
