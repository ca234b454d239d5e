"""Does the SGD trajectory of tiny-fc carry a probability current? (issue 13, item 3).

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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as tF
from scipy import stats
from torch.func import grad, vmap

from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import lemma20 as l20

#: tiny-fc (:func:`sgdvi.models.tiny_fc`): 49 inputs, 16 hidden units with BN (torch's eps)
N_IN, N_HIDDEN, BN_EPS = 49, 16, 1e-5


def tinyfc_shapes(num_classes: int) -> list[tuple[str, tuple[int, ...]]]:
    """Parameter shapes of tiny-fc in ``model.parameters()`` order (d = 917 for 5 classes)."""
    return [
        ("w1", (N_HIDDEN, N_IN)),
        ("b1", (N_HIDDEN,)),
        ("gamma", (N_HIDDEN,)),
        ("beta", (N_HIDDEN,)),
        ("w2", (num_classes, N_HIDDEN)),
        ("b2", (num_classes,)),
    ]


def unflatten(w: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """Flat weight vector -> named tensors (views)."""
    out, start = {}, 0
    for name, shape in tinyfc_shapes(num_classes):
        size = int(np.prod(shape))
        out[name] = w[start : start + size].reshape(shape)
        start += size
    if start != w.numel():
        raise ValueError(f"tiny-fc with {num_classes} classes has {start} weights, got {w.numel()}")
    return out


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
    h = w1 @ x + p["b1"]
    z = p["gamma"] * (h - mean) / torch.sqrt(var + BN_EPS) + p["beta"]
    out = p["w2"] @ torch.relu(z) + p["b2"]
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
    params = unflatten(torch.as_tensor(np.asarray(w), dtype=torch.float64).clone(), num_classes)
    fn = vmap(grad(_loss_one), in_dims=(None, 0, 0, None, None))
    names = [n for n, _ in tinyfc_shapes(num_classes)]
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


def _heldout_pca(inc: np.ndarray, order: np.ndarray | None, m: int, max_rows: int):
    """PCs from the first half of the walk of ``inc`` (in ``order``), and the second half's
    projected coordinates. Positions of the first half are thinned by summing blocks of
    increments, so only ``max_rows`` positions are formed."""
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


def analyse_current(
    weights: np.ndarray, directions: np.ndarray, s: Settings, log=None
) -> tuple[dict, list[Projection]]:
    """The whole per-seed analysis (issue 13, item 3) on ``weights`` (n, d), one row per epoch.

    Returns a summary dict (drift size, verdict, ...) and the two :class:`Projection` results.
    """
    w = np.asarray(weights, dtype=np.float64)
    dr = es.remove_drift(w)
    inc = np.diff(dr.x, axis=0).astype(np.float32)
    rng = np.random.default_rng(s.seed)
    perms = [rng.permutation(len(inc)) for _ in range(s.n_surrogates)]

    ya = es.project(dr.x, directions)
    inc_a = inc @ directions.astype(np.float32)
    sur_a = [_z(_walk(inc_a[p]), s.n_blocks) for p in perms]
    proj_a = _projection("diffusion", ya, np.array(sur_a), s)
    if log:
        log.info("diffusion directions: max |z| %.2f", np.abs(proj_a.area.z).max())

    V, var, yb = _heldout_pca(inc, None, s.m, s.max_pca_rows)
    sur_b = [_z(_heldout_pca(inc, p, s.m, s.max_pca_rows)[2], s.n_blocks) for p in perms]
    proj_b = _projection("pca-heldout", yb, np.array(sur_b), s)
    proj_b.extra = {"directions": V, "pc_variance": var}
    if log:
        log.info("held-out PCs: max |z| %.2f", np.abs(proj_b.area.z).max())
    summary = {
        "drift_per_epoch": float(np.linalg.norm(dr.drift)),
        "drift_displacement": dr.displacement,
        "drift_relative": dr.relative,
        "n_epochs": len(w),
    }
    summary |= verdict([proj_a, proj_b], s.alpha)
    return summary, [proj_a, proj_b]


def _walk(inc: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((1, inc.shape[1])), np.cumsum(inc, axis=0, dtype=np.float64)])


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
        k = "diffusion" if p.name == "diffusion" else "pca"
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
            tag = "diffusion" if name == "diffusion" else "pca"
            r |= {
                f"current_{tag}_max_abs_z": abs(g.z[k]),
                f"current_{tag}_L": g.L[k],
                f"current_{tag}_p_surrogate": g.p_surrogate[k],
                f"current_{tag}_stationary_pairs": int(g.stationary.sum()),
                f"current_{tag}_q_over_d": g.q_over_d.iloc[0],
            }
        rows.append(r)
    return pd.DataFrame(rows)
