"""The centred second moment of the per-example gradients: D(x) of eq. (2) / (A1) and (A2).

With ``g_k = grad f_k(x)`` and the exact full gradient ``g = (1/N) sum_k g_k``:

- (A1), mini-batches drawn with replacement (the paper's eq. (2)):
  ``D = (1/N) sum_k g_k g_k^T - g g^T = (1/N) sum_k (g_k - g)(g_k - g)^T``;
- (A2), without replacement: ``D = N/(N-1) * D_A1``; the factor ``(1 - b/N)`` of Remark 12
  goes into the temperature (:func:`temperature_factor`).

Everything here accumulates in float64: chunk scatter matrices are merged with the pairwise
update of Chan, Golub & LeVeque (1979), so the result does not suffer the cancellation of
``E[g g^T] - g g^T`` when the full gradient is large.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

Formula = Literal["A1", "A2"]


def formula_scale(formula: Formula, n: int) -> float:
    """Factor turning the centred scatter ``sum_k (g_k - g)(g_k - g)^T`` into D."""
    if formula == "A1":
        return 1.0 / n
    if formula == "A2":
        if n < 2:
            raise ValueError("formula A2 needs at least two examples (it divides by N - 1)")
        return 1.0 / (n - 1)
    raise ValueError(f"diffusion.formula must be A1 or A2, got {formula!r}")


def temperature_factor(formula: Formula, batch_size: int, n: int) -> float:
    """Extra factor of the temperature ``eta/b``: 1 for (A1), ``1 - b/N`` for (A2) (Remark 12)."""
    if formula == "A1":
        return 1.0
    if formula == "A2":
        return 1.0 - batch_size / n
    raise ValueError(f"diffusion.formula must be A1 or A2, got {formula!r}")


class CentredMoment:
    """Streaming float64 mean and centred scatter ``M = sum_k (g_k - g)(g_k - g)^T``.

    Feed row chunks with :meth:`update`; chunks are merged pairwise (Chan et al.), so one pass
    suffices and no ``N x d`` matrix is kept. Memory: one ``d x d`` float64 matrix. On the
    CPU each chunk's scatter is a float64 ``dsyrk`` (upper triangle only: half the flops of a
    full product, the same float64 arithmetic); the lower triangle is filled in by
    :meth:`diffusion`. The merge terms ``n_a n_b / n * delta delta^T`` are kept as rows
    ``sqrt(n_a n_b / n) * delta`` and added by one rank-k update in :meth:`diffusion` (the
    same sum, without a pass over the ``d x d`` matrix per chunk).
    """

    def __init__(self, d: int, device: str | torch.device = "cpu") -> None:
        self.n = 0
        self.mean = torch.zeros(d, dtype=torch.float64, device=device)
        self._syrk = self.mean.device.type == "cpu"
        if self._syrk:  # Fortran order for BLAS, seen by torch as the transposed strides
            self._scatter_np = np.zeros((d, d), dtype=np.float64, order="F")
            self.scatter = torch.from_numpy(self._scatter_np)
        else:
            self.scatter = torch.zeros((d, d), dtype=torch.float64, device=device)
        self._deltas: list[torch.Tensor] = []

    def _rank_k(self, rows: torch.Tensor) -> None:
        """``scatter += rows^T rows`` (upper triangle by dsyrk on the CPU)."""
        if self._syrk:
            from scipy.linalg.blas import dsyrk

            # rows (k x d, C order) is rows^T in Fortran order: dsyrk(trans=0) gives rows^T rows
            a = np.ascontiguousarray(rows.numpy()).T
            out = dsyrk(1.0, a, beta=1.0, c=self._scatter_np, trans=0, overwrite_c=1)
            if out is not self._scatter_np and not np.shares_memory(out, self._scatter_np):
                self._scatter_np[...] = out  # (never expected: overwrite_c on Fortran order)
        else:
            self.scatter.addmm_(rows.T, rows)

    def update(self, chunk: torch.Tensor) -> None:
        """Add the rows of ``chunk`` (``n_c x d``, any float dtype)."""
        c = chunk.to(device=self.mean.device, dtype=torch.float64)
        n_c = c.shape[0]
        if n_c == 0:
            return
        mean_c = c.mean(dim=0)
        c = c - mean_c
        n = self.n + n_c
        delta = mean_c - self.mean
        self._rank_k(c)
        if self.n:
            self._deltas.append(delta * math.sqrt(self.n * n_c / n))
        self.mean += delta * (n_c / n)
        self.n = n

    def diffusion(self, formula: Formula = "A1") -> torch.Tensor:
        """D as a float64 ``d x d`` matrix (the scatter scaled in place: call once)."""
        if self.n == 0:
            raise ValueError("no gradients were accumulated")
        if self._deltas:
            self._rank_k(torch.stack(self._deltas))
            self._deltas = []
        if self._syrk:  # dsyrk wrote the upper triangle; mirror it (row by row blocks)
            m = self._scatter_np
            for i in range(0, m.shape[0], 512):
                rows = slice(i, i + 512)
                m[i + 512 :, rows] = m[rows, i + 512 :].T
                blk = m[rows, rows]
                m[rows, rows] = np.triu(blk) + np.triu(blk, k=1).T
        return self.scatter.mul_(formula_scale(formula, self.n))


def exact_mean(g: torch.Tensor, chunk_rows: int = 256) -> torch.Tensor:
    """The full gradient ``(1/N) sum_k g_k`` of a stored ``N x d`` matrix, summed in float64."""
    total = torch.zeros(g.shape[1], dtype=torch.float64, device=g.device)
    for i in range(0, g.shape[0], chunk_rows):
        total += g[i : i + chunk_rows].to(torch.float64).sum(dim=0)
    return total / g.shape[0]


def centre_in_place(g: torch.Tensor, mean: torch.Tensor, chunk_rows: int = 4096) -> torch.Tensor:
    """``g_k <- g_k - mean`` row by row, subtracting in float64 and rounding once to g's dtype."""
    for i in range(0, g.shape[0], chunk_rows):
        block = g[i : i + chunk_rows]
        block.copy_(block.to(torch.float64) - mean)
    return g


