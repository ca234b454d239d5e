"""Figures of the theory stage: Fig. 4 (Example 19) and the numerical checks beyond the paper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sgdvi.infra.figures import save_figure  # noqa: E402
from sgdvi.theory import double_well as dw  # noqa: E402

KIND_MARKERS = {
    "stable node": ("o", "white"),
    "stable focus": ("o", "white"),
    "saddle": ("X", "white"),
    "center (linear)": ("*", "white"),
    "unstable node": ("s", "white"),
    "unstable focus": ("s", "white"),
    "degenerate": ("d", "white"),
}


def save(fig: plt.Figure, pdf: str | Path, png: str | Path | None = None, dpi: int = 150) -> None:
    """Write a theory figure as PDF (and PNG at ``dpi``), both cropped to the drawn artists,
    through :func:`sgdvi.infra.figures.save_figure`, and close it."""
    save_figure(fig, pdf, png, dpi=dpi, bbox_inches="tight")


def fig4_panel(
    lam: float,
    crit: pd.DataFrame,
    *,
    box: float = 1.5,
    density: float = 1.4,
    grid: int = 201,
    max_width: float = 3.0,
    title: str | None = None,
) -> plt.Figure:
    """One panel of Fig. 4: streamlines of ``-grad f`` with line width ~ ``|grad f|``, filled
    contours of ``Phi``, red dots at the most likely locations ``(+-1, 0)`` of ``e^{-Phi}``, and
    the zeros of ``grad f`` (critical points of ``f``; beyond the paper) marked by type."""
    s = np.linspace(-box, box, grid)
    X1, X2 = np.meshgrid(s, s, indexing="xy")
    pts = np.stack([X1, X2], axis=-1)
    b = dw.drift(pts, lam)
    speed = np.hypot(b[..., 0], b[..., 1])
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    cf = ax.contourf(X1, X2, dw.phi(pts), levels=20, cmap="Blues_r", alpha=0.85)
    fig.colorbar(cf, ax=ax, fraction=0.046, pad=0.04, label=r"$\Phi(x)$")
    ax.streamplot(
        s,
        s,
        b[..., 0],
        b[..., 1],
        color="k",
        density=density,
        linewidth=0.3 + max_width * speed / speed.max(),
        arrowsize=0.8,
    )
    ax.plot(
        [-1, 1],
        [0, 0],
        "o",
        color="red",
        ms=8,
        mec="k",
        zorder=5,
        label=r"argmax $e^{-\Phi}$ $(\pm1, 0)$",
    )
    seen = set()
    for row in crit.itertuples():
        if abs(row.x1) > box or abs(row.x2) > box:
            continue
        marker, face = KIND_MARKERS.get(row.kind, ("d", "white"))
        label = None if row.kind in seen else rf"$\nabla f = 0$: {row.kind}"
        seen.add(row.kind)
        # hollow, so that a red dot at the same place stays visible
        ax.plot(row.x1, row.x2, marker, mfc="none", mec="k", mew=3.2, ms=14, zorder=6)
        ax.plot(row.x1, row.x2, marker, mfc="none", mec=face, mew=1.6, ms=14, zorder=7, label=label)
    ax.set_xlim(-box, box)
    ax.set_ylim(-box, box)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$x_1$")
    ax.set_ylabel(r"$x_2$")
    ax.set_title(title or rf"$\lambda = {lam:g}$")
    ax.legend(loc="lower left", fontsize=6.5, framealpha=0.9, facecolor="0.6")
    return fig


def sde_marginals(results: Sequence[dict], table: pd.DataFrame) -> plt.Figure:
    """Pooled empirical marginals of ``x1``, ``x2`` for every lambda against ``e^{-Phi}/Z``."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(results)))
    for r, c in zip(results, colors, strict=True):
        edges, hist = r["edges"], r["hist_pooled"]
        total = hist.sum()
        width = np.diff(edges)
        lam = float(r["lam"])
        row = table[(table.lam == lam) & (table.quantity == "tv_final_histogram")].iloc[0]
        label = rf"$\lambda={lam:g}$: TV {row.value:.3f} (tol {row.tolerance:.3f})"
        for ax, h in zip(axes, (hist.sum(axis=1), hist.sum(axis=0)), strict=True):
            ax.stairs(h / total / width, edges, color=c, lw=1.4, label=label)
    s = np.linspace(r["edges"][0], r["edges"][-1], 400)
    axes[0].plot(s, dw.marginal_x1(s), "r--", lw=1.5, label=r"$e^{-\Phi}/Z$")
    axes[1].plot(s, dw.marginal_x2(s), "r--", lw=1.5, label=r"$e^{-\Phi}/Z$")
    for ax, name in zip(axes, ("x_1", "x_2"), strict=True):
        ax.set_xlabel(rf"${name}$")
        ax.set_ylabel("density")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "SDE steady state: marginals for every $\\lambda$ vs closed form "
        "(TV: 2-D histogram of the final particles)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def sde_circulation(table: pd.DataFrame) -> plt.Figure:
    """Stationary mean angular velocity against lambda, with ``lambda pi^{3/2} / Z``."""
    drift = table[table.quantity == "mean_angular_velocity_drift"].sort_values("lam")
    wind = table[table.quantity == "mean_angular_velocity_winding"].sort_values("lam")
    lam_max = max(float(drift.lam.max()), 1e-9)
    grid = np.linspace(0, lam_max * 1.1, 50)
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.plot(
        grid,
        [dw.angular_velocity_closed_form(v) for v in grid],
        "r-",
        label=r"closed form $\lambda\pi^{3/2}/Z$",
    )
    ax.errorbar(
        drift.lam,
        drift.value,
        yerr=2 * drift.se,
        fmt="o",
        color="k",
        capsize=3,
        label=r"SDE, mean of $(x_1 b_2 - x_2 b_1)/|x|^2$ ($\pm 2$ s.e.)",
    )
    ax.errorbar(
        wind.lam + 0.02 * lam_max,
        wind.value,
        yerr=2 * wind.se,
        fmt="s",
        mfc="none",
        color="tab:blue",
        capsize=3,
        label="SDE, unwrapped winding / time ($\\pm 2$ s.e.)",
    )
    ax.set_xlabel(r"$\lambda$")
    ax.set_ylabel(r"$E[\dot\theta]$ (rad / unit time)")
    ax.legend(fontsize=7)
    ax.set_title("Circulation of the steady state", fontsize=9)
    fig.tight_layout()
    return fig


