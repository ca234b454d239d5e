"""Null models for SGD trajectories and permutation tests (beyond the paper, Section IV-B).

The paper compares Fig. 3a with "the FFT of white noise, which should be flat" and Fig. 3b with
"Brownian motion, which quickly decays". To make that quantitative each weight's trajectory is
compared with surrogates that keep its per-weight variance and remove temporal structure:

- **permuted increments**: the increments ``x[k+1] - x[k]`` in a random order, then summed
  again: a random walk with exactly the same steps (and end points). Its increment spectrum is
  flat in expectation, ``E|F_k|^2 = m/(m-1) sum_t (d_t - mean d)^2`` for every k != 0
  (:func:`expected_permuted_power`), so low-frequency power above that value is structure.
- **shuffled positions**: the positions ``x_k`` in a random order: same values, no memory;
  its autocorrelation stays inside the 99% band at lags >= 1 except ~1% of the time.
- **isotropic Ornstein-Uhlenbeck**: Brownian motion in a quadratic well, the textbook picture
  of SGD near a critical point: ``x_{k+1} - mu = a (x_k - mu) + s sqrt(1 - a^2) xi_k`` with each
  weight's mean and variance, and one coefficient ``a`` for all weights (isotropic) matched to
  the pooled lag-1 autocorrelation (:func:`fit_isotropic_ou`).
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def permute_columns(a: np.ndarray, rng: np.random.Generator, axis: int = 0) -> np.ndarray:
    """Each weight's series in its own random order (time along ``axis``)."""
    return rng.permuted(a, axis=axis)


def time_permutation(seed: int, draw: int, n: int, kind: int = 0) -> np.ndarray:
    """The ``draw``-th random permutation of n time steps, reproducible from its numbers.

    The permutation tests apply one permutation of time to all weights at once (the null
    hypothesis: no temporal structure; cross-weight structure is kept), regenerated for every
    block of weights from ``(seed, draw, kind)`` so that all blocks see the same draws.
    """
    return np.random.default_rng([seed, draw, kind, 7]).permutation(n)


def permuted_increments(x: np.ndarray, rng: np.random.Generator, axis: int = 0) -> np.ndarray:
    """Random walk with each weight's increments in a random order, from the same start."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    delta = rng.permuted(np.diff(x, axis=-1), axis=-1)
    walk = np.concatenate([x[..., :1], x[..., :1] + np.cumsum(delta, axis=-1)], axis=-1)
    return np.moveaxis(walk, -1, axis)


def expected_permuted_power(delta: np.ndarray, axis: int = 0) -> np.ndarray:
    """``E|rfft(permuted delta)[k]|^2`` for k != 0, per weight: ``m/(m-1) sum (d - mean d)^2``.

    Exact for a uniformly random permutation of the m increments (the cross terms average to
    ``(S1^2 - S2) / (m (m-1))`` and ``sum_{t != s} w^{t-s} = -m`` at non-zero frequencies).
    """
    delta = np.asarray(delta, dtype=np.float64)
    m = delta.shape[axis]
    dc = delta - delta.mean(axis=axis, keepdims=True)
    return m / (m - 1) * (dc * dc).sum(axis=axis)


def ornstein_uhlenbeck(
    n: int,
    a: float,
    mean: np.ndarray,
    std: np.ndarray,
    rng: np.random.Generator,
    axis: int = 0,
    dtype: type = np.float64,
) -> np.ndarray:
    """Stationary AR(1) / discretised Ornstein-Uhlenbeck paths, one per weight.

    ``x_{k+1} - mean = a (x_k - mean) + std sqrt(1 - a^2) xi_k``, ``x_0 ~ N(mean, std^2)``:
    marginal variance ``std^2`` and autocorrelation ``a^L`` at lag L. Time along ``axis``
    (shape (n, len(mean)) for ``axis=0``, (len(mean), n) for ``axis=-1``), in ``dtype``.
    """
    if not 0 <= a < 1:
        raise ValueError(f"OU coefficient must lie in [0, 1), got {a}")
    mean = np.asarray(mean, dtype=dtype)[:, None]
    std = np.asarray(std, dtype=dtype)[:, None]
    xi = rng.standard_normal((len(mean), n), dtype=dtype)
    xi[:, 1:] *= dtype(np.sqrt(1.0 - a * a))
    coef = np.array([1.0, -a], dtype=dtype)
    path = signal.lfilter(coef[:1], coef, xi, axis=-1)  # path_0 = xi_0 ~ N(0, 1)
    return np.moveaxis(mean + std * path, -1, axis)


def fit_isotropic_ou(sum_sq_increments: np.ndarray, sum_sq_centred: np.ndarray) -> float:
    """One OU coefficient for all weights, from the pooled lag-1 autocorrelation.

    ``a = 1 - sum_i sum_k (x^i_{k+1} - x^i_k)^2 / (2 sum_i sum_k (x^i_k - mean_i)^2)``: for a
    stationary AR(1) ``E(dx^2) = 2 (1 - a) var``, so the OU matches the total increment power of
    the trajectory (the high-frequency floor of Fig. 3a) as well as its total variance.
    Clipped to [0, 1).
    """
    a = 1.0 - float(np.sum(sum_sq_increments)) / (2.0 * float(np.sum(sum_sq_centred)))
    return float(np.clip(a, 0.0, 1.0 - 1e-9))


def permutation_pvalue(observed: float, null: np.ndarray) -> float:
    """One-sided p-value ``(1 + #{null >= observed}) / (1 + B)`` (never zero)."""
    null = np.asarray(null)
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size))
