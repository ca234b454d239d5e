"""Runs of the theory stage and their numbers as rows of ``results/tables/theory.parquet``.

Every row: ``check`` (which experiment), ``setting`` (its parameters in words), ``lam``
(lambda of Example 19, NaN when not applicable), ``quantity``, ``value``, ``reference`` (closed
form or independent computation, NaN if none), ``tolerance`` and ``se`` (NaN if none) and
``passed`` (None for numbers that are not a check).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse import linalg as splinalg

from sgdvi.theory import double_well as dw
from sgdvi.theory import fokker_planck as fp
from sgdvi.theory import linearization as lz
from sgdvi.theory import sde

NAN = float("nan")
COLUMNS = ["check", "setting", "lam", "quantity", "value", "reference", "tolerance", "se", "passed"]


def row(
    check: str,
    quantity: str,
    value: float,
    *,
    setting: str = "",
    lam: float = NAN,
    reference: float = NAN,
    tolerance: float = NAN,
    se: float = NAN,
    passed: bool | None = None,
) -> dict[str, Any]:
    return {
        "check": check,
        "setting": setting,
        "lam": float(lam),
        "quantity": quantity,
        "value": float(value),
        "reference": float(reference),
        "tolerance": float(tolerance),
        "se": float(se),
        "passed": None if passed is None else bool(passed),
    }


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["passed"] = df["passed"].astype("boolean")
    return df


def describe_row(r: Any) -> str:
    """One row of :data:`COLUMNS` in words for a rule's log, leaving out the NaN/empty fields:
    ``check lambda=...: quantity = value (reference ..., tolerance ..., s.e. ..., passed ...)
    [setting]``."""
    head = r.check + (f" lambda={r.lam:g}" if not pd.isna(r.lam) else "")
    extra = [
        f"{name} {value:.6g}"
        for name, value in (("reference", r.reference), ("tolerance", r.tolerance), ("s.e.", r.se))
        if not pd.isna(value)
    ]
    if not pd.isna(r.passed):
        extra.append(f"passed {bool(r.passed)}")
    text = f"{head}: {r.quantity} = {r.value:.6g}" + (f" ({', '.join(extra)})" if extra else "")
    return text + (f" [{r.setting}]" if r.setting else "")


def log_rows(table: pd.DataFrame, log: Any, level: int = logging.INFO, prefix: str = "") -> None:
    """Write every row of a checks table to ``log`` (:func:`describe_row`), one line each."""
    for r in table.itertuples():
        log.log(level, "%s%s", prefix, describe_row(r))


# ---------------------------------------------------------------- Example 19 closed forms
def divergence_on_grid(field, half_width: float = 2.5, n: int = 401) -> np.ndarray:
    """Central-difference divergence of ``field(points) -> (..., 2)`` on an ``n x n`` grid."""
    s = np.linspace(-half_width, half_width, n)
    h = s[1] - s[0]
    X = np.stack(np.meshgrid(s, s, indexing="ij"), axis=-1)
    v = field(X)
    return (np.gradient(v[..., 0], h, axis=0) + np.gradient(v[..., 1], h, axis=1))[1:-1, 1:-1]


def double_well_rows(lambdas: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Closed-form checks of Example 19 and the critical points of ``f`` for every lambda.

    Returns the check rows and one row per zero of ``grad f`` (Theorem 22) for each lambda.
    """
    z, z_quad = dw.z_double_well(), dw.z_double_well_quad()
    rows = [
        row(
            "double_well",
            "Z",
            z,
            reference=z_quad,
            tolerance=1e-9,
            setting="Bessel closed form vs quadrature",
            passed=abs(z - z_quad) < 1e-9,
        )
    ]
    crit_rows = []
    for lam in lambdas:
        rows += _circulation_rows(lam)
        for k, c in enumerate(dw.critical_points(lam)):
            crit_rows.append(_critical_point_record(lam, k, c))
            rows += _critical_point_rows(lam, k, c)
    return frame(rows), pd.DataFrame(crit_rows)


