"""Per-seed analysis of a stored trajectory: Fig. 3a/3b curves, null models, test statistics.

Reads ``weights.npy`` (n, d) memory-mapped in contiguous chunks of epochs into one float32
(d_active, n) array (time contiguous; memory about twice the file), then works on blocks of
weights.

Statistics (per seed, over the d_active weights that move; the 16 first-layer biases have a
zero gradient under train-mode BN and never do):

- ``low_freq_ratio``: power of the increments' FFT at ``0 < f < cutoff``, summed over
  weights, divided by its expectation under permuted increments (1 = flat/white increments,
  > 1 = the paper's low-frequency modes, < 1 = anti-persistent, mean-reverting increments);
  ``low_freq_ratio_median`` is the median of the same ratio per weight.
- ``ac_frac_outside``: mean over weights of the fraction of lags >= 1 at which the
  autocorrelation of ``x_k`` leaves the 99% band ``+-2.576/sqrt(n)``.
- one-sided permutation p-values of both against ``n_permutations`` surrogates (one random
  permutation of time applied to all weights at once; permuted
  increments: ``low_freq_p_value`` for an excess, ``low_freq_p_value_lower`` for a deficit;
  shuffled positions: ``ac_p_value``), and the same statistics of an isotropic OU process with the
  weights' means and variances (the "Brownian motion near a critical point" picture).

How the permutation tests stay cheap at paper scale (same null distributions as a brute-force
loop):

- **Spectrum** (:func:`_spectrum_null`). For an affine permutation ``t -> a t + b (mod m)``
  (``a`` a unit mod m) the DFT of the permuted sequence is a permutation of the bins,
  ``|Y_k|^2 = |W_{k a^-1 mod m}|^2``, so the pooled low-frequency power of ``w o alpha`` is a
  sum of the pooled power spectrum of ``w`` at ``{k a^-1}``. Each surrogate is
  ``delta o sigma_r o alpha_b``, a uniformly random base permutation ``sigma_r`` composed with a
  random affine map: **each surrogate is exactly a uniformly random permutation** of the
  increments, as in the brute-force test, while only ``ceil(B / 40)`` base FFTs per weight
  are computed (surrogates sharing a base sum the power of one periodogram over nearly
  disjoint bin sets).
- **Autocorrelation** (:func:`_ac_null`). The p-value needs, per permutation, only whether
  ``mean_i f_i(pi) >= observed`` (``f_i`` in [0, 1]: the fraction of lags outside the band).
  Weights are evaluated in a random order, at least ``_AC_MIN_WEIGHTS`` of them, until the
  partial sum decides that comparison for certain (bounds: remaining ``f_i`` in [0, 1]):
  the p-value is exactly the brute-force one for the same permutations; the reported
  surrogate values are means over the evaluated weights (all of them when undecided).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from sgdvi.trajectory import nulls, spectra

_CURVES = ("fft", "fft_perm", "fft_ou", "ac", "ac_ou", "ac_walk", "ac_shuffle")
_SURROGATES_PER_BASE = 40  # spectrum surrogates sharing one base permutation's FFT
_AC_MIN_WEIGHTS = 32  # weights evaluated for every autocorrelation surrogate
_AC_STEP = 16  # further weights per step until the comparison is decided
_READ_EPOCHS = 8192  # epochs read from the memory map at a time


@dataclass
class _Moments:
    """Running sum and sum of squares over weights (columns) of a curve."""

    s1: np.ndarray | None = None
    s2: np.ndarray | None = None
    count: int = 0

    def add(self, values: np.ndarray) -> None:
        v = np.nan_to_num(np.asarray(values, dtype=np.float64))
        if self.s1 is None:
            self.s1, self.s2 = np.zeros(v.shape[0]), np.zeros(v.shape[0])
        self.s1 += v.sum(axis=1)
        self.s2 += (v * v).sum(axis=1)
        self.count += v.shape[1]

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.s1 / self.count
        var = np.maximum(self.s2 / self.count - mean**2, 0.0)
        return mean, np.sqrt(var)


@dataclass(frozen=True)
class _Grid:
    """Lengths, frequencies and lags of one trajectory's analysis."""

    n: int
    m_fft: int  # FFT length of the increments: the last m_fft increments
    freqs: np.ndarray
    low: np.ndarray  # boolean mask of the low-frequency bins
    lags: np.ndarray
    band: float
    n_ac_fft: int  # zero-padded length of the autocorrelation FFT (linear up to max lag)

    @classmethod
    def build(cls, n: int, n_lags: int, max_lag_fraction: float, cutoff: float) -> _Grid:
        # the largest 5-smooth m <= n - 1: a length with a large prime factor
        # (n - 1 = 1799 = 7 x 257) makes every FFT ~4x slower
        m_fft = sfft.prev_fast_len(n - 1, real=True)
        freqs = sfft.rfftfreq(m_fft, d=1.0)
        lags = spectra.even_lags(n, n_lags, max_lag_fraction)
        return cls(
            n=n,
            m_fft=m_fft,
            freqs=freqs,
            low=spectra.low_frequency_mask(freqs, cutoff),
            lags=lags,
            band=spectra.confidence_band(n, 0.99),
            n_ac_fft=sfft.next_fast_len(n + int(lags[-1]), real=True),
        )

    @property
    def n_low(self) -> int:
        return int(self.low.sum())

    def tail(self, x: np.ndarray) -> np.ndarray:
        """The last m_fft + 1 epochs of (k, n) blocks: m_fft increments."""
        return x[:, self.n - 1 - self.m_fft :]


