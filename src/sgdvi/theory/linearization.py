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

The checks as rows of ``results/tables/theory.parquet``: :func:`run_linearization` (random
instances, Lemma 6, the OU covariance) and :func:`example19_lemma20_rows` (Example 19).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, stats

from sgdvi.theory import checks
from sgdvi.theory import double_well as dw


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


# ------------------------------------------------ rows of results/tables/theory.parquet
def run_linearization(
    dim: int,
    seed: int,
    *,
    beta: float = 1.0,
    particles: int = 20000,
    dt: float = 0.05,
    tol: float = 1e-10,
) -> tuple[dict[str, Any], list]:
    """Lemma 20 on random instances (minimum and saddle), the isotropic case (Lemma 6) and the
    OU stationary covariance; returns arrays for the figure and the rows.

    One random stream (``seed``) feeds the three parts in this order.
    """
    rng = np.random.default_rng(seed)
    out, rows = _lemma20_random_rows(dim, rng, tol)
    rows += _lemma6_rows(dim, rng, tol)
    cov, cov_rows = _ou_covariance_rows(dim, rng, seed, beta, particles, dt, tol)
    out.update(cov)
    return out, rows + cov_rows


def _lemma20_random_rows(
    dim: int, rng: np.random.Generator, tol: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Lemma 20: recover U and Q from F = (D + Q) U and D, for a random minimum (U positive
    definite) and a saddle (U indefinite), with full-rank and rank-deficient D."""
    out: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for key, make_u in (("pd", random_spd), ("saddle", random_symmetric_indefinite)):
        U, D, Q = make_u(dim, rng), random_psd(dim, rng), random_antisymmetric(dim, rng)
        dec = decompose((D + Q) @ U, D)
        eu, eq = np.abs(dec.U - U).max(), np.abs(dec.Q - Q).max()
        out.update(
            {f"{key}_U_true": U, f"{key}_U_rec": dec.U, f"{key}_Q_true": Q, f"{key}_Q_rec": dec.Q}
        )
        what = "positive definite U (minimum)" if key == "pd" else "indefinite U (saddle)"
        for name, err in (("U", eu), ("Q", eq)):
            rows.append(
                checks.row(
                    "lemma20",
                    f"max_abs_error_{name}_{key}",
                    err,
                    tolerance=tol,
                    passed=err <= tol,
                    setting=f"d={dim}, {what}, random PSD D",
                )
            )
        Dr = random_psd(dim, rng, rank=max(1, dim // 2))
        dec = decompose((Dr + Q) @ U, Dr)
        err = max(np.abs(dec.U - U).max(), np.abs(dec.Q - Q).max())
        rows.append(
            checks.row(
                "lemma20",
                f"max_abs_error_UQ_{key}_rank_deficient_D",
                err,
                tolerance=tol,
                passed=err <= tol,
                setting=f"d={dim}, {what}, D of rank {max(1, dim // 2)}",
            )
        )
    return out, rows


def _lemma6_rows(dim: int, rng: np.random.Generator, tol: float) -> list[dict[str, Any]]:
    """Lemma 6: with isotropic D = c I, Q = 0 and U = F / c for a symmetric F."""
    c = 0.7
    S = random_symmetric_indefinite(dim, rng)
    dec = decompose(S, c * np.eye(dim))
    eq, eu = np.abs(dec.Q).max(), np.abs(dec.U - S / c).max()
    setting = f"Lemma 6: D = {c} I, symmetric indefinite F"
    return [
        checks.row(
            "lemma20", "isotropic_max_abs_Q", eq, tolerance=tol, passed=eq <= tol, setting=setting
        ),
        checks.row(
            "lemma20",
            "isotropic_max_abs_U_minus_F_over_c",
            eu,
            tolerance=tol,
            passed=eu <= tol,
            setting=setting,
        ),
    ]


def _ou_covariance_rows(
    dim: int,
    rng: np.random.Generator,
    seed: int,
    beta: float,
    particles: int,
    dt: float,
    tol: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The OU process dx = -F x dt + sqrt(2 beta^-1 D) dW with F = (D + Q) U has stationary
    covariance beta^-1 U^-1: by the Lyapunov equation and by simulating ``particles`` paths."""
    U, D, Q = random_spd(dim, rng), random_psd(dim, rng), random_antisymmetric(dim, rng)
    D = D + 0.2 * np.eye(dim)
    F = (D + Q) @ U
    sigma = stationary_covariance(F, D, beta)
    theory = np.linalg.inv(U) / beta
    e_lyap = np.abs(sigma - theory).max()
    t_end = 12.0 / np.linalg.eigvals(F).real.min()
    S_sim, se = simulate_ou_covariance(
        F, D, beta, particles=particles, t_end=t_end, dt=dt, seed=seed + 1
    )
    z = float(np.abs((S_sim - theory) / se).max())
    n_free = dim * (dim + 1) // 2
    z_tol = float(stats.norm.isf(0.005 / n_free))  # Bonferroni, 1% family-wise
    rows = [
        checks.row(
            "lemma20",
            "lyapunov_vs_inv_beta_inv_U",
            e_lyap,
            tolerance=tol,
            passed=e_lyap <= tol,
            setting=f"d={dim}, beta={beta:g}: F S + S F^T = 2 beta^-1 D vs beta^-1 U^-1",
        ),
        checks.row(
            "lemma20",
            "simulation_max_z_score",
            z,
            tolerance=z_tol,
            passed=z <= z_tol,
            setting=f"{particles} exact-transition OU paths to t={t_end:.1f}; "
            "max over entries of |S_sim - beta^-1 U^-1| / s.e., 1% Bonferroni bound",
        ),
    ]
    return {"cov_sim": S_sim, "cov_se": se, "cov_theory": theory}, rows


def example19_lemma20_rows(crit: pd.DataFrame) -> list[dict[str, Any]]:
    """Lemma 20 at the zeros of ``grad f`` of Example 19 (``D = I``, ``F = -db/dx``): the
    quadratic potential ``U`` it gives versus the Hessian of ``Phi`` there, or why it fails."""
    rows = []
    for c in crit.itertuples():
        x = np.array([c.x1, c.x2])
        F = -dw.drift_jacobian(x, c.lam)
        hess = np.array([[3 * c.x1**2 - 1, 0.0], [0.0, 1.0]])
        setting = f"zero ({c.x1:.4f}, {c.x2:.4f}) of grad f, {c.kind}, D = I"
        try:
            dec = decompose(F, np.eye(2))
        except DecompositionError:
            rows.append(
                checks.row(
                    "lemma20_example19",
                    "decomposition_unique",
                    0.0,
                    lam=c.lam,
                    setting=setting + f"; trace F = {np.trace(F):.2e}: not unique",
                )
            )
            continue
        rows += [
            checks.row(
                "lemma20_example19", "decomposition_unique", 1.0, lam=c.lam, setting=setting
            ),
            checks.row(
                "lemma20_example19",
                "max_abs_U_minus_hessian_phi",
                np.abs(dec.U - hess).max(),
                lam=c.lam,
                setting=setting + "; Lemma 20 U vs Hess Phi there (they differ when j != 0)",
            ),
        ]
    return rows
