"""Example 19 (Fig. 4): closed forms of the double well checked against independent numerics."""

import numpy as np
import pytest
from scipy import integrate

from sgdvi.theory import double_well as dw


def grid(half_width=2.0, n=201):
    s = np.linspace(-half_width, half_width, n)
    return s, np.stack(np.meshgrid(s, s, indexing="ij"), axis=-1)


def divergence(v, h):
    return (np.gradient(v[..., 0], h, axis=0) + np.gradient(v[..., 1], h, axis=1))[2:-2, 2:-2]


def test_drift_matches_naive_formula():
    rng = np.random.default_rng(0)
    for lam in (0.0, 0.5, 1.5):
        for x1, x2 in rng.uniform(-2, 2, size=(20, 2)):
            phi = (x1**2 - 1) ** 2 / 4 + x2**2 / 2
            jss = np.exp(-((x1**2 + x2**2) ** 2) / 4) * np.array([-x2, x1])
            naive = -np.array([x1 * (x1**2 - 1), x2]) + lam * np.exp(phi) * jss
            np.testing.assert_allclose(dw.drift(np.array([x1, x2]), lam), naive, rtol=1e-12)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    h = 1e-6
    for lam in (0.5, 1.5):
        for x in rng.uniform(-1.5, 1.5, size=(5, 2)):
            fd = np.stack(
                [
                    (dw.drift(x + h * e, lam) - dw.drift(x - h * e, lam)) / (2 * h)
                    for e in np.eye(2)
                ],
                axis=1,
            )
            np.testing.assert_allclose(dw.drift_jacobian(x, lam), fd, atol=1e-7)


def test_j_exp_minus_phi_is_divergence_free_but_j_is_not():
    """div(j e^{-Phi}) = lambda div(J_ss) = 0 (second-order FD error, shrinking ~4x per halving
    of h), while div(j) and j . grad(Phi) are far from zero: (A5) does not hold here."""
    lam = 1.5
    errs = []
    for n in (101, 201):
        s, x = grid(2.0, n)
        flux = dw.force_j(x, lam) * np.exp(-dw.phi(x))[..., None]
        np.testing.assert_allclose(flux, lam * dw.j_ss(x), rtol=1e-12, atol=1e-300)
        errs.append(np.abs(divergence(flux, s[1] - s[0])).max())
    assert errs[1] < 1e-3
    assert errs[0] / errs[1] > 3.0  # consistent with zero, not a small nonzero number
    s, x = grid(2.0, 201)
    assert np.abs(divergence(dw.force_j(x, lam), s[1] - s[0])).max() > 0.5
    assert np.abs(np.sum(dw.force_j(x, lam) * dw.grad_phi(x), axis=-1)).max() > 0.5


def test_stream_function_generates_j_ss():
    s, x = grid(2.0, 401)
    h = s[1] - s[0]
    psi = dw.stream_function(x)
    j = dw.j_ss(x)
    np.testing.assert_allclose(np.gradient(psi, h, axis=1)[2:-2, 2:-2], j[2:-2, 2:-2, 0], atol=2e-4)
    np.testing.assert_allclose(
        -np.gradient(psi, h, axis=0)[2:-2, 2:-2], j[2:-2, 2:-2, 1], atol=2e-4
    )


@pytest.mark.parametrize("lam", [0.0, 1.5])
def test_exp_minus_phi_is_stationary_for_fokker_planck(lam):
    """-div(b rho) + Laplace(rho) = 0 for rho = e^{-Phi} (finite differences, O(h^2))."""
    s, x = grid(2.0, 401)
    h = s[1] - s[0]
    rho = np.exp(-dw.phi(x))
    flux = dw.drift(x, lam) * rho[..., None]
    lap = np.zeros_like(rho)
    lap[1:-1, 1:-1] = (
        rho[2:, 1:-1] + rho[:-2, 1:-1] + rho[1:-1, 2:] + rho[1:-1, :-2] - 4 * rho[1:-1, 1:-1]
    ) / h**2
    residual = -divergence(flux, h) + lap[2:-2, 2:-2]
    assert np.abs(residual).max() < 1e-3 * np.abs(lap).max()
    # a wrong force (j without the e^{Phi} factor) is not stationary: the check can fail
    wrong = (-dw.grad_phi(x) + lam * dw.j_ss(x)) * rho[..., None]
    bad = -divergence(wrong, h) + lap[2:-2, 2:-2]
    assert lam == 0.0 or np.abs(bad).max() > 0.05


def test_partition_function_closed_form():
    val, _ = integrate.dblquad(
        lambda x2, x1: np.exp(-dw.phi(np.array([x1, x2]))), -6, 6, -9, 9, epsabs=1e-11
    )
    assert dw.z_double_well() == pytest.approx(val, rel=1e-9)
    assert dw.z_double_well() == pytest.approx(dw.z_double_well_quad(), rel=1e-12)


def test_marginals_are_densities():
    for f in (dw.marginal_x1, dw.marginal_x2):
        assert integrate.quad(f, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-10)


def test_angular_velocity_closed_form_against_quadrature():
    """lambda pi^{3/2} / Z = int grad(theta) . b rho_ss dx (2-D quadrature, independent)."""
    assert dw.angular_velocity_closed_form(1.5) == pytest.approx(
        dw.angular_velocity_quad(1.5), rel=1e-8
    )
    assert dw.angular_velocity_quad(0.0) == pytest.approx(0.0, abs=1e-10)


def test_critical_points_lambda_zero_are_those_of_phi():
    crit = dw.critical_points(0.0, starts=9)
    got = sorted((round(c.x1, 9), round(c.x2, 9), c.kind) for c in crit)
    assert got == [(-1.0, 0.0, "stable node"), (0.0, 0.0, "saddle"), (1.0, 0.0, "stable node")]


def test_critical_points_move_with_lambda():
    crit = dw.critical_points(0.5, starts=9)
    assert len(crit) == 3
    for c in crit:
        assert np.linalg.norm(dw.drift(np.array([c.x1, c.x2]), 0.5)) < 1e-10
    minima = [c for c in crit if c.kind == "stable node"]
    assert len(minima) == 2 and all(abs(abs(c.x1) - 1) > 0.05 and abs(c.x2) > 0.3 for c in minima)
    # lambda = 1.5: only the origin is left, a linear centre with eigenvalues
    # +-i sqrt(lambda^2 e^{1/2} - 1) (Jacobian [[1, -lambda e^{1/4}], [lambda e^{1/4}, -1]])
    crit = dw.critical_points(1.5, starts=9)
    assert [(c.x1, c.x2, c.kind) for c in crit] == [(0.0, 0.0, "center (linear)")]
    assert crit[0].eig_im == pytest.approx(np.sqrt(1.5**2 * np.exp(0.5) - 1), rel=1e-12)


def test_angular_drift_is_bounded_near_origin():
    r = np.logspace(-8, -1, 20)
    x = np.stack([r * np.cos(0.3), r * np.sin(0.3)], axis=-1)
    assert np.all(np.abs(dw.angular_drift(x, 1.5)) < 5)
