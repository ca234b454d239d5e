"""Does the SGD trajectory of tiny-fc carry a probability current? (Remark 17 tested directly).

Section IV-B of Chaudhari & Soatto (2018) argues from Fig. 3 that SGD's steady state is out of
equilibrium (Remark 17, Lemma 7: ``j(x) != 0`` in eq. (8), "limit cycles"). Here the direct
observable, the area-enclosing rate of :mod:`.estimator`, is measured on the stored post-burn-in
weights (one row per epoch, ``dt = 1`` epoch) after removing the mean drift, in ``m`` directions
that are *not* estimated on the samples they are applied to:

(a) the leading eigenvectors of ``D(x)`` (eq. (2)) at the end of burn-in (first stored row), from
    per-example gradients with BatchNorm normalising by the full-training-set statistics (the
    trajectory's full-gradient pass: train-mode BN over the whole set as one batch; the
    per-example gradient differentiates through those statistics, so their mean is the full
    gradient), and
(b) the top principal components of the first half of the path, with ``L_hat`` measured on the
    second half only (same-sample components of a random walk trace Lissajous figures that
    enclose area: :func:`.estimator.lissajous_area`).

Each pair gets ``L_hat``, a batch-means z-score and its rank among surrogate random walks of
the permuted increments, projected the same way (for (b) the components are refitted on each
surrogate's first half).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as tF
from scipy import stats
from torch.func import grad, vmap

from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import lemma20 as l20
from sgdvi.trajectory import network


def _loss_one(
    p: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    xbar: torch.Tensor,
    cov: torch.Tensor,
) -> torch.Tensor:
    """Loss of one example with BN normalising by the full-set statistics *as functions of the
    weights*: mean ``W1 xbar + b1``, biased variance ``diag(W1 cov W1^T)`` (what train-mode BN
    computes over the whole set as one batch)."""
    w1 = p["w1"]
    mean = w1 @ xbar + p["b1"]
    var = ((w1 @ cov) * w1).sum(dim=1)
    out = network.logits(p, x, mean, var)
    return tF.cross_entropy(out.unsqueeze(0), y.unsqueeze(0))


def per_example_gradients(
    w: np.ndarray, x: np.ndarray, y: np.ndarray, num_classes: int, chunk: int = 4096
) -> np.ndarray:
    """``(N, d)`` float64 per-example gradients of tiny-fc at weights ``w`` with full-batch BN,
    by :func:`torch.func.vmap` over :func:`torch.func.grad` in chunks."""
    xt = torch.as_tensor(np.asarray(x).reshape(len(x), -1), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    xbar = xt.mean(0)
    xc = xt - xbar
    cov = xc.T @ xc / len(xt)
    net = network.TinyFC(num_classes)
    params = net.unflatten(torch.as_tensor(np.asarray(w), dtype=torch.float64).clone())
    fn = vmap(grad(_loss_one), in_dims=(None, 0, 0, None, None))
    names = [n for n, _ in net.param_shapes]
    rows = []
    for s in range(0, len(xt), chunk):
        g = fn(params, xt[s : s + chunk], yt[s : s + chunk], xbar, cov)
        rows.append(torch.cat([g[n].reshape(len(g[n]), -1) for n in names], dim=1))
    return torch.cat(rows).numpy()


def diffusion_directions(g: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``m`` eigenvectors (d, m) and eigenvalues of ``D = (1/N) sum (g_k - gbar)(g_k -
    gbar)^T`` (eq. (2) up to the batch-size factor, which does not change the directions),
    dense ``eigh``; signs fixed so each vector's largest entry is positive."""
    gc = g - g.mean(axis=0)
    D = gc.T @ gc / len(g)
    lam, V = np.linalg.eigh(D)
    V, lam = V[:, ::-1][:, :m], lam[::-1][:m]
    V = V * np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(m)])
    return V, lam


# ---------------------------------------------------------------------------- the analysis
@dataclass
class Projection:
    """One projection's results (``name`` is ``diffusion`` or ``pca-heldout``)."""

    name: str
    y: np.ndarray  # projected coordinates the statistic was computed on (n', m)
    area: es.AreaRate
    stat: es.Stationarity
    z_sur: np.ndarray  # (S, m, m) surrogate z-scores
    fit: l20.BootstrapRatio
    tau: float = float("nan")  # largest integrated autocorrelation time of the coordinates
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """Config ``irreversibility:`` keys the SGD analysis uses."""

    m: int = 10
    n_blocks: int = 20
    n_surrogates: int = 100
    n_boot: int = 200
    alpha: float = 0.01
    max_pca_rows: int = 4000
    growth_max: float = 2.0
    seed: int = 0


