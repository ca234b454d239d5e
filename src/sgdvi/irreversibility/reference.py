"""Straightforward reference of the per-seed current analysis (the implementation before the
fast path of :mod:`.sgd`), kept to test and benchmark the fast path against.

Same statistics as :func:`sgdvi.irreversibility.sgd.analyse_current` (Chaudhari & Soatto 2018,
Section IV-B; the SGD current test): the whole trajectory in float64, each surrogate's first half
gathered and block-summed, its held-out principal components refitted on the formed positions,
the second half gathered and projected, and Lemma 20's block bootstrap refitting least squares
on the gathered transition pairs of every resample. Slow at paper scale (about 100 s and 4 GB
for 99,000 x 917 weights and 100 surrogates); use it on small inputs.
"""

from __future__ import annotations

import numpy as np

from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import lemma20 as l20
from sgdvi.irreversibility import sgd


def heldout_pca(inc: np.ndarray, order: np.ndarray | None, m: int, max_rows: int):
    """PCs of the thinned first half of the walk of ``inc`` (in ``order``) and the second
    half's projected coordinates (fancy-indexed gathers, float64 projection)."""
    n = len(inc) + 1
    h = n // 2
    idx = np.arange(len(inc)) if order is None else order
    first = inc[idx[: h - 1]]
    stride = max(1, -(-len(first) // max_rows))
    starts = np.arange(0, len(first), stride)
    pos = np.cumsum(np.add.reduceat(first, starts, axis=0), axis=0, dtype=np.float64)
    V, var = es.pca_directions(pos, m, max_rows=len(pos))
    second = inc[idx[h - 1 :]] @ V
    y = np.concatenate([np.zeros((1, m)), np.cumsum(second, axis=0)])
    return V, var, y


def bootstrap_ratio(
    x: np.ndarray, dt: float, n_boot: int, n_blocks: int, seed: int, level: float = 0.95
) -> l20.BootstrapRatio:
    """:func:`.lemma20.bootstrap_ratio` refitting ``lstsq`` on the gathered pairs of every
    resample."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    fit = l20.fit_linear_sde(x, dt)
    bounds = np.linspace(0, len(x) - 1, n_blocks + 1).astype(int)
    rng = np.random.default_rng(seed)
    ratios, qs = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, n_blocks, n_blocks)
        idx = np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in pick])
        f = l20._fit_pairs(x[idx], x[idx + 1], dt)
        if np.isfinite(f.ratio):
            ratios.append(f.ratio)
            qs.append(f.Q)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratios, [a, 1.0 - a]) if ratios else (np.nan, np.nan)
    q_se = np.std(qs, axis=0, ddof=1) if len(qs) > 1 else np.full_like(fit.F, np.nan)
    return l20.BootstrapRatio(fit.ratio, float(lo), float(hi), len(ratios), q_se)


def _projection(name: str, y: np.ndarray, z_sur: np.ndarray, s: sgd.Settings) -> sgd.Projection:
    nb = sgd._blocks(len(y), s.n_blocks)
    area = es.area_rate(y, 1.0, nb)
    stat = es.stationarity(y, s.growth_max)
    fit = bootstrap_ratio(y, 1.0, s.n_boot, nb, s.seed)
    tau = max(es.integrated_autocorrelation_time(y[:, k]) for k in range(y.shape[1]))
    return sgd.Projection(name, y, area, stat, z_sur, fit, tau)


def analyse_current(
    weights: np.ndarray, directions: np.ndarray, s: sgd.Settings
) -> tuple[dict, list[sgd.Projection]]:
    """The reference of :func:`sgdvi.irreversibility.sgd.analyse_current`."""
    w = np.asarray(weights, dtype=np.float64)
    dr = es.remove_drift(w)
    inc = np.diff(dr.x, axis=0).astype(np.float32)
    rng = np.random.default_rng(s.seed)
    perms = [rng.permutation(len(inc)) for _ in range(s.n_surrogates)]

    ya = es.project(dr.x, directions)
    inc_a = inc @ directions.astype(np.float32)
    sur_a = [sgd._z(sgd._walk(inc_a[p]), s.n_blocks) for p in perms]
    proj_a = _projection("diffusion", ya, np.array(sur_a), s)

    V, var, yb = heldout_pca(inc, None, s.m, s.max_pca_rows)
    sur_b = [sgd._z(heldout_pca(inc, p, s.m, s.max_pca_rows)[2], s.n_blocks) for p in perms]
    proj_b = _projection("pca-heldout", yb, np.array(sur_b), s)
    proj_b.extra = {"directions": V, "pc_variance": var}
    summary = {
        "drift_per_epoch": float(np.linalg.norm(dr.drift)),
        "drift_displacement": dr.displacement,
        "drift_relative": dr.relative,
        "n_epochs": len(w),
    }
    summary |= sgd.verdict([proj_a, proj_b], s.alpha)
    return summary, [proj_a, proj_b]
