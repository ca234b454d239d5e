"""Fig. 3 of the paper (a: FFT of increments, b: autocorrelation, c: gradient norm) and the
per-seed statistics table, from the outputs of :mod:`sgdvi.trajectory.analysis`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sgdvi.infra.figures import save_figure  # noqa: E402
from sgdvi.infra.parquet import read_table  # noqa: E402

_GREY = "0.45"


def load_analyses(seeds: Sequence[int], paths: Sequence[str | Path]) -> dict[int, dict]:
    """``seed -> analysis dict`` read from the ``analysis.npz`` files."""
    out = {}
    for seed, path in zip(seeds, paths, strict=True):
        with np.load(path) as z:
            out[int(seed)] = {k: z[k] for k in z.files}
    return out


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _corner_text(ax, lines: Sequence[str], side: str) -> None:
    """The per-seed statistics in a small boxed text at the bottom ``side`` of the axes."""
    ax.text(
        0.99 if side == "right" else 0.01,
        0.02,
        "\n".join(lines),
        transform=ax.transAxes,
        ha=side,
        va="bottom",
        fontsize=6.5,
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
    )


def _band(ax, x, mean, std, color, label, clip0=False, **kw) -> None:
    lo = mean - std
    if clip0:
        lo = np.maximum(lo, 0.0)
    ax.fill_between(x, lo, mean + std, color=color, alpha=0.2, lw=0, rasterized=True)
    ax.plot(x, mean, color=color, lw=0.8, label=label, rasterized=True, **kw)


def setting_label(variant: str) -> str:
    """Title label of a trajectory variant: '' for the stated setting, else '<variant> setting'."""
    if variant == "stated":
        return ""
    return "authors' setting" if variant == "authors" else f"{variant} setting"


def _setting(setting: str) -> str:
    """Title fragment naming a non-default setting, in parentheses ('' for none)."""
    return f" ({setting})" if setting else ""


def fig3a(analyses: Mapping[int, dict], lr: float | None = None, setting: str = "") -> plt.Figure:
    """Fig. 3a: |rfft| of the increments, mean +- std over weights, per seed; nulls in grey.

    ``setting`` (e.g. "authors' setting") is appended to the title when given."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    text = []
    for (seed, a), color in zip(analyses.items(), _colors(len(analyses)), strict=True):
        f = a["freqs"][1:]
        _band(ax, f, a["fft_mean"][1:], a["fft_std"][1:], color, f"SGD, seed {seed}", clip0=True)
        first = seed == next(iter(analyses))
        ax.plot(
            f,
            a["fft_perm_mean"][1:],
            color=_GREY,
            lw=0.7,
            ls="--",
            rasterized=True,
            label="null: increments permuted in time" if first else None,
        )
        ax.plot(
            f,
            a["fft_ou_mean"][1:],
            color=_GREY,
            lw=0.7,
            ls=":",
            rasterized=True,
            label=f"null: isotropic OU (a = {float(a['ou_coefficient']):.4f})" if first else None,
        )
        text.append(
            f"seed {seed}: power at f < {float(a['low_frequency_cutoff']):g} = "
            f"{float(a['low_freq_ratio']):.2f} x permuted null "
            f"(p excess {float(a['low_freq_p_value']):.3g}, "
            f"p deficit {float(a['low_freq_p_value_lower']):.3g})"
        )
    ax.axvline(float(a["low_frequency_cutoff"]), color="0.7", lw=0.6, ls="-.")
    ax.set_xscale("log")
    ax.set_xlabel("frequency (cycles per epoch)")
    ax.set_ylabel(r"$|\mathrm{FFT}(x^i_{k+1} - x^i_k)|$ (mean $\pm$ std over weights $i$)")
    n = int(a["n"])
    lr_txt = f", lr {lr:g}" if lr is not None else ""
    ax.set_title(
        f"Fig. 3a{_setting(setting)}: FFT of the weight increments ({n} stored epochs{lr_txt})",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left")
    _corner_text(ax, text, "right")
    return fig


def _fig3b_nulls(ax, lags: np.ndarray, a: Mapping, first: bool) -> None:
    """Fig. 3b's null autocorrelations in grey (labelled for the first seed only)."""
    for key, ls, label in (
        ("ac_ou_mean", ":", "null: isotropic OU, same variances"),
        ("ac_walk_mean", "--", "null: random walk of permuted increments"),
        ("ac_shuffle_mean", "-", "null: positions shuffled in time"),
    ):
        ax.plot(lags, a[key], color=_GREY, lw=0.8, ls=ls, label=label if first else None)


def fig3b(analyses: Mapping[int, dict], lr: float | None = None, setting: str = "") -> plt.Figure:
    """Fig. 3b: autocorrelation of x_k, mean +- std over weights, 99% band, nulls in grey."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    text = []
    for (seed, a), color in zip(analyses.items(), _colors(len(analyses)), strict=True):
        lags = a["lags"]
        first = seed == next(iter(analyses))
        _band(ax, lags, a["ac_mean"], a["ac_std"], color, f"SGD, seed {seed}", marker=".", ms=2)
        _fig3b_nulls(ax, lags, a, first)
        text.append(
            f"seed {seed}: {100 * float(a['ac_frac_outside']):.0f}% of lags outside the band "
            f"(shuffled {100 * float(a['ac_frac_outside_shuffle']):.1f}%, "
            f"OU {100 * float(a['ac_frac_outside_ou']):.0f}%, "
            f"walk {100 * float(a['ac_frac_outside_walk']):.0f}%), p = {float(a['ac_p_value']):.3g}"
        )
    band = float(a["band"])
    for s in (1, -1):
        ax.axhline(
            s * band,
            color="red",
            ls="--",
            lw=0.9,
            label="99% band $\\pm 2.576/\\sqrt{n}$" if s == 1 else None,
        )
    ax.axhline(0, color="0.8", lw=0.5)
    ax.set_xlabel("lag (epochs)")
    ax.set_ylabel(r"autocorrelation of $x^i_k$ (mean $\pm$ std over weights $i$)")
    lr_txt = f", lr {lr:g}" if lr is not None else ""
    what = f"autocorrelation of the weights ({int(a['n'])} stored epochs{lr_txt})"
    ax.set_title(f"Fig. 3b{_setting(setting)}: {what}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    _corner_text(ax, text, "left")
    return fig


def fig3c(metrics: Mapping[int, pd.DataFrame], burn_in: int, setting: str = "") -> plt.Figure:
    """Fig. 3c: ||grad f(x_k)||_2 / sqrt(d) against epoch k, burn-in included, per seed, at
    the epochs with a full-dataset pass (column ``full_pass``; every epoch in older runs)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for (seed, m), color in zip(metrics.items(), _colors(len(metrics)), strict=True):
        if "full_pass" in m:
            m = m[m["full_pass"]]
        ax.plot(
            m["epoch"],
            m["grad_norm_normalised"],
            color=color,
            lw=0.6,
            label=f"seed {seed}",
            rasterized=True,
        )
    ax.axvline(burn_in, color="0.3", ls="--", lw=0.8, label=f"end of burn-in (epoch {burn_in})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch k")
    ax.set_ylabel(r"$\|\nabla f(x_k)\|_2 / \sqrt{d}$ (full training set)")
    ax.set_title(
        f"Fig. 3c{_setting(setting)}: normalised full-dataset gradient norm (train-mode BN)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    return fig


def save(fig: plt.Figure, pdf: str | Path, png: str | Path) -> None:
    """Write a Fig. 3 panel as PDF (rasterised parts at 200 dpi) and PNG (150 dpi) through
    :func:`sgdvi.infra.figures.save_figure`, and close it."""
    save_figure(fig, pdf, png, dpi=150, pdf_dpi=200)


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