def sde_paths(result: dict, *, box: float = 2.5, space_time: float = 3.0) -> plt.Figure:
    """Sample paths for one lambda: the first two over ``[0, space_time]`` on the contours of
    ``Phi`` (left) and the unwrapped angle of all of them (right)."""
    lam = float(result["lam"])
    t, paths, theta = result["path_t"], result["paths"], result["path_theta"]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    s = np.linspace(-box, box, 200)
    X1, X2 = np.meshgrid(s, s)
    levels = np.linspace(0, 4, 17)
    axes[0].contourf(
        X1,
        X2,
        dw.phi(np.stack([X1, X2], -1)),
        levels=levels,
        cmap="Blues_r",
        alpha=0.6,
        extend="max",
    )
    colors = plt.cm.tab10(np.arange(paths.shape[1]) % 10)
    shown = t <= min(space_time, t[-1])
    for k in range(paths.shape[1]):
        if k < 2:
            axes[0].plot(paths[shown, k, 0], paths[shown, k, 1], lw=0.6, color=colors[k])
            axes[0].plot(paths[0, k, 0], paths[0, k, 1], "o", color=colors[k], mec="k", ms=5)
        axes[1].plot(t, theta[:, k], lw=0.8, color=colors[k])
    axes[0].plot([-1, 1], [0, 0], "o", color="red", mec="k", ms=7, zorder=5)
    axes[0].set_xlim(-box, box)
    axes[0].set_ylim(-box, box)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel(r"$x_1$")
    axes[0].set_ylabel(r"$x_2$")
    axes[0].set_title(
        rf"two sample paths, $\lambda={lam:g}$, $t\in[0, {t[shown][-1]:.0f}]$", fontsize=9
    )
    omega = dw.angular_velocity_closed_form(lam)
    axes[1].plot(
        t,
        omega * t,
        "k--",
        lw=1.5,
        label=rf"$\lambda\pi^{{3/2}}/Z \cdot t$ "
        rf"($={omega:.3f}\,t$)",
    )
    axes[1].set_xlabel("t (after burn-in)")
    axes[1].set_ylabel(r"unwrapped angle $\theta(t) - \theta(0)$")
    axes[1].legend(fontsize=8)
    axes[1].set_title("winding around the origin", fontsize=9)
    fig.tight_layout()
    return fig


