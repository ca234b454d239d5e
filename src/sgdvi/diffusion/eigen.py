"""Eigenvalues of D(x) above the rank threshold: a dense reference and a fast exact path.

The paper's statistics (Figs. 1, 2 and footnote 1) use the eigenvalues of D thresholded at
``lambda_max * d * eps`` (numpy's ``matrix_rank`` rule, eps of float32 as the authors'):
``rank = #{lambda > threshold}``, and every eigenvalue below the threshold is clipped to it.
So only the eigenvalues above the threshold are needed.

- :func:`dense_spectrum` (reference): all d eigenvalues of a float64 D with the symmetric
  LAPACK solver, eigenvalues only, in place.
- :func:`fast_spectrum`: block Lanczos (block Krylov with full reorthogonalisation) on the
  operator ``v -> scale * G^T (G v)`` of the centred per-example gradients ``G`` (``N x d``,
  stored in float32, multiplied in float64 by row chunks), with a float64 Rayleigh-Ritz step.
  The Krylov space grows block by block until every Ritz pair above the threshold has
  residual ``||D y - theta y|| <= residual_tol * theta`` and a few Ritz values below the
  threshold are certainly below it (``theta + ||r|| < threshold``). No ``d x d`` matrix is
  formed; cost ``O(N d m)`` for a Krylov dimension ``m`` of a few times the rank.

:func:`choose_solver` picks one automatically.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

EpsName = Literal["float32", "float64"]

#: machine epsilon used by the rank threshold (footnote 1 of the paper)
EPS: dict[str, float] = {
    "float32": float(np.finfo(np.float32).eps),
    "float64": float(np.finfo(np.float64).eps),
}


def eps_value(eps: EpsName | float) -> float:
    """Machine epsilon by dtype name (``float32``: 1.19e-7, the authors') or a number."""
    if isinstance(eps, str):
        if eps not in EPS:
            raise ValueError(f"diffusion.eps must be one of {sorted(EPS)}, got {eps!r}")
        return EPS[eps]
    return float(eps)


def rank_threshold(lambda_max: float, d: int, eps: EpsName | float = "float32") -> float:
    """``lambda_max * d * eps``: eigenvalues at or below it count as zero (footnote 1)."""
    return float(lambda_max) * d * eps_value(eps)


def rank_of(eigenvalues: np.ndarray, threshold: float) -> int:
    """Number of eigenvalues strictly above ``threshold`` (as ``numpy.linalg.matrix_rank``)."""
    return int(np.count_nonzero(np.asarray(eigenvalues) > threshold))


def clipped_eigenvalues(eigenvalues: np.ndarray, d: int, threshold: float) -> np.ndarray:
    """All d eigenvalues with those below ``threshold`` (or not computed) set to it.

    ``eigenvalues`` holds all d values (dense path) or only the leading ones (fast path); the
    missing ``d - len(eigenvalues)`` are below the threshold by construction.
    """
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    if len(eigenvalues) > d:
        raise ValueError(f"{len(eigenvalues)} eigenvalues for a {d} x {d} matrix")
    out = np.full(d, threshold, dtype=np.float64)
    out[: len(eigenvalues)] = np.maximum(np.sort(eigenvalues)[::-1], threshold)
    return out


@dataclass
class Spectrum:
    """Eigenvalues of D found by a solver, and the facts the table and figures need.

    ``eigenvalues`` are in descending order: all d of them (``complete``) or the leading ones
    (fast path: those above the threshold plus the few below it used to certify the rank).
    """

    eigenvalues: np.ndarray
    d: int
    eps: float
    solver: str
    complete: bool
    lambda_max: float = field(init=False)
    threshold: float = field(init=False)
    rank: int = field(init=False)
    n_negative: int = field(init=False)
    most_negative: float = field(init=False)
    #: largest ||D y - theta y|| / theta over the pairs above the threshold (fast path)
    max_rel_residual: float = math.nan
    #: largest bound on |lambda - theta| / theta over those pairs: min(r, r^2 / gap) / theta
    max_rel_error_bound: float = math.nan
    krylov_dim: int = 0
    operator_passes: int = 0

    def __post_init__(self) -> None:
        self.eigenvalues = np.sort(np.asarray(self.eigenvalues, dtype=np.float64))[::-1].copy()
        self.lambda_max = float(self.eigenvalues[0])
        self.threshold = rank_threshold(self.lambda_max, self.d, self.eps)
        self.rank = rank_of(self.eigenvalues, self.threshold)
        neg = self.eigenvalues[self.eigenvalues < 0]
        self.n_negative = int(len(neg))
        self.most_negative = float(neg.min()) if len(neg) else 0.0

    def clipped(self) -> np.ndarray:
        """All d eigenvalues clipped from below at the threshold (the paper's statistics)."""
        return clipped_eigenvalues(self.eigenvalues, self.d, self.threshold)

    def above_threshold(self) -> np.ndarray:
        return self.eigenvalues[: self.rank]


# --------------------------------------------------------------------------- dense path


def dense_spectrum(D: torch.Tensor | np.ndarray, eps: EpsName | float = "float32") -> Spectrum:
    """All eigenvalues of a symmetric float64 D (reference path). D is overwritten.

    CPU: LAPACK ``syevd`` through :func:`scipy.linalg.eigh` with ``overwrite_a`` (no copy);
    CUDA: :func:`torch.linalg.eigvalsh`.
    """
    if isinstance(D, torch.Tensor) and D.device.type != "cpu":
        if D.dtype != torch.float64:
            raise ValueError("the dense reference solver expects a float64 D")
        w = torch.linalg.eigvalsh(D).cpu().numpy()
    else:
        import scipy.linalg

        a = D.numpy() if isinstance(D, torch.Tensor) else np.asarray(D)
        if a.dtype != np.float64:
            raise ValueError("the dense reference solver expects a float64 D")
        w = scipy.linalg.eigh(
            a, eigvals_only=True, overwrite_a=True, check_finite=False, driver="evd"
        )
    return Spectrum(w, d=len(w), eps=eps_value(eps), solver="dense", complete=True)


# --------------------------------------------------------------------------- fast path


class GradientOperator:
    """``v -> scale * G^T (G v)`` for centred per-example gradients ``G`` (``N x d``).

    ``G`` stays in its storage dtype (float32); each chunk of rows is promoted to float64
    before both products, so the operator is applied in float64 arithmetic.
    """

    def __init__(self, g: torch.Tensor, scale: float, chunk_rows: int = 2048) -> None:
        if g.ndim != 2:
            raise ValueError(f"G must be N x d, got shape {tuple(g.shape)}")
        self.g = g
        self.scale = float(scale)
        self.chunk_rows = int(chunk_rows)
        self.passes = 0

    @property
    def d(self) -> int:
        return self.g.shape[1]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        out = torch.zeros((self.d, v.shape[1]), dtype=torch.float64, device=self.g.device)
        for i in range(0, self.g.shape[0], self.chunk_rows):
            block = self.g[i : i + self.chunk_rows].to(torch.float64)
            out.addmm_(block.T, block @ v)
        return out.mul_(self.scale)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run small LAPACK calls (QR of a d x b block, eigh of the m x m projection) on one thread.

    They take milliseconds on one core, but multi-threaded LAPACK can slow down by 100x when
    the cores are shared with other processes (measured on the 2-core development machine).
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class NotConverged(RuntimeError):
    """The Krylov space reached its size limit before every pair above the threshold converged."""


def _orthonormal_block(
    w: torch.Tensor, basis: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Orthonormalise the columns of ``w`` against ``basis`` and each other (float64).

    Classical Gram-Schmidt applied twice, then Householder QR; columns that vanish (the Krylov
    space became invariant) are replaced by random directions.
    """
    scale = w.norm(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    for _ in range(2):
        if basis.shape[1]:
            w = w - basis @ (basis.T @ w)
    with _one_thread():
        q, r = torch.linalg.qr(w)
    dead = r.diagonal().abs() <= 1e-12 * scale
    if bool(dead.any()):
        fresh = torch.randn((w.shape[0], int(dead.sum())), generator=generator, dtype=torch.float64)
        q[:, dead] = fresh.to(q.device)
    for _ in range(2):
        if basis.shape[1]:
            q = q - basis @ (basis.T @ q)
        with _one_thread():
            q, _ = torch.linalg.qr(q)
    return q


def fast_spectrum(
    operator: Callable[[torch.Tensor], torch.Tensor],
    d: int,
    eps: EpsName | float = "float32",
    block_size: int = 64,
    residual_tol: float = 1e-5,
    guard: int = 4,
    max_dim: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Spectrum:
    """Eigenvalues of a symmetric PSD operator above ``lambda_max * d * eps`` by block Lanczos.

    Args:
        operator: ``V (d x b, float64) -> D V`` (e.g. :class:`GradientOperator`).
        d: dimension.
        eps: rank-threshold epsilon (``float32``: the authors').
        block_size: columns added to the Krylov space per operator application.
        residual_tol: every Ritz pair above the threshold must have
            ``||D y - theta y|| <= residual_tol * theta``; the eigenvalue error is then at most
            ``min(r, r^2 / gap)``, reported in ``max_rel_error_bound``.
        guard: number of Ritz values just below the threshold that must be certainly below it
            (``theta + ||r|| < threshold``) or converged, so that the rank is certified.
        max_dim: largest Krylov dimension before giving up (:class:`NotConverged`);
            default ``min(d, 4096)``.
        seed: seed of the random start block.
        device: device of the float64 Krylov basis (that of the gradients).

    Returns:
        :class:`Spectrum` with the converged leading eigenvalues (``complete=False``).
    """
    epsv = eps_value(eps)
    max_dim = min(d, max_dim or 4096)
    block_size = max(1, min(block_size, d))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    f64 = {"dtype": torch.float64, "device": device}

    cap = min(max_dim, 4 * block_size)
    q_buf = torch.empty((d, cap), **f64)
    z_buf = torch.empty((d, cap), **f64)
    t_buf = torch.zeros((cap, cap), **f64)

    start = torch.randn((d, block_size), generator=gen, dtype=torch.float64).to(device)
    qb = _orthonormal_block(start, q_buf[:, :0], gen)
    m = 0
    while True:
        zb = operator(qb)
        b = qb.shape[1]
        if m + b > cap:  # grow the buffers
            new_cap = min(max_dim, max(2 * cap, m + b))
            q_buf = torch.cat([q_buf[:, :m], torch.empty((d, new_cap - m), **f64)], dim=1)
            z_buf = torch.cat([z_buf[:, :m], torch.empty((d, new_cap - m), **f64)], dim=1)
            t_new = torch.zeros((new_cap, new_cap), **f64)
            t_new[:m, :m] = t_buf[:m, :m]
            q_buf, z_buf, t_buf, cap = q_buf, z_buf, t_new, new_cap
        q_buf[:, m : m + b] = qb
        z_buf[:, m : m + b] = zb
        m += b
        q, z = q_buf[:, :m], z_buf[:, :m]
        cross = q.T @ zb  # (m, b): the new columns of the projected matrix T = Q^T D Q
        t_buf[:m, m - b : m] = cross
        t_buf[m - b : m, :m] = cross.T
        t = t_buf[:m, :m]
        with _one_thread():
            theta, y = torch.linalg.eigh(0.5 * (t + t.T))
        theta, y = theta.flip(0), y.flip(1)
        threshold = rank_threshold(float(theta[0]), d, epsv)
        rank = int((theta > threshold).sum())
        k = min(m, rank + guard)
        yk = y[:, :k]
        res = (z @ yk - (q @ yk) * theta[:k]).norm(dim=0)
        th = theta[:k]
        above_ok = bool((res[:rank] <= residual_tol * th[:rank]).all())
        below = slice(rank, k)
        below_ok = bool(
            ((th[below] + res[below] < threshold) | (res[below] <= residual_tol * th[below].abs()))
            .all()
        )
        worst = float((res[:rank] / th[:rank]).max()) if rank else 0.0
        log.info(
            "block Lanczos: dim %d, lambda_max %.6g, rank %d, worst relative residual %.2e",
            m, float(theta[0]), rank, worst,
        )
        if above_ok and below_ok and k == rank + guard and m >= k + block_size:
            break
        if m + block_size > max_dim:
            raise NotConverged(
                f"block Lanczos reached its size limit {max_dim} (rank so far {rank}, worst "
                f"relative residual {worst:.2e} > {residual_tol:g}); raise diffusion.max_krylov_dim "
                "or use diffusion.solver: dense"
            )
        qb = _orthonormal_block(zb, q, gen)

    theta_np = theta[:k].cpu().numpy()
    res_np = res.cpu().numpy()
    # error bound min(r, r^2 / gap), gap to the nearest other Ritz value of the whole space
    all_theta = theta.cpu().numpy()
    bounds = []
    for j in range(rank):
        others = np.delete(all_theta, j)
        gap = float(np.min(np.abs(others - theta_np[j]))) if len(others) else math.inf
        bounds.append(min(res_np[j], res_np[j] ** 2 / gap if gap > 0 else math.inf) / theta_np[j])
    spectrum = Spectrum(theta_np, d=d, eps=epsv, solver="fast", complete=False)
    spectrum.max_rel_residual = worst
    spectrum.max_rel_error_bound = float(max(bounds)) if bounds else 0.0
    spectrum.krylov_dim = m
    spectrum.operator_passes = getattr(operator, "passes", 0)
    return spectrum


def choose_solver(solver: str, d: int, dense_max_d: int) -> str:
    """``auto`` -> ``dense`` when ``d <= dense_max_d`` (the dense path is cheap), else ``fast``."""
    if solver in ("dense", "fast"):
        return solver
    if solver != "auto":
        raise ValueError(f"diffusion.solver must be auto, dense or fast, got {solver!r}")
    return "dense" if d <= dense_max_d else "fast"
