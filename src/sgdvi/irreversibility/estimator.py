"""The area-enclosing rate of a sampled path, its standard error, and its null models.

For a stationary path ``x(t)`` in R^m the area-enclosing rate is

    L = (1/2) < x dx^T - dx x^T > / dt,            (antisymmetric m x m)

half the mean rate at which the pair ``(x_i, x_j)`` sweeps signed area. In detailed balance
(``j = 0`` in eq. (8) of Chaudhari & Soatto, 2018: no probability current) the path law is
invariant under time reversal and ``L = 0``; for the linear SDE (15) with stationary covariance
``S`` it equals ``(F S - S F^T) / 2``. From samples ``x_k = x(k dt)``,

    L_hat = (C_1 - C_1^T) / (2 dt),   C_1 = mean_k x_k x_{k+1}^T,

i.e. the mean of ``a_k = (x_k dx_k^T - dx_k x_k^T) / (2 dt)`` (``x_k x_k^T`` is symmetric, so the
left-point and mid-point rules give the same antisymmetric part). Its standard error comes from
batch means: the path is cut into ``n_blocks`` contiguous blocks, much longer than the
correlation time, whose means are nearly independent (:func:`block_check` measures the
integrated autocorrelation time to validate that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class AreaRate:
    """``L_hat`` (antisymmetric ``m x m``) with its batch-means standard error."""

    L: np.ndarray
    se: np.ndarray  # batch-means standard error of each entry (0 on the diagonal)
    n_blocks: int
    block_len: int  # samples per block (the last block may be longer)

    @property
    def z(self) -> np.ndarray:
        """``L_hat / se`` entry-wise (0 on the diagonal)."""
        return np.divide(self.L, self.se, out=np.zeros_like(self.L), where=self.se > 0)

    def p_value(self) -> np.ndarray:
        """Two-sided p-values of ``L = 0`` from Student's t with ``n_blocks - 1`` degrees of
        freedom (the batch-means statistic)."""
        return 2.0 * stats.t.sf(np.abs(self.z), self.n_blocks - 1)


def block_bounds(n: int, n_blocks: int) -> np.ndarray:
    """Start indices of ``n_blocks`` contiguous blocks of ``range(n)`` (equal up to one)."""
    if n_blocks < 2 or n < 2 * n_blocks:
        raise ValueError(
            f"need n_blocks >= 2 and at least 2 samples per block, got {n}, {n_blocks}"
        )
    return np.linspace(0, n, n_blocks + 1).astype(int)


def area_block_sums(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per block ``b``: ``sum_k x_k dx_k^T`` over the steps ``k`` starting in that block,
    shape ``(n_blocks, m, m)`` (the raw material of :func:`area_rate`)."""
    dx = np.diff(x, axis=0)
    out = np.empty((len(bounds) - 1, x.shape[1], x.shape[1]))
    for b, (s, e) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        e = min(e, len(dx))
        out[b] = x[s:e].T @ dx[s:e]
    return out


def area_rate_from_sums(sums: np.ndarray, counts: np.ndarray, dt: float) -> AreaRate:
    """``L_hat`` and its batch-means s.e. from per-block sums of ``x dx^T`` and step counts.

    Blocks are weighted by their step counts; the s.e. is that of a weighted mean of
    independent block means (equal weights give ``std(block means) / sqrt(B)``).
    """
    counts = np.asarray(counts, dtype=float)
    anti = (sums - np.swapaxes(sums, 1, 2)) / (2.0 * dt)
    means = anti / counts[:, None, None]
    w = counts / counts.sum()
    L = np.tensordot(w, means, axes=1)
    b = len(counts)
    var = np.tensordot(w**2, (means - L) ** 2, axes=1) * b / (b - 1)
    return AreaRate(L=L, se=np.sqrt(var), n_blocks=b, block_len=int(counts.min()))