def _circulation_rows(lam: float) -> list[dict[str, Any]]:
    """Example 19 at one lambda: the mean angular velocity lambda pi^{3/2}/Z against quadrature,
    ``div(j e^{-Phi}) = 0`` (the stationarity of e^{-Phi}/Z), and that (A5) fails for ``j``."""
    cf, quad = dw.angular_velocity_closed_form(lam), dw.angular_velocity_quad(lam)
    div_flux = divergence_on_grid(lambda x, lam=lam: lam * dw.j_ss(x))
    div_j = divergence_on_grid(lambda x, lam=lam: dw.force_j(x, lam))
    s = np.linspace(-2.5, 2.5, 401)
    X = np.stack(np.meshgrid(s, s, indexing="ij"), axis=-1)
    j_dot = np.sum(dw.force_j(X, lam) * dw.grad_phi(X), axis=-1)
    return [
        row(
            "double_well",
            "mean_angular_velocity_closed_form",
            cf,
            lam=lam,
            reference=quad,
            tolerance=1e-7,
            passed=abs(cf - quad) < 1e-7,
            setting="lambda pi^1.5 / Z vs 2-D quadrature of grad(theta).b rho_ss",
        ),
        row(
            "double_well",
            "max_abs_div_j_exp_minus_phi",
            np.abs(div_flux).max(),
            lam=lam,
            tolerance=1e-3,
            passed=np.abs(div_flux).max() < 1e-3,
            setting="central differences, h=0.0125 on [-2.5,2.5]^2 (zero in the continuum)",
        ),
        row(
            "double_well",
            "max_abs_div_j",
            np.abs(div_j).max(),
            lam=lam,
            setting="j itself is not divergence-free for lambda > 0",
        ),
        row(
            "double_well",
            "max_abs_j_dot_grad_phi",
            np.abs(j_dot).max(),
            lam=lam,
            setting="j is not orthogonal to grad Phi for lambda > 0 ((A5) does not hold)",
        ),
    ]


def _critical_point_record(lam: float, k: int, c: Any) -> dict[str, Any]:
    """Row ``k`` of the critical-point table for one zero ``c`` of ``grad f`` (Theorem 22)."""
    return {
        "lam": float(lam),
        "index": k,
        "x1": c.x1,
        "x2": c.x2,
        "kind": c.kind,
        "eig_re_max": c.eig_re_max,
        "eig_re_min": c.eig_re_min,
        "eig_im": c.eig_im,
        "phi": float(dw.phi(np.array([c.x1, c.x2]))),
    }


def _critical_point_rows(lam: float, k: int, c: Any) -> list[dict[str, Any]]:
    """Where zero ``k`` of ``grad f`` lies, and how far from the minima (+-1, 0) of Phi."""
    setting = f"zero {k} of grad f: {c.kind}"
    return [
        row("critical_points", "x1", c.x1, lam=lam, setting=setting),
        row("critical_points", "x2", c.x2, lam=lam, setting=setting),
        row(
            "critical_points",
            "distance_to_nearest_argmin_phi",
            min(math.hypot(c.x1 - 1, c.x2), math.hypot(c.x1 + 1, c.x2)),
            lam=lam,
            setting=setting,
        ),
    ]


# ---------------------------------------------------------------- SDE
def run_sde(
    lam: float,
    particles: int,
    dt: float,
    t_burn: float,
    t_sample: float,
    seed: int,
    *,
    bins: int,
    half_width: float,
    n_paths: int,
    path_time: float,
    log=None,
) -> dict[str, Any]:
    """Simulate and return everything the rows and plots need (``np.savez``-able)."""
    r = sde.simulate(
        lam,
        particles,
        dt,
        t_burn,
        t_sample,
        seed,
        bins=bins,
        half_width=half_width,
        n_paths=n_paths,
        path_time=path_time,
        log=log,
    )
    return {
        "lam": r.lam,
        "dt": r.dt,
        "t_burn": r.t_burn,
        "t_sample": r.t_sample,
        "particles": particles,
        "edges": r.edges,
        "hist_final": r.hist_final,
        "hist_pooled": r.hist_pooled,
        "n_outside_final": r.n_outside_final,
        "omega_particle": r.omega_particle,
        "winding_particle": r.winding_particle,
        "path_t": r.path_t,
        "paths": r.paths,
        "path_theta": r.path_theta,
    }


def coarsen(a: np.ndarray) -> np.ndarray:
    """Sum 2 x 2 blocks of a 2-D array (an odd last row/column joins the previous block)."""
    for axis in (0, 1):
        m = a.shape[axis]
        starts = np.arange(0, m - 1 if m % 2 else m, 2)
        a = np.add.reduceat(a, starts, axis=axis)
    return a