def free_energy(results: Sequence[dict]) -> plt.Figure:
    """``F = KL(rho || rho_ss)`` (log scale), ``E_rho[Phi]`` and ``-H(rho)`` along (FP)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(results)))
    for r, c in zip(results, colors, strict=True):
        lam = float(r["lam"])
        t = r["t"]
        axes[0].semilogy(
            t, r["kl"], color=c, label=rf"$\lambda={lam:g}$ (gap {float(r['spectral_gap']):.3f})"
        )
        axes[1].plot(t, r["energy"], color=c, label=rf"$\lambda={lam:g}$")
        axes[2].plot(t, r["neg_entropy"], color=c, label=rf"$\lambda={lam:g}$")
        rate = 2 * float(r["spectral_gap"])
        k = len(t) // 2
        axes[0].semilogy(t[k:], r["kl"][k] * np.exp(-rate * (t[k:] - t[k])), ":", color=c, lw=1)
    ref = results[0]
    ss_energy = float(ref["ss_energy"])
    ss_negent = float(ref["ss_neg_entropy"])
    axes[1].axhline(ss_energy, color="r", ls="--", lw=1, label=r"$E_{\rho_{ss}}[\Phi]$")
    axes[2].axhline(ss_negent, color="r", ls="--", lw=1, label=r"$-H(\rho_{ss})$")
    axes[0].set_ylabel(r"$F(\rho)=\mathrm{KL}(\rho\,\|\,\rho_{ss})$")
    axes[0].set_title(r"free energy (dotted: $e^{-2\,\mathrm{gap}\,t}$)", fontsize=9)
    axes[1].set_ylabel(r"energetic term $E_\rho[\Phi]$")
    axes[2].set_ylabel(r"entropic term $-H(\rho)$")
    for ax in axes:
        ax.set_xlabel("t")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fp_density(result: dict) -> plt.Figure:
    """Snapshots of the Fokker-Planck density for one lambda, and the final error."""
    snaps, ts = result["snapshots"], result["snapshot_t"]
    nodes = result["nodes"]
    k = len(ts)
    fig, axes = plt.subplots(1, k + 1, figsize=(2.6 * (k + 1), 2.8))
    extent = (nodes[0], nodes[-1], nodes[0], nodes[-1])
    for ax, snap, t in zip(axes[:k], snaps, ts, strict=True):
        ax.imshow(snap.T, origin="lower", extent=extent, cmap="magma", aspect="equal")
        ax.plot([-1, 1], [0, 0], "o", color="cyan", ms=3)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_title(f"t = {t:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    centers = (nodes[:-1] + nodes[1:]) / 2
    C1, C2 = np.meshgrid(centers, centers, indexing="ij")
    exact = dw.stationary_density(np.stack([C1, C2], -1))
    err = snaps[-1] - exact
    im = axes[k].imshow(
        err.T,
        origin="lower",
        extent=extent,
        cmap="RdBu_r",
        aspect="equal",
        vmin=-np.abs(err).max(),
        vmax=np.abs(err).max(),
    )
    fig.colorbar(im, ax=axes[k], fraction=0.046)
    axes[k].set_title(r"$\rho(t_{end}) - e^{-\Phi}/Z$", fontsize=9)
    axes[k].set_xticks([])
    axes[k].set_yticks([])
    fig.suptitle(rf"Fokker-Planck density, $\lambda={float(result['lam']):g}$", fontsize=10)
    fig.tight_layout()
    return fig


def lemma20(checks: dict) -> plt.Figure:
    """Recovered vs true entries of ``U`` and ``Q`` (minimum and saddle), and the OU covariance:
    simulation against the Lyapunov solution and ``beta^{-1} U^{-1}``."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for key, marker in (("pd", "o"), ("saddle", "^")):
        for name, color in (("U", "tab:blue"), ("Q", "tab:orange")):
            true = checks[f"{key}_{name}_true"].ravel()
            rec = checks[f"{key}_{name}_rec"].ravel()
            axes[0].plot(
                true,
                rec,
                marker,
                color=color,
                mfc="none" if key == "saddle" else color,
                label=f"{name}, {'minimum' if key == 'pd' else 'saddle'}",
            )
            err = np.abs(rec - true)
            idx = np.flatnonzero(err > 0)  # exact zeros (diagonal of Q) cannot be drawn
            axes[1].semilogy(
                idx,
                err[idx],
                marker,
                color=color,
                mfc="none" if key == "saddle" else color,
            )
    lim = np.abs(axes[0].get_xlim()).max()
    axes[0].plot([-lim, lim], [-lim, lim], "k:", lw=1)
    axes[0].set_xlabel("true entry")
    axes[0].set_ylabel("recovered by Lemma 20")
    axes[0].legend(fontsize=7)
    axes[0].set_title(r"$F=(D+Q)U$ from random $U, D, Q$", fontsize=9)
    axes[1].axhline(1e-10, color="r", ls="--", lw=1, label="tolerance $10^{-10}$")
    axes[1].set_xlabel("entry index")
    axes[1].set_ylabel("|recovered - true| (exact zeros omitted)")
    axes[1].legend(fontsize=7)
    axes[1].set_title("recovery error", fontsize=9)
    S, se, ref = checks["cov_sim"], checks["cov_se"], checks["cov_theory"]
    iu = np.triu_indices(S.shape[0])
    axes[2].errorbar(
        ref[iu], S[iu], yerr=2 * se[iu], fmt="o", ms=4, capsize=2, label=r"simulation ($\pm2$ s.e.)"
    )
    lo, hi = ref[iu].min(), ref[iu].max()
    axes[2].plot([lo, hi], [lo, hi], "k:", lw=1, label=r"$\beta^{-1}U^{-1}$")
    axes[2].set_xlabel(r"$\beta^{-1}U^{-1}$ entry")
    axes[2].set_ylabel("stationary covariance entry")
    axes[2].legend(fontsize=7)
    axes[2].set_title(r"OU $dx=-Fx\,dt+\sqrt{2\beta^{-1}D}\,dW$", fontsize=9)
    fig.tight_layout()
    return fig


