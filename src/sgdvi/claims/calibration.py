"""False-positive rates of the per-seed tests, measured on surrogate paths with no structure.

A per-seed test at level ``alpha`` should reject a path without the structure it looks for in
at most a fraction ``alpha`` of cases. This module measures that fraction on surrogates built
from a trajectory's own projected increments (the ``m`` coordinates along the leading
eigenvectors of D(x) that the probability-current analysis stores as ``diffusion_y`` in
``current.npz``; cheap: ``m`` coordinates, not the ``d`` weights):

- ``walk``: a random walk of the increments in a random order (one permutation of time for all
  coordinates): no temporal structure at all, the surrogate of the irreversibility analysis
  and of Fig. 3a's null;
- ``ar1``: the same permuted increments driving an isotropic mean reversion
  ``y_{k+1} = a y_k + e_k``. With a scalar ``a`` the area-enclosing rate is exactly zero
  (``E[y_k dy_k^T] = (a - 1) S`` is symmetric), so this is a *stationary* path in detailed
  balance (at second order, what the statistic measures), which the current verdict's
  stationarity gate lets through. ``a`` is the pooled lag-1 fit of the path
  (:func:`sgdvi.trajectory.nulls.fit_isotropic_ou`), with its correlation time ``1 / (1 - a)``
  capped at ``n / 200`` so that the surrogate is stationary over the path.

Procedures (each as the pipeline runs it per seed):

- ``current``: :func:`sgdvi.irreversibility.sgd.verdict` on one projection (the D(x)
  directions): batch-means t-test of ``L_ij = 0`` over the pairs of stationary coordinates,
  Bonferroni over those pairs, at ``irreversibility.alpha``; a path without a stationary pair
  is not rejected (the pipeline's "no stationary state to test"). The pipeline's verdict also
  uses held-out principal components of the ``d`` weights, which are not calibrated here.
- ``fig3a``: the low-frequency excess of the increments' power over permuted increments
  (:mod:`sgdvi.trajectory.analysis`), permutation p-value at level 0.01. The surrogate's
  increments and the reference permutations are exchangeable, so this rate is at most the
  level by construction: the measurement checks the implementation.
- ``fig3b``: the paper's band test (autocorrelation outside the 99 % band on more lags than
  positions shuffled in time), permutation p-value at level 0.01. Its null is *white
  positions*: any random walk fails it.

And the null of Lemma 20 on data (``lemma20``): the mean and central 95 % range of
``||Q_hat|| / ||D_hat||`` (:func:`sgdvi.irreversibility.lemma20.fit_linear_sde`) over the
``ar1`` surrogates, where
``Q = 0``: what the estimator returns without any current at this path length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy import signal

from sgdvi.claims import pooling
from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import lemma20 as l20
from sgdvi.theory import checks
from sgdvi.trajectory import nulls, spectra

CHECK = "calibration"
WALK, AR1 = "walk", "ar1"
#: detail columns of :func:`calibrate` (``results/claims/calibration_{variant}.parquet``)
COLUMNS = (
    "variant",
    "procedure",
    "surrogate",
    "n_surrogates",
    "rejections",
    "value",
    "low",
    "high",
    "level",
    "tolerance",
    "miscalibrated",
    "note",
)
LABELS = {
    "current": "per-seed current verdict (D(x) directions, Bonferroni over stationary pairs)",
    "fig3a": "Fig. 3a low-frequency excess test (permuted-increment null)",
    "fig3b": "Fig. 3b band test (shuffled-position null)",
    "lemma20": "Lemma 20 on data: mean |Q|/|D| of paths in detailed balance",
}


@dataclass(frozen=True)
class Settings:
    """Config ``claims.calibration`` and the per-seed tests' own settings."""

    n_surrogates: int = 1000  # current verdict, Fig. 3a, Lemma 20 null
    n_surrogates_band: int = 50  # Fig. 3b: each needs up to n_permutations FFTs
    n_surrogates_lemma20: int = 200  # ar1 surrogates also fitted by Lemma 20
    n_permutations: int = 200  # trajectory.n_permutations: reference draws of Figs. 3a/3b
    seed_alpha: float = 0.01  # level of the Fig. 3 permutation tests (sgdvi.comparison.ALPHA)
    current_alpha: float = 0.01  # irreversibility.alpha
    n_blocks: int = 20  # irreversibility.n_blocks
    growth_max: float = 2.0  # irreversibility.growth_max
    low_frequency_cutoff: float = 0.01  # trajectory.low_frequency_cutoff
    n_lags: int = 100  # trajectory.n_lags
    max_lag_fraction: float = 0.5  # trajectory.max_lag_fraction
    fpr_factor: float = (
        2.0  # a rate above fpr_factor x level: miscalibrated (:func:`miscalibrated`)
    )
    seed: int = 0

    @property
    def permutation_level(self) -> float:
        """The level of the Fig. 3 permutation tests: ``seed_alpha``, or the smallest
        p-value ``1 / (n_permutations + 1)`` where that is larger (few permutations, as in
        the test profile: the per-seed p-values still enter the pooled test)."""
        return max(self.seed_alpha, 1.0 / (self.n_permutations + 1))


