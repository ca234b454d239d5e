"""Finite-volume Fokker-Planck solver of Example 19 and the free energy (Theorem 5)."""

import numpy as np
import pytest
from scipy import integrate

from sgdvi.theory import double_well as dw
from sgdvi.theory import fokker_planck as fp

GRID = fp.Grid(41, 4.0)


@pytest.fixture(scope="module")
def run():
    return fp.solve(1.5, GRID, t_end=3.0, dt=0.01)


def test_mass_is_conserved_and_free_energy_never_increases(run):
    assert np.abs(run.mass - 1.0).max() < 1e-12
    assert run.min_mass.min() >= 0.0
    assert np.all(np.diff(run.kl) <= 0.0)
    assert run.kl[-1] < 1e-2 * run.kl[0]


def test_free_energy_split(run):
    """(11): KL(rho || rho_ss) = E_rho[Phi] - H(rho) + log Z (on the grid)."""
    np.testing.assert_allclose(run.kl, run.energy + run.neg_entropy + run.log_z, atol=1e-10)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.5])
def test_generator_is_a_markov_generator_with_stationary_exp_minus_phi(lam):
    L = fp.generator(GRID, lam).toarray()
    off = L - np.diag(np.diag(L))
    assert off.min() >= 0.0
    np.testing.assert_allclose(L.sum(axis=0), 0.0, atol=1e-11)
    pi = fp.stationary_masses(GRID).ravel()
    assert np.abs(L @ pi).max() < 1e-13 * np.abs(np.diag(L) * pi).max()
    np.testing.assert_allclose(
        fp.stationary_from_generator(fp.generator(GRID, lam)), pi, atol=1e-12 * pi.max()
    )


def test_stationary_masses_match_closed_form():
    g = fp.Grid(161, 5.0)
    exact = dw.stationary_density(g.mesh()).ravel() * g.h**2
    assert 0.5 * np.abs(fp.stationary_masses(g).ravel() - exact).sum() < 1e-4


def test_face_fluxes_are_divergence_free_and_match_quadrature():
    assert np.abs(fp.discrete_divergence(GRID)).max() < 1e-15
    q1, q2 = fp.face_fluxes(GRID)
    nodes = GRID.nodes
    for i1, i2 in ((19, 20), (10, 25), (25, 5)):
        # q1: through x1 = nodes[i1 + 1] for x2 in [nodes[i2], nodes[i2 + 1]], J_ss . e1
        val = integrate.quad(
            lambda s, a=nodes[i1 + 1]: dw.j_ss(np.array([a, s]))[0], nodes[i2], nodes[i2 + 1]
        )[0]
        assert q1[i1, i2] == pytest.approx(val, rel=1e-9, abs=1e-15)
        val = integrate.quad(
            lambda s, a=nodes[i2 + 1]: dw.j_ss(np.array([s, a]))[1], nodes[i1], nodes[i1 + 1]
        )[0]
        assert q2[i1, i2] == pytest.approx(val, rel=1e-9, abs=1e-15)


def continuum_operator(rho, x, lam, h):
    """-div(b rho) + Laplace(rho) by central finite differences on a fine grid (reference)."""
    flux = dw.drift(x, lam) * rho[..., None]
    div = np.gradient(flux[..., 0], h, axis=0) + np.gradient(flux[..., 1], h, axis=1)
    lap = sum(np.gradient(np.gradient(rho, h, axis=a), h, axis=a) for a in (0, 1))
    return -div + lap


def test_scheme_is_consistent_with_the_fokker_planck_operator():
    """(L m)_i / h^2 approaches the continuum operator for a smooth non-stationary density,
    including the sign and direction of the circulation (an error there would keep mass and
    the steady state but fail here)."""
    errs = []
    for n in (41, 81, 161):
        g = fp.Grid(n, 4.0)
        x = g.mesh()
        rho = np.exp(-((x[..., 0] + 0.7) ** 2 + (x[..., 1] - 0.5) ** 2) / 0.5)
        m = (rho * g.h**2).ravel()
        got = (fp.generator(g, 1.5) @ m).reshape(n, n) / g.h**2
        ref = continuum_operator(rho, x, 1.5, g.h)
        inner = (slice(2, -2), slice(2, -2))
        errs.append(np.abs(got[inner] - ref[inner]).max() / np.abs(ref[inner]).max())
    assert errs[-1] < 0.05
    assert errs[0] > errs[1] > errs[2]
    # flipping lambda's sign is detected
    g = fp.Grid(161, 4.0)
    x = g.mesh()
    rho = np.exp(-((x[..., 0] + 0.7) ** 2 + (x[..., 1] - 0.5) ** 2) / 0.5)
    got = (fp.generator(g, 1.5) @ (rho * g.h**2).ravel()).reshape(161, 161) / g.h**2
    wrong = continuum_operator(rho, x, -1.5, g.h)
    assert np.abs(got - wrong)[2:-2, 2:-2].max() / np.abs(wrong).max() > 0.2


def test_solution_converges_to_exp_minus_phi():
    r = fp.solve(0.5, fp.Grid(61, 4.0), t_end=15.0, dt=0.05, n_snapshots=2)
    exact = dw.stationary_density(fp.Grid(61, 4.0).mesh()).ravel() * fp.Grid(61, 4.0).h ** 2
    assert 0.5 * np.abs(r.final - exact).sum() < 2e-3
    assert r.kl[-1] < 1e-6
