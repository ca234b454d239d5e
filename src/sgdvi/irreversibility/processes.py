"""Validation processes with a known area-enclosing rate (to validate the estimator).

* Ornstein-Uhlenbeck, the linear SDE (15) of Chaudhari & Soatto (2018),
  ``dx = -F x dt + sqrt(2 beta^-1 D) dW``: with stationary covariance ``S``
  (``F S + S F^T = 2 beta^-1 D``), ``L = (F S - S F^T) / 2``, zero exactly in detailed balance.
  Sampled every ``dt``, ``E[x_k x_{k+1}^T] = S e^{-F^T dt}``, so the estimator's exact target at
  finite ``dt`` is ``(S e^{-F^T dt} - e^{-F dt} S) / (2 dt)`` (:func:`ou_area_rate_sampled`).
* Example 19's double well: the stationary current is ``J = (lambda / Z) e^{-r^4/4} (-x2, x1)``,
  so ``L_12 = int (x1 J_2 - x2 J_1) / 2 = pi lambda / Z`` (:func:`double_well_area_rate`).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, signal

from sgdvi.theory import double_well as dw
from sgdvi.theory import linearization as lz
from sgdvi.theory import sde

#: the issue's irreversible example (beta = 1): L_12 = -0.7333
F_IRREVERSIBLE = np.array([[1.0, -0.8], [0.8, 0.5]])
D_IRREVERSIBLE = np.array([[1.0, 0.2], [0.2, 0.5]])
#: a reversible one: F = D U with U symmetric (Lemma 20 with Q = 0)
F_REVERSIBLE = D_IRREVERSIBLE @ np.array([[1.0, 0.3], [0.3, 2.0]])


def ou_area_rate(F: np.ndarray, D: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Closed form ``L = (F S - S F^T) / 2`` of the OU process (15), ``S`` from the Lyapunov
    equation (:func:`sgdvi.theory.linearization.stationary_covariance`)."""
    S = lz.stationary_covariance(F, D, beta)
    return (F @ S - S @ F.T) / 2.0


def ou_area_rate_sampled(F: np.ndarray, D: np.ndarray, beta: float, dt: float) -> np.ndarray:
    """What ``L_hat`` estimates at sampling interval ``dt``: ``(S e^{-F^T dt} - e^{-F dt} S)
    / (2 dt)`` (tends to :func:`ou_area_rate` as ``dt -> 0``)."""
    S = lz.stationary_covariance(F, D, beta)
    A = linalg.expm(-F * dt)
    return (S @ A.T - A @ S) / (2.0 * dt)


def ou_path(F: np.ndarray, D: np.ndarray, beta: float, dt: float, n: int, seed: int) -> np.ndarray:
    """A stationary OU path of ``n`` samples, exact transitions ``x' = A x + N(0, C)``
    (:func:`sgdvi.theory.linearization.ou_transition`), started from ``N(0, S)``.

    The recursion runs in the eigenbasis of ``A`` as scalar complex first-order filters
    (:func:`scipy.signal.lfilter`), so millions of steps take a fraction of a second.
    """
    rng = np.random.default_rng(seed)
    A, C = lz.ou_transition(F, D, beta, dt)
    S = lz.stationary_covariance(F, D, beta)
    m = F.shape[0]
    noise = rng.standard_normal((n, m)) @ np.linalg.cholesky(C).T
    noise[0] = np.linalg.cholesky(S) @ rng.standard_normal(m)
    mu, V = np.linalg.eig(A)
    u = np.linalg.solve(V, noise.T.astype(complex))  # (m, n): noise in the eigenbasis
    y = np.stack([signal.lfilter([1.0], [1.0, -mu[i]], u[i]) for i in range(m)])
    return np.real(V @ y).T


def double_well_area_rate(lam: float) -> float:
    """``L_12 = pi lambda / Z`` for Example 19 (``Z`` computed by
    :func:`sgdvi.theory.double_well.z_double_well`, 7.6235)."""
    return float(np.pi * lam / dw.z_double_well())


def double_well_block_sums(
    lam: float,
    particles: int,
    dt: float,
    t_burn: float,
    t_sample: float,
    n_blocks: int,
    seed: int,
    keep_path: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Euler-Maruyama of Example 19 (the theory stage's drift and scheme,
    :mod:`sgdvi.theory.sde`, from its start ``START``), ``particles`` independent paths.

    Returns the per-(particle, time block) sums of ``x dx^T`` (``particles * n_blocks`` blocks,
    about the origin, which is the stationary mean by symmetry), the step count of each block,
    and the first ``keep_path`` steps of particle 0 (for plots).
    """
    rng = np.random.default_rng([seed, int(round(lam * 1e6))])
    n_burn, n_sample = int(round(t_burn / dt)), int(round(t_sample / dt))
    bounds = np.linspace(0, n_sample, n_blocks + 1).astype(int)
    x1 = dw.START[0] + dw.START_STD * rng.standard_normal(particles)
    x2 = dw.START[1] + dw.START_STD * rng.standard_normal(particles)
    sums = np.zeros((n_blocks, particles, 2, 2))
    path = np.zeros((keep_path, 2))
    noise = np.sqrt(2.0 * dt)
    for step in range(n_burn + n_sample):
        b1, b2 = sde._drift_inplace(x1, x2, lam)  # the theory stage's drift of the SDE
        y1 = x1 + b1 * dt + noise * rng.standard_normal(particles)
        y2 = x2 + b2 * dt + noise * rng.standard_normal(particles)
        k = step - n_burn
        if k >= 0:
            blk = np.searchsorted(bounds, k, side="right") - 1
            d1, d2 = y1 - x1, y2 - x2
            s = sums[blk]
            s[:, 0, 0] += x1 * d1
            s[:, 0, 1] += x1 * d2
            s[:, 1, 0] += x2 * d1
            s[:, 1, 1] += x2 * d2
            if k < keep_path:
                path[k] = x1[0], x2[0]
        x1, x2 = y1, y2
    counts = np.repeat(np.diff(bounds), particles)
    return sums.reshape(-1, 2, 2), counts, path