# ------------------------------------------------------------------------------ surrogates
def walk(inc: np.ndarray) -> np.ndarray:
    """The path ``y_0 = 0, y_k = sum_{t<k} inc_t`` of increments ``inc`` (n - 1, m)."""
    return np.concatenate([np.zeros((1, inc.shape[1])), np.cumsum(inc, axis=0)])


def ar1_coefficient(y: np.ndarray) -> float:
    """Pooled lag-1 coefficient of the path ``y`` (n, m), with the correlation time
    ``1 / (1 - a)`` capped at ``n / 200`` (stationary over the path)."""
    y = np.asarray(y, dtype=np.float64)
    ss_inc = (np.diff(y, axis=0) ** 2).sum(axis=0)
    ss_c = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    a = nulls.fit_isotropic_ou(ss_inc, ss_c)
    return min(a, 1.0 - 200.0 / len(y))


def ar1_path(inc: np.ndarray, a: float) -> np.ndarray:
    """``y_0 = 0, y_{k+1} = a y_k + e_k`` with ``e`` the centred increments (n - 1, m)."""
    e = inc - inc.mean(axis=0)
    y = signal.lfilter([1.0], [1.0, -a], e, axis=0)
    return np.concatenate([np.zeros((1, inc.shape[1])), y])


def surrogate(inc: np.ndarray, kind: str, a: float, rng: np.random.Generator) -> np.ndarray:
    """One ``walk`` or ``ar1`` surrogate path of the increments ``inc`` in a random order."""
    perm = inc[rng.permutation(len(inc))]
    return walk(perm) if kind == WALK else ar1_path(perm, a)


