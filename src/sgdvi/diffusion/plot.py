"""Figs. 1 and 2: histograms of the eigenvalues of D(x) at three instants of training.

As in the paper: counts of the eigenvalues (clipped from below at the rank threshold) on
log-log axes, the snapshots at 20%, 40% and 100% of training overlaid, darker = later; under
the axes, the caption lines the paper prints, ``lambda(D) = (mean +- std) x 10^k`` and
``rank(D) = r%`` (of the last snapshot), with the paper's values beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sgdvi.diffusion.eigen import clipped_eigenvalues
from sgdvi.diffusion.stats import spectrum_statistics
from sgdvi.infra.figures import save_figure


@dataclass(frozen=True)
class SnapshotSpectrum:
    """What one histogram needs: fraction of training, eigenvalues found, d, threshold."""

    fraction: float
    eigenvalues: np.ndarray
    d: int
    threshold: float


def format_mean_std(mean: float, std: float) -> str:
    """The paper's notation: ``(0.3 +- 2.11) x 10^-3`` for small values, ``0.27 +- 0.84``.

    Values whose std is at least 0.1 are printed plainly; otherwise both are scaled by the
    power of 1000 at or below the std (2.11e-3 -> 10^-3, 18.5e-3 -> 10^-3).
    """
    if not (math.isfinite(mean) and math.isfinite(std)):
        return f"{mean:.3g} $\\pm$ {std:.3g}"
    if std >= 0.1 or std == 0:
        return f"{mean:.2g} $\\pm$ {std:.3g}"
    k = 3 * math.floor(math.log10(std) / 3)
    return f"({mean / 10**k:.2g} $\\pm$ {std / 10**k:.3g}) $\\times 10^{{{k}}}$"


def histogram_bins(spectra: Sequence[SnapshotSpectrum], bins: int) -> np.ndarray:
    """Log-spaced bin edges from just below the smallest threshold to just above lambda_max."""
    lo = min(s.threshold for s in spectra)
    hi = max(float(np.max(s.eigenvalues)) for s in spectra)
    if not (lo > 0 and hi > lo):
        raise ValueError(
            f"cannot draw log-spaced bins from threshold {lo:g} to lambda_max {hi:g}: "
            "the spectrum must be positive and not all below the threshold"
        )
    return np.logspace(np.log10(lo) - 0.05, np.log10(hi) + 0.05, bins + 1)


def _draw_histograms(
    ax: Any, spectra: Sequence[SnapshotSpectrum], edges: np.ndarray, colormap: Any
) -> None:
    """Overlay the snapshots' histograms (filled and outlined, darker = later) on log axes."""
    shades = np.linspace(0.4, 0.95, len(spectra)) if len(spectra) > 1 else [0.9]
    for s, shade in zip(spectra, shades, strict=True):
        values = clipped_eigenvalues(s.eigenvalues, s.d, s.threshold)
        counts, _ = np.histogram(values, bins=edges)
        ax.stairs(
            counts,
            edges,
            fill=True,
            alpha=0.55,
            color=colormap(shade),
            label=f"{100 * s.fraction:.0f}% of training",
        )
        ax.stairs(counts, edges, color=colormap(shade), linewidth=1.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.7)
    ax.set_xlabel(r"eigenvalue $\lambda(D)$")
    ax.set_ylabel("count")


def _caption(
    fig: Any, last: SnapshotSpectrum, paper: Mapping[str, float] | None
) -> dict[str, float]:
    """Write the paper's caption lines (last snapshot) under the axes, and the paper's values
    beside them; return the statistics printed."""
    st = spectrum_statistics(last.eigenvalues, last.d, last.threshold)
    lines = [
        rf"$\lambda(D)$ = {format_mean_std(st['mean'], st['std'])}",
        rf"rank$(D)$ = {st['rank_pct']:.2g}%  ({st['rank']} of {last.d})",
    ]
    fig.subplots_adjust(bottom=0.30, left=0.16, right=0.96, top=0.92)
    fig.text(0.5, 0.115, "\n".join(lines), ha="center", va="center", fontsize=10)
    if paper:
        ptxt = (
            rf"paper: $\lambda(D)$ = {format_mean_std(paper['mean'], paper['std'])}, "
            rf"rank$(D)$ = {paper['rank_pct']:g}%"
        )
        fig.text(0.5, 0.025, ptxt, ha="center", va="bottom", fontsize=8, color="0.4")
    return st


def plot_spectra(
    spectra: Sequence[SnapshotSpectrum],
    out_paths: Sequence[str | Path],
    title: str,
    paper: Mapping[str, float] | None = None,
    bins: int = 40,
    cmap: str = "Blues",
    dpi: int = 150,
) -> dict[str, float]:
    """Draw one panel of Fig. 1 / Fig. 2 and save it to every path of ``out_paths`` at ``dpi``
    (PDF and PNG alike) through :func:`sgdvi.infra.figures.save_figure`.

    Returns the statistics printed under the axes (those of the last snapshot).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not spectra:
        raise ValueError("no spectra to plot")
    spectra = sorted(spectra, key=lambda s: s.fraction)
    edges = histogram_bins(spectra, bins)
    colormap = plt.get_cmap(cmap)

    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    try:
        _draw_histograms(ax, spectra, edges, colormap)
        ax.set_title(title)
        ax.legend(frameon=False, fontsize=8)
        st = _caption(fig, spectra[-1], paper)
    except BaseException:
        plt.close(fig)
        raise
    save_figure(fig, *out_paths, dpi=dpi, pdf_dpi=dpi)
    return st
