"""The per-seed statistics of the trajectories (beyond the paper): one row per seed of
``results/tables/trajectory.parquet``, from the outputs of :mod:`sgdvi.trajectory.analysis` and
the runner (:mod:`sgdvi.trajectory.runner`): settings, the statistics behind Fig. 3a/3b, and the
gradient norm of Fig. 3c and Remark 18."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sgdvi.infra.parquet import read_table


def load_analyses(seeds: Sequence[int], paths: Sequence[str | Path]) -> dict[int, dict]:
    """``seed -> analysis dict`` read from the ``analysis.npz`` files."""
    out = {}
    for seed, path in zip(seeds, paths, strict=True):
        with np.load(path) as z:
            out[int(seed)] = {k: z[k] for k in z.files}
    return out


_TABLE_SCALARS = (
    "n",
    "n_fft",
    "d",
    "d_active",
    "low_frequency_cutoff",
    "n_low_freq_bins",
    "low_freq_ratio",
    "low_freq_ratio_median",
    "low_freq_ratio_ou",
    "low_freq_ratio_perm_mean",
    "low_freq_p_value",
    "low_freq_p_value_lower",
    "band",
    "ac_frac_outside",
    "ac_frac_outside_shuffle",
    "ac_frac_outside_walk",
    "ac_frac_outside_ou",
    "ac_frac_outside_perm_mean",
    "ac_p_value",
    "ou_coefficient",
    "n_permutations",
)


def _first_after(metrics: pd.DataFrame, burn_in: int) -> float:
    """``|grad f|/sqrt(d)`` at the first epoch after ``burn_in`` that has a full-dataset pass
    (NaN if there is none)."""
    after = metrics[(metrics["epoch"] > burn_in) & metrics["grad_norm_normalised"].notna()]
    return float(after["grad_norm_normalised"].iloc[0]) if len(after) else float("nan")


def trajectory_table(
    seeds: Sequence[int],
    analyses: Sequence[str | Path],
    metrics: Sequence[str | Path],
    runs: Sequence[str | Path],
) -> pd.DataFrame:
    """One row per seed: settings, the statistics of the analysis, final loss/error/gradient."""
    rows = []
    loaded = load_analyses(seeds, analyses)
    for seed, mpath, rpath in zip(seeds, metrics, runs, strict=True):
        a = loaded[int(seed)]
        m = read_table(mpath)
        run = json.loads(Path(rpath).read_text())
        s = run["settings"]
        tail = m[m["epoch"] > m["epoch"].max() * 0.9]
        row = {
            "seed": int(seed),
            "epochs": s["epochs"],
            "burn_in": s["burn_in"],
            "lr_burn_in": s["lr_burn_in"],
            "lr": s["lr"],
            "momentum": s["momentum"],
            "nesterov": s["nesterov"],
            "dtype": s["dtype"],
            "engine": s["engine"],
            "n_train": run["n_train"],
        }
        row |= {k: a[k].item() for k in _TABLE_SCALARS}
        row |= {
            "grad_norm_normalised_initial": float(m["grad_norm_normalised"].iloc[0]),
            # Remark 18's "over the next 10^5 epochs": from the first full pass after burn-in
            "grad_norm_normalised_after_burn_in": _first_after(m, s["burn_in"]),
            "grad_norm_normalised_last10pct_mean": float(tail["grad_norm_normalised"].mean()),
            "grad_norm_normalised_min": float(m["grad_norm_normalised"].min()),
            "loss_last10pct_mean": float(tail["loss"].mean()),
            "error_last10pct_mean": float(tail["error"].mean()),
            "train_wall_seconds": run["wall_seconds_this_session"],
        }
        rows.append(row)
    return pd.DataFrame(rows)
