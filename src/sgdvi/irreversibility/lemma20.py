"""Lemma 20 on data: fit the linear SDE (15) to a sampled path and recover ``Q``.

Chaudhari & Soatto (2018), eq. (15): ``dx = -F x dt + sqrt(2 beta^-1 D) dW`` near a critical
point, and Lemma 20: ``F = (D + Q) U`` with ``Q`` antisymmetric. ``Q = 0`` is detailed balance;
``||Q|| / ||D||`` measures how far from it the linearised dynamics are (it does not depend on
``beta``: scaling ``D`` scales ``Q``). From a path ``x_k = x(k dt)``:

1. least squares of ``x_{k+1}`` on ``x_k`` (increments on positions): ``x_{k+1} = A x_k + e_k``,
   ``F_hat = -log(A) / dt`` (the exact OU relation ``A = e^{-F dt}``; ``(I - A) / dt`` to first
   order);
2. ``D_hat`` from the residual covariance ``C = int_0^dt e^{-F s} 2 D e^{-F^T s} ds`` solved for
   ``D`` in the eigenbasis of ``F_hat`` (``C / (2 dt)`` to first order), beta = 1;
3. ``Q_hat`` from the theory stage's Sylvester solver :func:`sgdvi.theory.linearization.decompose`.

A block bootstrap (resampling contiguous blocks of transition pairs) gives the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from sgdvi.theory import linearization as lz


@dataclass(frozen=True)
class LinearFit:
    """``F_hat``, ``D_hat`` (beta = 1) and Lemma 20's ``Q_hat``, ``U_hat`` (NaN if undefined)."""

    F: np.ndarray
    D: np.ndarray
    Q: np.ndarray
    U: np.ndarray

    @property
    def ratio(self) -> float:
        """``||Q_hat||_F / ||D_hat||_F``."""
        return float(np.linalg.norm(self.Q) / np.linalg.norm(self.D))


def _drift_from_transition(A: np.ndarray, dt: float) -> np.ndarray:
    """``F = -log(A) / dt`` (real principal logarithm), or ``(I - A) / dt`` when ``A`` has an
    eigenvalue on the closed negative real axis (no real logarithm)."""
    mu = np.linalg.eigvals(A)
    if np.any((np.abs(mu.imag) < 1e-12) & (mu.real <= 0)):
        return (np.eye(len(A)) - A) / dt
    return np.real(linalg.logm(A)) / -dt


def _diffusion_from_residuals(F: np.ndarray, C: np.ndarray, dt: float) -> np.ndarray:
    """Solve ``C = int_0^dt e^{-F s} 2 D e^{-F^T s} ds`` for ``D``: in the eigenbasis
    ``F = V M V^-1`` the integral multiplies entry (i, j) by ``(1 - e^{-(mu_i + conj mu_j) dt})
    / (mu_i + conj mu_j)``."""
    mu, V = np.linalg.eig(F)
    Vi = np.linalg.inv(V)
    Ct = Vi @ C @ Vi.conj().T
    s = mu[:, None] + mu.conj()[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(np.abs(s * dt) > 1e-12, (1.0 - np.exp(-s * dt)) / s, dt)
    D = np.real(V @ (Ct / (2.0 * k)) @ V.conj().T)
    return (D + D.T) / 2.0


def fit_linear_sde(x: np.ndarray, dt: float = 1.0) -> LinearFit:
    """Fit (15) to the path ``x`` (n, m) and decompose ``F_hat`` by Lemma 20 (beta = 1).

    The path is centred first. ``Q``/``U`` are NaN when Lemma 20's decomposition does not exist
    for the fitted ``F_hat`` (two eigenvalues summing to zero, or ``D_hat`` not positive
    semi-definite)."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    return _fit_pairs(x[:-1], x[1:], dt)  # x_{k+1} = x_k B: A = B^T


def _decompose(F: np.ndarray, D: np.ndarray) -> LinearFit:
    nan = np.full_like(F, np.nan)
    try:
        dec = lz.decompose(F, D)
    except (lz.DecompositionError, ValueError):
        return LinearFit(F, D, nan, nan)
    return LinearFit(F, D, dec.Q, dec.U)


@dataclass(frozen=True)
class BootstrapRatio:
    """``||Q_hat|| / ||D_hat||`` with a block-bootstrap percentile interval."""

    ratio: float
    low: float
    high: float
    n_valid: int  # bootstrap replicates where the decomposition existed
    q_se: np.ndarray  # bootstrap standard deviation of each entry of Q_hat


def bootstrap_ratio(
    x: np.ndarray,
    dt: float,
    n_boot: int,
    n_blocks: int,
    seed: int,
    level: float = 0.95,
) -> BootstrapRatio:
    """Block bootstrap of ``||Q_hat|| / ||D_hat||``: the transition pairs ``(x_k, x_{k+1})`` are
    cut into ``n_blocks`` contiguous blocks, resampled with replacement, and refitted
    (least squares on the pooled pairs; centred by the full-path mean).

    A resample's least squares only needs the pooled moments ``X0^T X0``, ``X0^T dX`` and
    ``dX^T dX`` (``dX = X1 - X0``), which are sums of per-block moments weighted by how often
    each block was drawn: the same fit as ``lstsq`` on the gathered pairs (up to rounding;
    :func:`_fit_pairs` is used where a resample's ``X0^T X0`` is singular)."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    fit = fit_linear_sde(x, dt)
    bounds = np.linspace(0, len(x) - 1, n_blocks + 1).astype(int)
    mom = _block_moments(x, bounds)
    rng = np.random.default_rng(seed)
    ratios, qs = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, n_blocks, n_blocks)
        f = _fit_resample(x, bounds, mom, pick, dt)
        if np.isfinite(f.ratio):
            ratios.append(f.ratio)
            qs.append(f.Q)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratios, [a, 1.0 - a]) if ratios else (np.nan, np.nan)
    q_se = np.std(qs, axis=0, ddof=1) if len(qs) > 1 else np.full_like(fit.F, np.nan)
    return BootstrapRatio(fit.ratio, float(lo), float(hi), len(ratios), q_se)