def area_rate(x: np.ndarray, dt: float = 1.0, n_blocks: int = 20, center: bool = True) -> AreaRate:
    """Area-enclosing rate ``L_hat = (C_1 - C_1^T) / (2 dt)`` of one path ``x`` (n, m), with a
    batch-means standard error over ``n_blocks`` blocks (consecutive samples are correlated).

    ``center`` subtracts the path mean first (``L`` is defined about the stationary mean; the
    shift changes ``L_hat`` only by a boundary term of order ``1/n``).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"area_rate: x must be (n, m) with m >= 2, got {x.shape}")
    if center:
        x = x - x.mean(axis=0)
    bounds = block_bounds(len(x) - 1, n_blocks)
    sums = area_block_sums(x, bounds)
    return area_rate_from_sums(sums, np.diff(bounds), dt)


def integrated_autocorrelation_time(y: np.ndarray, c: float = 5.0) -> float:
    """Integrated autocorrelation time ``tau = 1 + 2 sum_t rho(t)`` (in samples) of a 1-D
    series, by FFT with Sokal's automatic window (smallest ``W >= c tau(W)``)."""
    y = np.asarray(y, dtype=float) - np.mean(y)
    n = len(y)
    f = np.fft.rfft(y, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    if acf[0] <= 0:
        return 1.0
    rho = acf / acf[0]
    taus = 2.0 * np.cumsum(rho) - 1.0
    ok = np.arange(n) >= c * taus
    w = int(np.argmax(ok)) if ok.any() else n - 1
    return float(max(taus[w], 1.0))


@dataclass(frozen=True)
class BlockCheck:
    """Are the blocks of :func:`area_rate` much longer than the correlation time?"""

    tau: float  # largest integrated autocorrelation time over coordinates (samples)
    block_len: int
    ratio: float  # block_len / tau (want >= 10)
    se_by_blocks: dict[int, float]  # mean s.e. of L_hat over pairs for several block counts


def block_check(x: np.ndarray, dt: float, n_blocks: int) -> BlockCheck:
    """Validate the number of blocks: ``block length / tau`` and the s.e. for ``n_blocks / 2``,
    ``n_blocks`` and ``2 n_blocks`` blocks (flat when the blocks are long enough)."""
    x = np.asarray(x, dtype=float)
    tau = max(integrated_autocorrelation_time(x[:, i]) for i in range(x.shape[1]))
    iu = np.triu_indices(x.shape[1], 1)
    se = {}
    for b in (max(2, n_blocks // 2), n_blocks, 2 * n_blocks):
        if len(x) - 1 >= 2 * b:
            se[b] = float(area_rate(x, dt, b).se[iu].mean())
    block_len = (len(x) - 1) // n_blocks
    return BlockCheck(tau=tau, block_len=block_len, ratio=block_len / tau, se_by_blocks=se)


# ----------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class DriftRemoval:
    """Result of :func:`remove_drift`."""

    x: np.ndarray  # detrended path
    drift: np.ndarray  # mean increment per step
    displacement: float  # |drift| * (n - 1): how far the mean drift carries the path
    relative: float  # displacement / RMS fluctuation of the detrended path


def remove_drift(x: np.ndarray) -> DriftRemoval:
    """Subtract the mean increment from every increment (``x_k - k mu`` with
    ``mu = (x_{n-1} - x_0) / (n - 1)``) and report the size of what was removed."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    mu = (x[-1] - x[0]) / (n - 1)
    xd = x - np.arange(n)[:, None] * mu
    disp = float(np.linalg.norm(mu) * (n - 1))
    rms = float(np.sqrt(np.sum(xd.var(axis=0))))
    return DriftRemoval(xd, mu, disp, disp / rms if rms > 0 else np.inf)


def pca_directions(x: np.ndarray, m: int, max_rows: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Top ``m`` principal directions (d, m) and their variances, from at most ``max_rows``
    evenly thinned rows of ``x`` (positions are strongly autocorrelated, so thinning loses
    little). Signs fixed so that each direction's largest-magnitude entry is positive.

    When both sides of the data matrix exceed ``4 m`` a randomised range finder with four power
    iterations (fixed seed; Halko, Martinsson & Tropp 2011) replaces the full SVD: the same
    leading directions at a fraction of the cost, which matters for the surrogates."""
    x = np.asarray(x, dtype=float)
    stride = max(1, -(-len(x) // max_rows))
    xs = x[::stride] - x[::stride].mean(axis=0)
    if min(xs.shape) > 4 * m:
        q = np.linalg.qr(xs @ np.random.default_rng(0).standard_normal((xs.shape[1], m + 10)))[0]
        for _ in range(4):
            q = np.linalg.qr(xs @ np.linalg.qr(xs.T @ q)[0])[0]
        _, s, vt = np.linalg.svd(q.T @ xs, full_matrices=False)
    else:
        _, s, vt = np.linalg.svd(xs, full_matrices=False)
    v = vt[:m].T
    v = v * np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])])
    return v, s[:m] ** 2 / max(len(xs) - 1, 1)


def project(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Coordinates of the path ``x`` (n, d) along the columns of ``directions`` (d, m)."""
    return np.asarray(x, dtype=float) @ directions


@dataclass(frozen=True)
class Stationarity:
    """Per coordinate: variance of the first vs the second half, and growth whole/segments."""

    half_ratio: np.ndarray  # var(first half) / var(second half), each about its own mean
    growth: np.ndarray  # var(whole) / mean var(segments): ~1 if stationary, ~k-ish for a walk
    stationary: np.ndarray  # bool: growth < growth_max and half_ratio in [1/r, r]


def stationarity(
    y: np.ndarray, growth_max: float = 2.0, ratio_max: float = 2.0, segments: int = 8
) -> Stationarity:
    """Do the projected coordinates ``y`` (n, m) look stationary? (a current needs a steady state).

    Comparing the two halves alone cannot flag a random walk (its halves have equal expected
    variance about their own means); the growth ratio does: the variance about the mean over
    the whole path divided by the mean variance within ``segments`` equal segments is about 1
    for a stationary process whose correlation time is short compared with a segment, and
    grows with ``segments`` for Brownian motion (median 6.2 for 8 segments; below 2 in 3 % of
    walks)."""
    y = np.asarray(y, dtype=float)
    h = len(y) // 2
    v1, v2 = y[:h].var(axis=0), y[h:].var(axis=0)
    ratio = v1 / v2
    within = np.mean([s.var(axis=0) for s in np.array_split(y, segments)], axis=0)
    growth = y.var(axis=0) / within
    ok = (growth < growth_max) & (ratio < ratio_max) & (ratio > 1.0 / ratio_max)
    return Stationarity(ratio, growth, ok)


# ----------------------------------------------------------------------------- null models
def permuted_walk(increments: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random walk of the increments in a random order (the current test's null surrogate):
    same increments, no temporal structure, hence no current (``E L_hat = 0``)."""
    inc = np.asarray(increments)
    walk = np.cumsum(inc[rng.permutation(len(inc))], axis=0)
    return np.concatenate([np.zeros((1,) + inc.shape[1:], walk.dtype), walk])


def rank_among(observed: np.ndarray, surrogates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of ``|observed|`` among ``|surrogates|`` (axis 0) and the permutation p-value
    ``(1 + #{|s| >= |o|}) / (S + 1)``."""
    ge = (np.abs(surrogates) >= np.abs(observed)).sum(axis=0)
    rank = len(surrogates) - ge + 1  # 1 = smallest, S + 1 = beyond every surrogate
    return rank, (1.0 + ge) / (len(surrogates) + 1.0)


def lissajous_area(k1: int = 1, k2: int = 2, n: int = 200001) -> float:
    """``oint x1 dx2 - x2 dx1`` for ``x_k = cos(k pi t)``, t in [0, 1]: the signed area that
    principal components of a random walk enclose (cos pi t vs cos 2 pi t: -10/3; Antognini &
    Sohl-Dickstein 2018). Trapezoidal quadrature, used to check the same-sample artefact."""
    t = np.linspace(0.0, 1.0, n)
    x1, x2 = np.cos(k1 * np.pi * t), np.cos(k2 * np.pi * t)
    d1, d2 = -k1 * np.pi * np.sin(k1 * np.pi * t), -k2 * np.pi * np.sin(k2 * np.pi * t)
    return float(np.trapezoid(x1 * d2 - x2 * d1, t))
