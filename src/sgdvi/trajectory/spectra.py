"""Frequency and correlation statistics of weight trajectories (Fig. 3a, 3b of the paper).

All functions take trajectories as arrays ``x`` of shape (n, k): n epochs (time runs down
axis 0) of k weights, and work column by column; ``axis`` names another time axis (the
analysis passes (k, n) blocks with ``axis=-1``: FFTs along contiguous memory are ~5x faster).
FFTs use :mod:`scipy.fft`.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import stats


def increment_spectrum(
    x: np.ndarray, workers: int = 1, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude of the real FFT of each weight's increments ``x[k+1] - x[k]`` (Fig. 3a).

    Returns ``(freqs, amplitude)``: frequencies in cycles per epoch (``rfftfreq(n - 1)``, from
    0 to 1/2) and ``|rfft(diff(x))|`` with ``len(freqs)`` entries along ``axis``.
    """
    delta = np.diff(np.asarray(x, dtype=np.float64), axis=axis)
    m = delta.shape[axis]
    return sfft.rfftfreq(m, d=1.0), np.abs(sfft.rfft(delta, axis=axis, workers=workers))


def autocovariance(
    x: np.ndarray, workers: int = 1, axis: int = 0, max_lag: int | None = None
) -> np.ndarray:
    """Biased autocovariance at lags 0..max_lag (default n-1) along ``axis`` (FFT, zero-padded).

    ``c[L] = (1/n) sum_{t=0}^{n-1-L} (x_t - mean)(x_{t+L} - mean)``. Zero-padding to
    ``n + max_lag`` keeps every returned lag linear (not circular). Computed in float32 for
    float32 input, else in float64.
    """
    x = np.asarray(x)
    x = np.moveaxis(x if x.dtype == np.float32 else x.astype(np.float64), axis, -1)
    n = x.shape[-1]
    top = n - 1 if max_lag is None else min(int(max_lag), n - 1)
    xc = x - x.mean(axis=-1, keepdims=True)
    nfft = sfft.next_fast_len(n + top, real=True)
    f = sfft.rfft(xc, n=nfft, axis=-1, workers=workers)
    c = sfft.irfft(f.real**2 + f.imag**2, n=nfft, axis=-1, workers=workers)[..., : top + 1] / n
    return np.moveaxis(c, -1, axis)


def autocorrelation(x: np.ndarray, lags: np.ndarray, workers: int = 1, axis: int = 0) -> np.ndarray:
    """Autocorrelation at ``lags`` (Fig. 3b): biased estimator divided by the lag-0 value.

    Columns with zero variance give NaN. The lags replace the time axis ``axis``. The FFT is
    padded only to ``n + max(lags)`` (exact: every lag asked for is linear).
    """
    lags = np.asarray(lags)
    c = autocovariance(x, workers=workers, axis=axis, max_lag=int(lags.max()))
    c = np.moveaxis(c, axis, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.moveaxis(c[lags] / c[0], 0, axis)


def even_lags(n: int, n_lags: int, max_fraction: float = 0.5) -> np.ndarray:
    """About ``n_lags`` evenly spaced integer lags from 0 to ``max_fraction * (n - 1)``."""
    top = max(1, int(np.floor(max_fraction * (n - 1))))
    return np.unique(np.round(np.linspace(0, top, n_lags)).astype(np.int64))


def confidence_band(n: int, level: float = 0.99) -> float:
    """Half-width of the white-noise confidence band of a sample autocorrelation.

    ``z_{(1+level)/2} / sqrt(n)``: 2.576 / sqrt(n) at 99%, the dashed red lines of Fig. 3b.
    """
    return float(stats.norm.ppf(0.5 + level / 2) / np.sqrt(n))


def low_frequency_mask(freqs: np.ndarray, cutoff: float) -> np.ndarray:
    """Frequencies ``0 < f < cutoff`` (the zero frequency, the total drift, is left out).

    A trajectory too short to resolve ``cutoff`` (no such frequency) uses its lowest non-zero
    frequency alone, so that short test runs still produce every output.
    """
    if len(freqs) < 2:
        raise ValueError("need at least 2 increments for a non-zero frequency")
    mask = (freqs > 0) & (freqs < cutoff)
    if not mask.any():
        mask[1] = True
    return mask


def fraction_outside(ac: np.ndarray, band: float, axis: int = 0) -> np.ndarray:
    """Per weight, the fraction of lags >= 1 (entries 1: along ``axis``) outside the band."""
    ac = np.moveaxis(ac, axis, 0)
    return (np.abs(ac[1:]) > band).mean(axis=0)
