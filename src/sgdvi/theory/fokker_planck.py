"""Finite-volume solver of the Fokker-Planck equation (FP) of Example 19, and its free energy.

``d rho / dt = -div(b rho) + Laplace(rho)`` with ``b = -grad Phi + j`` (beta = 1, D = I) on the
square ``[-L, L]^2`` with zero-flux walls. Writing ``u = rho e^{Phi}``, the flux is

    b rho - grad rho = -e^{-Phi} grad u + lambda J_ss u,

a reversible part and the divergence-free circulation ``lambda J_ss`` (``j e^{-Phi}``). On a grid
of ``n x n`` cells with masses ``m_i`` the scheme is a continuous-time Markov chain on the cells:

* reversible part, square-root approximation: rate ``i -> k`` (neighbours) is
  ``exp((Phi_i - Phi_k) / 2) / h^2``, which is in detailed balance with ``pi_i ~ e^{-Phi_i}``;
* circulation: the flux of ``J_ss`` through each face is the exact difference of the stream
  function ``psi`` between the face's end points, so the discrete divergence of every cell is
  zero to round-off; it carries ``u`` upwind, i.e. rate ``i -> k`` is
  ``lambda q_ik e^{Phi_i} / h^2`` when the face flux ``q_ik`` points from ``i`` to ``k``.

Every rate is non-negative and every column of the generator ``L`` sums to zero: mass is
conserved and ``pi ~ e^{-Phi_i}`` is stationary for every lambda. Time stepping is implicit Euler,
``m <- (I - dt L)^{-1} m``; ``(I - dt L)^{-1}`` is itself a Markov kernel with the same stationary
``pi`` (an M-matrix inverse with unit column sums), so positivity holds and the relative entropy
``KL(m || pi)`` can never increase (data-processing inequality): the discrete Theorem 5.

One run and its rows of ``results/tables/theory.parquet``: :func:`run_fokker_planck`,
:func:`fokker_planck_rows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg

from sgdvi.theory import checks
from sgdvi.theory import double_well as dw
from sgdvi.theory.double_well import START, START_STD


@dataclass(frozen=True)
class Grid:
    """``n x n`` cells on ``[-L, L]^2``; arrays are indexed ``[i1, i2]`` (x1 first)."""

    n: int
    half_width: float

    @property
    def h(self) -> float:
        return 2.0 * self.half_width / self.n

    @property
    def centers(self) -> np.ndarray:
        return -self.half_width + (np.arange(self.n) + 0.5) * self.h

    @property
    def nodes(self) -> np.ndarray:
        return -self.half_width + np.arange(self.n + 1) * self.h

    def mesh(self) -> np.ndarray:
        """Cell centres, shape ``(n, n, 2)``."""
        c = self.centers
        return np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1)


def face_fluxes(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Fluxes of ``J_ss`` through the interior faces, from the stream function at the corners.

    Returns ``(q1, q2)``: ``q1[i1, i2]`` through the face between cells ``(i1, i2)`` and
    ``(i1 + 1, i2)`` in the +x1 direction (shape ``(n-1, n)``); ``q2[i1, i2]`` between
    ``(i1, i2)`` and ``(i1, i2 + 1)`` in the +x2 direction (shape ``(n, n-1)``). With
    ``J_ss = (d psi/d x2, -d psi/d x1)``: ``q1 = psi(top) - psi(bottom)``,
    ``q2 = psi(left) - psi(right)``.
    """
    nodes = grid.nodes
    corners = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1)
    psi = dw.stream_function(corners)  # (n+1, n+1)
    # face between cells i1 and i1+1 lies at x1-node i1+1, from x2-node i2 to i2+1
    q1 = psi[1:-1, 1:] - psi[1:-1, :-1]
    # face between cells i2 and i2+1 lies at x2-node i2+1, from x1-node i1 to i1+1
    q2 = psi[:-1, 1:-1] - psi[1:, 1:-1]
    return q1, q2


def discrete_divergence(grid: Grid) -> np.ndarray:
    """Net outflow of ``J_ss`` from every cell (zero-flux walls): zero up to round-off."""
    q1, q2 = face_fluxes(grid)
    n = grid.n
    div = np.zeros((n, n))
    div[:-1, :] += q1
    div[1:, :] -= q1
    div[:, :-1] += q2
    div[:, 1:] -= q2
    return div