def _load(w: np.ndarray) -> np.ndarray:
    """The (n, d) memory map as a (d, n) float32 array, read in contiguous epoch chunks."""
    n, d = w.shape
    out = np.empty((d, n), dtype=np.float32)
    for start in range(0, n, _READ_EPOCHS):
        out[:, start : start + _READ_EPOCHS] = np.asarray(w[start : start + _READ_EPOCHS]).T
    return out


def _blocks(k: int, n: int, block_mb: float) -> list[slice]:
    per_row = 8 * max(n, 1)
    size = max(1, int(block_mb * 2**20 // per_row))
    return [slice(i, min(i + size, k)) for i in range(0, k, size)]


def _weight_moments(x: np.ndarray, blocks: list[slice]) -> dict[str, np.ndarray]:
    """Per weight: mean, std, sum of squared increments and of centred squares (float64)."""
    d, n = x.shape
    out = {key: np.zeros(d) for key in ("mean", "std", "ss_delta", "ss_centred")}
    for sl in blocks:
        x64 = x[sl].astype(np.float64)
        out["mean"][sl] = x64.mean(axis=1)
        out["std"][sl] = x64.std(axis=1)
        out["ss_delta"][sl] = (np.diff(x64, axis=1) ** 2).sum(axis=1)
    out["ss_centred"] = n * out["std"] ** 2
    return out


def _keep_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x[rows]`` for increasing ``rows``, compacted in place (no second copy of x)."""
    if rows.size == x.shape[0]:
        return x
    for dst, src in enumerate(rows):
        if dst != src:
            x[dst] = x[src]
    return x[: rows.size]


def _low_sums(amp: np.ndarray, delta: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per weight: observed low-frequency power and its permuted-increment expectation."""
    power = (amp[:, grid.low] ** 2).sum(axis=1)
    return power, grid.n_low * nulls.expected_permuted_power(delta, axis=1)


def _observed_block(x: np.ndarray, grid: _Grid, workers: int) -> dict[str, np.ndarray]:
    """Fig. 3a/3b curves and statistics of the trajectory itself (float64)."""
    xf = grid.tail(x)
    _, amp = spectra.increment_spectrum(xf, workers, axis=1)
    power, expected = _low_sums(amp, np.diff(xf, axis=1), grid)
    ac = spectra.autocorrelation(x, grid.lags, workers, axis=1)
    return {
        "fft": amp,
        "ac": ac,
        "low_power": power,
        "low_expected": expected,
        "frac": spectra.fraction_outside(ac, grid.band, axis=1),
    }


def _surrogate_block(
    x: np.ndarray,
    grid: _Grid,
    ou_args: tuple[float, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    workers: int,
) -> dict[str, np.ndarray]:
    """One surrogate per weight of each null model: permuted-increment walk, shuffled
    positions, isotropic OU (curves of Fig. 3a/3b and the OU statistics).

    The walk's increment spectrum is taken from the permuted increments themselves (exactly
    the increments of the walk); autocorrelations of surrogates run in float32.
    """
    n, m = grid.n, grid.m_fft
    delta = rng.permuted(np.diff(x, axis=1), axis=1)  # the walk nulls.permuted_increments
    amp_p = np.abs(sfft.rfft(delta[:, n - 1 - m :], axis=1, workers=workers))
    walk = np.empty(x.shape, dtype=np.float32)
    walk[:, 0] = x[:, 0]
    walk[:, 1:] = x[:, :1] + np.cumsum(delta, axis=1)
    del delta
    ac_w = spectra.autocorrelation(walk, grid.lags, workers, axis=1)
    ac_s = spectra.autocorrelation(
        nulls.permute_columns(x.astype(np.float32), rng, axis=1), grid.lags, workers, axis=1
    )
    a_ou, mean, std = ou_args
    ou = nulls.ornstein_uhlenbeck(n, a_ou, mean, std, rng, axis=1, dtype=np.float32)
    ou_f = grid.tail(ou).astype(np.float64)
    _, amp_ou = spectra.increment_spectrum(ou_f, workers, axis=1)
    power_ou, expected_ou = _low_sums(amp_ou, np.diff(ou_f, axis=1), grid)
    ac_ou = spectra.autocorrelation(ou, grid.lags, workers, axis=1)
    band = grid.band
    return {
        "fft_perm": amp_p,
        "ac_walk": ac_w,
        "ac_shuffle": ac_s,
        "fft_ou": amp_ou,
        "ac_ou": ac_ou,
        "low_power_ou": power_ou,
        "low_expected_ou": expected_ou,
        "frac_walk": spectra.fraction_outside(ac_w, band, axis=1),
        "frac_shuffle": spectra.fraction_outside(ac_s, band, axis=1),
        "frac_ou": spectra.fraction_outside(ac_ou, band, axis=1),
    }


def _units(m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` uniform draws from the units of Z/mZ (residues coprime to m)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < size:
        cand = rng.integers(1, max(m, 2), size=2 * size + 8)
        out = np.concatenate([out, cand[np.gcd(cand, m) == 1]])
    return out[:size]


def _spectrum_null(
    x: np.ndarray, grid: _Grid, blocks: list[slice], seed: int, n_perm: int, workers: int
) -> np.ndarray:
    """Pooled low-frequency power of ``n_perm`` uniformly permuted increment series.

    Surrogate b = base permutation ``sigma_{b mod R}`` (``nulls.time_permutation``) composed
    with an affine map of multiplier ``a_b`` (see the module docstring): its pooled power is
    ``sum_{k low} Q_r[fold(k a_b^-1 mod m)]`` with ``Q_r`` the power spectrum of the base
    surrogate summed over weights. Exactly the uniform-permutation null of the brute force.
    """
    m = grid.m_fft
    n_base = math.ceil(n_perm / _SURROGATES_PER_BASE)
    sigmas = [nulls.time_permutation(seed, r, m, 0) for r in range(n_base)]
    pooled = np.zeros((n_base, m // 2 + 1))
    for sl in blocks:
        delta = np.diff(grid.tail(x[sl]), axis=1)
        for r, sigma in enumerate(sigmas):
            f = sfft.rfft(delta[:, sigma], axis=1, workers=workers)
            pooled[r] += (f.real**2 + f.imag**2).sum(axis=0, dtype=np.float64)
    inverse_multipliers = _units(m, n_perm, np.random.default_rng([seed, 20180102]))
    k_low = np.flatnonzero(grid.low)
    out = np.empty(n_perm)
    for b in range(n_perm):
        j = (k_low * inverse_multipliers[b]) % m
        out[b] = pooled[b % n_base][np.minimum(j, m - j)].sum()
    return out


def _ac_fractions(
    xc: np.ndarray, c0: np.ndarray, perm: np.ndarray, grid: _Grid, workers: int
) -> np.ndarray:
    """Per weight, fraction of lags >= 1 outside the band for time-permuted centred rows."""
    f = sfft.rfft(xc[:, perm], n=grid.n_ac_fft, axis=1, workers=workers)
    c = sfft.irfft(f.real**2 + f.imag**2, n=grid.n_ac_fft, axis=1, workers=workers)
    r = c[:, grid.lags[1:]] / c0[:, None]
    return (np.abs(r) > grid.band).mean(axis=1)


def _ac_null(
    x: np.ndarray, grid: _Grid, observed: float, seed: int, n_perm: int, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled-position surrogates of ``ac_frac_outside``, evaluated until decided.

    Returns (value per permutation: mean over the evaluated weights, number evaluated). The
    count of values >= ``observed`` (the p-value) equals the brute-force count over all
    weights for the same permutations ``nulls.time_permutation(seed, b, n, 1)``.
    """
    k = x.shape[0]
    order = np.random.default_rng([seed, 20180103]).permutation(k)
    xc = x[order] - x[order].mean(axis=1, keepdims=True)
    c0 = (xc.astype(np.float64) ** 2).sum(axis=1)  # irfft(|F|^2) at lag 0: sum of squares
    values, evaluated = np.empty(n_perm), np.zeros(n_perm, dtype=np.int64)
    for b in range(n_perm):
        perm = nulls.time_permutation(seed, b, grid.n, 1)
        total, done = 0.0, 0
        while done < k:
            step = slice(done, min(done + (_AC_STEP if done else _AC_MIN_WEIGHTS), k))
            total += float(_ac_fractions(xc[step], c0[step], perm, grid, workers).sum())
            done = step.stop
            if total / k >= observed or (total + (k - done)) / k < observed:
                break
        values[b], evaluated[b] = total / done, done
    return values, evaluated


def _accumulate(
    x: np.ndarray,
    grid: _Grid,
    mom: dict[str, np.ndarray],
    a_ou: float,
    rng,
    workers: int,
    blocks: list[slice],
    log: Callable[[str], None] | None,
) -> tuple[dict[str, _Moments], dict[str, np.ndarray]]:
    """Observed and single-surrogate curves (mean/std over weights) and per-weight values."""
    curves = {key: _Moments() for key in _CURVES}
    per_weight: dict[str, list[np.ndarray]] = {}
    for bi, sl in enumerate(blocks):
        x64 = x[sl].astype(np.float64)
        ou_args = (a_ou, mom["mean"][sl], mom["std"][sl])
        block = _observed_block(x64, grid, workers)
        block |= _surrogate_block(x64, grid, ou_args, rng, workers)
        for key, value in block.items():
            if key in curves:
                curves[key].add(value.T)
            else:
                per_weight.setdefault(key, []).append(value)
        if log is not None:
            log(f"curves: block {bi + 1}/{len(blocks)}: {sl.stop}/{x.shape[0]} weights")
    return curves, {key: np.concatenate(v) for key, v in per_weight.items()}


def _p_values(pw: dict[str, np.ndarray], perm_low: np.ndarray, perm_frac: np.ndarray):
    """Observed statistics and their one-sided permutation p-values (NaN without surrogates)."""
    low_ratio = float(pw["low_power"].sum() / pw["low_expected"].sum())
    frac = float(pw["frac"].mean())
    has = perm_low.size > 0
    nan = float("nan")
    return {
        "low_freq_ratio": low_ratio,
        "low_freq_ratio_median": float(np.median(pw["low_power"] / pw["low_expected"])),
        "low_freq_ratio_ou": float(pw["low_power_ou"].sum() / pw["low_expected_ou"].sum()),
        "low_freq_ratio_perm_mean": float(perm_low.mean()) if has else nan,
        "low_freq_p_value": nulls.permutation_pvalue(low_ratio, perm_low) if has else nan,
        "low_freq_p_value_lower": nulls.permutation_pvalue(-low_ratio, -perm_low) if has else nan,
        "ac_frac_outside": frac,
        "ac_frac_outside_shuffle": float(pw["frac_shuffle"].mean()),
        "ac_frac_outside_walk": float(pw["frac_walk"].mean()),
        "ac_frac_outside_ou": float(pw["frac_ou"].mean()),
        "ac_frac_outside_perm_mean": float(perm_frac.mean()) if has else nan,
        "ac_p_value": nulls.permutation_pvalue(frac, perm_frac) if has else nan,
    }


def _active_weights(
    w: np.ndarray, weights_path: str | Path, block_mb: float
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The weights that move (nonzero std) as a (d_active, n) float32 array, their moments
    (:func:`_weight_moments`) and their indices among the d weights."""
    n, d = w.shape
    x = _load(w)
    mom = _weight_moments(x, _blocks(d, n, block_mb))
    active = np.flatnonzero(mom["std"] > 0)
    if active.size == 0:
        raise ValueError(f"no weight moves in {weights_path}: nothing to analyse")
    x = _keep_rows(x, active)
    mom = {key: v[active] for key, v in mom.items()}
    return x, mom, active


def _permutation_nulls(
    x: np.ndarray,
    grid: _Grid,
    blocks: list[slice],
    pw: dict[str, np.ndarray],
    seed: int,
    n_permutations: int,
    workers: int,
    log: Callable[[str], None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation surrogates of ``low_freq_ratio`` (:func:`_spectrum_null`, normalised by the
    observed expectation) and of ``ac_frac_outside`` (:func:`_ac_null`, with the number of
    weights evaluated per surrogate)."""
    perm_low = _spectrum_null(x, grid, blocks, seed, n_permutations, workers)
    perm_low /= pw["low_expected"].sum()
    if log is not None:
        log(f"spectrum null: {n_permutations} surrogates")
    perm_frac, evaluated = _ac_null(
        x, grid, float(pw["frac"].mean()), seed, n_permutations, workers
    )
    if log is not None:
        log(f"autocorrelation null: {n_permutations} surrogates, {evaluated.sum()} weight-FFTs")
    return perm_low, perm_frac, evaluated


def analyse_trajectory(
    weights_path: str | Path,
    *,
    n_lags: int = 100,
    max_lag_fraction: float = 0.5,
    low_frequency_cutoff: float = 0.01,
    n_permutations: int = 200,
    seed: int = 0,
    block_mb: float = 16.0,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray | float | int]:
    """Curves (means and standard deviations over weights) and statistics of one trajectory
    (Fig. 3a: FFT of the increments; Fig. 3b: autocorrelation; Section IV-B).

    Memory: a float32 copy of the weights plus a few arrays of ``block_mb`` MB. Returns a
    flat dict of arrays and scalars (saved by the workflow as ``analysis.npz``).
    """
    w = np.load(weights_path, mmap_mode="r")
    n, d = w.shape
    if n < 8:
        raise ValueError(f"{weights_path} holds {n} stored epochs; need at least 8 for spectra")
    grid = _Grid.build(n, n_lags, max_lag_fraction, low_frequency_cutoff)
    x, mom, active = _active_weights(w, weights_path, block_mb)
    a_ou = nulls.fit_isotropic_ou(mom["ss_delta"], mom["ss_centred"])
    blocks = _blocks(active.size, n, block_mb)
    rng = np.random.default_rng([seed, 20180101])
    curves, pw = _accumulate(x, grid, mom, a_ou, rng, workers, blocks, log)
    perm_low, perm_frac, evaluated = _permutation_nulls(
        x, grid, blocks, pw, seed, n_permutations, workers, log
    )
    out: dict[str, np.ndarray | float | int] = {
        "n": n,
        "n_fft": grid.m_fft,
        "d": d,
        "d_active": int(active.size),
        "active": active,
        "freqs": grid.freqs,
        "lags": grid.lags,
        "band": grid.band,
        "low_frequency_cutoff": low_frequency_cutoff,
        "n_low_freq_bins": grid.n_low,
        "ou_coefficient": a_ou,
        "n_permutations": n_permutations,
        "perm_low_freq_ratio": perm_low,
        "perm_ac_frac_outside": perm_frac,
        "perm_ac_weights_evaluated": evaluated,
        "per_weight_low_freq_ratio": pw["low_power"] / pw["low_expected"],
        "per_weight_ac_frac_outside": pw["frac"],
    }
    out |= _p_values(pw, perm_low, perm_frac)
    for key, m in curves.items():
        out[f"{key}_mean"], out[f"{key}_std"] = m.mean_std()
    return out