def _thinning_starts(n_first: int, max_rows: int) -> np.ndarray:
    """Start offsets of the blocks of increments summed into one thinned position each."""
    return np.arange(0, n_first, max(1, -(-n_first // max_rows)))


def _block_sums(inc: np.ndarray, order: np.ndarray, max_rows: int) -> np.ndarray:
    """Sums of consecutive blocks of ``inc[order]`` (at most ``max_rows`` blocks), as a sparse
    0/1 matrix (rows: blocks, columns: increments) times ``inc``: no gathered copy (float32
    sums, ``np.add.reduceat`` of the gathered rows up to rounding; torch's CSR product is 2.5x
    faster than scipy's on 49,500 x 917 increments)."""
    starts = _thinning_starts(len(order), max_rows)
    crow = torch.from_numpy(np.append(starts, len(order)))
    col = torch.from_numpy(np.ascontiguousarray(order, dtype=np.int64))
    ones = torch.ones(len(order), dtype=torch.float32)
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        S = torch.sparse_csr_tensor(crow, col, ones, size=(len(starts), len(inc)))
    return (S @ torch.from_numpy(inc)).numpy()


def _thinned_pca(blocks: np.ndarray, m: int) -> np.ndarray:
    """:func:`.estimator.pca_directions` of the positions ``cumsum(blocks)`` (all rows),
    without forming them: ``X Z = centre(cumsum(blocks Z))`` and ``X^T q = blocks^T
    revcumsum(q - mean q)``. The same randomised range finder, seed and power iterations; the
    power iterations run in float32 and the final Rayleigh-Ritz step in float64, so the
    directions agree with the float64 reference to ~1e-8."""
    n, d = blocks.shape
    if min(n, d) <= 4 * m:  # pca_directions takes its full-SVD branch
        pos = np.cumsum(blocks, axis=0, dtype=np.float64)
        return es.pca_directions(pos, m, max_rows=len(pos))[0]
    b32 = blocks.astype(np.float32, copy=False)

    def fwd(z: np.ndarray) -> np.ndarray:
        y = np.cumsum(b32 @ z.astype(np.float32), axis=0, dtype=np.float64)
        return y - y.mean(axis=0)

    def back(q: np.ndarray, b: np.ndarray = b32) -> np.ndarray:
        r = np.cumsum((q - q.mean(axis=0))[::-1], axis=0)[::-1]
        return (r.astype(b.dtype).T @ b).T.astype(np.float64)  # faster than b.T @ r

    q = np.linalg.qr(fwd(np.random.default_rng(0).standard_normal((d, m + 10))))[0]
    for _ in range(4):
        q = np.linalg.qr(fwd(np.linalg.qr(back(q))[0]))[0]
    _, _, vt = np.linalg.svd(back(q, blocks.astype(np.float64)).T, full_matrices=False)
    v = vt[:m].T
    return v * np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])])


def _heldout_pca(inc: np.ndarray, m: int, max_rows: int, chunk: int = 8192):
    """PCs from the first half of the walk of ``inc``, and the second half's projected
    coordinates. Positions of the first half are thinned by summing blocks of increments, so
    only ``max_rows`` positions are formed (float64 throughout, as in the surrogates' reference
    :func:`.reference.heldout_pca`)."""
    h = (len(inc) + 1) // 2
    first = inc[: h - 1]
    pos = np.cumsum(
        np.add.reduceat(first, _thinning_starts(len(first), max_rows), axis=0),
        axis=0,
        dtype=np.float64,
    )
    V, var = es.pca_directions(pos, m, max_rows=len(pos))
    sec = inc[h - 1 :]
    second = np.concatenate(
        [sec[a : a + chunk].astype(np.float64) @ V for a in range(0, len(sec), chunk)]
    )
    y = np.concatenate([np.zeros((1, m)), np.cumsum(second, axis=0)])
    return V, var, y


def _heldout_surrogates(
    inc: np.ndarray, perms: Iterable[np.ndarray], m: int, max_rows: int, n_blocks: int, batch: int
) -> np.ndarray:
    """Surrogate z-scores of the held-out projection, ``(S, m, m)``: per permutation, PCs of
    the thinned first half (:func:`_block_sums`, :func:`_thinned_pca`), then the second half
    projected. The projections of ``batch`` surrogates share one float32 GEMM ``inc @ [V_1 ...
    V_batch]``, stored transposed so that each permutation's order is a gather along
    contiguous rows."""
    h = (len(inc) + 1) // 2
    out, it = [], iter(perms)
    while group := list(itertools.islice(it, batch)):
        vs = [_thinned_pca(_block_sums(inc, p[: h - 1], max_rows), m) for p in group]
        proj = np.ascontiguousarray((inc @ np.hstack(vs).astype(np.float32)).T)
        out += [
            _walk_z(proj[k * m : (k + 1) * m, p[h - 1 :]], n_blocks) for k, p in enumerate(group)
        ]
    return np.array(out)


