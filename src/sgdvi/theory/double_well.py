"""Example 19: the double-well potential with a non-equilibrium force (Fig. 4).

``Phi(x) = (x1^2 - 1)^2 / 4 + x2^2 / 2`` and ``dx = -grad f dt + sqrt(2) dW`` (beta = 1) with

    -grad f = -grad Phi + j,   j = lambda e^{Phi} J_ss,   J_ss = e^{-(x1^2 + x2^2)^2 / 4} (-x2, x1).

``j e^{-Phi} = lambda J_ss`` is divergence-free, so ``e^{-Phi} / Z`` stays the steady state of
the Fokker-Planck equation for every lambda and the stationary probability current is
``lambda J_ss / Z``. The force ``j`` itself is *not* divergence-free and ``j . grad Phi != 0``
here, so Assumption 4 / (A5) does not hold for this example and nothing below assumes it.

All functions take points as arrays of shape ``(..., 2)`` (last axis = (x1, x2)).

The closed-form checks and the zeros of ``grad f`` as rows of ``results/tables/theory.parquet``:
:func:`double_well_rows` (row format: :mod:`sgdvi.theory.checks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special

from sgdvi.theory import checks

SQRT_PI = float(np.sqrt(np.pi))

#: non-stationary initial condition shared by the SDE and the Fokker-Planck runs: a Gaussian bump
#: of standard deviation START_STD at START (off both wells and off the symmetry axes)
START: tuple[float, float] = (-1.5, 1.5)
START_STD: float = 0.3


def phi(x: np.ndarray) -> np.ndarray:
    """Potential of Example 19, ``Phi(x) = (x1^2 - 1)^2 / 4 + x2^2 / 2``."""
    x = np.asarray(x, dtype=float)
    return (x[..., 0] ** 2 - 1.0) ** 2 / 4.0 + x[..., 1] ** 2 / 2.0


def grad_phi(x: np.ndarray) -> np.ndarray:
    """``grad Phi = (x1 (x1^2 - 1), x2)``."""
    x = np.asarray(x, dtype=float)
    return np.stack([x[..., 0] * (x[..., 0] ** 2 - 1.0), x[..., 1]], axis=-1)


def j_ss(x: np.ndarray) -> np.ndarray:
    """``J_ss(x) = e^{-|x|^4 / 4} (-x2, x1)``: divergence-free (rotational) field."""
    x = np.asarray(x, dtype=float)
    g = np.exp(-((x[..., 0] ** 2 + x[..., 1] ** 2) ** 2) / 4.0)
    return np.stack([-x[..., 1] * g, x[..., 0] * g], axis=-1)


def stream_function(x: np.ndarray) -> np.ndarray:
    """``psi`` with ``J_ss = (d psi / d x2, -d psi / d x1)``: ``psi = (sqrt(pi)/2) erfc(|x|^2/2)``.

    (Up to a constant; ``d/dr`` of it is ``-r e^{-r^4/4}``.) Written with ``erfc`` so that
    differences far from the origin keep their relative precision.
    """
    x = np.asarray(x, dtype=float)
    s = (x[..., 0] ** 2 + x[..., 1] ** 2) / 2.0
    return SQRT_PI / 2.0 * special.erfc(s)


def log_j_scale(x: np.ndarray) -> np.ndarray:
    """``Phi(x) - |x|^4 / 4``, the log of ``|j| / (lambda |x|)``; bounded above by 1/2."""
    x = np.asarray(x, dtype=float)
    return phi(x) - (x[..., 0] ** 2 + x[..., 1] ** 2) ** 2 / 4.0


def force_j(x: np.ndarray, lam: float) -> np.ndarray:
    """``j = lambda e^{Phi} J_ss = lambda e^{Phi - |x|^4/4} (-x2, x1)`` (no overflow)."""
    x = np.asarray(x, dtype=float)
    g = lam * np.exp(log_j_scale(x))
    return np.stack([-x[..., 1] * g, x[..., 0] * g], axis=-1)


def drift(x: np.ndarray, lam: float) -> np.ndarray:
    """SDE drift ``b(x) = -grad f(x) = -grad Phi(x) + j(x)``."""
    return -grad_phi(x) + force_j(x, lam)


def drift_jacobian(x: np.ndarray, lam: float) -> np.ndarray:
    """Jacobian ``db/dx`` (shape ``(..., 2, 2)``), analytic; ``-db/dx`` is ``F`` of (15)."""
    x = np.asarray(x, dtype=float)
    x1, x2 = x[..., 0], x[..., 1]
    r2 = x1**2 + x2**2
    g = lam * np.exp(log_j_scale(x))
    # d/dx of log g = grad Phi - |x|^2 x
    dl1 = x1 * (x1**2 - 1.0) - r2 * x1
    dl2 = x2 - r2 * x2
    jac = np.empty(x.shape[:-1] + (2, 2))
    jac[..., 0, 0] = -(3.0 * x1**2 - 1.0) + (-x2) * g * dl1
    jac[..., 0, 1] = -x2 * g * dl2 - g
    jac[..., 1, 0] = x1 * g * dl1 + g
    jac[..., 1, 1] = -1.0 + x1 * g * dl2
    return jac


def z_double_well_quad() -> float:
    """``Z = int e^{-Phi}`` over R^2 by quadrature: ``sqrt(2 pi) int e^{-(x^2-1)^2/4} dx``."""
    one_d, _ = integrate.quad(
        lambda s: np.exp(-((s * s - 1.0) ** 2) / 4.0), -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13
    )
    return float(np.sqrt(2.0 * np.pi) * one_d)


def z_double_well() -> float:
    """``Z`` in closed form: ``int e^{-a x^4 + b x^2} dx = (pi/2) sqrt(b/2a) e^{k} (I_{-1/4}(k)
    + I_{1/4}(k))`` with ``k = b^2 / 8a``; here ``a = 1/4, b = 1/2``, times ``e^{-1/4}`` and the
    Gaussian factor ``sqrt(2 pi)`` of ``x2``."""
    k = 1.0 / 8.0
    one_d = np.exp(-0.25) * np.pi / 2.0 * np.exp(k) * (special.iv(-0.25, k) + special.iv(0.25, k))
    return float(np.sqrt(2.0 * np.pi) * one_d)


def stationary_density(x: np.ndarray) -> np.ndarray:
    """``rho_ss = e^{-Phi} / Z`` (beta = 1), the same for every lambda."""
    return np.exp(-phi(x)) / z_double_well()


def marginal_x1(s: np.ndarray) -> np.ndarray:
    """Marginal density of ``x1`` under ``rho_ss``: ``e^{-(s^2-1)^2/4} / (Z / sqrt(2 pi))``."""
    s = np.asarray(s, dtype=float)
    return np.exp(-((s * s - 1.0) ** 2) / 4.0) / (z_double_well() / np.sqrt(2.0 * np.pi))


def marginal_x2(s: np.ndarray) -> np.ndarray:
    """Marginal density of ``x2`` under ``rho_ss``: standard normal."""
    s = np.asarray(s, dtype=float)
    return np.exp(-s * s / 2.0) / np.sqrt(2.0 * np.pi)


def angular_velocity_closed_form(lam: float) -> float:
    """Stationary mean angular velocity ``E[d theta / dt] = lambda pi^{3/2} / Z``.

    Ito: ``d theta = grad theta . dx + Laplace(theta) dt`` and ``Laplace(theta) = 0``, so
    ``E[d theta/dt] = int grad theta . b rho_ss``. With ``b rho_ss = grad rho_ss + lambda J_ss/Z``
    the gradient part integrates to zero over each circle, leaving
    ``(lambda / Z) int e^{-r^4/4} dx = (lambda / Z) 2 pi int_0^inf r e^{-r^4/4} dr
    = (lambda / Z) 2 pi sqrt(pi) / 2``.
    """
    return float(lam * np.pi**1.5 / z_double_well())


def angular_velocity_quad(lam: float, half_width: float = 8.0) -> float:
    """``int grad theta . b(x) rho_ss(x) dx`` by 2-D quadrature (independent of the closed form)."""

    def integrand(x2: float, x1: float) -> float:
        p = np.array([x1, x2])
        r2 = x1 * x1 + x2 * x2
        if r2 == 0.0:
            return 0.0
        b = drift(p, lam)
        return float((x1 * b[1] - x2 * b[0]) / r2 * np.exp(-phi(p)))

    val, _ = integrate.dblquad(
        integrand, -half_width, half_width, -half_width, half_width, epsabs=1e-10, epsrel=1e-9
    )
    return float(val / z_double_well())


def angular_drift(x: np.ndarray, lam: float) -> np.ndarray:
    """Angular component of the drift ``grad theta . b = (x1 b2 - x2 b1) / |x|^2``.

    Bounded near the origin because ``b(0) = 0``; its stationary mean is ``E[d theta/dt]``.
    """
    x = np.asarray(x, dtype=float)
    b = drift(x, lam)
    r2 = x[..., 0] ** 2 + x[..., 1] ** 2
    num = x[..., 0] * b[..., 1] - x[..., 1] * b[..., 0]
    return np.divide(num, r2, out=np.zeros_like(num), where=r2 > 0)


@dataclass(frozen=True)
class CriticalPoint:
    """A zero of the drift ``b = -grad f`` and its type from the eigenvalues of ``db/dx``."""

    x1: float
    x2: float
    kind: str
    eig_re_max: float
    eig_re_min: float
    eig_im: float


def classify(jac: np.ndarray, tol: float = 1e-9) -> tuple[str, np.ndarray]:
    """Type of a zero of ``xdot = b(x)`` from the eigenvalues of ``db/dx``."""
    ev = np.linalg.eigvals(jac)
    re, im = ev.real, np.abs(ev.imag)
    if np.all(np.abs(re) <= tol) and np.any(im > tol):
        kind = "center (linear)"
    elif np.all(re < -tol):
        kind = "stable focus" if np.any(im > tol) else "stable node"
    elif np.all(re > tol):
        kind = "unstable focus" if np.any(im > tol) else "unstable node"
    elif np.any(re < -tol) and np.any(re > tol):
        kind = "saddle"
    else:
        kind = "degenerate"
    return kind, ev


def critical_points(
    lam: float, box: float = 2.5, starts: int = 25, tol: float = 1e-10
) -> list[CriticalPoint]:
    """All zeros of ``b = -grad f`` in ``[-box, box]^2``, by Newton (``scipy.optimize.root`` with
    the analytic Jacobian) from a ``starts x starts`` grid of initial points, deduplicated.

    For lambda = 0 these are the critical points of Phi: minima (+-1, 0) and the saddle (0, 0);
    for lambda > 0 they move (Theorem 22, Remark 23).
    """
    found: list[np.ndarray] = []
    grid = np.linspace(-box, box, starts)
    for a in grid:
        for c in grid:
            sol = optimize.root(
                lambda p: drift(p, lam),
                np.array([a, c]),
                jac=lambda p: drift_jacobian(p, lam),
                method="hybr",
                options={"xtol": 1e-13},
            )
            p = sol.x
            if not sol.success or np.max(np.abs(p)) > box:
                continue
            if np.linalg.norm(drift(p, lam)) > tol:
                continue
            p = np.where(np.abs(p) < 1e-12, 0.0, p)
            if all(np.linalg.norm(p - q) > 1e-6 for q in found):
                found.append(p)
    found.sort(key=lambda p: (round(p[0], 6), round(p[1], 6)))
    out = []
    for p in found:
        kind, ev = classify(drift_jacobian(p, lam))
        out.append(
            CriticalPoint(
                float(p[0]),
                float(p[1]),
                kind,
                float(ev.real.max()),
                float(ev.real.min()),
                float(np.abs(ev.imag).max()),
            )
        )
    return out


# ------------------------------------------------ rows of results/tables/theory.parquet
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
    z, z_quad = z_double_well(), z_double_well_quad()
    rows = [
        checks.row(
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
        for k, c in enumerate(critical_points(lam)):
            crit_rows.append(_critical_point_record(lam, k, c))
            rows += _critical_point_rows(lam, k, c)
    return checks.frame(rows), pd.DataFrame(crit_rows)


def _circulation_rows(lam: float) -> list[dict[str, Any]]:
    """Example 19 at one lambda: the mean angular velocity lambda pi^{3/2}/Z against quadrature,
    ``div(j e^{-Phi}) = 0`` (the stationarity of e^{-Phi}/Z), and that (A5) fails for ``j``."""
    cf, quad = angular_velocity_closed_form(lam), angular_velocity_quad(lam)
    div_flux = divergence_on_grid(lambda x, lam=lam: lam * j_ss(x))
    div_j = divergence_on_grid(lambda x, lam=lam: force_j(x, lam))
    s = np.linspace(-2.5, 2.5, 401)
    X = np.stack(np.meshgrid(s, s, indexing="ij"), axis=-1)
    j_dot = np.sum(force_j(X, lam) * grad_phi(X), axis=-1)
    return [
        checks.row(
            "double_well",
            "mean_angular_velocity_closed_form",
            cf,
            lam=lam,
            reference=quad,
            tolerance=1e-7,
            passed=abs(cf - quad) < 1e-7,
            setting="lambda pi^1.5 / Z vs 2-D quadrature of grad(theta).b rho_ss",
        ),
        checks.row(
            "double_well",
            "max_abs_div_j_exp_minus_phi",
            np.abs(div_flux).max(),
            lam=lam,
            tolerance=1e-3,
            passed=np.abs(div_flux).max() < 1e-3,
            setting="central differences, h=0.0125 on [-2.5,2.5]^2 (zero in the continuum)",
        ),
        checks.row(
            "double_well",
            "max_abs_div_j",
            np.abs(div_j).max(),
            lam=lam,
            setting="j itself is not divergence-free for lambda > 0",
        ),
        checks.row(
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
        "phi": float(phi(np.array([c.x1, c.x2]))),
    }


def _critical_point_rows(lam: float, k: int, c: Any) -> list[dict[str, Any]]:
    """Where zero ``k`` of ``grad f`` lies, and how far from the minima (+-1, 0) of Phi."""
    setting = f"zero {k} of grad f: {c.kind}"
    return [
        checks.row("critical_points", "x1", c.x1, lam=lam, setting=setting),
        checks.row("critical_points", "x2", c.x2, lam=lam, setting=setting),
        checks.row(
            "critical_points",
            "distance_to_nearest_argmin_phi",
            min(math.hypot(c.x1 - 1, c.x2), math.hypot(c.x1 + 1, c.x2)),
            lam=lam,
            setting=setting,
        ),
    ]
