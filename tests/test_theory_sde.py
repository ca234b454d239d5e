"""Euler-Maruyama of Example 19: steady state and circulation at a small particle count."""

import numpy as np
import pytest
from scipy import integrate, stats

from sgdvi.theory import checks, sde
from sgdvi.theory import double_well as dw

N = 3000


@pytest.fixture(scope="module")
def runs():
    return {
        lam: sde.simulate(lam, N, 0.005, 6.0, 4.0, seed=3, bins=12, path_time=1.0, path_every=0.005)
        for lam in (0.0, 1.5)
    }


def test_total_variation_matches_naive_loop():
    rng = np.random.default_rng(0)
    probs = rng.random((3, 3))
    probs *= 0.9 / probs.sum()
    counts = rng.multinomial(50, np.append(probs.ravel(), 0.1))[:-1].reshape(3, 3)
    naive = 0.0
    for c, p in zip(counts.ravel(), probs.ravel(), strict=True):
        naive += abs(c / 50 - p)
    naive += abs((1 - counts.sum() / 50) - 0.1)
    assert sde.total_variation(counts, probs, 50) == pytest.approx(naive / 2)


def test_bin_probabilities_against_2d_quadrature():
    edges = np.linspace(-3, 3, 7)
    p = sde.bin_probabilities(edges)
    z = dw.z_double_well()
    for i, k in ((0, 0), (2, 3), (5, 1)):
        val, _ = integrate.dblquad(
            lambda x2, x1: np.exp(-dw.phi(np.array([x1, x2]))) / z,
            edges[i],
            edges[i + 1],
            edges[k],
            edges[k + 1],
            epsabs=1e-12,
        )
        assert p[i, k] == pytest.approx(val, rel=1e-8)


@pytest.mark.parametrize("lam", [0.0, 1.5])
def test_stationary_density_is_exp_minus_phi(runs, lam):
    r = runs[lam]
    probs = sde.bin_probabilities(r.edges)
    tv = sde.total_variation(r.hist_final, probs, N)
    _, q99 = sde.tv_null_quantiles(probs, N)
    assert tv <= q99
    assert sde.chi2_pvalue(r.hist_final, probs, N)[0] > 1e-3


def test_histogram_test_rejects_a_wrong_density():
    """Negative control: N(0, I) samples (not e^{-Phi}/Z) fail the same test."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, 2))
    edges = np.linspace(-3, 3, 13)
    counts = np.histogram2d(x[:, 0], x[:, 1], bins=(edges, edges))[0]
    probs = sde.bin_probabilities(edges)
    _, q99 = sde.tv_null_quantiles(probs, N)
    assert sde.total_variation(counts, probs, N) > q99


@pytest.mark.parametrize("lam", [0.0, 1.5])
def test_mean_angular_velocity(runs, lam):
    r = runs[lam]
    cf = dw.angular_velocity_closed_form(lam)
    assert abs(r.omega_mean - cf) < 4 * r.omega_se
    assert abs(r.winding_mean - cf) < 4 * r.winding_se
    if lam > 0:  # the circulation is resolved, not lost in the noise
        assert r.omega_mean > 10 * r.omega_se


def test_recorded_winding_matches_unwrapped_atan2(runs):
    r = runs[1.5]
    theta = np.unwrap(np.arctan2(r.paths[..., 1], r.paths[..., 0]), axis=0)
    np.testing.assert_allclose(r.path_theta, theta - theta[0], atol=1e-9)


def test_same_seed_same_result_and_lambdas_independent():
    a = sde.simulate(0.5, 50, 0.01, 0.1, 0.1, seed=1)
    b = sde.simulate(0.5, 50, 0.01, 0.1, 0.1, seed=1)
    c = sde.simulate(0.0, 50, 0.01, 0.1, 0.1, seed=1)
    np.testing.assert_array_equal(a.omega_particle, b.omega_particle)
    assert not np.allclose(a.paths[-1], c.paths[-1])


def test_chi2_pvalue_against_scipy_and_coarsening():
    rng = np.random.default_rng(2)
    probs = sde.bin_probabilities(np.linspace(-3, 3, 9))
    n = 20000
    counts = rng.multinomial(n, np.append(probs.ravel(), 1 - probs.sum()))[:-1].reshape(8, 8)
    p, dof = sde.chi2_pvalue(counts, probs, n)
    e = n * probs.ravel()
    keep = e >= 5
    obs = np.append(counts.ravel()[keep], n - counts.ravel()[keep].sum())
    exp = np.append(e[keep], n - e[keep].sum())
    assert p == pytest.approx(stats.chisquare(obs, exp).pvalue, rel=1e-10)
    assert dof == keep.sum()
    # few samples on a fine grid: cells are merged until the test has cells to work with
    small = rng.multinomial(300, np.append(probs.ravel(), 1 - probs.sum()))[:-1].reshape(8, 8)
    p, dof = sde.chi2_pvalue(small, probs, 300, min_expected=40)
    assert dof >= 1 and 0 <= p <= 1
    np.testing.assert_array_equal(sde.coarsen(np.ones((5, 4))), [[4, 4], [6, 6]])


def test_checks_rows_are_logged_without_their_empty_fields(caplog):
    """Every theory rule logs its table through checks.log_rows: NaN columns are left out,
    the setting goes last, and a failed check is visible in the line."""
    import logging

    table = checks.frame(
        [
            checks.row("sde", "mean_x", 0.1234567, lam=0.5, reference=0.12, tolerance=0.01,
                       passed=True),
            checks.row("remarks", "eta_over_b", 0.25, setting="N=10, b=2"),
            checks.row("ou", "cov", 2.0, reference=1.0, tolerance=0.1, se=0.05, passed=False),
        ]
    )  # fmt: skip
    assert checks.describe_row(next(table.itertuples())) == (
        "sde lambda=0.5: mean_x = 0.123457 (reference 0.12, tolerance 0.01, passed True)"
    )
    with caplog.at_level(logging.INFO):
        checks.log_rows(table, logging.getLogger("t"))
        checks.log_rows(table[table.passed.eq(False).fillna(False)], logging.getLogger("t"),
                        logging.WARNING, prefix="FAILED ")  # fmt: skip
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1] == "remarks: eta_over_b = 0.25 [N=10, b=2]"
    assert lines[2] == "ou: cov = 2 (reference 1, tolerance 0.1, s.e. 0.05, passed False)"
    assert lines[3].startswith("FAILED ou: cov") and caplog.records[3].levelno == logging.WARNING
    assert len(lines) == 4