def chi2_pvalue(
    counts: np.ndarray, probs: np.ndarray, n: int, min_expected: float = 5.0
) -> tuple[float, int]:
    """Pearson chi-square p-value of ``counts`` against ``probs``.

    Cells with expected count below ``min_expected`` and the outside of the box are lumped into
    one cell; while fewer than 10 cells are left, neighbouring cells are merged 2 x 2 first.
    """
    counts, probs = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    while np.count_nonzero(n * probs >= min_expected) < 10 and min(probs.shape) > 1:
        counts, probs = coarsen(counts), coarsen(probs)
    c, e = counts.ravel(), n * probs.ravel()
    keep = e >= min_expected
    obs = np.append(c[keep], n - c[keep].sum())
    exp = np.append(e[keep], n - e[keep].sum())
    ok = exp > 0
    dof = int(ok.sum() - 1)
    if dof < 1:
        return float("nan"), 0
    stat = float(np.sum((obs[ok] - exp[ok]) ** 2 / exp[ok]))
    return float(stats.chi2.sf(stat, dof)), dof


def sde_rows(res: dict[str, Any], *, z_tol: float = 4.0) -> list[dict[str, Any]]:
    """Rows of one SDE run (:func:`run_sde`): the final histogram against the steady state
    e^{-Phi}/Z (Theorem 5 with Example 19's j), the mean angular velocity against its closed
    form lambda pi^{3/2}/Z, and the mass outside the histogram box."""
    lam, n = float(res["lam"]), int(res["particles"])
    setting = (
        f"{n} particles, dt={float(res['dt']):g}, burn-in {float(res['t_burn']):g}, "
        f"window {float(res['t_sample']):g}"
    )
    probs = sde.bin_probabilities(res["edges"])
    return [
        *_sde_histogram_rows(res, probs, lam, n, setting),
        *_sde_circulation_rows(res, lam, setting, z_tol),
        row(
            "sde",
            "fraction_outside_histogram_box",
            int(res["n_outside_final"]) / n,
            lam=lam,
            reference=1.0 - probs.sum(),
            setting=setting,
        ),
    ]


def _sde_histogram_rows(
    res: dict[str, Any], probs: np.ndarray, lam: float, n: int, setting: str
) -> list[dict[str, Any]]:
    """TV distance and chi-square p-value of the final histogram against e^{-Phi}/Z."""
    tv = sde.total_variation(res["hist_final"], probs, n)
    med, q99 = sde.tv_null_quantiles(probs, n)
    pval, dof = chi2_pvalue(res["hist_final"], probs, n)
    return [
        row(
            "sde",
            "tv_final_histogram",
            tv,
            lam=lam,
            reference=med,
            tolerance=q99,
            passed=tv <= q99,
            setting=setting + f"; {len(res['edges']) - 1}^2 bins; reference = median and "
            "tolerance = 99% quantile of TV for exact samples",
        ),
        row(
            "sde",
            "chi2_pvalue_final_histogram",
            pval,
            lam=lam,
            tolerance=1e-3,
            passed=None if np.isnan(pval) else pval > 1e-3,
            setting=setting + f"; {dof} degrees of freedom",
        ),
    ]


def _sde_circulation_rows(
    res: dict[str, Any], lam: float, setting: str, z_tol: float
) -> list[dict[str, Any]]:
    """Mean angular velocity (from the drift and from the winding angle) vs lambda pi^{3/2}/Z."""
    cf = dw.angular_velocity_closed_form(lam)
    out = []
    for quantity, values, how in (
        (
            "mean_angular_velocity_drift",
            res["omega_particle"],
            "time average of (x1 b2 - x2 b1)/|x|^2",
        ),
        (
            "mean_angular_velocity_winding",
            res["winding_particle"],
            "unwrapped angle change / window",
        ),
    ):
        mean, se = float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))
        out.append(
            row(
                "sde",
                quantity,
                mean,
                lam=lam,
                reference=cf,
                se=se,
                tolerance=z_tol * se,
                passed=abs(mean - cf) <= z_tol * se,
                setting=setting + f"; {how}, tolerance 4 s.e.",
            )
        )
    return out


