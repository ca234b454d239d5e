"""Reference (brute-force) trajectory analysis, the slow original, kept for tests only.

Reads ``weights.npy`` (n, d) memory-mapped, a block of weights (columns) at a time, so that
memory stays near ``block_mb`` times a small factor whatever the trajectory length.

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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import fft as sfft

from sgdvi.trajectory import nulls, spectra


def _mean_std(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation over weights of a curve, from the stacked
    per-weight curves (``rows``: blocks of shape (weights, points)) by plain numpy: written
    apart from the analysis's running sums, so it checks them. A NaN point counts as 0, the
    analysis's convention."""
    stacked = np.nan_to_num(np.concatenate(rows, axis=0).astype(np.float64))
    return stacked.mean(axis=0), stacked.std(axis=0)


def _blocks(columns: np.ndarray, n: int, block_mb: float) -> list[np.ndarray]:
    per_col = 8 * max(n, 1)
    k = max(1, int(block_mb * 2**20 // per_col))
    return [columns[i : i + k] for i in range(0, len(columns), k)]


def _read(w: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Columns ``cols`` of the (n, d) trajectory as a (k, n) float64 block (time contiguous)."""
    return np.ascontiguousarray(np.asarray(w[:, cols], dtype=np.float64).T)


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
    log=None,
) -> dict[str, np.ndarray | float | int]:
    """Curves (means and standard deviations over weights) and statistics of one trajectory.

    Memory: a few arrays of ``block_mb`` MB at a time. Returns a flat dict of arrays and
    scalars (saved by the workflow as ``analysis.npz``).
    """
    w = np.load(weights_path, mmap_mode="r")
    n, d = w.shape
    if n < 8:
        raise ValueError(f"{weights_path} holds {n} stored epochs; need at least 8 for spectra")
    rng = np.random.default_rng([seed, 20180101])
    lags = spectra.even_lags(n, n_lags, max_lag_fraction)
    band = spectra.confidence_band(n, 0.99)
    # FFT length of the increments: the largest 5-smooth m <= n - 1 (the last m increments);
    # a length with a large prime factor (n - 1 = 1799 = 7 x 257) makes every FFT ~4x slower
    m_fft = sfft.prev_fast_len(n - 1, real=True)
    freqs = sfft.rfftfreq(m_fft, d=1.0)
    low = spectra.low_frequency_mask(freqs, low_frequency_cutoff)
    n_low = int(low.sum())

    # pass 1: which weights move; means, standard deviations, sums for the OU fit
    mean = np.zeros(d)
    std = np.zeros(d)
    ss_delta = np.zeros(d)
    ss_centred = np.zeros(d)
    for cols in _blocks(np.arange(d), n, block_mb):
        x = _read(w, cols)
        mean[cols] = x.mean(axis=1)
        std[cols] = x.std(axis=1)
        ss_centred[cols] = n * std[cols] ** 2
        ss_delta[cols] = (np.diff(x, axis=1) ** 2).sum(axis=1)
    active = np.flatnonzero(std > 0)
    if active.size == 0:
        raise ValueError(f"no weight moves in {weights_path}: nothing to analyse")
    a_ou = nulls.fit_isotropic_ou(ss_delta[active], ss_centred[active])

    curves: dict[str, list[np.ndarray]] = {
        k: [] for k in ("fft", "fft_perm", "fft_ou", "ac", "ac_ou", "ac_walk", "ac_shuffle")
    }
    k_act = active.size
    low_power = np.zeros(k_act)  # sum over low frequencies of |F|^2, per weight
    low_expected = np.zeros(k_act)  # its expectation under permuted increments
    low_power_ou = np.zeros(k_act)
    low_expected_ou = np.zeros(k_act)
    frac = np.zeros(k_act)
    frac_ou = np.zeros(k_act)
    frac_walk = np.zeros(k_act)
    frac_shuffle = np.zeros(k_act)
    perm_low = np.zeros(n_permutations)
    perm_frac = np.zeros(n_permutations)

    def low_sums(amp: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        power = (amp[:, low] ** 2).sum(axis=1)
        return power, n_low * nulls.expected_permuted_power(delta, axis=1)

    done = 0
    blocks = _blocks(active, n, block_mb)
    for bi, cols in enumerate(blocks):
        sl = slice(done, done + len(cols))
        done += len(cols)
        x = _read(w, cols)
        xf = x[:, n - 1 - m_fft :]  # the last m_fft + 1 epochs: m_fft increments
        delta = np.diff(xf, axis=1)
        _, amp = spectra.increment_spectrum(xf, workers, axis=1)
        curves["fft"].append(amp)
        low_power[sl], low_expected[sl] = low_sums(amp, delta)
        ac = spectra.autocorrelation(x, lags, workers, axis=1)
        curves["ac"].append(ac)
        frac[sl] = spectra.fraction_outside(ac, band, axis=1)

        walk = nulls.permuted_increments(x, rng, axis=1)
        _, amp_p = spectra.increment_spectrum(walk[:, n - 1 - m_fft :], workers, axis=1)
        curves["fft_perm"].append(amp_p)
        ac_w = spectra.autocorrelation(walk, lags, workers, axis=1)
        curves["ac_walk"].append(ac_w)
        frac_walk[sl] = spectra.fraction_outside(ac_w, band, axis=1)

        ac_s = spectra.autocorrelation(nulls.permute_columns(x, rng, axis=1), lags, workers, axis=1)
        curves["ac_shuffle"].append(ac_s)
        frac_shuffle[sl] = spectra.fraction_outside(ac_s, band, axis=1)

        ou = nulls.ornstein_uhlenbeck(n, a_ou, mean[cols], std[cols], rng, axis=1)
        ou_f = ou[:, n - 1 - m_fft :]
        _, amp_ou = spectra.increment_spectrum(ou_f, workers, axis=1)
        curves["fft_ou"].append(amp_ou)
        low_power_ou[sl], low_expected_ou[sl] = low_sums(amp_ou, np.diff(ou_f, axis=1))
        ac_ou = spectra.autocorrelation(ou, lags, workers, axis=1)
        curves["ac_ou"].append(ac_ou)
        frac_ou[sl] = spectra.fraction_outside(ac_ou, band, axis=1)
        del walk, ou, ou_f, amp_p, amp_ou
        # float32 copies for the surrogates: half the FFT time, ample precision for the tests
        delta32 = delta.astype(np.float32)
        x32 = x.astype(np.float32)

        # permutation tests: increments permuted in time (spectrum), positions shuffled (AC)
        for b in range(n_permutations):
            d_perm = delta32[:, nulls.time_permutation(seed, b, m_fft, 0)]
            amp_b = np.abs(sfft.rfft(d_perm, axis=1, workers=workers))
            perm_low[b] += (amp_b[:, low] ** 2).sum()
            x_perm = x32[:, nulls.time_permutation(seed, b, n, 1)]
            ac_b = spectra.autocorrelation(x_perm, lags, workers, axis=1)
            perm_frac[b] += spectra.fraction_outside(ac_b, band, axis=1).sum()
        if log is not None:
            log(f"block {bi + 1}/{len(blocks)}: {done}/{k_act} weights")

    low_ratio = float(low_power.sum() / low_expected.sum())
    perm_low /= low_expected.sum()
    perm_frac /= k_act
    has_perm = n_permutations > 0
    out: dict[str, np.ndarray | float | int] = {
        "n": n,
        "n_fft": m_fft,
        "d": d,
        "d_active": int(k_act),
        "active": active,
        "freqs": freqs,
        "lags": lags,
        "band": band,
        "low_frequency_cutoff": low_frequency_cutoff,
        "n_low_freq_bins": n_low,
        "ou_coefficient": a_ou,
        "n_permutations": n_permutations,
        "low_freq_ratio": low_ratio,
        "low_freq_ratio_median": float(np.median(low_power / low_expected)),
        "low_freq_ratio_ou": float(low_power_ou.sum() / low_expected_ou.sum()),
        "low_freq_ratio_perm_mean": float(perm_low.mean()) if has_perm else np.nan,
        "low_freq_p_value": nulls.permutation_pvalue(low_ratio, perm_low) if has_perm else np.nan,
        "low_freq_p_value_lower": nulls.permutation_pvalue(-low_ratio, -perm_low)
        if has_perm
        else np.nan,
        "ac_frac_outside": float(frac.mean()),
        "ac_frac_outside_shuffle": float(frac_shuffle.mean()),
        "ac_frac_outside_walk": float(frac_walk.mean()),
        "ac_frac_outside_ou": float(frac_ou.mean()),
        "ac_frac_outside_perm_mean": float(perm_frac.mean()) if has_perm else np.nan,
        "ac_p_value": nulls.permutation_pvalue(frac.mean(), perm_frac) if has_perm else np.nan,
        "perm_low_freq_ratio": perm_low,
        "perm_ac_frac_outside": perm_frac,
        "per_weight_low_freq_ratio": low_power / low_expected,
        "per_weight_ac_frac_outside": frac,
    }
    for key, rows in curves.items():
        out[f"{key}_mean"], out[f"{key}_std"] = _mean_std(rows)
    return out
