"""Eigenvalues of D(x) above the rank threshold: a dense reference and a fast exact path.

The paper's statistics (Figs. 1, 2 and footnote 1) use the eigenvalues of D thresholded at
``lambda_max * d * eps`` (numpy's ``matrix_rank`` rule, eps of float32 as the authors'):
``rank = #{lambda > threshold}``, and every eigenvalue below the threshold is clipped to it.
So only the eigenvalues above the threshold are needed.

- :func:`dense_spectrum` (reference): all d eigenvalues of a float64 D with the symmetric
  LAPACK solver, eigenvalues only.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from sgdvi.diffusion import memory

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
    #: how the rank was certified (:func:`certify_rank`): "dense" (all d eigenvalues of D),
    #: "gram-ldl" (Sylvester inertia of the N x N Gram matrix minus the threshold) or "none"
    rank_check: str = "none"
    #: the number of eigenvalues above the threshold that the check found (-1: no check)
    rank_check_count: int = -1

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


#: CPU dense path: MKL's ``syevd`` through torch (a working copy of D) up to this d, else
#: OpenBLAS's through scipy in place (no copy). MKL's was 1.2x (2 threads) to 1.9x (1 thread)
#: faster for d = 3,978 on the 2-core development machine, and far less hurt by other load.
TORCH_EIGH_MAX_D = memory.TORCH_EIGH_MAX_D


def dense_spectrum(D: torch.Tensor | np.ndarray, eps: EpsName | float = "float32") -> Spectrum:
    """All eigenvalues of a symmetric float64 D (reference path). D may be overwritten.

    CPU: LAPACK ``syevd`` (eigenvalues only), MKL's through :func:`torch.linalg.eigvalsh` for
    ``d <= TORCH_EIGH_MAX_D`` (one ``8 d^2`` working copy), else OpenBLAS's through
    :func:`scipy.linalg.eigh` with ``overwrite_a`` (no copy); CUDA: ``eigvalsh``.
    """
    if isinstance(D, torch.Tensor) and D.device.type != "cpu":
        if D.dtype != torch.float64:
            raise ValueError("the dense reference solver expects a float64 D")
        w = torch.linalg.eigvalsh(D).cpu().numpy()
    else:
        a = D.numpy() if isinstance(D, torch.Tensor) else np.asarray(D)
        if a.dtype != np.float64:
            raise ValueError("the dense reference solver expects a float64 D")
        if a.shape[0] <= TORCH_EIGH_MAX_D:
            w = torch.linalg.eigvalsh(torch.from_numpy(a)).numpy()
        else:
            import scipy.linalg

            w = scipy.linalg.eigh(
                a, eigvals_only=True, overwrite_a=True, check_finite=False, driver="evd"
            )
    sp = Spectrum(w, d=len(w), eps=eps_value(eps), solver="dense", complete=True)
    sp.rank_check, sp.rank_check_count = "dense", sp.rank  # every eigenvalue was computed
    return sp


# --------------------------------------------------------------------------- certified rank


class RankCheckFailed(RuntimeError):
    """A certified count of the eigenvalues above the threshold disagrees with the solver."""


def inertia_above(a: np.ndarray, tau: float) -> int:
    """Number of eigenvalues of the symmetric ``a`` above ``tau``, by Sylvester's law of inertia.

    ``a - tau I = L B L^T`` (Bunch-Kaufman LDL^T, :func:`scipy.linalg.ldl`, backward stable;
    ``B`` block diagonal with 1x1 and 2x2 blocks) has as many positive eigenvalues as ``B``: a
    count that cannot miss an eigenvalue, whatever its eigenvector (unlike a Krylov method).
    ``a`` is not modified. Cost ``d^3 / 3``.
    """
    import scipy.linalg

    m = np.array(a, dtype=np.float64, copy=True)
    m[np.diag_indices_from(m)] -= tau
    _, b, _ = scipy.linalg.ldl(m, lower=True, overwrite_a=True, check_finite=False)
    del m
    count, i, k = 0, 0, b.shape[0]
    while i < k:
        if i + 1 < k and b[i + 1, i] != 0.0:  # 2x2 block: eigenvalues from trace and det
            blk = b[i : i + 2, i : i + 2]
            count += int((np.linalg.eigvalsh(blk) > 0).sum())
            i += 2
        else:
            count += int(b[i, i] > 0)
            i += 1
    return count


def gram_matrix(g: torch.Tensor, scale: float, chunk_cols: int = 2048) -> np.ndarray:
    """``scale * G G^T`` (N x N, float64, accumulated over column chunks of the stored G).

    Its non-zero eigenvalues are those of ``D = scale * G^T G`` (the same singular values of
    G), so for N < d it certifies D's rank at ``N^2 d`` cost instead of ``N d^2``.
    """
    n = g.shape[0]
    out = torch.zeros((n, n), dtype=torch.float64)
    for j in range(0, g.shape[1], chunk_cols):
        block = g[:, j : j + chunk_cols].to(device="cpu", dtype=torch.float64)
        out.addmm_(block, block.T)
    return out.mul_(scale).numpy()


def certify_rank(
    spectrum: Spectrum,
    g: torch.Tensor,
    scale: float,
    rel: float = 1e-6,
    max_cost_ratio: float | None = 1.0,
) -> None:
    """Check the fast solver's rank with the inertia of the Gram matrix (when N < d).

    Sets ``spectrum.rank_check`` / ``rank_check_count``; raises :class:`RankCheckFailed` if the
    certified count differs from the rank and no computed eigenvalue lies within ``rel`` of
    the threshold (where float64 rounding may legitimately move it across). Runs only when
    it costs at most ``max_cost_ratio`` times the fast solver (``N^2 d + N^3/3`` against
    about ``2 N d`` flops per Krylov and refinement vector; ``None``: always when N < d); else
    ``rank_check`` stays "none" (for N >= d the check would need D itself, ``N d^2``).
    """
    n, d = g.shape
    if n >= d:
        return
    solver_cost = 2.0 * n * d * (spectrum.krylov_dim + 2 * len(spectrum.eigenvalues))
    if max_cost_ratio is not None and n * n * d + n**3 / 3 > max_cost_ratio * solver_cost:
        log.info("rank check skipped: the Gram matrix (N = %d) costs more than the solver", n)
        return
    count = inertia_above(gram_matrix(g, scale), spectrum.threshold)
    spectrum.rank_check, spectrum.rank_check_count = "gram-ldl", count
    if count != spectrum.rank:
        near = np.abs(spectrum.eigenvalues - spectrum.threshold) <= rel * spectrum.threshold
        if not near.any():
            raise RankCheckFailed(
                f"the fast solver found {spectrum.rank} eigenvalues above the threshold "
                f"{spectrum.threshold:.6g}; the inertia of the Gram matrix says {count}"
            )


# --------------------------------------------------------------------------- fast path


#: rows of G per block of the float32 operator on the CPU (13.7 MB of small-lenet's G)
SINGLE_CHUNK_ROWS = 512


class GradientOperator:
    """``v -> scale * G^T (G v)`` for centred per-example gradients ``G`` (``N x d``).

    ``G`` stays in its storage dtype (float32). ``precision="single"`` multiplies in float32
    (fast; error about eps32 * ||D||), ``"double"`` promotes each chunk of rows to float64
    before both products (float64 arithmetic on the stored values). Inputs and outputs are
    float64.
    """

    def __init__(self, g: torch.Tensor, scale: float, chunk_rows: int = 1024) -> None:
        if g.ndim != 2:
            raise ValueError(f"G must be N x d, got shape {tuple(g.shape)}")
        self.g = g
        self.scale = float(scale)
        self.chunk_rows = int(chunk_rows)
        self.passes = {"single": 0, "double": 0}

    @property
    def d(self) -> int:
        return self.g.shape[1]

    @property
    def device(self) -> torch.device:
        return self.g.device

    def __call__(self, v: torch.Tensor, precision: str = "double") -> torch.Tensor:
        self.passes[precision] += 1
        if precision == "single":
            v32 = v.to(torch.float32)
            if self.g.device.type != "cpu":
                g = self.g.to(torch.float32)
                return (g.T @ (g @ v32)).to(torch.float64).mul_(self.scale)
            # both products on each block of rows while it is in cache: G read once per pass
            # (1.2-1.4x faster than two full products for 64 columns on the 2-core machine)
            out = torch.zeros((self.d, v.shape[1]), dtype=torch.float32)
            for i in range(0, self.g.shape[0], SINGLE_CHUNK_ROWS):
                block = self.g[i : i + SINGLE_CHUNK_ROWS].to(torch.float32)
                out.addmm_(block.T, block @ v32)
            return out.to(torch.float64).mul_(self.scale)
        if precision != "double":
            raise ValueError(f"precision must be single or double, got {precision!r}")
        out = torch.zeros((self.d, v.shape[1]), dtype=torch.float64, device=self.g.device)
        for i in range(0, self.g.shape[0], self.chunk_rows):
            block = self.g[i : i + self.chunk_rows].to(torch.float64)
            out.addmm_(block.T, block @ v)
        return out.mul_(self.scale)


class NotConverged(RuntimeError):
    """The Krylov space reached its size limit before the pairs above the threshold converged."""


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run small LAPACK calls (QR of a d x b block, eigh of the m x m projection) on one thread.

    They take milliseconds on one core, but multi-threaded LAPACK slowed down 50-100x when
    the cores were shared with other processes (measured on the 2-core development machine).
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _eigh_descending(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with _one_thread():
        theta, y = torch.linalg.eigh(0.5 * (t + t.T))
    return theta.flip(0), y.flip(1)


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


@dataclass
class _Krylov:
    """Outcome of the block Lanczos phase: Ritz values/vectors and their residual norms."""

    theta: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    rank: int
    dim: int


class _Basis:
    """Krylov basis ``Q`` (d x m, float64), its image ``Z = D Q`` and the projection
    ``T = Q^T D Q``, in buffers that grow (at least doubling, up to ``max_dim``) when full."""

    def __init__(self, d: int, cap: int, max_dim: int, device: torch.device) -> None:
        self.f64 = {"dtype": torch.float64, "device": device}
        self.d, self.cap, self.max_dim, self.m = d, cap, max_dim, 0
        self.q_buf = torch.empty((d, cap), **self.f64)
        self.z_buf = torch.empty((d, cap), **self.f64)
        self.t_buf = torch.zeros((cap, cap), **self.f64)

    @property
    def q(self) -> torch.Tensor:
        return self.q_buf[:, : self.m]

    @property
    def z(self) -> torch.Tensor:
        return self.z_buf[:, : self.m]

    @property
    def t(self) -> torch.Tensor:
        return self.t_buf[: self.m, : self.m]

    def _grow(self, need: int) -> None:
        m, d, f64 = self.m, self.d, self.f64
        self.cap = cap = min(self.max_dim, max(2 * self.cap, need))
        self.q_buf = torch.cat([self.q_buf[:, :m], torch.empty((d, cap - m), **f64)], dim=1)
        self.z_buf = torch.cat([self.z_buf[:, :m], torch.empty((d, cap - m), **f64)], dim=1)
        t_new = torch.zeros((cap, cap), **f64)
        t_new[:m, :m] = self.t_buf[:m, :m]
        self.t_buf = t_new

    def append(self, qb: torch.Tensor, zb: torch.Tensor) -> None:
        """Add the block ``qb`` and its image ``zb``, and the new rows/columns of ``T``."""
        b = qb.shape[1]
        if self.m + b > self.cap:
            self._grow(self.m + b)
        self.q_buf[:, self.m : self.m + b] = qb
        self.z_buf[:, self.m : self.m + b] = zb
        self.m = m = self.m + b
        cross = self.q.T @ zb  # new columns of the projection T = Q^T D Q
        self.t_buf[:m, m - b : m] = cross
        self.t_buf[m - b : m, :m] = cross.T


def _lanczos_check(
    basis: _Basis,
    theta: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    tol: float,
    guard: int,
    keep: int,
) -> tuple[int, torch.Tensor, float, bool]:
    """Rank, residual norms, worst relative residual above the threshold, and whether the
    Krylov space is done (pairs above converged, ``guard`` below certainly below)."""
    m, q, z = basis.m, basis.q, basis.z
    threshold = rank_threshold(float(theta[0]), basis.d, eps)
    rank = int((theta > threshold).sum())
    k = min(m, rank + guard)
    n_res = min(m, rank + guard + keep + 1)
    res = (z @ y[:, :n_res] - (q @ y[:, :n_res]) * theta[:n_res]).norm(dim=0)
    th = theta[:k]
    above_ok = bool((res[:rank] <= tol * th[:rank]).all())
    below = slice(rank, k)
    below_ok = bool(
        ((th[below] + res[below] < threshold) | (res[below] <= tol * th[below].abs())).all()
    )
    worst = float((res[:rank] / th[:rank]).max()) if rank else 0.0
    done = above_ok and below_ok and k == rank + guard and m >= rank + guard + keep + 1
    return rank, res, worst, done


def _block_lanczos(
    operator: GradientOperator,
    precision: str,
    eps: float,
    block_size: int,
    tol: float,
    guard: int,
    keep: int,
    max_dim: int,
    generator: torch.Generator,
    device: torch.device,
) -> _Krylov:
    """Grow a block Krylov space until the pairs above the threshold have relative residual
    ``<= tol`` and ``guard`` Ritz values below it are certainly below (or converged)."""
    d = operator.d
    basis = _Basis(d, min(max_dim, 4 * block_size), max_dim, device)
    start = torch.randn((d, block_size), generator=generator, dtype=torch.float64).to(device)
    qb = _orthonormal_block(start, basis.q, generator)
    while True:
        zb = operator(qb, precision)
        basis.append(qb, zb)
        m, q = basis.m, basis.q
        theta, y = _eigh_descending(basis.t)
        rank, res, worst, done = _lanczos_check(basis, theta, y, eps, tol, guard, keep)
        log.info(
            "block Lanczos (%s): dim %d, lambda_max %.6g, rank %d, worst relative residual %.2e",
            precision,
            m,
            float(theta[0]),
            rank,
            worst,
        )
        if done:
            n_keep = min(m, rank + guard + keep)
            return _Krylov(theta, q @ y[:, :n_keep], res, rank, m)
        if m + block_size > max_dim:
            raise NotConverged(
                f"block Lanczos reached its size limit {max_dim} (rank so far {rank}, worst "
                f"relative residual {worst:.2e} > {tol:g}); raise diffusion.lanczos.max_dim "
                "or set diffusion.solver: dense"
            )
        qb = _orthonormal_block(zb, q, generator)


@dataclass
class _RitzStep:
    """One float64 Rayleigh-Ritz step on a block: Ritz pairs, residuals and the error bound."""

    v: torch.Tensor
    z: torch.Tensor
    theta: torch.Tensor
    res: torch.Tensor
    rank: int
    worst: float
    below_ok: bool
    #: per-pair relative error bound ``min(r, r^2 / gap) / theta``
    bound: torch.Tensor | None = None
    threshold: float = 0.0


def _ritz_pairs(
    v: torch.Tensor,
    z: torch.Tensor,
    n_keep: int,
    eps: float,
    theta_out: float,
    guard: int,
    eig_tol: float,
) -> _RitzStep:
    """Rayleigh-Ritz of D on the orthonormal float64 basis ``v`` with its image ``z = D v``:
    the ``n_keep`` leading Ritz pairs, their residuals, and each Ritz value's relative error
    bound ``min(r, r^2 / (theta - theta_out)) / theta``."""
    theta, w = _eigh_descending(v.T @ z)
    theta, w = theta[:n_keep], w[:, :n_keep]
    v, z = v @ w, z @ w
    res = (z - v * theta).norm(dim=0)
    threshold = rank_threshold(float(theta[0]), v.shape[0], eps)
    rank = int((theta > threshold).sum())
    gap = (theta - theta_out).clamp_min(torch.finfo(torch.float64).tiny)
    bound = torch.minimum(res, res**2 / gap) / theta.abs().clamp_min(
        torch.finfo(torch.float64).tiny
    )
    k = min(v.shape[1], rank + guard)
    below = slice(rank, k)
    below_ok = bool(((theta[below] + res[below] < threshold) | (bound[below] <= eig_tol)).all())
    worst = float(bound[:rank].max()) if rank else 0.0
    return _RitzStep(v, z, theta, res, rank, worst, below_ok, bound, threshold)


def _rayleigh_ritz(
    operator: GradientOperator,
    v: torch.Tensor,
    eps: float,
    theta_out: float,
    guard: int,
    eig_tol: float,
) -> _RitzStep:
    """Orthonormalise ``v``, apply ``D`` to it in float64 (one pass over the gradients) and
    take the Ritz pairs (:func:`_ritz_pairs`)."""
    with _one_thread():
        v, _ = torch.linalg.qr(v)
    z = operator(v, "double")
    return _ritz_pairs(v, z, v.shape[1], eps, theta_out, guard, eig_tol)


def _unconverged(step: _RitzStep, guard: int, eig_tol: float) -> torch.Tensor:
    """Indices of the pairs that stop the refinement: above the threshold with error bound
    ``> eig_tol``, or among the ``guard`` below it neither converged nor certainly below."""
    k = min(step.v.shape[1], step.rank + guard)
    bad = step.bound[:k] > eig_tol
    below = step.theta[step.rank : k] + step.res[step.rank : k] < step.threshold
    bad[step.rank : k] &= ~below
    return torch.nonzero(bad).flatten()


def _augment(
    operator: GradientOperator,
    step: _RitzStep,
    sel: torch.Tensor,
    generator: torch.Generator,
    n_keep: int,
    eps: float,
    theta_out: float,
    guard: int,
    eig_tol: float,
) -> _RitzStep:
    """Residual-augmented Rayleigh-Ritz: the residuals ``D y_j - theta_j y_j`` of the pairs
    ``sel`` are orthonormalised against the Ritz vectors, ``D`` is applied to them alone
    (float64, one pass over the gradients for ``len(sel)`` vectors), and Rayleigh-Ritz is
    taken on the union (``span{Y, D Y_sel}``: a block Krylov step for the pairs that need
    it), keeping the ``n_keep`` leading pairs."""
    r = step.z[:, sel] - step.v[:, sel] * step.theta[sel]
    q = _orthonormal_block(r, step.v, generator)
    zq = operator(q, "double")
    v = torch.cat([step.v, q], dim=1)
    z = torch.cat([step.z, zq], dim=1)
    return _ritz_pairs(v, z, n_keep, eps, theta_out, guard, eig_tol)


def _refine(
    operator: GradientOperator,
    kry: _Krylov,
    eps: float,
    guard: int,
    eig_tol: float,
    max_refine: int,
    generator: torch.Generator | None = None,
) -> _RitzStep:
    """Float64 Rayleigh-Ritz on the kept Ritz vectors, then residual-augmented Rayleigh-Ritz
    steps (:func:`_augment`, each applying D only to the residuals of the pairs not yet
    converged) until every pair above the threshold has relative error bound ``<= eig_tol``
    and the ``guard`` pairs below it are converged or certainly below it."""
    n_keep = kry.vectors.shape[1]
    generator = generator or torch.Generator().manual_seed(0)
    # upper estimate of the spectrum left out of the block: the next Ritz value + its residual
    theta_out = 0.0
    if n_keep < kry.dim:
        theta_out = float(kry.theta[n_keep]) + float(kry.residuals[n_keep])
    step = _rayleigh_ritz(operator, kry.vectors, eps, theta_out, guard, eig_tol)
    for it in range(max_refine + 1):
        rank, worst = step.rank, step.worst
        sel = _unconverged(step, guard, eig_tol)
        log.info(
            "float64 Rayleigh-Ritz %d: rank %d of %d kept, worst relative error bound %.2e, "
            "%d pairs to refine",
            it,
            rank,
            n_keep,
            worst,
            len(sel),
        )
        if worst <= eig_tol and step.below_ok and rank + guard <= n_keep:
            return step
        if it == max_refine or len(sel) == 0:  # none to refine: rank + guard > n_keep
            raise NotConverged(
                f"float64 refinement did not reach relative error {eig_tol:g} "
                f"(worst bound {worst:.2e}, rank {rank}, {n_keep} vectors kept)"
            )
        step = _augment(operator, step, sel, generator, n_keep, eps, theta_out, guard, eig_tol)
    raise AssertionError("unreachable")


def fast_spectrum(
    operator: GradientOperator,
    eps: EpsName | float = "float32",
    block_size: int = 64,
    krylov_tol: float = 1e-3,
    eig_tol: float = 1e-7,
    guard: int = 4,
    extra: int = 32,
    max_dim: int | None = None,
    max_refine: int = 5,
    seed: int = 0,
) -> Spectrum:
    """Eigenvalues of ``D = scale * G^T G`` above ``lambda_max * d * eps``, without forming D.

    1. Block Lanczos with full reorthogonalisation (float64 basis) on the operator applied in
       float32 (when ``eps`` is float32's, the threshold sits ``d`` times above float32's
       resolution of D, so float32 products resolve every eigenvalue above it), until every
       Ritz pair above the threshold has relative residual ``<= krylov_tol`` and ``guard`` Ritz
       values below it are certainly below it.
    2. Rayleigh-Ritz in float64 on the ``rank + guard + extra`` leading Ritz vectors, with the
       residuals ``r_j = ||D y_j - theta_j y_j||`` in float64; then residual-augmented
       Rayleigh-Ritz steps (D applied in float64 to the residuals of the unconverged pairs
       only, Rayleigh-Ritz on the union, the leading pairs kept) until the eigenvalue error
       bound ``r_j^2 / (theta_j - theta_out)`` is at most ``eig_tol * theta_j`` for every
       pair above the threshold (``theta_out``: the largest Ritz value left out, plus its
       residual).

    Returns a :class:`Spectrum` holding the ``rank + guard + extra`` leading eigenvalues
    (``complete=False``), with the residual and error bound of the worst pair. ``operator``:
    a :class:`GradientOperator` or any object with ``d``, ``device``, ``passes`` and
    ``__call__(v, precision)`` (:class:`sgdvi.diffusion.matrix_free.MatrixFreeOperator`).
    """
    epsv = eps_value(eps)
    d = operator.d
    device = operator.device
    max_dim = min(d, max_dim or 4096)
    block_size = max(1, min(block_size, d))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # float32 products cannot resolve a threshold below float32's precision
    precision = "single" if epsv >= EPS["float32"] else "double"
    kry = _block_lanczos(
        operator, precision, epsv, block_size, krylov_tol, guard, extra, max_dim, gen, device
    )
    step = _refine(operator, kry, epsv, guard, eig_tol, max_refine, gen)
    theta, res, rank = step.theta, step.res, step.rank
    spectrum = Spectrum(theta.cpu().numpy(), d=d, eps=epsv, solver="fast", complete=False)
    spectrum.max_rel_residual = float((res[:rank] / theta[:rank]).max()) if rank else 0.0
    spectrum.max_rel_error_bound = step.worst
    spectrum.krylov_dim = kry.dim
    spectrum.operator_passes = operator.passes["single"] + operator.passes["double"]
    return spectrum


def choose_solver(
    solver: str, d: int, dense_max_d: int, eps: EpsName | float = "float32", n: int | None = None
) -> str:
    """``auto``: ``gram`` for few examples (N < d, N <= 4000), ``dense`` when
    ``d <= dense_max_d`` or the threshold uses float64's eps (the rank is then most of d, so
    Lanczos saves nothing), else ``fast``
    (:func:`sgdvi.diffusion.memory.planned_solver`, which the workflow uses without torch)."""
    from sgdvi.diffusion.memory import planned_solver

    return planned_solver(solver, d, dense_max_d, eps, n)


def gram_spectrum(g: torch.Tensor, scale: float, eps: EpsName | float = "float32") -> Spectrum:
    """All d eigenvalues of ``D = scale G^T G`` from the N x N Gram ``scale G G^T`` (N < d).

    The non-zero eigenvalues of ``G^T G`` and ``G G^T`` are the same (squared singular values
    of G); the other ``d - N`` are zero. Float64 Gram from the float32 G (exact products),
    dense symmetric eigensolver: a complete spectrum at ``N^2 d + N^3`` cost.
    """
    import scipy.linalg

    n, d = g.shape
    if n > d:
        raise ValueError(f"the Gram path needs N <= d, got N={n}, d={d}")
    k = gram_matrix(g, scale)
    w = scipy.linalg.eigh(k, eigvals_only=True, overwrite_a=True, check_finite=False)
    full = np.concatenate([w, np.zeros(d - n)])
    sp = Spectrum(full, d=d, eps=eps_value(eps), solver="gram", complete=True)
    sp.rank_check, sp.rank_check_count = "dense", sp.rank  # every eigenvalue was computed
    return sp


# --------------------------------------------------------------------------- top-k path


def _top_k_check(
    basis: _Basis, theta: torch.Tensor, y: torch.Tensor, k: int, eps: float, tol: float, keep: int
) -> tuple[torch.Tensor, float, bool]:
    """Residual norms of the ``k + keep + 1`` leading Ritz pairs, the worst relative residual
    of the ``k`` leading ones, and whether they are converged (``res <= tol * theta``, or
    certainly below the rank threshold: ``theta + res < threshold``)."""
    m = basis.m
    n_res = min(m, k + keep + 1)
    res = (basis.z @ y[:, :n_res] - (basis.q @ y[:, :n_res]) * theta[:n_res]).norm(dim=0)
    threshold = rank_threshold(float(theta[0]), basis.d, eps)
    th, r = theta[: min(k, m)], res[: min(k, m)]
    ok = (r <= tol * th.abs()) | (th + r < threshold)
    worst = float((r / th.abs().clamp_min(torch.finfo(torch.float64).tiny)).max())
    return res, worst, bool(ok.all()) and m >= min(basis.d, k + keep + 1)


def _top_k_lanczos(operator, precision, k, eps, block_size, tol, keep, max_dim, gen, device):
    """Block Lanczos (full reorthogonalisation) until the ``k`` leading Ritz pairs converge."""
    d = operator.d
    basis = _Basis(d, min(max_dim, 4 * block_size), max_dim, device)
    start = torch.randn((d, block_size), generator=gen, dtype=torch.float64).to(device)
    qb = _orthonormal_block(start, basis.q, gen)
    while True:
        zb = operator(qb, precision)
        basis.append(qb, zb)
        theta, y = _eigh_descending(basis.t)
        res, worst, done = _top_k_check(basis, theta, y, k, eps, tol, keep)
        log.info("top-%d Lanczos (%s): dim %d, worst relative residual %.2e", k, precision,
                 basis.m, worst)  # fmt: skip
        if done:
            n_keep = min(basis.m, k + keep)
            return _Krylov(theta, basis.q @ y[:, :n_keep], res, k, basis.m)
        if basis.m + block_size > max_dim:
            raise NotConverged(
                f"top-{k} block Lanczos reached its size limit {max_dim} (worst relative "
                f"residual {worst:.2e} > {tol:g}); raise the memory budget or lower k"
            )
        qb = _orthonormal_block(zb, basis.q, gen)


def top_k_spectrum(
    operator: GradientOperator,
    k: int,
    eps: EpsName | float = "float32",
    block_size: int = 16,
    krylov_tol: float = 1e-3,
    eig_tol: float = 1e-7,
    extra: int = 32,
    max_dim: int | None = None,
    max_refine: int = 20,
    seed: int = 0,
    guard: int = 4,
) -> Spectrum:
    """The ``k`` largest eigenvalues of D (not all those above the threshold): block Lanczos
    on the operator (float32 products when ``eps`` is float32's) until the ``k`` leading Ritz
    pairs have relative residual ``<= krylov_tol``, then float64 Rayleigh-Ritz on the
    ``k + extra`` leading Ritz vectors and residual-augmented steps (as :func:`fast_spectrum`)
    until each of the ``k`` has relative error bound ``min(r, r^2 / gap) / theta <= eig_tol``
    (or lies certainly below the rank threshold); each refinement step also pushes the
    ``guard`` pairs after the k-th. Memory: the Krylov basis, ``~ 6 x 8 d m``
    bytes for Krylov dimension m (a few times k), whatever the rank.

    Returns a :class:`Spectrum` (``solver="top-k"``, ``complete=False``) of the ``k + extra``
    leading Ritz values; its ``rank`` counts only those, a lower bound of D's rank.
    """
    epsv = eps_value(eps)
    d = operator.d
    k = max(1, min(int(k), d))
    max_dim = min(d, max_dim or 4096)
    block_size = max(1, min(block_size, d))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    precision = "single" if epsv >= EPS["float32"] else "double"
    args = (k, epsv, block_size, krylov_tol, extra, max_dim, gen, operator.device)
    kry = _top_k_lanczos(operator, precision, *args)
    n_keep = kry.vectors.shape[1]
    theta_out = 0.0
    if n_keep < kry.dim:
        theta_out = float(kry.theta[n_keep]) + float(kry.residuals[n_keep])
    step = _rayleigh_ritz(operator, kry.vectors, epsv, theta_out, 0, eig_tol)
    for _ in range(max_refine):
        top = slice(0, min(k, n_keep))
        bad = (step.bound[top] > eig_tol) & (step.theta[top] + step.res[top] >= step.threshold)
        if not bool(bad.any()):
            break
        # with the unconverged pairs, the guard pairs after the k-th: the k-th converges at
        # the rate of its gap to the (k+1)-th unless that one converges with it
        sel = torch.cat([torch.nonzero(bad).flatten(), torch.arange(k, min(k + guard, n_keep))])
        step = _augment(operator, step, sel, gen, n_keep, epsv, theta_out, 0, eig_tol)
    top = slice(0, min(k, n_keep))
    above = step.theta[top] > step.threshold
    if bool((step.bound[top][above] > eig_tol).any()):
        raise NotConverged(f"top-{k} refinement did not reach relative error {eig_tol:g}")
    sp = Spectrum(step.theta.cpu().numpy(), d=d, eps=epsv, solver="top-k", complete=False)
    sp.max_rel_error_bound = float(step.bound[top][above].max()) if bool(above.any()) else 0.0
    sp.max_rel_residual = float((step.res[top] / step.theta[top].abs()).max())
    sp.krylov_dim = kry.dim
    sp.operator_passes = operator.passes["single"] + operator.passes["double"]
    return sp


def certify_rank_gram(spectrum: Spectrum, gram: np.ndarray, rel: float = 1e-6) -> None:
    """:func:`certify_rank` from an already formed ``N x N`` Gram matrix ``scale G G^T`` of
    the centred gradients (e.g. :func:`sgdvi.diffusion.matrix_free.gram_tiles`): the count of
    its eigenvalues above the threshold by Sylvester inertia, compared with the solver's
    rank; raises :class:`RankCheckFailed` on a disagreement not explained by an eigenvalue
    within ``rel`` of the threshold."""
    count = inertia_above(gram, spectrum.threshold)
    spectrum.rank_check, spectrum.rank_check_count = "gram-ldl", count
    if count != spectrum.rank:
        near = np.abs(spectrum.eigenvalues - spectrum.threshold) <= rel * spectrum.threshold
        if not near.any():
            raise RankCheckFailed(
                f"the solver found {spectrum.rank} eigenvalues above the threshold "
                f"{spectrum.threshold:.6g}; the inertia of the Gram matrix says {count}"
            )
