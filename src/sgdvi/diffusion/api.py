"""``sgdvi.diffusion.spectrum``: the eigenspectrum of D(x) (eq. (2), (A1)/(A2)) of ANY network.

One call, any ``nn.Module`` in eval mode (BatchNorm on its running statistics, Section IV),
any data (tensors ``(x, y)`` or a torch Dataset), any size: the path is chosen from N, d and
the memory budget (:func:`choose_path`):

==============  =========================================================  ================
path            what it does                                               peak memory
==============  =========================================================  ================
``dense``       gradient chunks -> float64 d x d D -> all eigenvalues      ``8-16 d^2``
``gram``        stored gradients -> N x N Gram -> all eigenvalues (N < d)  ``4 N d + 16 N^2``
``stored``      stored gradients -> block Lanczos on ``G^T G``             ``4 N d + 48 d m``
``gram-tiles``  N x N Gram by tiles of chunk pairs (gradients recomputed)  ``16 N^2 + chunks``
                -> all eigenvalues; no ``N x d`` matrix (N < d, k=None)
``matrix-free`` D v from the data per chunk (jvp/vjp or per-chunk          ``48 d m + chunk``
                gradients), block Lanczos; no ``N x d`` matrix
==============  =========================================================  ================

(m: the Krylov dimension, a few times the rank or k). Every path returns the same
:class:`SpectrumResult`: the eigenvalues above the rank threshold ``lambda_max d eps``
(footnote 1) or the ``k`` largest, the rank with its certificate, the paper's mean/std of the
clipped eigenvalues (:func:`sgdvi.diffusion.stats.spectrum_statistics`), the exact trace,
``tr(D^2)`` (exact or Hutchinson with an error bar), the effective rank
``tr(D)^2 / tr(D^2)``, the fraction of ``tr D`` in the top eigenvalues, and timings.

Example (runs in a few seconds)::

    import torch
    from sgdvi.models import build_model
    from sgdvi.diffusion import spectrum

    model = build_model("small-fc").eval()
    x, y = torch.randn(500, 1, 7, 7), torch.randint(0, 10, (500,))
    res = spectrum(model, (x, y), k=10, path="matrix-free")
    print(res.rank, res.effective_rank, res.eigenvalues[:5])
    print(res.summary())
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sgdvi.diffusion import memory
from sgdvi.diffusion.eigen import (
    EPS,
    GradientOperator,
    Spectrum,
    certify_rank,
    certify_rank_gram,
    dense_spectrum,
    eps_value,
    fast_spectrum,
    gram_matrix,
    gram_spectrum,
    top_k_spectrum,
)
from sgdvi.diffusion.matrix_free import (
    LOCAL,
    Examples,
    Loss,
    MatrixFreeOperator,
    Shard,
    TraceSquare,
    chan_merge,
    chunk_moments,
    chunk_ranges,
    gradient_moments,
    gram_tiles,
    hutchinson_trace_square,
    iter_chunk_gradients,
    time_methods,
    trainable,
)
from sgdvi.diffusion.memory import CHUNK_BYTES_PER, KRYLOV_BYTES_PER, path_bytes
from sgdvi.diffusion.moments import CentredMoment, Formula, centre_in_place, exact_mean
from sgdvi.diffusion.moments import formula_scale as _formula_scale
from sgdvi.diffusion.stats import spectrum_statistics

log = logging.getLogger(__name__)

PATHS = ("dense", "gram", "stored", "gram-tiles", "matrix-free")

#: the paths whose data passes run over several processes
DISTRIBUTED = ("gram-tiles", "matrix-free")

#: exact ``tr(D^2)`` (Gram tiles, ``N^2 d`` multiply-adds) under ``trace_square="auto"`` up to
#: this many flops; above it Hutchinson's estimate with its error bar
EXACT_TRACE_SQUARE_FLOPS = 2e11

LANCZOS_DEFAULTS = {
    "block_size": 64,
    "krylov_tol": 1e-3,
    "eig_tol": 1e-7,
    "max_dim": 4096,
    "seed": 0,
}


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """The path :func:`choose_path` picked, its settings and every path's estimated bytes."""

    path: str
    method: str
    chunk_size: int
    max_krylov_dim: int
    budget_bytes: int
    bytes: dict[str, int]
    reason: str