@dataclass(frozen=True)
class _Detrended:
    """:func:`.estimator.remove_drift` of the weights, kept as float32 increments and the
    float64 coordinates along the diffusion directions (no float64 copy of the weights)."""

    inc: np.ndarray  # (n - 1, d) float32 increments of the detrended path
    y: np.ndarray  # (n, m) detrended path projected on the directions
    drift: np.ndarray
    displacement: float
    relative: float


def _detrend(weights: np.ndarray, directions: np.ndarray, chunk: int = 512) -> _Detrended:
    """One streaming pass over ``weights`` (n, d) (a memmap is fine) in float64 chunks:
    ``x_k - k mu`` exactly as :func:`.estimator.remove_drift` forms it, its increments (cast to
    float32), its projection, and the per-coordinate variance merged across chunks (Chan et
    al.), for the relative drift size."""
    n, d = weights.shape
    x0, x1 = (np.asarray(weights[i], dtype=np.float64) for i in (0, -1))
    mu = (x1 - x0) / (n - 1)
    inc = np.empty((n - 1, d), np.float32)
    y = np.empty((n, directions.shape[1]))
    mean, m2 = np.zeros(d), np.zeros(d)
    for a in range(0, n, chunk):
        b, e = min(a + chunk, n), min(a + chunk + 1, n)
        xd = np.asarray(weights[a:e], dtype=np.float64) - np.arange(a, e)[:, None] * mu
        inc[a : e - 1] = np.diff(xd, axis=0)
        xd = xd[: b - a]
        y[a:b] = xd @ directions
        cm = xd.mean(axis=0)
        delta = cm - mean
        mean += delta * (b - a) / b
        m2 += ((xd - cm) ** 2).sum(axis=0) + delta**2 * a * (b - a) / b
    disp = float(np.linalg.norm(mu) * (n - 1))
    rms = float(np.sqrt(np.sum(m2 / n)))
    return _Detrended(inc, y, mu, disp, disp / rms if rms > 0 else np.inf)


def analyse_current(
    weights: np.ndarray, directions: np.ndarray, s: Settings, log=None, batch: int = 20
) -> tuple[dict, list[Projection]]:
    """The whole per-seed current analysis on ``weights`` (n, d), one row per epoch.

    Returns a summary dict (drift size, verdict, ...) and the two :class:`Projection` results.
    Same statistics as :func:`.reference.analyse_current` (observed values to rounding,
    surrogate z-scores to ~1e-6: the surrogates' held-out PCs and projections run in float32),
    in a fraction of the time and memory. Detrends and projects, then
    :func:`analyse_projected`.
    """
    t0 = time.perf_counter()
    dt = _detrend(weights, np.asarray(directions, dtype=np.float64))
    inc_a = np.ascontiguousarray((dt.inc @ directions.astype(np.float32)).T)
    summary = {
        "drift_per_epoch": float(np.linalg.norm(dt.drift)),
        "drift_displacement": dt.displacement,
        "drift_relative": dt.relative,
        "n_epochs": len(weights),
    }
    summary, projs = analyse_projected(dt.y, inc_a, dt.inc, summary, s, log, batch)
    if log:
        log.info("current analysis: %.1f s", time.perf_counter() - t0)
    return summary, projs


def analyse_projected(
    y: np.ndarray,
    inc_t: np.ndarray,
    inc: np.ndarray,
    drift: dict,
    s: Settings,
    log=None,
    batch: int = 20,
    name: str = "diffusion",
) -> tuple[dict, list[Projection]]:
    """The analysis after detrending: projection (a) on the detrended coordinates ``y``
    (n, m), its surrogates from the float32 increments ``inc_t`` (m, n - 1) of ``y`` stored
    transposed, and the held-out PCs (b) of the float32 detrended increments ``inc``
    (n - 1, d') of the space they are computed in (all weights in :func:`analyse_current`,
    the recorded subspace in :func:`sgdvi.trajectory.recorder.analyse_recording`). ``drift``
    (drift sizes, ``n_epochs``) heads the returned summary; ``name`` names projection (a)."""
    perms = _permutations(inc_t.shape[1], s)
    sur_a = [_walk_z(inc_t[:, p], s.n_blocks) for p in perms]
    proj_a = _projection(name, y, np.array(sur_a), s)
    if log:
        log.info("%s directions: max |z| %.2f", name, np.abs(proj_a.area.z).max())

    V, var, yb = _heldout_pca(inc, s.m, s.max_pca_rows)
    perms = _permutations(len(inc), s)
    sur_b = _heldout_surrogates(inc, perms, s.m, s.max_pca_rows, s.n_blocks, batch)
    proj_b = _projection("pca-heldout", yb, sur_b, s)
    proj_b.extra = {"directions": V, "pc_variance": var}
    if log:
        log.info("held-out PCs: max |z| %.2f", np.abs(proj_b.area.z).max())
    summary = dict(drift) | verdict([proj_a, proj_b], s.alpha)
    return summary, [proj_a, proj_b]