def generator(grid: Grid, lam: float) -> sparse.csc_matrix:
    """Sparse generator ``L`` (``dm/dt = L m``) of the finite-volume scheme; columns sum to 0."""
    n, h = grid.n, grid.h
    phi = dw.phi(grid.mesh())
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [], [], []

    def add(src: np.ndarray, dst: np.ndarray, rate: np.ndarray) -> None:
        # rate of moving mass from src to dst: L[dst, src] += rate, L[src, src] -= rate
        rows.extend([dst.ravel(), src.ravel()])
        cols.extend([src.ravel(), src.ravel()])
        vals.extend([rate.ravel(), -rate.ravel()])

    q1, q2 = face_fluxes(grid)
    for axis, q in ((0, q1), (1, q2)):
        if axis == 0:
            a, b = idx[:-1, :], idx[1:, :]
            pa, pb = phi[:-1, :], phi[1:, :]
        else:
            a, b = idx[:, :-1], idx[:, 1:]
            pa, pb = phi[:, :-1], phi[:, 1:]
        add(a, b, np.exp((pa - pb) / 2.0) / h**2)
        add(b, a, np.exp((pb - pa) / 2.0) / h**2)
        if lam != 0.0:
            fwd = np.maximum(q, 0.0)  # flux a -> b
            bwd = np.maximum(-q, 0.0)  # flux b -> a
            add(a, b, lam * fwd * np.exp(pa) / h**2)
            add(b, a, lam * bwd * np.exp(pb) / h**2)
    data = np.concatenate(vals)
    return sparse.csc_matrix(
        (data, (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n)
    )


def stationary_masses(grid: Grid) -> np.ndarray:
    """``pi_i = e^{-Phi_i} / sum_k e^{-Phi_k}`` (cell masses), stationary for every lambda."""
    w = np.exp(-dw.phi(grid.mesh()))
    return w / w.sum()


def stationary_from_generator(L: sparse.spmatrix) -> np.ndarray:
    """Null vector of ``L`` normalised to mass 1, by a sparse solve with one equation replaced by
    the normalisation (an independent check of :func:`stationary_masses`)."""
    A = sparse.lil_matrix(L)
    A[0, :] = np.ones(L.shape[0])
    rhs = np.zeros(L.shape[0])
    rhs[0] = 1.0
    return splinalg.spsolve(A.tocsc(), rhs)


def gaussian_start(grid: Grid, mean: tuple[float, float], std: float) -> np.ndarray:
    """Cell masses of a normalised Gaussian bump (a non-stationary initial condition)."""
    x = grid.mesh()
    w = np.exp(-((x[..., 0] - mean[0]) ** 2 + (x[..., 1] - mean[1]) ** 2) / (2.0 * std**2))
    return (w / w.sum()).ravel()


@dataclass
class FreeEnergyTerms:
    """``F = KL(rho || rho_ss) = E_rho[Phi] - H(rho) + log Z`` (eq. 11 with beta = 1)."""

    kl: float
    energy: float  # E_rho[Phi]
    neg_entropy: float  # -H(rho) = int rho log rho (differential entropy)
    log_z: float  # log of the grid's Z = sum_k e^{-Phi_k} h^2


def free_energy(m: np.ndarray, grid: Grid) -> FreeEnergyTerms:
    """Terms of (10)-(11) for cell masses ``m`` (densities ``m / h^2``)."""
    phi = dw.phi(grid.mesh()).ravel()
    area = grid.h**2
    pos = m > 0
    neg_entropy = float(np.sum(m[pos] * np.log(m[pos] / area)))
    energy = float(np.sum(m * phi))
    log_z = float(np.log(np.sum(np.exp(-phi)) * area))
    pi = stationary_masses(grid).ravel()
    kl = float(np.sum(m[pos] * np.log(m[pos] / pi[pos])))
    return FreeEnergyTerms(kl=kl, energy=energy, neg_entropy=neg_entropy, log_z=log_z)


@dataclass
class FPResult:
    lam: float
    grid: Grid
    t: np.ndarray
    kl: np.ndarray
    energy: np.ndarray
    neg_entropy: np.ndarray
    log_z: float
    mass: np.ndarray
    min_mass: np.ndarray
    snapshot_t: np.ndarray
    snapshots: np.ndarray  # (k, n, n) densities
    final: np.ndarray  # final cell masses (n*n)


def solve(
    lam: float,
    grid: Grid,
    t_end: float,
    dt: float,
    *,
    start: tuple[float, float] = START,
    start_std: float = START_STD,
    n_snapshots: int = 6,
    log=None,
) -> FPResult:
    """Implicit-Euler evolution of (FP) from a Gaussian bump to ``t_end``."""
    if dt <= 0 or t_end <= 0:
        raise ValueError("theory.fokker_planck: need dt > 0 and t_end > 0")
    steps = int(np.ceil(t_end / dt))
    L = generator(grid, lam)
    lu = splinalg.splu((sparse.identity(L.shape[0], format="csc") - dt * L).tocsc())
    m = gaussian_start(grid, start, start_std)
    # snapshots at 0 and at geometrically spaced times up to t_end (early ones show the rotation)
    times = np.concatenate([[0.0], t_end * 2.0 ** -np.arange(n_snapshots - 2, -1, -1.0)])
    snap_steps = set(np.unique(np.round(times / dt).astype(int)).tolist())
    ts, kls, ens, nes, mass, mins, st, snaps = [], [], [], [], [], [], [], []
    log_z = 0.0
    for k in range(steps + 1):
        if k > 0:
            m = lu.solve(m)
        fe = free_energy(m, grid)
        log_z = fe.log_z
        ts.append(k * dt)
        kls.append(fe.kl)
        ens.append(fe.energy)
        nes.append(fe.neg_entropy)
        mass.append(m.sum())
        mins.append(m.min())
        if k in snap_steps:
            st.append(k * dt)
            snaps.append(m.reshape(grid.n, grid.n) / grid.h**2)
        if log is not None and k % max(1, steps // 10) == 0:
            log.info("lambda=%g: t=%.3f KL=%.3e mass-1=%.1e", lam, k * dt, fe.kl, m.sum() - 1)
    return FPResult(
        lam=float(lam),
        grid=grid,
        t=np.asarray(ts),
        kl=np.asarray(kls),
        energy=np.asarray(ens),
        neg_entropy=np.asarray(nes),
        log_z=log_z,
        mass=np.asarray(mass),
        min_mass=np.asarray(mins),
        snapshot_t=np.asarray(st),
        snapshots=np.asarray(snaps),
        final=m,
    )


# ------------------------------------------------ rows of results/tables/theory.parquet
def run_fokker_planck(
    lam: float, grid: int, half_width: float, t_end: float, dt: float, *, log=None
) -> dict[str, Any]:
    g = Grid(grid, half_width)
    r = solve(lam, g, t_end, dt, log=log)
    L = generator(g, lam)
    # a fixed start vector: ARPACK's default is random, which made the gap vary at 1e-15
    v0 = np.ones(L.shape[0])
    ev = splinalg.eigs(L, k=3, sigma=0.05, which="LM", v0=v0, return_eigenvectors=False)
    ev = ev[np.argsort(np.abs(ev))]
    pi = stationary_masses(g).ravel()
    pi_null = stationary_from_generator(L)
    ss = free_energy(pi, g)
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
        "max_abs_discrete_div": float(np.abs(discrete_divergence(g)).max()),
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
        checks.row(
            "fokker_planck",
            "max_abs_mass_error",
            mass_err,
            lam=lam,
            tolerance=1e-12,
            passed=mass_err <= 1e-12,
            setting=setting,
        ),
        checks.row(
            "fokker_planck",
            "min_cell_mass",
            min_mass,
            lam=lam,
            tolerance=0.0,
            passed=min_mass >= 0.0,
            setting=setting,
        ),
        checks.row(
            "fokker_planck",
            "max_free_energy_increment",
            inc,
            lam=lam,
            tolerance=0.0,
            passed=inc <= 0.0,
            setting=setting + "; max over steps of F(t+dt) - F(t)",
        ),
        checks.row("fokker_planck", "free_energy_initial", float(kl[0]), lam=lam, setting=setting),
        checks.row("fokker_planck", "free_energy_final", float(kl[-1]), lam=lam, setting=setting),
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
        checks.row(
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
            checks.row(
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
        checks.row(
            "fokker_planck",
            "spectral_gap",
            float(res["spectral_gap"]),
            lam=lam,
            se=checks.NAN,
            setting=setting + f"; -Re of the slowest non-zero eigenvalue of L "
            f"(|Im| = {float(res['gap_imag']):.3g})",
        ),
        checks.row(
            "fokker_planck",
            "log_z_grid",
            float(res["log_z"]),
            lam=lam,
            reference=math.log(dw.z_double_well()),
            setting=setting,
        ),
    ]