def default_budget_mb(device: torch.device) -> int:
    """Half of the memory available now (CPU: ``MemAvailable``; CUDA: free device memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.8 / 2**20)
    import psutil

    return int(psutil.virtual_memory().available * 0.5 / 2**20)


def _chunk_size(d: int, budget: int, chunk_size: int | None) -> int:
    """The given chunk size, else as many examples as fit a quarter of the budget (8..1024)."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return int(chunk_size)
    return int(min(1024, max(8, budget // 4 // (CHUNK_BYTES_PER * d))))


def _first_fit(
    n: int,
    d: int,
    eps: str | float,
    budget: int,
    need: dict[str, int],
    dense_max_d: int,
    k: int | None,
    world: int,
) -> tuple[str, str]:
    """``auto``: dense (d <= dense_max_d, or float64's eps), gram (N < d, N <= GRAM_MAX_N),
    stored, gram-tiles (every eigenvalue wanted, N < d, N <= GRAM_MAX_N), matrix-free: the
    first that fits the budget (one process: all; several: the last two), with the reason."""
    eps64 = eps_value(eps) < EPS["float32"]
    few = n < d and n <= memory.GRAM_MAX_N
    wants = {
        "dense": d <= dense_max_d or eps64,
        "gram": few,
        "stored": True,
        "gram-tiles": few and k is None,
        "matrix-free": True,
    }
    for p in PATHS:
        if wants[p] and (world == 1 or p in DISTRIBUTED) and need[p] <= budget:
            return p, f"{p}: the first path that fits {budget / 2**20:.0f} MB"
    raise MemoryError(
        f"no path fits memory_budget_mb={budget / 2**20:.0f} (matrix-free needs "
        f"{need['matrix-free'] / 2**20:.0f} MB for d={d}); raise memory_budget_mb, lower "
        "chunk_size or ask for fewer eigenvalues (k)"
    )


def choose_path(
    n: int,
    d: int,
    *,
    budget_mb: float,
    path: str = "auto",
    k: int | None = None,
    chunk_size: int | None = None,
    eps: str | float = "float32",
    dense_max_d: int = 4000,
    block_size: int = 64,
    max_krylov_dim: int = 4096,
    world: int = 1,
    method: str = "auto",
) -> Plan:
    """Pick the path for N examples and d weights within ``budget_mb``.

    ``auto``: the exact paths while they fit (dense for ``d <= dense_max_d``, gram for
    ``N < d <= ...``, N <= 4000, stored-gradient Lanczos while the ``4 N d`` bytes of the
    gradients plus a Krylov basis fit), else gram-tiles when every eigenvalue is wanted
    (``k=None``) and N is small, else matrix-free; several processes (``world > 1``) run
    gram-tiles or matrix-free (the other paths need all gradients in one process). The Krylov
    dimension is what the budget leaves, at most ``max_krylov_dim``. ``method="auto"`` stays
    ``auto`` (timed on the data by :func:`settle_method`) unless a chunk of per-example
    gradients does not fit half the budget: then ``jvp``.
    """
    budget = int(budget_mb * 2**20)
    chunk = _chunk_size(d, budget, chunk_size)
    block = block_size if k is None else min(block_size, max(16, k))  # as _lanczos
    m_min = min(d, 4 * block if k is None else max(2 * block, 3 * k + 16))
    need = path_bytes(n, d, chunk, m_min, budget)
    if path == "auto":
        path, reason = _first_fit(n, d, eps, budget, need, dense_max_d, k, world)
    elif path in PATHS:
        if world > 1 and path not in DISTRIBUTED:
            raise ValueError(f"path={path!r} runs in one process; use one of {DISTRIBUTED}")
        reason = "asked for"
    else:
        raise ValueError(f"path must be auto or one of {PATHS}, got {path!r}")
    fixed = need[path] - KRYLOV_BYTES_PER * d * m_min
    m = int(min(d, max_krylov_dim, max(m_min, (budget - fixed) // (KRYLOV_BYTES_PER * d))))
    if method == "auto" and CHUNK_BYTES_PER * chunk * d > budget // 2:
        method = "jvp"  # a chunk of per-example gradients does not fit: forward mode
    return Plan(path, method, chunk, m, budget, need, reason)


def activation_floats(model: nn.Module, x1: torch.Tensor) -> int:
    """Floats of every leaf module's output for one example (sizes the jvp method's chunks)."""
    total = [0]

    def hook(mod: nn.Module, inp: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            total[0] += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(x1)
    finally:
        for h in handles:
            h.remove()
    return max(1, total[0])


# --------------------------------------------------------------------------- the result


@dataclass
class SpectrumResult:
    """The spectrum of D(x) and the scalars beside it (every path fills every field).

    ``eigenvalues``: descending; every one above the rank threshold (``k=None``; plus a few
    below used to certify it, or all d for the complete paths) or the ``k`` largest found.
    ``rank`` is exact when ``rank_upper == rank`` (else a lower bound, ``k`` mode);
    ``rank_check`` says how it was certified (``dense``: all eigenvalues computed;
    ``gram-ldl``: Sylvester inertia of the N x N Gram matrix; ``none``). ``mean``/``std``:
    the paper's statistics of the d eigenvalues clipped at the threshold (NaN when the rank
    is not known exactly). ``trace_square_stderr`` is 0 when ``tr(D^2)`` is exact.
    """

    path: str
    method: str
    n: int
    d: int
    formula: str
    eigenvalues: np.ndarray
    spectrum: Spectrum
    threshold: float
    lambda_max: float
    rank: int
    rank_upper: int
    rank_check: str
    rank_check_count: int
    mean: float
    std: float
    trace: float
    trace_square: float
    trace_square_stderr: float
    trace_square_method: str
    grad_norm: float
    k: int | None
    plan: Plan
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def effective_rank(self) -> float:
        """``tr(D)^2 / tr(D^2)``: d for isotropic D, 1 for rank one."""
        return self.trace**2 / self.trace_square

    @property
    def effective_rank_stderr(self) -> float:
        """Standard error of :attr:`effective_rank` from that of ``tr(D^2)`` (delta method)."""
        return self.effective_rank * self.trace_square_stderr / self.trace_square

    def fraction_in_top(self, j: int | None = None) -> float:
        """Fraction of ``tr D`` in the ``j`` largest eigenvalues (default: ``k``, else the
        rank); ``j`` at most the number computed."""
        j = (self.k or self.rank) if j is None else j
        if j > len(self.eigenvalues):
            raise ValueError(f"only {len(self.eigenvalues)} eigenvalues were computed, not {j}")
        return float(np.sum(self.eigenvalues[:j])) / self.trace

    def summary(self) -> str:
        """One paragraph with every headline number."""
        rank = f"{self.rank}" if self.rank_upper == self.rank else f"{self.rank}..{self.rank_upper}"
        err = f" +- {self.trace_square_stderr:.3g}" if self.trace_square_stderr else ""
        top = self.eigenvalues[: min(5, len(self.eigenvalues))]
        return (
            f"D(x) by {self.path} ({self.method}) on N={self.n}, d={self.d}, formula "
            f"{self.formula}: rank {rank} (check {self.rank_check}), threshold "
            f"{self.threshold:.4g}, mean {self.mean:.4g}, std {self.std:.4g}, trace "
            f"{self.trace:.6g}, tr(D^2) {self.trace_square:.6g}{err} "
            f"({self.trace_square_method}), effective rank {self.effective_rank:.4g}, "
            f"top-{self.k or self.rank} fraction {self.fraction_in_top():.4f}, leading "
            f"{np.array2string(top, precision=4)}; {self.seconds.get('total', 0.0):.2f} s"
        )


# --------------------------------------------------------------------------- the paths


@dataclass
class _Job:
    """Everything a path needs."""

    model: nn.Module
    examples: Examples
    loss: Loss | None
    formula: Formula
    eps: float
    k: int | None
    plan: Plan
    lanczos: dict[str, Any]
    trace_square: str
    probes: int
    shard: Shard
    max_vectors: int

    @property
    def n(self) -> int:
        return self.examples.n

    @property
    def d(self) -> int:
        return trainable(self.model)[1]

    @property
    def scale(self) -> float:
        return _formula_scale(self.formula, self.n)

    def all_chunks(self) -> list[tuple[int, int]]:
        return chunk_ranges(self.n, self.plan.chunk_size)

    def trace_square_mode(self) -> str:
        """``exact``, ``hutchinson`` or ``none`` (``auto``: exact up to the flop limit)."""
        if self.trace_square not in ("auto", "exact", "hutchinson", "none"):
            raise ValueError(
                f"trace_square must be auto, exact, hutchinson or none, got {self.trace_square!r}"
            )
        if self.trace_square == "auto":
            exact = float(self.n) ** 2 * self.d <= EXACT_TRACE_SQUARE_FLOPS
            return "exact" if exact else "hutchinson"
        return self.trace_square

    def gram_fits(self) -> bool:
        """Whether the N x N float64 Gram matrix fits beside the path's own memory."""
        return 8 * self.n**2 <= self.plan.budget_bytes - self.plan.bytes[self.plan.path]


@dataclass
class _Outcome:
    spectrum: Spectrum
    trace: float
    grad_norm: float
    tr2: TraceSquare
    seconds: dict[str, float]


def _lanczos(operator: Any, job: _Job) -> Spectrum:
    """Every eigenvalue above the threshold (``k=None``) or the ``k`` largest."""
    s = job.lanczos
    common = {"eps": job.eps, "krylov_tol": s["krylov_tol"], "eig_tol": s["eig_tol"]}
    common |= {"max_dim": job.plan.max_krylov_dim, "seed": s["seed"]}
    if job.k is None:
        return fast_spectrum(operator, block_size=s["block_size"], **common)
    block = min(s["block_size"], max(16, job.k))
    return top_k_spectrum(operator, job.k, block_size=block, **common)


def _run_dense(job: _Job) -> _Outcome:
    """Gradient chunks streamed into the float64 scatter (Chan's merge), all d eigenvalues."""
    t0 = time.perf_counter()
    moment = CentredMoment(job.d, device=next(job.model.parameters()).device)
    for _, g in iter_chunk_gradients(job.model, job.examples, job.all_chunks(), job.loss):
        moment.update(g)
    grad_norm = float(moment.mean.norm())
    D = moment.diffusion(job.formula)
    del moment
    trace, tr2 = float(D.diagonal().sum()), float(D.square().sum())
    t1 = time.perf_counter()
    sp = dense_spectrum(D, job.eps)
    del D
    seconds = {"gradients": t1 - t0, "eigen": time.perf_counter() - t1, "trace_square": 0.0}
    return _Outcome(sp, trace, grad_norm, TraceSquare(tr2, 0.0, "exact"), seconds)


def _stored_gradients(job: _Job) -> tuple[torch.Tensor, float, float]:
    """All per-example gradients (``N x d``, the model's dtype), centred in place by their
    exact float64 mean; with ``tr D`` (Chan's merge of the chunks in float64, before the
    centred values are rounded to the storage dtype: the same number as every other path)
    and ``|g|``."""
    first = next(job.model.parameters())
    g = torch.empty((job.n, job.d), dtype=first.dtype, device=first.device)
    acc = (0, torch.zeros(job.d, dtype=torch.float64, device=first.device), 0.0)
    for start, chunk in iter_chunk_gradients(job.model, job.examples, job.all_chunks(), job.loss):
        g[start : start + len(chunk)] = chunk
        acc = chan_merge(acc, chunk_moments(chunk))
    mean = exact_mean(g)
    centre_in_place(g, mean, chunk_rows=128)  # float64 copies of 128 rows at a time
    return g, float(acc[2]) * job.scale, float(mean.norm())


def _run_gram(job: _Job) -> _Outcome:
    """Stored gradients, all eigenvalues of the N x N Gram matrix (N < d)."""
    t0 = time.perf_counter()
    g, trace, grad_norm = _stored_gradients(job)
    t1 = time.perf_counter()
    sp = gram_spectrum(g, job.scale, job.eps)
    del g
    tr2 = float(np.sum(np.square(sp.eigenvalues)))
    seconds = {"gradients": t1 - t0, "eigen": time.perf_counter() - t1, "trace_square": 0.0}
    return _Outcome(sp, trace, grad_norm, TraceSquare(tr2, 0.0, "exact"), seconds)


def _run_stored(job: _Job) -> _Outcome:
    """Stored gradients, block Lanczos on ``scale G^T G`` (rank certified by the Gram
    matrix's inertia when cheap), ``tr(D^2)`` from the Gram matrix or Hutchinson."""
    t0 = time.perf_counter()
    g, trace, grad_norm = _stored_gradients(job)
    t1 = time.perf_counter()
    op = GradientOperator(g, job.scale)
    sp = _lanczos(op, job)
    if job.k is None:
        certify_rank(sp, g, job.scale)
    t2 = time.perf_counter()
    mode = job.trace_square_mode()
    if mode == "exact" and job.gram_fits():
        gram = gram_matrix(g, job.scale)
        tr2 = TraceSquare(float(np.sum(np.square(gram))), 0.0, "gram")
        del gram
    else:
        tr2 = _estimate_trace_square(op, job, mode)
    del g, op
    seconds = {"gradients": t1 - t0, "eigen": t2 - t1, "trace_square": time.perf_counter() - t2}
    return _Outcome(sp, trace, grad_norm, tr2, seconds)


def _run_gram_tiles(job: _Job) -> _Outcome:
    """Matrix-free, every eigenvalue: the N x N Gram matrix ``scale G G^T`` of the centred
    gradients by tiles of chunk pairs (:func:`gram_tiles`; no ``N x d`` matrix), its
    eigenvalues (D's non-zero ones), and ``tr(D^2)`` exactly from the same tiles."""
    import scipy.linalg

    t0 = time.perf_counter()
    chunk, shard = job.plan.chunk_size, job.shard
    mom = gradient_moments(job.model, job.examples, loss=job.loss, chunk_size=chunk, shard=shard)
    t1 = time.perf_counter()
    tiles = gram_tiles(
        job.model, job.examples, mom.mean, job.scale, loss=job.loss, chunk_size=chunk,
        keep_gram=True, shard=shard,
    )  # fmt: skip
    w = scipy.linalg.eigh(tiles.gram.cpu().numpy(), eigvals_only=True, overwrite_a=True)
    tiles.gram = None
    full = np.concatenate([w, np.zeros(max(job.d - job.n, 0))])
    sp = Spectrum(full, d=job.d, eps=job.eps, solver="gram-tiles", complete=True)
    sp.rank_check, sp.rank_check_count = "dense", sp.rank  # every eigenvalue was computed
    seconds = {"gradients": t1 - t0, "eigen": time.perf_counter() - t1, "trace_square": 0.0}
    return _Outcome(sp, mom.scatter_trace * job.scale, float(mom.mean.norm()), tiles, seconds)


def _estimate_trace_square(operator: Any, job: _Job, mode: str) -> TraceSquare:
    """Hutchinson's estimate, or NaN for ``trace_square="none"``."""
    if mode == "none":
        return TraceSquare(math.nan, math.nan, "none")
    return hutchinson_trace_square(operator, job.d, job.probes, job.lanczos["seed"])


def _certify_matrix_free(sp: Spectrum, gram: torch.Tensor, k: int | None) -> None:
    """Rank certificate from the Gram matrix of the tiles: compared with Lanczos's rank
    (``k=None``) or, for the ``k`` largest only, the certified count itself."""
    from sgdvi.diffusion.eigen import inertia_above

    a = gram.cpu().numpy()
    if k is None:
        certify_rank_gram(sp, a)
    else:
        sp.rank_check, sp.rank_check_count = "gram-ldl", inertia_above(a, sp.threshold)


def _run_matrix_free(job: _Job) -> _Outcome:
    """One pass for the mean and trace, block Lanczos on the matrix-free operator, then
    ``tr(D^2)`` by Gram tiles (exact; the Gram matrix kept for the rank certificate when it
    fits) or Hutchinson."""
    t0 = time.perf_counter()
    chunk, shard = job.plan.chunk_size, job.shard
    mom = gradient_moments(job.model, job.examples, loss=job.loss, chunk_size=chunk, shard=shard)
    op = MatrixFreeOperator(
        job.model, job.examples, mom.mean, job.scale, loss=job.loss, chunk_size=chunk,
        method=job.plan.method, max_vectors=job.max_vectors, shard=shard,
    )  # fmt: skip
    t1 = time.perf_counter()
    sp = _lanczos(op, job)
    sp.solver = "matrix-free" if job.k is None else "matrix-free-top-k"
    t2 = time.perf_counter()
    mode = job.trace_square_mode()
    if mode == "exact":
        tr2 = gram_tiles(
            job.model, job.examples, mom.mean, job.scale, loss=job.loss, chunk_size=chunk,
            keep_gram=job.gram_fits(), shard=shard,
        )  # fmt: skip
        if tr2.gram is not None:
            _certify_matrix_free(sp, tr2.gram, job.k)
            tr2.gram = None
    else:
        tr2 = _estimate_trace_square(op, job, mode)
    trace = mom.scatter_trace * job.scale
    seconds = {"gradients": t1 - t0, "eigen": t2 - t1, "trace_square": time.perf_counter() - t2}
    return _Outcome(sp, trace, float(mom.mean.norm()), tr2, seconds)


RUNNERS: dict[str, Callable[[_Job], _Outcome]] = {
    "dense": _run_dense,
    "gram": _run_gram,
    "stored": _run_stored,
    "gram-tiles": _run_gram_tiles,
    "matrix-free": _run_matrix_free,
}


# --------------------------------------------------------------------------- the entry point


def rank_bounds(sp: Spectrum, k: int | None, trace: float, n: int) -> tuple[int, int]:
    """``(rank, upper bound)`` of D's rank at the threshold.

    Every eigenvalue above the threshold found (``k=None`` or a complete path), or a Gram
    inertia count: exact. The ``k`` largest only, all above the threshold: at least k, at most
    ``k + (tr D - sum of the k) / threshold`` (each further one adds more than the threshold
    to the trace), N - 1 (centred gradients) and d.
    """
    if sp.complete or k is None:
        return sp.rank, sp.rank
    if sp.rank_check == "gram-ldl":
        return sp.rank_check_count, sp.rank_check_count
    top = sp.eigenvalues[:k]
    above = int(np.count_nonzero(top > sp.threshold))
    if above < len(top):
        return above, above
    rest = max(trace - float(np.sum(top)), 0.0)
    upper = min(sp.d, max(n - 1, 1), len(top) + int(math.floor(rest / sp.threshold)))
    return len(top), max(len(top), upper)


def _result(job: _Job, out: _Outcome, seconds: float) -> SpectrumResult:
    sp = out.spectrum
    rank, upper = rank_bounds(sp, job.k, out.trace, job.n)
    shown = sp.eigenvalues[: (rank if job.k is None else min(job.k, len(sp.eigenvalues)))]
    converged = sp.eigenvalues if sp.complete else shown
    known = rank == upper and rank <= len(converged)
    stats = spectrum_statistics(converged[:rank], job.d, sp.threshold) if known else {}
    return SpectrumResult(
        path=job.plan.path, method=job.plan.method if job.plan.path == "matrix-free" else "-",
        n=job.n, d=job.d, formula=job.formula, eigenvalues=np.array(shown), spectrum=sp,
        threshold=sp.threshold, lambda_max=sp.lambda_max, rank=rank, rank_upper=upper,
        rank_check=sp.rank_check, rank_check_count=sp.rank_check_count,
        mean=stats.get("mean", math.nan), std=stats.get("std", math.nan), trace=out.trace,
        trace_square=out.tr2.value, trace_square_stderr=out.tr2.stderr,
        trace_square_method=out.tr2.method, grad_norm=out.grad_norm, k=job.k, plan=job.plan,
        seconds={**out.seconds, "total": seconds},
    )  # fmt: skip


def _process_shard() -> Shard:
    """The :class:`Shard` of this process when ``torch.distributed`` is initialised with
    several processes, else the single-process one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from sgdvi.diffusion.distributed import process_group_shard

        return process_group_shard()
    return LOCAL


def _on_device(model: nn.Module, device: str | torch.device | None) -> nn.Module:
    """``model`` itself, or a copy on ``device`` (the caller's model is not moved)."""
    if any(m.training for m in model.modules()):
        raise ValueError(
            "D(x) is evaluated with the network in evaluation mode (Section IV: BatchNorm on "
            "its running statistics, no dropout); call model.eval() first"
        )
    if device is None or next(model.parameters()).device == torch.device(device):
        return model
    return copy.deepcopy(model).to(device)


def _jvp_vectors(model: nn.Module, examples: Examples, plan: Plan) -> int:
    """Vectors per vmapped jvp/vjp: what a quarter of the budget holds for one chunk's
    activations (primal, tangent and saved, ~16 bytes per float per vector), 1..64."""
    x1, _ = examples.chunk(0, 1)
    first = next(model.parameters())
    act = activation_floats(model, x1.to(device=first.device, dtype=first.dtype))
    return int(min(64, max(1, plan.budget_bytes // 4 // (16 * act * plan.chunk_size))))


def settle_method(
    model: nn.Module,
    examples: Examples,
    loss: Loss | None,
    plan: Plan,
    k: int | None,
    settings: Mapping[str, Any],
    shard: Shard,
) -> tuple[Plan, int]:
    """The matrix-free product to use and the jvp method's vectors per vmap: ``auto`` times
    both on the first chunk (:func:`sgdvi.diffusion.matrix_free.time_methods`, summed over
    the processes so all agree) and keeps the faster."""
    vectors = _jvp_vectors(model, examples, plan) if plan.method in ("jvp", "auto") else 64
    if plan.path != "matrix-free" or plan.method != "auto":
        return plan, vectors
    block = settings["block_size"] if k is None else min(settings["block_size"], max(16, k))
    times = time_methods(
        model, examples, loss=loss, chunk_size=plan.chunk_size, block=block,
        max_vectors=vectors, shard=shard,
    )  # fmt: skip
    method = min(times, key=times.get)
    log.info("matrix-free products on one chunk: %s; taking %s", times, method)
    return dataclasses.replace(
        plan, method=method, reason=f"{plan.reason}; {method} timed faster"
    ), vectors


def _lanczos_settings(lanczos: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = set(lanczos or {}) - set(LANCZOS_DEFAULTS)
    if unknown:
        raise ValueError(f"lanczos: unknown keys {sorted(unknown)}; use {list(LANCZOS_DEFAULTS)}")
    return {**LANCZOS_DEFAULTS, **(lanczos or {})}


def spectrum(
    model: nn.Module,
    data: Any,
    loss: Loss | None = None,
    *,
    formula: Formula = "A1",
    eps: str | float = "float32",
    memory_budget_mb: float | None = None,
    k: int | None = None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    path: str = "auto",
    method: str = "auto",
    trace_square: str = "auto",
    probes: int = 32,
    dense_max_d: int = 4000,
    lanczos: Mapping[str, Any] | None = None,
    shard: Shard | None = None,
) -> SpectrumResult:
    """The eigenspectrum of D(x) (eq. (2); (A1), or (A2) with ``formula="A2"``) of ``model``.

    ``model``: any ``nn.Module`` in eval mode; ``data``: ``(x, y)`` tensors or a map-style
    Dataset of ``(input, target)``; ``loss(outputs, targets) -> (B,)`` per-example losses
    (default: cross-entropy, the paper's). ``k=None``: every eigenvalue above the threshold
    ``lambda_max d eps`` (footnote 1), so the rank and the paper's mean/std; ``k``: only the
    ``k`` largest (memory ``~ d x few k`` whatever the rank; the rank is then bounded).
    ``memory_budget_mb`` (default: half the available memory) and N, d pick the path
    (:func:`choose_path`; ``path`` forces one); ``method`` (``jvp``/``chunks``/``auto``: the
    faster on the first chunk, :func:`settle_method`) is the matrix-free product.
    ``trace_square``: ``exact`` (Gram tiles, ``O(N^2 d)``), ``hutchinson`` (``probes``
    Rademacher probes, with a standard error), ``auto`` (exact up to
    :data:`EXACT_TRACE_SQUARE_FLOPS`) or ``none``. ``lanczos``: overrides of
    :data:`LANCZOS_DEFAULTS`. Under ``torch.distributed`` (or with ``shard``) each process
    takes its contiguous chunks and all return the same result. TF32 is off. Give
    ``chunk_size`` and ``method`` for equal chunks across budgets and process counts.
    """
    from sgdvi.diffusion.compute import full_precision

    t0 = time.perf_counter()
    model = _on_device(model, device)
    examples = Examples(data)
    shard = shard or _process_shard()
    _, d = trainable(model)
    if memory_budget_mb is None:
        memory_budget_mb = default_budget_mb(next(model.parameters()).device)
    settings = _lanczos_settings(lanczos)
    plan = choose_path(
        examples.n, d, budget_mb=memory_budget_mb, path=path, k=k, chunk_size=chunk_size,
        eps=eps, dense_max_d=dense_max_d, block_size=settings["block_size"],
        max_krylov_dim=settings["max_dim"], world=shard.world, method=method,
    )  # fmt: skip
    plan, vectors = settle_method(model, examples, loss, plan, k, settings, shard)
    job = _Job(
        model, examples, loss, formula, eps_value(eps), k, plan, settings, trace_square,
        probes, shard, vectors,
    )  # fmt: skip
    log.info("D(x): N=%d, d=%d, %s", examples.n, d, plan)
    with full_precision():
        out = RUNNERS[plan.path](job)
    return _result(job, out, time.perf_counter() - t0)