# ---------------------------------------------------------------- Fokker-Planck
def run_fokker_planck(
    lam: float, grid: int, half_width: float, t_end: float, dt: float, *, log=None
) -> dict[str, Any]:
    g = fp.Grid(grid, half_width)
    r = fp.solve(lam, g, t_end, dt, log=log)
    L = fp.generator(g, lam)
    # a fixed start vector: ARPACK's default is random, which made the gap vary at 1e-15
    v0 = np.ones(L.shape[0])
    ev = splinalg.eigs(L, k=3, sigma=0.05, which="LM", v0=v0, return_eigenvectors=False)
    ev = ev[np.argsort(np.abs(ev))]
    pi = fp.stationary_masses(g).ravel()
    pi_null = fp.stationary_from_generator(L)
    ss = fp.free_energy(pi, g)
    exact = dw.stationary_density(g.mesh()).ravel() * g.h**2
    return {
        "lam": r.lam,
        "grid": grid,
        "half_width": half_width,
        "dt": dt,
        "t": r.t,
        "kl": r.kl,
        "energy": r.energy,
        "neg_entropy": r.neg_entropy,
        "log_z": r.log_z,
        "mass": r.mass,
        "min_mass": r.min_mass,
        "snapshot_t": r.snapshot_t,
        "snapshots": r.snapshots,
        "nodes": g.nodes,
        "final": r.final,
        "spectral_gap": float(-ev[1].real),
        "gap_imag": float(abs(ev[1].imag)),
        "null_vs_pi": float(np.abs(pi_null - pi).max() / pi.max()),
        "max_abs_discrete_div": float(np.abs(fp.discrete_divergence(g)).max()),
        "max_abs_colsum": float(np.abs(np.asarray(L.sum(axis=0))).max()),
        "tv_final_vs_pi": float(0.5 * np.abs(r.final - pi).sum()),
        "tv_pi_vs_exact": float(0.5 * np.abs(pi - exact).sum() + 0.5 * (1 - exact.sum())),
        "ss_energy": ss.energy,
        "ss_neg_entropy": ss.neg_entropy,
    }


