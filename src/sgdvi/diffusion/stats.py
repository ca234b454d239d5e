"""Statistics of the eigenspectrum of D(x): the numbers printed in Figs. 1, 2 and Remarks 13-16.

- mean and standard deviation (ddof=1) of the d eigenvalues clipped from below at the rank
  threshold ``lambda_max * d * eps`` (footnote 1; the authors' code), and ``rank / d``;
- Remark 15: ``(eta / b) * (1/d) sum_k lambda_k(D)`` (eq. (14)), times ``1 - b/N`` for (A2);
- Remark 16: ``rank(D) / d + var(lambda(D))``;
- Remark 13: how much the leading eigenvalues move between the snapshots at 20/40/100%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sgdvi.diffusion.eigen import clipped_eigenvalues
from sgdvi.diffusion.paper import PAPER_SOURCE, PAPER_VALUES

__all__ = ["PAPER_SOURCE", "PAPER_VALUES"]


def spectrum_statistics(eigenvalues: np.ndarray, d: int, threshold: float) -> dict[str, float]:
    """Mean, std (ddof=1), variance of the clipped eigenvalues; rank and rank % of d.

    ``eigenvalues``: all d (dense path) or the leading ones found (fast path); values not given
    are below the threshold and count as the threshold.
    """
    clipped = clipped_eigenvalues(eigenvalues, d, threshold)
    rank = int(np.count_nonzero(np.asarray(eigenvalues) > threshold))
    var = float(np.var(clipped, ddof=1)) if d > 1 else math.nan
    return {
        "mean": float(np.mean(clipped)),
        "std": math.sqrt(var),
        "var": var,
        "rank": rank,
        "rank_pct": 100.0 * rank / d,
    }


def remark15(mean_eigenvalue: float, lr: float, batch_size: int, temperature: float = 1.0) -> float:
    """Remark 15 / eq. (14): ``(eta / b) * mean eigenvalue`` (times ``1 - b/N`` for (A2))."""
    return lr / batch_size * mean_eigenvalue * temperature


def remark16(rank: int, d: int, variance: float) -> float:
    """Remark 16: ``rank(D) / d + var(lambda(D))``, the proposed architecture score."""
    return rank / d + variance


def remark13_change(
    spectra: Mapping[float, np.ndarray], top: int = 10
) -> dict[float, dict[str, float]]:
    """Relative change of the leading eigenvalues of each snapshot against the last one.

    ``spectra``: fraction -> eigenvalues (descending). For each fraction, over the ``top``
    largest eigenvalues: ``max_j |lambda_j - lambda_j(final)| / lambda_j(final)`` and the
    median of the same ratios. The final snapshot gets 0.
    """
    fractions = sorted(spectra)
    final = np.sort(np.asarray(spectra[fractions[-1]], dtype=np.float64))[::-1]
    out: dict[float, dict[str, float]] = {}
    for f in fractions:
        lam = np.sort(np.asarray(spectra[f], dtype=np.float64))[::-1]
        k = min(top, len(lam), len(final))
        rel = np.abs(lam[:k] - final[:k]) / np.abs(final[:k])
        out[f] = {
            "r13_top": k,
            "r13_max_rel_change": float(rel.max()) if k else math.nan,
            "r13_median_rel_change": float(np.median(rel)) if k else math.nan,
        }
    return out


def diffusion_table(records: Sequence[Mapping[str, Any]], r13_top: int = 10) -> pd.DataFrame:
    """One row per experiment x snapshot from the stored results.

    Each record needs: experiment, fraction, eigenvalues, d, n, threshold, lambda_max, eps,
    trace, grad_norm, solver, formula, lr, batch_size, seconds (what
    ``results/{experiment}/diffusion/{fraction}.npz`` holds).
    """
    rows = []
    by_exp: dict[str, dict[float, np.ndarray]] = {}
    for rec in records:
        by_exp.setdefault(rec["experiment"], {})[float(rec["fraction"])] = rec["eigenvalues"]
    changes = {exp: remark13_change(sp, r13_top) for exp, sp in by_exp.items()}
    for rec in records:
        exp, frac = rec["experiment"], float(rec["fraction"])
        d = int(rec["d"])
        st = spectrum_statistics(rec["eigenvalues"], d, float(rec["threshold"]))
        temp = float(rec.get("temperature", 1.0))
        paper = PAPER_VALUES.get(exp, {})
        mean_eig = float(rec["trace"]) / d
        rows.append(
            {
                "experiment": exp,
                "fraction": frac,
                "epoch": rec.get("epoch", math.nan),
                "N": int(rec["n"]),
                "d": d,
                "formula": rec["formula"],
                "solver": rec["solver"],
                "mean": st["mean"],
                "std": st["std"],
                "rank": st["rank"],
                "rank_pct": st["rank_pct"],
                "lambda_max": float(rec["lambda_max"]),
                "threshold": float(rec["threshold"]),
                "eps": float(rec["eps"]),
                "trace": float(rec["trace"]),
                "mean_eigenvalue": mean_eig,
                "grad_norm": float(rec["grad_norm"]),
                "n_negative": int(rec.get("n_negative", 0)),
                "most_negative": float(rec.get("most_negative", 0.0)),
                "lr": float(rec["lr"]),
                "batch_size": int(rec["batch_size"]),
                "remark15": remark15(mean_eig, float(rec["lr"]), int(rec["batch_size"]), temp),
                "remark16": remark16(st["rank"], d, st["var"]),
                **changes[exp][frac],
                "paper_mean": paper.get("mean", math.nan),
                "paper_std": paper.get("std", math.nan),
                "paper_rank_pct": paper.get("rank_pct", math.nan),
                "seconds": float(rec["seconds"]),
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(["experiment", "fraction"], kind="stable").reset_index(drop=True)
    return table
