"""Lemma 20: decomposition of a linear drift ``F = (D + Q) U`` near a critical point.

Near a critical point (minimum, maximum or saddle) the dynamics (15) are
``dx = -F x dt + sqrt(2 beta^-1 D) dW``. Lemma 20: ``F = (D + Q) U`` with ``D`` the (symmetric,
positive semi-definite) diffusion matrix, ``Q`` antisymmetric and ``U`` symmetric, so that the
potential is ``Phi(x) = x^T U x / 2``. With ``G = D + Q``, ``U = G^{-1} F`` is symmetric iff
``G F^T = F G^T``, i.e. (using ``G^T = D - Q``)

    F Q + Q F^T = F D - D F^T,

a Sylvester equation for ``Q``. It has a unique solution iff no two eigenvalues of ``F`` sum to
zero (``mu_i + mu_j != 0`` for all ``i, j``; in particular ``F`` is non-singular); the solution is
then automatically antisymmetric (``-Q^T`` solves the same equation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg


class DecompositionError(ValueError):
    """Lemma 20's decomposition does not exist or is not unique for this ``F``, ``D``."""


@dataclass(frozen=True)
class Decomposition:
    Q: np.ndarray  # antisymmetric
    U: np.ndarray  # symmetric
    min_eig_sum: float  # min |mu_i + mu_j| over the eigenvalues of F (uniqueness margin)


def decompose(F: np.ndarray, D: np.ndarray, *, rtol: float = 1e-9) -> Decomposition:
    """Return ``Q`` (antisymmetric) and ``U`` (symmetric) with ``F = (D + Q) U`` (Lemma 20).

    Raises :class:`DecompositionError` when two eigenvalues of ``F`` sum to zero (the Sylvester
    equation is singular: ``Q`` is not unique) or when ``D + Q`` is singular (possible only for
    a rank-deficient ``D``).
    """
    F = np.asarray(F, dtype=float)
    D = np.asarray(D, dtype=float)
    d = F.shape[0]
    if F.shape != (d, d) or D.shape != (d, d):
        raise ValueError(
            f"decompose: F and D must be square of the same size, got {F.shape}, {D.shape}"
        )
    scale = max(np.linalg.norm(F, 2), np.linalg.norm(D, 2), np.finfo(float).tiny)
    if np.linalg.norm(D - D.T) > rtol * scale:
        raise ValueError("decompose: D must be symmetric; pass (D + D.T) / 2")
    if np.linalg.eigvalsh(D).min() < -rtol * scale:
        raise ValueError("decompose: D must be positive semi-definite")
    mu = np.linalg.eigvals(F)
    sums = np.abs(mu[:, None] + mu[None, :])
    margin = float(sums.min())
    if margin <= rtol * np.linalg.norm(F, 2):
        i, j = np.unravel_index(np.argmin(sums), sums.shape)
        raise DecompositionError(
            f"Lemma 20: eigenvalues {mu[i]:.6g} and {mu[j]:.6g} of F sum to zero "
            f"(|sum| = {margin:.2e}), so F Q + Q F^T = F D - D F^T has no unique solution; "
            "the decomposition F = (D + Q) U is not unique at this critical point "
            "(for 2x2 F this happens whenever trace(F) = 0)"
        )
    Q = linalg.solve_sylvester(F, F.T, F @ D - D @ F.T)
    Q = (Q - Q.T) / 2.0  # exact antisymmetry (the solution is antisymmetric up to round-off)
    G = D + Q
    if np.linalg.cond(G) > 1.0 / (rtol * 1e-3):
        raise DecompositionError(
            "Lemma 20: D + Q is singular (D is rank-deficient along a direction Q does not "
            "rotate), so U = (D + Q)^{-1} F is undefined"
        )
    U = np.linalg.solve(G, F)
    U = (U + U.T) / 2.0
    return Decomposition(Q=Q, U=U, min_eig_sum=margin)


def random_spd(d: int, rng: np.random.Generator, *, min_eig: float = 0.5) -> np.ndarray:
    """Random symmetric positive-definite matrix with eigenvalues in ``[min_eig, min_eig + 2]``."""
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (V * (min_eig + 2.0 * rng.random(d))) @ V.T


def random_symmetric_indefinite(d: int, rng: np.random.Generator) -> np.ndarray:
    """Random symmetric matrix with both signs among its eigenvalues (a saddle's Hessian)."""
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    ev = 0.5 + 2.0 * rng.random(d)
    ev[: max(1, d // 2)] *= -1.0
    return (V * ev) @ V.T


def random_psd(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    """Random symmetric positive semi-definite matrix ``A A^T / d`` of the given rank."""
    A = rng.standard_normal((d, rank or d))
    return A @ A.T / d


def random_antisymmetric(d: int, rng: np.random.Generator) -> np.ndarray:
    A = rng.standard_normal((d, d))
    return (A - A.T) / 2.0


def stationary_covariance(F: np.ndarray, D: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Stationary covariance of ``dx = -F x dt + sqrt(2 beta^-1 D) dW``: the Lyapunov equation
    ``F S + S F^T = 2 beta^-1 D`` (needs every eigenvalue of ``F`` with positive real part)."""
    if np.linalg.eigvals(F).real.min() <= 0:
        raise ValueError("stationary_covariance: F must be stable (eigenvalues with Re > 0)")
    return linalg.solve_continuous_lyapunov(F, 2.0 / beta * D)


def ou_transition(
    F: np.ndarray, D: np.ndarray, beta: float, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-step law of the OU process: ``x' = A x + N(0, C)`` with ``A = e^{-F dt}`` and
    ``C = int_0^dt e^{-F s} 2 beta^-1 D e^{-F^T s} ds`` (Van Loan's block exponential; does not
    use the Lyapunov solution, so the simulation is an independent check of it)."""
    d = F.shape[0]
    M = np.zeros((2 * d, 2 * d))
    M[:d, :d] = -F
    M[:d, d:] = 2.0 / beta * D
    M[d:, d:] = F.T
    E = linalg.expm(M * dt)
    A = E[:d, :d]
    C = E[:d, d:] @ A.T
    return A, (C + C.T) / 2.0


def simulate_ou_covariance(
    F: np.ndarray, D: np.ndarray, beta: float, *, particles: int, t_end: float, dt: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample covariance of ``particles`` independent OU paths at time ``t_end`` (started at 0,
    exact transitions) and its standard error ``sqrt((S_ii S_jj + S_ij^2) / n)``."""
    rng = np.random.default_rng(seed)
    A, C = ou_transition(F, D, beta, dt)
    w, V = np.linalg.eigh(C)
    root = V * np.sqrt(np.clip(w, 0.0, None))
    d = F.shape[0]
    x = np.zeros((particles, d))
    for _ in range(int(round(t_end / dt))):
        x = x @ A.T + rng.standard_normal((particles, d)) @ root.T
    S = np.cov(x, rowvar=False)
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / particles)
    return S, se
