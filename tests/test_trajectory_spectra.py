"""FFT, autocorrelation, null models and the per-seed analysis against direct formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sgdvi.trajectory import nulls, spectra
from sgdvi.trajectory.analysis import analyse_trajectory


def test_increment_spectrum_matches_direct_dft_and_finds_a_sine():
    rng = np.random.default_rng(0)
    n = 257
    t = np.arange(n)
    x = np.cumsum(np.sin(2 * np.pi * 0.125 * t)) + 0.01 * rng.standard_normal(n)
    x = np.stack([x, 3 * x + 1], axis=1)
    freqs, amp = spectra.increment_spectrum(x)
    m = n - 1
    delta = np.diff(x, axis=0)
    k = np.arange(m // 2 + 1)
    direct = np.abs(np.exp(-2j * np.pi * np.outer(k, np.arange(m)) / m) @ delta)
    np.testing.assert_allclose(amp, direct, atol=1e-9)
    np.testing.assert_allclose(freqs, k / m)
    assert freqs[np.argmax(amp[:, 0])] == pytest.approx(0.125, abs=1 / m)
    np.testing.assert_allclose(amp[:, 1], 3 * amp[:, 0], rtol=1e-9)  # linear, offset drops
    _, amp_t = spectra.increment_spectrum(x.T.copy(), axis=1)
    np.testing.assert_allclose(amp_t.T, amp, rtol=1e-12)


def test_autocorrelation_matches_direct_biased_estimator():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.standard_normal((300, 3)), axis=0)
    x[:, 2] = 5.0  # constant column: NaN
    lags = spectra.even_lags(300, 40)
    ac = spectra.autocorrelation(x, lags)
    for j in range(2):
        xc = x[:, j] - x[:, j].mean()
        c0 = (xc * xc).sum()
        direct = [(xc[: 300 - L] * xc[L:]).sum() / c0 for L in lags]
        np.testing.assert_allclose(ac[:, j], direct, rtol=1e-10, atol=1e-12)
    assert np.isnan(ac[:, 2]).all()
    assert lags[0] == 0 and lags[-1] == 149 and len(lags) == 40
    np.testing.assert_allclose(spectra.autocorrelation(x.T, lags, axis=1).T, ac)


def test_white_noise_autocorrelation_stays_inside_the_99_band_about_99_percent():
    rng = np.random.default_rng(2)
    n, k = 2000, 400
    lags = spectra.even_lags(n, 100)
    band = spectra.confidence_band(n)
    assert band == pytest.approx(2.5758 / np.sqrt(n), rel=1e-4)
    frac = spectra.fraction_outside(
        spectra.autocorrelation(rng.standard_normal((n, k)), lags), band
    )
    # the biased estimator at lag L has standard deviation ~sqrt(n - L) / n, below the band's
    # 1/sqrt(n): at lags up to n/2 the expected rate is ~0.37%, not 1%
    z = 2.5758 * np.sqrt(n / (n - lags[1:]))
    expected = (2 * stats.norm.sf(z)).mean()
    assert 0.003 < expected < 0.0045
    assert frac.mean() == pytest.approx(expected, rel=0.25)  # 39,600 draws: ~150 outside
    walk = np.cumsum(rng.standard_normal((n, 20)), axis=0)
    assert spectra.fraction_outside(spectra.autocorrelation(walk, lags), band).mean() > 0.3


def test_expected_permuted_power_equals_monte_carlo():
    rng = np.random.default_rng(3)
    delta = rng.standard_normal((12, 2)) + np.array([0.5, -2.0])
    delta[:, 1] = delta[:, 1] ** 3
    expected = nulls.expected_permuted_power(delta)
    draws = np.array(
        [np.abs(np.fft.rfft(rng.permuted(delta, axis=0), axis=0)[1:]) ** 2 for _ in range(40000)]
    )
    np.testing.assert_allclose(draws.mean(axis=0), np.broadcast_to(expected, (6, 2)), rtol=0.03)


def test_ornstein_uhlenbeck_variance_autocorrelation_and_fit():
    rng = np.random.default_rng(4)
    a, n = 0.9, 20000
    ou = nulls.ornstein_uhlenbeck(n, a, np.array([1.0, -3.0]), np.array([2.0, 0.5]), rng)
    assert ou.shape == (n, 2)
    np.testing.assert_allclose(ou.mean(axis=0), [1.0, -3.0], atol=0.2)
    np.testing.assert_allclose(ou.std(axis=0), [2.0, 0.5], rtol=0.05)
    ac = spectra.autocorrelation(ou, np.array([0, 1, 5, 10]))
    np.testing.assert_allclose(ac, np.array([[1, a, a**5, a**10]] * 2).T, atol=0.03)
    ss_d = (np.diff(ou, axis=0) ** 2).sum(axis=0)
    ss_c = ((ou - ou.mean(axis=0)) ** 2).sum(axis=0)
    assert nulls.fit_isotropic_ou(ss_d, ss_c) == pytest.approx(a, abs=0.01)


def test_permutation_pvalue_and_low_frequency_mask():
    assert nulls.permutation_pvalue(5.0, np.arange(10)) == pytest.approx(6 / 11)
    assert nulls.permutation_pvalue(100.0, np.arange(10)) == pytest.approx(1 / 11)
    freqs = np.fft.rfftfreq(1000)
    assert spectra.low_frequency_mask(freqs, 0.01).sum() == 9
    short = spectra.low_frequency_mask(np.fft.rfftfreq(29), 0.01)  # cannot resolve 0.01
    assert short.sum() == 1 and short[1]


def _save(tmp_path, x):
    path = tmp_path / "weights.npy"
    np.save(path, x.astype(np.float32))
    return path


def test_analysis_detects_low_frequency_modes_and_accepts_white_increments(tmp_path):
    rng = np.random.default_rng(5)
    n, k = 1500, 30
    walk = np.cumsum(rng.standard_normal((n, k)), axis=0)
    walk = np.concatenate([walk, np.full((n, 2), 0.3)], axis=1)  # two weights that never move
    white = analyse_trajectory(
        _save(tmp_path, walk), n_permutations=40, low_frequency_cutoff=0.01, block_mb=0.05
    )
    assert white["d"] == 32 and white["d_active"] == 30
    assert 0.6 < white["low_freq_ratio"] < 1.5
    assert white["low_freq_p_value"] > 0.01 and white["low_freq_p_value_lower"] > 0.01
    assert white["ac_frac_outside_shuffle"] < 0.03
    assert white["ac_p_value"] == pytest.approx(1 / 41)  # positions of a walk: memory
    assert white["fft_mean"].shape == white["freqs"].shape == white["fft_perm_mean"].shape

    t = np.arange(n)[:, None]
    slow = walk[:, :k] + 30 * np.sin(2 * np.pi * t / 250 + rng.uniform(0, 6, k))
    modes = analyse_trajectory(_save(tmp_path, slow), n_permutations=40, block_mb=0.05)
    assert modes["low_freq_ratio"] > 5
    assert modes["low_freq_p_value"] == pytest.approx(1 / 41)
    peak = modes["freqs"][1:][np.argmax(modes["fft_mean"][1:])]
    assert peak == pytest.approx(1 / 250, abs=2 / n)

    ou = nulls.ornstein_uhlenbeck(n, 0.95, np.zeros(k), np.ones(k), rng)
    mean_reverting = analyse_trajectory(_save(tmp_path, ou), n_permutations=40, block_mb=0.05)
    assert mean_reverting["low_freq_ratio"] < 0.5  # OU increments: low-frequency deficit
    assert mean_reverting["low_freq_p_value_lower"] == pytest.approx(1 / 41)
    assert mean_reverting["ou_coefficient"] == pytest.approx(0.95, abs=0.02)


# --- the fast analysis against the brute-force reference ------------------------------------


def test_affine_permutation_permutes_the_dft_bins():
    """|DFT(w o alpha)|^2 at k equals |DFT(w)|^2 at k a^-1 mod m for alpha(t) = a t + b."""
    rng = np.random.default_rng(6)
    m = 360  # 2^3 3^2 5: many non-units
    w = rng.standard_normal(m)
    power = np.abs(np.fft.fft(w)) ** 2
    for a in (7, 11, 77, 359):
        b = int(rng.integers(m))
        y = w[(a * np.arange(m) + b) % m]
        a_inv = pow(a, -1, m)
        np.testing.assert_allclose(
            np.abs(np.fft.fft(y)) ** 2, power[(np.arange(m) * a_inv) % m], rtol=1e-9
        )


def test_spectrum_null_is_the_pooled_power_of_explicit_uniform_permutations():
    """Every surrogate equals the brute-force low-frequency power of a concrete permutation
    sigma_r o alpha_b of the increments (so each is a uniformly random permutation)."""
    from sgdvi.trajectory import analysis

    rng = np.random.default_rng(7)
    n, k, b_perm, seed = 730, 6, 60, 3
    x = np.cumsum(rng.standard_normal((k, n)), axis=1).astype(np.float32)
    grid = analysis._Grid.build(n, 20, 0.5, 0.05)
    m = grid.m_fft
    got = analysis._spectrum_null(x, grid, [slice(0, 4), slice(4, k)], seed, b_perm, 1)
    inv = analysis._units(m, b_perm, np.random.default_rng([seed, 20180102]))
    n_base = -(-b_perm // analysis._SURROGATES_PER_BASE)
    assert n_base == 2 and len(set(inv.tolist())) > b_perm - 5
    delta = np.diff(grid.tail(x), axis=1).astype(np.float64)
    for b in range(b_perm):
        sigma = nulls.time_permutation(seed, b % n_base, m, 0)
        alpha = (pow(int(inv[b]), -1, m) * np.arange(m)) % m
        f = np.fft.rfft(delta[:, sigma][:, alpha], axis=1)
        np.testing.assert_allclose(got[b], (np.abs(f[:, grid.low]) ** 2).sum(), rtol=1e-5)


def _compare_with_reference(tmp_path, x, n_perm, **kw):
    from trajectory_analysis_reference import analyse_trajectory as reference

    path = _save(tmp_path, x)
    new = analyse_trajectory(path, n_permutations=n_perm, block_mb=0.05, **kw)
    old = reference(path, n_permutations=n_perm, block_mb=0.05, **kw)
    exact = ["n", "n_fft", "d", "d_active", "active", "freqs", "lags", "band", "n_low_freq_bins"]
    for key in exact + ["ou_coefficient", "low_freq_ratio", "low_freq_ratio_median"]:
        np.testing.assert_allclose(new[key], old[key], rtol=1e-10, err_msg=key)
    for key in ["ac_frac_outside", "per_weight_low_freq_ratio", "per_weight_ac_frac_outside"]:
        np.testing.assert_allclose(new[key], old[key], rtol=1e-10, err_msg=key)
    for key in ["fft_mean", "fft_std", "ac_mean", "ac_std"]:
        np.testing.assert_allclose(new[key], old[key], rtol=1e-8, atol=1e-12, err_msg=key)
    # same AC permutations: the p-value is the brute-force one exactly
    assert new["ac_p_value"] == old["ac_p_value"]
    return new, old


def test_fast_analysis_agrees_with_the_reference_on_a_random_walk(tmp_path):
    rng = np.random.default_rng(8)
    n, k, n_perm = 1500, 70, 200
    walk = np.cumsum(rng.standard_normal((n, k)), axis=0)
    walk = np.concatenate([walk, np.full((n, 2), 0.3)], axis=1)
    new, old = _compare_with_reference(tmp_path, walk, n_perm)
    # the AC null was decided early (observed ~0.9, surrogates ~0.004): 32 of 70 weights
    assert new["perm_ac_weights_evaluated"].max() == 32
    np.testing.assert_allclose(new["perm_ac_frac_outside"], old["perm_ac_frac_outside"], atol=0.004)
    # spectrum null: same distribution (mean exactly 1 in expectation; spread as brute force)
    for res in (new, old):
        assert res["low_freq_ratio_perm_mean"] == pytest.approx(1.0, abs=0.03)
    sd_new, sd_old = new["perm_low_freq_ratio"].std(), old["perm_low_freq_ratio"].std()
    assert 0.75 < sd_new / sd_old < 1.33  # 200 draws each: sd known to ~5 %
    for key in ["low_freq_p_value", "low_freq_p_value_lower"]:
        assert abs(new[key] - old[key]) < 0.1, key
    # single surrogates: different random draws, same statistics within noise
    for key in ["ac_frac_outside_walk", "ac_frac_outside_ou", "ac_frac_outside_shuffle"]:
        assert new[key] == pytest.approx(old[key], abs=0.06), key
    assert new["low_freq_ratio_ou"] == pytest.approx(old["low_freq_ratio_ou"], rel=0.3)
    np.testing.assert_allclose(
        new["fft_perm_mean"][1:].mean(), old["fft_perm_mean"][1:].mean(), rtol=0.05
    )


def test_fast_analysis_agrees_with_the_reference_near_the_null(tmp_path):
    """White positions (no memory): the AC null cannot be decided early; every weight runs,
    and the surrogate values equal the brute-force ones."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((800, 40))
    x[:, :5] += np.linspace(0, 3, 800)[:, None]  # a few weights with memory
    new, old = _compare_with_reference(tmp_path, x, 60, n_lags=30)
    assert (new["perm_ac_weights_evaluated"] == 40).mean() > 0.5
    full = new["perm_ac_weights_evaluated"] == 40
    np.testing.assert_allclose(
        new["perm_ac_frac_outside"][full], old["perm_ac_frac_outside"][full], atol=1e-3
    )
