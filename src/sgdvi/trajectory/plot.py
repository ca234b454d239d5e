"""Fig. 3 of the paper (a: FFT of increments, b: autocorrelation, c: gradient norm), from the
outputs of :mod:`sgdvi.trajectory.analysis` (read by :func:`sgdvi.trajectory.table.load_analyses`;
the per-seed statistics table is :mod:`sgdvi.trajectory.table`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sgdvi.infra.figures import save_figure  # noqa: E402

_GREY = "0.45"


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