def _permutations(n: int, s: Settings) -> Iterator[np.ndarray]:
    """The surrogates' permutations of ``n`` increments, drawn in order from ``s.seed`` (the
    same draws for both projections; regenerated instead of stored)."""
    rng = np.random.default_rng(s.seed)
    return (rng.permutation(n) for _ in range(s.n_surrogates))


def _walk(inc: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((1, inc.shape[1])), np.cumsum(inc, axis=0, dtype=np.float64)])


def _walk_z(inc_t: np.ndarray, n_blocks: int) -> np.ndarray:
    """``_z(_walk(inc_t.T), n_blocks)`` for increments stored transposed, ``(m, n - 1)``:
    the surrogates' area-rate z-scores with every pass along contiguous rows (the same walk,
    centring and per-block ``x dx^T`` sums as :func:`.estimator.area_rate`, up to rounding)."""
    m, k = inc_t.shape
    x = np.zeros((m, k + 1))
    np.cumsum(inc_t, axis=1, dtype=np.float64, out=x[:, 1:])
    x -= x.mean(axis=1, keepdims=True)
    dx = np.diff(x, axis=1)
    bounds = es.block_bounds(k, _blocks(k + 1, n_blocks))
    sums = np.array(
        [x[:, a:b] @ dx[:, a:b].T for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    return es.area_rate_from_sums(sums, np.diff(bounds), 1.0).z


def _blocks(n_samples: int, n_blocks: int) -> int:
    """``n_blocks``, or fewer for a very short path (at least 3 steps per block)."""
    return max(2, min(n_blocks, (n_samples - 1) // 3))


def _z(y: np.ndarray, n_blocks: int) -> np.ndarray:
    return es.area_rate(y, 1.0, _blocks(len(y), n_blocks)).z


def _projection(name: str, y: np.ndarray, z_sur: np.ndarray, s: Settings) -> Projection:
    nb = _blocks(len(y), s.n_blocks)
    area = es.area_rate(y, 1.0, nb)
    stat = es.stationarity(y, s.growth_max)
    fit = l20.bootstrap_ratio(y, 1.0, s.n_boot, nb, s.seed)
    tau = max(es.integrated_autocorrelation_time(y[:, k]) for k in range(y.shape[1]))
    return Projection(name, y, area, stat, z_sur, fit, tau)


def pair_table(p: Projection) -> pd.DataFrame:
    """One row per pair ``i < j``: ``L_hat``, s.e., z, t-test p, rank and permutation p among
    the surrogates, stationarity of both coordinates."""
    i, j = np.triu_indices(p.y.shape[1], 1)
    rank, p_sur = es.rank_among(p.area.z, p.z_sur)
    return pd.DataFrame(
        {
            "projection": p.name,
            "i": i,
            "j": j,
            "L": p.area.L[i, j],
            "se": p.area.se[i, j],
            "z": p.area.z[i, j],
            "p_t": p.area.p_value()[i, j],
            "rank": rank[i, j],
            "n_surrogates": len(p.z_sur),
            "p_surrogate": p_sur[i, j],
            "stationary": p.stat.stationary[i] & p.stat.stationary[j],
            "growth_i": p.stat.growth[i],
            "growth_j": p.stat.growth[j],
            "block_len": p.area.block_len,
            "tau_max": p.tau,  # batch means need block_len >> tau (stationary coordinates)
        }
    )


def verdict(projs: list[Projection], alpha: float) -> dict:
    """One verdict per seed: over the pairs whose two coordinates look stationary, in both
    projections, the smallest batch-means p-value with a Bonferroni correction (the level at
    which a current is detected), and the family-wise surrogate p-value of ``max |z|``."""
    tables = [pair_table(p) for p in projs]
    n_ok = sum(int(t.stationary.sum()) for t in tables)
    if n_ok == 0:
        return {
            "verdict": "no stationary state to test",
            "level": np.nan,
            "p_family": np.nan,
            "n_pairs_tested": 0,
            "strongest": "",
        }
    best, p_fw = None, []
    for t, p in zip(tables, projs, strict=True):
        ok = t[t.stationary]
        if ok.empty:
            continue
        k = ok.z.abs().idxmax()
        if best is None or ok.p_t[k] < best[1].p_t:
            best = (p.name, ok.loc[k])
        i, j = ok.i.to_numpy(), ok.j.to_numpy()
        zmax = np.abs(p.z_sur[:, i, j]).max(axis=1)
        p_fw.append((1 + (zmax >= ok.z.abs().max()).sum()) / (len(zmax) + 1))
    level = min(1.0, float(best[1].p_t) * n_ok)
    detected = level <= alpha
    text = (
        f"current detected (Bonferroni p = {level:.2g} over {n_ok} stationary pairs)"
        if detected
        else f"not detected at {alpha:g} (Bonferroni p = {level:.2g}, {n_ok} stationary pairs)"
    )
    return {
        "verdict": text,
        "level": level,
        "p_family": float(min(p_fw) * len(p_fw)),
        "n_pairs_tested": n_ok,
        "strongest": f"{best[0]} ({best[1].i},{best[1].j})",
    }


def normal_tail(z: float) -> float:
    """Two-sided normal p-value (for captions)."""
    return float(2.0 * stats.norm.sf(abs(z)))


# ---------------------------------------------------------------------------- outputs
SUMMARY_KEYS = (
    "variant",
    "seed",
    "n_epochs",
    "drift_per_epoch",
    "drift_displacement",
    "drift_relative",
    "verdict",
    "level",
    "p_family",
    "n_pairs_tested",
    "strongest",
)


def current_table(projs: list[Projection], summary: dict) -> pd.DataFrame:
    """``current.parquet``: one row per (projection, pair) with the per-seed summary columns
    (drift size, verdict, ...) and Lemma 20's ``|Q|/|D|`` of that projection repeated."""
    parts = []
    for p in projs:
        t = pair_table(p)
        t["q_over_d"], t["q_over_d_low"], t["q_over_d_high"] = p.fit.ratio, p.fit.low, p.fit.high
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    for k in SUMMARY_KEYS:
        table[k] = summary.get(k)
    return table


def current_arrays(projs: list[Projection], eigenvalues: np.ndarray, summary: dict) -> dict:
    """``current.npz``: projected coordinates, ``L``, s.e., z and surrogate z of each projection
    (keys prefixed ``diffusion_`` / ``pca_``), the D(x) eigenvalues, and the verdict text."""
    out: dict[str, np.ndarray] = {
        "d_eigenvalues": eigenvalues,
        "verdict": np.array(summary["verdict"]),
        "strongest": np.array(summary["strongest"]),
    }
    for p in projs:
        k = "pca" if p.name == "pca-heldout" else p.name  # diffusion (or a recording's kind)
        out |= {
            f"{k}_y": p.y.astype(np.float32),
            f"{k}_L": p.area.L,
            f"{k}_se": p.area.se,
            f"{k}_z": p.area.z,
            f"{k}_z_surrogates": p.z_sur,
            f"{k}_stationary": p.stat.stationary,
            f"{k}_growth": p.stat.growth,
        }
    return out


def trajectory_rows(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows for ``results/tables/trajectory.parquet``: one per (variant, seed) from the
    ``current.parquet`` tables, with the verdict, its level, the strongest pair's ``L``/z per
    projection and Lemma 20's ``|Q|/|D|`` (columns prefixed ``current_``)."""
    rows = []
    for t in tables:
        r = {f"current_{k}": t[k].iloc[0] for k in SUMMARY_KEYS if k not in ("variant", "seed")}
        r |= {"variant": t["variant"].iloc[0], "seed": int(t["seed"].iloc[0])}
        for name, g in t.groupby("projection"):
            k = g.z.abs().idxmax()
            tag = "pca" if name == "pca-heldout" else name
            r |= {
                f"current_{tag}_max_abs_z": abs(g.z[k]),
                f"current_{tag}_L": g.L[k],
                f"current_{tag}_p_surrogate": g.p_surrogate[k],
                f"current_{tag}_stationary_pairs": int(g.stationary.sum()),
                f"current_{tag}_q_over_d": g.q_over_d.iloc[0],
            }
        rows.append(r)
    return pd.DataFrame(rows)