def _block_moments(x: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per block of transition pairs ``k in [bounds[b], bounds[b+1])``: ``X0^T X0``,
    ``X0^T dX``, ``dX^T dX`` (each ``(B, m, m)``) and the pair counts."""
    dx = np.diff(x, axis=0)
    sl = [slice(s, e) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    g = np.array([x[s].T @ x[s] for s in sl])
    h = np.array([x[s].T @ dx[s] for s in sl])
    k = np.array([dx[s].T @ dx[s] for s in sl])
    return g, h, k, np.diff(bounds)


def _fit_resample(
    x: np.ndarray, bounds: np.ndarray, mom: tuple[np.ndarray, ...], pick: np.ndarray, dt: float
) -> LinearFit:
    """Least squares of ``x_{k+1}`` on ``x_k`` over the pairs of the blocks ``pick`` (with
    repeats), from the block moments: ``B = I + G^-1 H``, residual ``dX^T dX - H^T G^-1 H``."""
    g, h, k, counts = mom
    c = np.bincount(pick, minlength=len(counts)).astype(float)
    G, H, K = (np.tensordot(c, a, axes=1) for a in (g, h, k))
    try:
        Bd, _, rank, _ = np.linalg.lstsq(G, H, rcond=None)
        if rank == len(G):
            res = K - H.T @ Bd
            C = (res + res.T) / 2.0 / max(1, int(c @ counts) - len(G))
            F = _drift_from_transition(np.eye(len(G)) + Bd.T, dt)
            return _decompose(F, _diffusion_from_residuals(F, C, dt))
    except (np.linalg.LinAlgError, ValueError):
        pass
    # singular X0^T X0 or a failed step: exactly what lstsq on the gathered pairs gives
    idx = np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in pick])
    return _fit_pairs(x[idx], x[idx + 1], dt)


def _fit_pairs(X0: np.ndarray, X1: np.ndarray, dt: float) -> LinearFit:
    try:
        return _fit_pairs_unchecked(X0, X1, dt)
    except (np.linalg.LinAlgError, ValueError):  # degenerate resample: no fit
        nan = np.full((X0.shape[1],) * 2, np.nan)
        return LinearFit(nan, nan, nan, nan)


def _fit_pairs_unchecked(X0: np.ndarray, X1: np.ndarray, dt: float) -> LinearFit:
    B, *_ = np.linalg.lstsq(X0, X1, rcond=None)
    res = X1 - X0 @ B
    C = res.T @ res / max(1, len(res) - X0.shape[1])
    F = _drift_from_transition(B.T, dt)
    return _decompose(F, _diffusion_from_residuals(F, C, dt))


def ou_q(F: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The true ``Q`` of an OU process (Lemma 20 on the exact ``F``, ``D``)."""
    return lz.decompose(F, D).Q
