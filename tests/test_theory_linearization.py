"""Lemma 20: F = (D + Q) U, and the OU stationary covariance beta^-1 U^-1."""

import numpy as np
import pytest
from scipy import linalg

from sgdvi.theory import linearization as lz


@pytest.mark.parametrize("kind", ["minimum", "saddle"])
@pytest.mark.parametrize("rank", [None, 2])
def test_recovers_u_and_q(kind, rank):
    rng = np.random.default_rng(11)
    d = 5
    for _ in range(5):
        U = lz.random_spd(d, rng) if kind == "minimum" else lz.random_symmetric_indefinite(d, rng)
        D = lz.random_psd(d, rng, rank=rank)
        Q = lz.random_antisymmetric(d, rng)
        dec = lz.decompose((D + Q) @ U, D)
        np.testing.assert_allclose(dec.U, U, atol=1e-10)
        np.testing.assert_allclose(dec.Q, Q, atol=1e-10)
        np.testing.assert_array_equal(dec.Q, -dec.Q.T)
        np.testing.assert_allclose((D + dec.Q) @ dec.U, (D + Q) @ U, atol=1e-10)


def test_saddle_is_indefinite():
    U = lz.random_symmetric_indefinite(4, np.random.default_rng(0))
    ev = np.linalg.eigvalsh(U)
    assert ev.min() < 0 < ev.max()


def test_isotropic_diffusion_gives_q_zero_and_u_f_over_c():
    """Lemma 6: D = c I and symmetric F give Q = 0, U = F / c."""
    rng = np.random.default_rng(3)
    F = lz.random_symmetric_indefinite(4, rng)
    dec = lz.decompose(F, 0.3 * np.eye(4))
    np.testing.assert_allclose(dec.Q, 0.0, atol=1e-12)
    np.testing.assert_allclose(dec.U, F / 0.3, atol=1e-10)


def test_sylvester_solution_against_kronecker_system():
    """Q from vec(F Q + Q F^T) = (I kron F + F kron I) vec(Q) solved directly (naive)."""
    rng = np.random.default_rng(4)
    d = 3
    F = rng.standard_normal((d, d)) + 2 * np.eye(d)
    D = lz.random_psd(d, rng)
    A = np.kron(np.eye(d), F) + np.kron(F, np.eye(d))
    rhs = (F @ D - D @ F.T).reshape(-1, order="F")
    Q = np.linalg.solve(A, rhs).reshape(d, d, order="F")
    np.testing.assert_allclose(lz.decompose(F, D).Q, Q, atol=1e-10)


def test_eigenvalues_summing_to_zero_raise():
    with pytest.raises(lz.DecompositionError, match="sum to zero"):
        lz.decompose(np.diag([1.0, -1.0]), np.eye(2))
    with pytest.raises(lz.DecompositionError, match="sum to zero"):
        lz.decompose(np.diag([0.0, 2.0]), np.eye(2))  # singular F
    with pytest.raises(ValueError, match="positive semi-definite"):
        lz.decompose(np.eye(2), -np.eye(2))


def test_stationary_covariance_is_inverse_temperature_times_u_inverse():
    rng = np.random.default_rng(5)
    d, beta = 4, 2.5
    U, D, Q = lz.random_spd(d, rng), lz.random_psd(d, rng), lz.random_antisymmetric(d, rng)
    F = (D + Q) @ U
    S = lz.stationary_covariance(F, D, beta)
    np.testing.assert_allclose(S, np.linalg.inv(U) / beta, atol=1e-10)
    np.testing.assert_allclose(F @ S + S @ F.T, 2 / beta * D, atol=1e-10)


def test_ou_transition_against_riemann_sum():
    rng = np.random.default_rng(6)
    F = lz.random_spd(3, rng) + lz.random_antisymmetric(3, rng)
    D = lz.random_psd(3, rng)
    A, C = lz.ou_transition(F, D, 2.0, 0.3)
    np.testing.assert_allclose(A, linalg.expm(-0.3 * F), atol=1e-12)
    s = (np.arange(4000) + 0.5) * 0.3 / 4000
    ref = sum(linalg.expm(-F * t) @ (D / 1.0) @ linalg.expm(-F.T * t) for t in s) * 0.3 / 4000
    np.testing.assert_allclose(C, ref, atol=1e-7)


def test_long_simulation_matches_lyapunov_within_statistical_error():
    rng = np.random.default_rng(8)
    d, beta = 3, 1.0
    U, D, Q = (
        lz.random_spd(d, rng),
        lz.random_psd(d, rng) + 0.2 * np.eye(d),
        lz.random_antisymmetric(d, rng),
    )
    F = (D + Q) @ U
    t_end = 12 / np.linalg.eigvals(F).real.min()
    S, se = lz.simulate_ou_covariance(F, D, beta, particles=4000, t_end=t_end, dt=0.1, seed=9)
    z = np.abs(S - np.linalg.inv(U) / beta) / se
    assert z.max() < 4.0
    # and it is a real check: a wrong covariance (U^-1 instead of beta^-1 U^-1, beta = 2) fails
    assert (np.abs(S - np.linalg.inv(U) / 2.0) / se).max() > 4.0