def centre_and_square(g: torch.Tensor, mean: torch.Tensor, chunk_rows: int = 128) -> float:
    """:func:`centre_in_place` and :func:`squared_frobenius` in one pass over ``g``.

    Each block of ``chunk_rows`` rows is promoted to float64 once (small enough to stay in
    cache), centred, rounded back into ``g``, and the squares of the rounded values summed in
    float64: the same numbers as the two functions, one read and one write of ``g`` instead of
    two reads and a write, and no large float64 temporaries.
    """
    total = torch.zeros((), dtype=torch.float64, device=g.device)
    for i in range(0, g.shape[0], chunk_rows):
        block = g[i : i + chunk_rows]
        b64 = block.to(torch.float64).sub_(mean)
        block.copy_(b64)
        b64.copy_(block).square_()
        total += b64.sum()
    return float(total)


def squared_frobenius(g: torch.Tensor, chunk_rows: int = 4096) -> float:
    """``sum_{k,i} g_ki^2`` in float64 (``trace(D) = this * formula_scale``)."""
    total = torch.zeros((), dtype=torch.float64, device=g.device)
    for i in range(0, g.shape[0], chunk_rows):
        block = g[i : i + chunk_rows].to(torch.float64)
        total += (block * block).sum()
    return float(total)


def diffusion_from_centred(
    g: torch.Tensor, formula: Formula = "A1", chunk_rows: int = 2048
) -> torch.Tensor:
    """Dense float64 D from centred per-example gradients (``N x d``), accumulated by chunks."""
    n, d = g.shape
    out = torch.zeros((d, d), dtype=torch.float64, device=g.device)
    for i in range(0, n, chunk_rows):
        block = g[i : i + chunk_rows].to(torch.float64)
        out.addmm_(block.T, block)
    return out.mul_(formula_scale(formula, n))