def temperature(N: Sequence[int], eta: float, b0: int) -> plt.Figure:
    """``beta^{-1}`` against batch size: fixed ``eta`` vs linear scaling ``eta ~ b`` (Remark 11),
    with and without replacement (Remark 12)."""
    from sgdvi.theory import temperature as tp

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    n_max = max(N)
    b = np.unique(np.round(np.logspace(0, np.log10(n_max), 200)).astype(int))
    ax.loglog(
        b,
        tp.inverse_temperature_with_replacement(eta, b),
        "k-",
        label=rf"fixed $\eta={eta:g}$, with replacement",
    )
    ax.loglog(
        b,
        tp.inverse_temperature_with_replacement(eta * b / b0, b),
        "k--",
        label=rf"linear scaling $\eta={eta:g}\,b/{b0}$, with replacement",
    )
    for n, c in zip(N, plt.cm.tab10(np.arange(len(N))), strict=False):
        bb = b[b < n]
        ax.loglog(
            bb,
            tp.inverse_temperature_without_replacement(eta, bb, n),
            "-",
            color=c,
            lw=1,
            alpha=0.8,
            label=f"fixed, without replacement, N={n}",
        )
        ax.loglog(
            bb,
            tp.inverse_temperature_without_replacement(eta * bb / b0, bb, n),
            "--",
            color=c,
            lw=1,
            alpha=0.8,
            label=f"linear scaling, without repl., N={n}",
        )
    ax.axvline(b0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("batch size b")
    ax.set_ylabel(r"$\beta^{-1}$")
    ax.set_title("Remarks 11 and 12: temperature of SGD", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