def fokker_planck_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one Fokker-Planck run (:func:`run_fokker_planck`): conservation and Theorem 5
    along the evolution, then the discrete steady state against e^{-Phi}/Z."""
    setting = (
        f"{int(res['grid'])}^2 cells on [-{float(res['half_width']):g}, "
        f"{float(res['half_width']):g}]^2, implicit Euler dt={float(res['dt']):g}, "
        f"t_end={float(res['t'][-1]):g}"
    )
    lam = float(res["lam"])
    return _fp_evolution_rows(res, lam, setting) + _fp_stationary_rows(res, lam, setting)


def _fp_evolution_rows(res: dict[str, Any], lam: float, setting: str) -> list[dict[str, Any]]:
    """Mass conservation, positivity, and the free energy F = KL(rho || rho_ss) never
    increasing (Theorem 5), with its first and last values."""
    kl = res["kl"]
    inc = float(np.diff(kl).max())
    mass_err = float(np.abs(res["mass"] - 1.0).max())
    min_mass = float(res["min_mass"].min())
    return [
        row(
            "fokker_planck",
            "max_abs_mass_error",
            mass_err,
            lam=lam,
            tolerance=1e-12,
            passed=mass_err <= 1e-12,
            setting=setting,
        ),
        row(
            "fokker_planck",
            "min_cell_mass",
            min_mass,
            lam=lam,
            tolerance=0.0,
            passed=min_mass >= 0.0,
            setting=setting,
        ),
        row(
            "fokker_planck",
            "max_free_energy_increment",
            inc,
            lam=lam,
            tolerance=0.0,
            passed=inc <= 0.0,
            setting=setting + "; max over steps of F(t+dt) - F(t)",
        ),
        row("fokker_planck", "free_energy_initial", float(kl[0]), lam=lam, setting=setting),
        row("fokker_planck", "free_energy_final", float(kl[-1]), lam=lam, setting=setting),
    ]


def _fp_stationary_rows(res: dict[str, Any], lam: float, setting: str) -> list[dict[str, Any]]:
    """The discrete steady state: reached at t_end, equal to the cell masses of e^{-Phi}/Z,
    the null vector of the generator, with a divergence-free flux; the spectral gap; log Z."""
    checked = (
        # quantity, key of res, tolerance, what the setting adds
        (
            "tv_discrete_stationary_vs_exp_minus_phi",
            "tv_pi_vs_exact",
            1e-3,
            "; cell masses vs e^{-Phi(centre)} h^2 / Z (exact Z on R^2)",
        ),
        (
            "null_vector_vs_exp_minus_phi",
            "null_vs_pi",
            1e-10,
            "; sparse solve of L m = 0, max |m - pi| / max pi",
        ),
        (
            "max_abs_discrete_div_j_ss",
            "max_abs_discrete_div",
            1e-14,
            "; stream-function face fluxes",
        ),
    )
    rows = [
        row(
            "fokker_planck",
            "tv_final_vs_discrete_stationary",
            float(res["tv_final_vs_pi"]),
            lam=lam,
            setting=setting,
        )
    ]
    for quantity, key, tol, more in checked:
        value = float(res[key])
        rows.append(
            row(
                "fokker_planck",
                quantity,
                value,
                lam=lam,
                tolerance=tol,
                passed=value < tol,
                setting=setting + more,
            )
        )
    return rows + _fp_spectrum_rows(res, lam, setting)


def _fp_spectrum_rows(res: dict[str, Any], lam: float, setting: str) -> list[dict[str, Any]]:
    """The spectral gap of the generator L (rate of approach to e^{-Phi}/Z) and log Z."""
    return [
        row(
            "fokker_planck",
            "spectral_gap",
            float(res["spectral_gap"]),
            lam=lam,
            se=NAN,
            setting=setting + f"; -Re of the slowest non-zero eigenvalue of L "
            f"(|Im| = {float(res['gap_imag']):.3g})",
        ),
        row(
            "fokker_planck",
            "log_z_grid",
            float(res["log_z"]),
            lam=lam,
            reference=math.log(dw.z_double_well()),
            setting=setting,
        ),
    ]


# ---------------------------------------------------------------- Lemma 20
def run_linearization(
    dim: int,
    seed: int,
    *,
    beta: float = 1.0,
    particles: int = 20000,
    dt: float = 0.05,
    tol: float = 1e-10,
) -> tuple[dict[str, Any], list]:
    """Lemma 20 on random instances (minimum and saddle), the isotropic case (Lemma 6) and the
    OU stationary covariance; returns arrays for the figure and the rows.

    One random stream (``seed``) feeds the three parts in this order.
    """
    rng = np.random.default_rng(seed)
    out, rows = _lemma20_random_rows(dim, rng, tol)
    rows += _lemma6_rows(dim, rng, tol)
    cov, cov_rows = _ou_covariance_rows(dim, rng, seed, beta, particles, dt, tol)
    out.update(cov)
    return out, rows + cov_rows


def _lemma20_random_rows(
    dim: int, rng: np.random.Generator, tol: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Lemma 20: recover U and Q from F = (D + Q) U and D, for a random minimum (U positive
    definite) and a saddle (U indefinite), with full-rank and rank-deficient D."""
    out: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for key, make_u in (("pd", lz.random_spd), ("saddle", lz.random_symmetric_indefinite)):
        U, D, Q = make_u(dim, rng), lz.random_psd(dim, rng), lz.random_antisymmetric(dim, rng)
        dec = lz.decompose((D + Q) @ U, D)
        eu, eq = np.abs(dec.U - U).max(), np.abs(dec.Q - Q).max()
        out.update(
            {f"{key}_U_true": U, f"{key}_U_rec": dec.U, f"{key}_Q_true": Q, f"{key}_Q_rec": dec.Q}
        )
        what = "positive definite U (minimum)" if key == "pd" else "indefinite U (saddle)"
        for name, err in (("U", eu), ("Q", eq)):
            rows.append(
                row(
                    "lemma20",
                    f"max_abs_error_{name}_{key}",
                    err,
                    tolerance=tol,
                    passed=err <= tol,
                    setting=f"d={dim}, {what}, random PSD D",
                )
            )
        Dr = lz.random_psd(dim, rng, rank=max(1, dim // 2))
        dec = lz.decompose((Dr + Q) @ U, Dr)
        err = max(np.abs(dec.U - U).max(), np.abs(dec.Q - Q).max())
        rows.append(
            row(
                "lemma20",
                f"max_abs_error_UQ_{key}_rank_deficient_D",
                err,
                tolerance=tol,
                passed=err <= tol,
                setting=f"d={dim}, {what}, D of rank {max(1, dim // 2)}",
            )
        )
    return out, rows


def _lemma6_rows(dim: int, rng: np.random.Generator, tol: float) -> list[dict[str, Any]]:
    """Lemma 6: with isotropic D = c I, Q = 0 and U = F / c for a symmetric F."""
    c = 0.7
    S = lz.random_symmetric_indefinite(dim, rng)
    dec = lz.decompose(S, c * np.eye(dim))
    eq, eu = np.abs(dec.Q).max(), np.abs(dec.U - S / c).max()
    setting = f"Lemma 6: D = {c} I, symmetric indefinite F"
    return [
        row("lemma20", "isotropic_max_abs_Q", eq, tolerance=tol, passed=eq <= tol, setting=setting),
        row(
            "lemma20",
            "isotropic_max_abs_U_minus_F_over_c",
            eu,
            tolerance=tol,
            passed=eu <= tol,
            setting=setting,
        ),
    ]


def _ou_covariance_rows(
    dim: int,
    rng: np.random.Generator,
    seed: int,
    beta: float,
    particles: int,
    dt: float,
    tol: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The OU process dx = -F x dt + sqrt(2 beta^-1 D) dW with F = (D + Q) U has stationary
    covariance beta^-1 U^-1: by the Lyapunov equation and by simulating ``particles`` paths."""
    U, D, Q = lz.random_spd(dim, rng), lz.random_psd(dim, rng), lz.random_antisymmetric(dim, rng)
    D = D + 0.2 * np.eye(dim)
    F = (D + Q) @ U
    sigma = lz.stationary_covariance(F, D, beta)
    theory = np.linalg.inv(U) / beta
    e_lyap = np.abs(sigma - theory).max()
    t_end = 12.0 / np.linalg.eigvals(F).real.min()
    S_sim, se = lz.simulate_ou_covariance(
        F, D, beta, particles=particles, t_end=t_end, dt=dt, seed=seed + 1
    )
    z = float(np.abs((S_sim - theory) / se).max())
    n_free = dim * (dim + 1) // 2
    z_tol = float(stats.norm.isf(0.005 / n_free))  # Bonferroni, 1% family-wise
    rows = [
        row(
            "lemma20",
            "lyapunov_vs_inv_beta_inv_U",
            e_lyap,
            tolerance=tol,
            passed=e_lyap <= tol,
            setting=f"d={dim}, beta={beta:g}: F S + S F^T = 2 beta^-1 D vs beta^-1 U^-1",
        ),
        row(
            "lemma20",
            "simulation_max_z_score",
            z,
            tolerance=z_tol,
            passed=z <= z_tol,
            setting=f"{particles} exact-transition OU paths to t={t_end:.1f}; "
            "max over entries of |S_sim - beta^-1 U^-1| / s.e., 1% Bonferroni bound",
        ),
    ]
    return {"cov_sim": S_sim, "cov_se": se, "cov_theory": theory}, rows


def example19_lemma20_rows(crit: pd.DataFrame) -> list[dict[str, Any]]:
    """Lemma 20 at the zeros of ``grad f`` of Example 19 (``D = I``, ``F = -db/dx``): the
    quadratic potential ``U`` it gives versus the Hessian of ``Phi`` there, or why it fails."""
    rows = []
    for c in crit.itertuples():
        x = np.array([c.x1, c.x2])
        F = -dw.drift_jacobian(x, c.lam)
        hess = np.array([[3 * c.x1**2 - 1, 0.0], [0.0, 1.0]])
        setting = f"zero ({c.x1:.4f}, {c.x2:.4f}) of grad f, {c.kind}, D = I"
        try:
            dec = lz.decompose(F, np.eye(2))
        except lz.DecompositionError:
            rows.append(
                row(
                    "lemma20_example19",
                    "decomposition_unique",
                    0.0,
                    lam=c.lam,
                    setting=setting + f"; trace F = {np.trace(F):.2e}: not unique",
                )
            )
            continue
        rows += [
            row("lemma20_example19", "decomposition_unique", 1.0, lam=c.lam, setting=setting),
            row(
                "lemma20_example19",
                "max_abs_U_minus_hessian_phi",
                np.abs(dec.U - hess).max(),
                lam=c.lam,
                setting=setting + "; Lemma 20 U vs Hess Phi there (they differ when j != 0)",
            ),
        ]
    return rows