# ------------------------------------------------------------------------------ procedures
def current_level(y: np.ndarray, n_blocks: int, growth_max: float) -> tuple[float, int]:
    """The level of the per-seed current verdict on one projection
    (:func:`sgdvi.irreversibility.sgd.verdict` restricted to it): the smallest batch-means
    p-value over the pairs of stationary coordinates times their number (capped at 1), and
    that number; ``(nan, 0)`` without a stationary pair (not rejected)."""
    m = y.shape[1]
    ok_coord = es.stationarity(y, growth_max).stationary
    i, j = np.triu_indices(m, 1)
    ok = ok_coord[i] & ok_coord[j]
    n_ok = int(ok.sum())
    if n_ok == 0:
        return math.nan, 0
    nb = max(2, min(n_blocks, (len(y) - 1) // 3))  # sgd._blocks
    area = es.area_rate(y, 1.0, nb)
    return min(1.0, float(area.p_value()[i, j][ok].min()) * n_ok), n_ok


def _low_power(inc: np.ndarray, mask: np.ndarray) -> float:
    """Low-frequency power of increments ``inc`` (m_fft, m), summed over coordinates."""
    f = sfft.rfft(inc, axis=0)
    return float((f.real[mask] ** 2 + f.imag[mask] ** 2).sum())


def fig3a_rejections(
    incs: Sequence[np.ndarray], s: Settings, rng: np.random.Generator
) -> tuple[int, int]:
    """(rejections, surrogates) of the Fig. 3a excess test on ``walk`` surrogates: each
    surrogate's low-frequency power (its last ``m_fft`` increments, as the analysis) against
    ``n_permutations`` reference draws of the same increments in a random order."""
    rejections, total = 0, 0
    for k, inc in enumerate(incs):
        n_sur = _share(s.n_surrogates, len(incs), k)
        m_fft = sfft.prev_fast_len(len(inc), real=True)
        mask = spectra.low_frequency_mask(sfft.rfftfreq(m_fft), s.low_frequency_cutoff)

        def draw(inc: np.ndarray = inc, m_fft: int = m_fft, mask: np.ndarray = mask) -> float:
            return _low_power(inc[rng.permutation(len(inc))][-m_fft:], mask)

        ref = np.array([draw() for _ in range(s.n_permutations)])
        for _ in range(n_sur):
            p = nulls.permutation_pvalue(draw(), ref)
            rejections += p <= s.permutation_level
        total += n_sur
    return rejections, total


def _share(n: int, parts: int, k: int) -> int:
    """Part ``k`` of ``n`` split into ``parts`` nearly equal parts."""
    return n // parts + (k < n % parts)


def _band_exceeds(xc: np.ndarray, perm: np.ndarray, observed: float, lags, band) -> bool:
    """Does the shuffled path ``xc[:, perm]`` (centred, (m, n)) have a mean fraction of lags
    outside the band >= ``observed``? Coordinates are evaluated until that is decided (each
    fraction lies in [0, 1])."""
    m = xc.shape[0]
    total = 0.0
    for done in range(1, m + 1):
        ac = spectra.autocorrelation(xc[done - 1 : done, perm], lags, axis=1)
        total += float(spectra.fraction_outside(ac, band, axis=1)[0])
        if total / m >= observed:
            return True
        if (total + (m - done)) / m < observed:
            return False
    return False


def band_test_rejects(y: np.ndarray, s: Settings, rng: np.random.Generator) -> bool:
    """The Fig. 3b band test of one path ``y`` (n, m): rejects when
    ``(1 + #{shuffled >= observed}) / (n_permutations + 1)`` is at most the permutation level;
    stops as soon as too many shuffles reach the observed fraction."""
    n = len(y)
    lags = spectra.even_lags(n, s.n_lags, s.max_lag_fraction)
    band = spectra.confidence_band(n, 0.99)
    xc = (y - y.mean(axis=0)).T.copy()
    ac = spectra.autocorrelation(xc, lags, axis=1)
    observed = float(spectra.fraction_outside(ac, band, axis=1).mean())
    xc = xc.astype(np.float32)  # the shuffles in float32, as the analysis's surrogates
    c_max = math.floor(s.permutation_level * (s.n_permutations + 1) - 1 + 1e-9)
    exceed = 0
    for _ in range(s.n_permutations):
        exceed += _band_exceeds(xc, rng.permutation(n), observed, lags, band)
        if exceed > c_max:
            return False
    return True


def fig3b_rejections(
    paths: Sequence[np.ndarray], s: Settings, rng: np.random.Generator
) -> tuple[int, int]:
    """(rejections, surrogates) of the Fig. 3b band test on ``walk`` surrogates."""
    rejections, total = 0, 0
    for k, y in enumerate(paths):
        inc = np.diff(y, axis=0)
        for _ in range(_share(s.n_surrogates_band, len(paths), k)):
            rejections += band_test_rejects(surrogate(inc, WALK, 1.0, rng), s, rng)
            total += 1
    return rejections, total


def _current_counts(
    paths: Sequence[np.ndarray], kind: str, s: Settings, rng: np.random.Generator
) -> tuple[int, int, int, list[float]]:
    """(rejections, surrogates with a stationary pair, surrogates, |Q|/|D| of each ``ar1``
    surrogate) of the current verdict on ``kind`` surrogates of every path."""
    rejections, tested, total, ratios = 0, 0, 0, []
    for k, y in enumerate(paths):
        inc, a = np.diff(y, axis=0), ar1_coefficient(y)
        n_fit = _share(s.n_surrogates_lemma20, len(paths), k) if kind == AR1 else 0
        for i in range(_share(s.n_surrogates, len(paths), k)):
            ys = surrogate(inc, kind, a, rng)
            level, n_ok = current_level(ys, s.n_blocks, s.growth_max)
            rejections += bool(level <= s.current_alpha)
            tested, total = tested + (n_ok > 0), total + 1
            if i < n_fit:
                ratios.append(l20.fit_linear_sde(ys, 1.0).ratio)
    return rejections, tested, total, ratios


def miscalibrated(rate: pooling.Interval, level: float, fpr_factor: float) -> bool:
    """A measured false-positive rate is reported when it exceeds ``fpr_factor`` times the
    level *and* its 95 % interval lies above the level, so that sampling noise of a few
    hundred surrogates (5 of 200 at level 1 %) is not reported as a miscalibrated test."""
    return bool(rate.n > 0 and rate.estimate > fpr_factor * level and rate.low > level)


def _rate_row(
    variant: str,
    procedure: str,
    kind: str,
    counts: tuple[int, int],
    level: float,
    s: Settings,
    note: str = "",
) -> dict:
    rejections, n = counts
    iv = pooling.clopper_pearson(rejections, n)
    return {
        "variant": variant,
        "procedure": procedure,
        "surrogate": kind,
        "n_surrogates": n,
        "rejections": rejections,
        "value": iv.estimate,
        "low": iv.low,
        "high": iv.high,
        "level": level,
        "tolerance": s.fpr_factor * level,
        "miscalibrated": miscalibrated(iv, level, s.fpr_factor),
        "note": note,
    }


def _lemma20_row(variant: str, ratios: Sequence[float]) -> dict:
    """|Q|/|D| of the reversible surrogates: the mean (``value``) and the central 95 % range
    (``low``, ``high``)."""
    q = np.asarray(ratios, dtype=float)
    q = q[np.isfinite(q)]
    low, high = np.quantile(q, [0.025, 0.975]) if q.size else (math.nan, math.nan)
    return {
        "variant": variant,
        "procedure": "lemma20",
        "surrogate": AR1,
        "n_surrogates": int(q.size),
        "rejections": -1,
        "value": float(q.mean()) if q.size else math.nan,
        "low": float(low),
        "high": float(high),
        "level": math.nan,
        "tolerance": math.nan,
        "miscalibrated": False,
        "note": "" if q.size else "no surrogate gave a decomposition",
    }


def _current_rows(
    paths: Sequence[np.ndarray], variant: str, s: Settings, rng: np.random.Generator
) -> list[dict]:
    rows = []
    for kind in (WALK, AR1):
        rejections, tested, total, ratios = _current_counts(paths, kind, s, rng)
        note = f"{tested} of {total} surrogates had a stationary pair to test"
        rows.append(
            _rate_row(variant, "current", kind, (rejections, total), s.current_alpha, s, note)
        )
    rows.append(_lemma20_row(variant, ratios))
    return rows


def calibrate(paths: Sequence[np.ndarray], variant: str, s: Settings) -> pd.DataFrame:
    """Every measured rate (and the Lemma 20 null) of one trajectory variant, from the
    projected paths ``paths`` ((n, m) each, one per seed; surrogates are shared out among
    them): one row per (procedure, surrogate kind), columns :data:`COLUMNS`."""
    paths = [np.asarray(y, dtype=np.float64) for y in paths]
    if not paths:
        raise ValueError(f"calibration of variant {variant!r}: no projected path given")
    rng = np.random.default_rng([s.seed, *variant.encode()])
    rows = _current_rows(paths, variant, s, rng)
    incs = [np.diff(y, axis=0) for y in paths]
    rows.append(
        _rate_row(variant, "fig3a", WALK, fig3a_rejections(incs, s, rng), s.permutation_level, s)
    )
    note = "the test's null is white positions: a random walk is not white"
    counts = fig3b_rejections(paths, s, rng)
    rows.append(_rate_row(variant, "fig3b", WALK, counts, s.permutation_level, s, note))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def theory_rows(details: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`calibrate` as validation rows of ``results/tables/theory.parquet``
    (:mod:`sgdvi.theory.checks`): a rate passes unless it is :func:`miscalibrated` (above
    ``fpr_factor`` times its level, the ``tolerance``, and significantly above the level); the
    Lemma 20 null is a number, not a check."""
    rows = []
    for r in details.itertuples():
        setting = f"variant {r.variant}; {r.n_surrogates} {r.surrogate} surrogates"
        setting += " of the projected increments"
        if r.procedure == "lemma20":
            where = f"; 95 % of them in [{r.low:.3g}, {r.high:.3g}]" if r.n_surrogates else ""
            rows.append(checks.row(CHECK, LABELS[r.procedure], r.value, setting=setting + where))
            continue
        se = math.sqrt(r.value * (1 - r.value) / r.n_surrogates) if r.n_surrogates else math.nan
        extra = f"; {r.rejections} rejections, 95 % interval [{r.low:.3g}, {r.high:.3g}]"
        rows.append(
            checks.row(
                CHECK,
                f"false-positive rate: {LABELS[r.procedure]}",
                r.value,
                setting=setting + extra + (f"; {r.note}" if r.note else ""),
                reference=r.level,
                tolerance=r.tolerance,
                se=se,
                passed=not r.miscalibrated,
            )
        )
    return checks.frame(rows)


def calibration_tables(
    paths: Sequence[np.ndarray], variant: str, settings: Settings | Mapping
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`calibrate` and :func:`theory_rows` for rule ``claims_calibration``: the detail
    rows (for the ledger) and the validation rows (for ``theory.parquet``). ``settings``: a
    :class:`Settings` or a mapping of its fields (unknown keys are an error)."""
    if not isinstance(settings, Settings):
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown calibration settings {unknown}; known: {sorted(known)}")
        settings = Settings(**settings)
    details = calibrate(paths, variant, settings)
    return details, theory_rows(details)
