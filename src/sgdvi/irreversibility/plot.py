"""Figure ``results/figures/irreversibility.pdf``: the probability-current test at a glance."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sgdvi.infra.figures import save_figure  # noqa: E402


def validation_panel(ax: plt.Axes, table: pd.DataFrame) -> None:
    """Estimate (error bars: 2 s.e.) against the closed form for each validation process."""
    t = table[table.quantity == "L_12"].reset_index(drop=True)
    labels = [
        s.split(",")[0].replace("random walk of the irreversible OU's permuted increments", "RW")
        + ("" if np.isnan(lam) else f" λ={lam:g}")
        for s, lam in zip(t.setting, t.lam, strict=True)
    ]
    x = np.arange(len(t))
    ax.errorbar(x, t.value, yerr=2 * t.se, fmt="o", color="C0", label="estimate ± 2 s.e.")
    ax.scatter(x, t.reference, marker="_", s=400, color="k", label="closed form", zorder=3)
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("$L_{12}$")
    ax.set_title("(a) validation: $\\hat L$ vs closed form", fontsize=9)
    ax.legend(fontsize=7)


def surrogate_panel(ax: plt.Axes, currents: list[dict], labels: list[str], key: str) -> None:
    """Observed z per pair (dots) against the surrogate random walks' 2.5-97.5 % band (grey)."""
    for c, (cur, lab) in enumerate(zip(currents, labels, strict=True)):
        z, zs = cur[f"{key}_z"], cur[f"{key}_z_surrogates"]
        i, j = np.triu_indices(z.shape[0], 1)
        lo, hi = np.quantile(zs[:, i, j], [0.025, 0.975], axis=0)
        x = np.arange(len(i)) + 0.15 * c
        ax.vlines(x, lo, hi, color="grey", alpha=0.5, lw=3)
        ok = cur[f"{key}_stationary"][i] & cur[f"{key}_stationary"][j]
        ax.scatter(
            x[ok], z[i, j][ok], s=8, color=f"C{c}", label=lab if ok.any() else None, zorder=3
        )
        ax.scatter(
            x[~ok],
            z[i, j][~ok],
            s=8,
            facecolors="none",
            edgecolors=f"C{c}",
            zorder=3,
            label=None if ok.any() else lab,
            lw=0.6,
        )
    ax.axhline(0, color="k", lw=0.5)
    tag, name = (
        ("(b)", "D(x) eigenvectors") if key == "diffusion" else ("(c)", "held-out PCs (2nd half)")
    )
    ax.set_title(f"{tag} z per pair, {name}; grey: surrogates; open: not stationary", fontsize=9)
    ax.set_xlabel("pair (i < j)")
    ax.set_ylabel("z = $\\hat L_{ij}$ / s.e.")
    ax.legend(fontsize=6, markerscale=2)


def plane_panel(ax: plt.Axes, cur: dict, label: str) -> None:
    """The trajectory in the plane of its strongest pair (largest |z|), coloured by time, with
    the sense of rotation implied by the sign of ``L_ij`` (counter-clockwise if positive)."""
    best = None
    for key in ("diffusion", "pca"):
        z = np.abs(np.triu(cur[f"{key}_z"], 1))
        k = np.unravel_index(np.argmax(z), z.shape)
        if best is None or z[k] > best[2]:
            best = (key, k, z[k])
    key, (i, j), _ = best
    y = cur[f"{key}_y"]
    y = y[:: max(1, len(y) // 3000)]
    ax.scatter(y[:, i], y[:, j], c=np.arange(len(y)), s=1, cmap="viridis")
    L = cur[f"{key}_L"][i, j]
    sense = "counter-clockwise" if L > 0 else "clockwise"
    _rotation_arrow(ax, y[:, i], y[:, j], np.sign(L))
    name = "D(x) eigvec" if key == "diffusion" else "held-out PC"
    ax.set_xlabel(f"{name} {i + 1}")
    ax.set_ylabel(f"{name} {j + 1}")
    stationary = bool(cur[f"{key}_stationary"][i] and cur[f"{key}_stationary"][j])
    note = "" if stationary else "; not stationary"
    z = cur[f"{key}_z"][i, j]
    ax.set_title(f"(d) {label}: strongest pair, z = {z:.1f}, {sense}{note}", fontsize=9)


def _rotation_arrow(ax: plt.Axes, u: np.ndarray, v: np.ndarray, sign: float) -> None:
    """A three-quarter circle around the path's centre, arrow head at its end, turning
    counter-clockwise for ``sign > 0`` (the sense of ``L_ij = (1/2) <x_i dx_j - x_j dx_i>``)."""
    theta = np.linspace(0.0, 1.5 * np.pi, 60) * (1.0 if sign >= 0 else -1.0)
    cx, cy, rx, ry = u.mean(), v.mean(), 0.25 * np.ptp(u), 0.25 * np.ptp(v)
    xs, ys = cx + rx * np.cos(theta), cy + ry * np.sin(theta)
    ax.plot(xs, ys, color="k", lw=2)
    ax.annotate(
        "",
        xy=(xs[-1], ys[-1]),
        xytext=(xs[-4], ys[-4]),
        arrowprops=dict(arrowstyle="-|>", color="k", lw=2, mutation_scale=20),
    )


def figure(table: pd.DataFrame, currents: list[dict], labels: list[str]) -> plt.Figure:
    """(a) validation; (b), (c) SGD z per pair vs surrogates; (d) strongest-pair plane."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    validation_panel(axes[0, 0], table)
    if currents:
        surrogate_panel(axes[0, 1], currents, labels, "diffusion")
        surrogate_panel(axes[1, 0], currents, labels, "pca")
        plane_panel(axes[1, 1], currents[0], labels[0])
        verdicts = "; ".join(
            f"{lab}: {c['verdict']}" for lab, c in zip(labels, currents, strict=True)
        )
        fig.text(0.01, 0.005, verdicts, fontsize=6, wrap=True)
    else:
        for ax in axes.ravel()[1:]:
            ax.set_axis_off()
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def save(fig: plt.Figure, pdf: str | os.PathLike[str], png: str | os.PathLike[str]) -> None:
    """Write the figure as PDF and PNG (150 dpi), both cropped to the drawn artists, through
    :func:`sgdvi.infra.figures.save_figure`, and close it."""
    save_figure(fig, pdf, png, dpi=150, bbox_inches="tight")
