"""Calibration of the per-seed tests (sgdvi.claims.calibration) on small paths: the surrogates
against naive loops, the current verdict against sgdvi.irreversibility.sgd.verdict, measured
false-positive rates near the level where the test is exact, and the band test rejecting every
random walk (its null is white positions)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sgdvi.claims import calibration as cal
from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import sgd
from sgdvi.theory import checks


def rotating_path(n: int, m: int, omega: float, seed: int, gamma: float = 0.02) -> np.ndarray:
    """A stationary AR path whose first two coordinates rotate (a probability current for
    omega != 0), further coordinates independent AR(1)."""
    rng = np.random.default_rng(seed)
    A = (1 - gamma) * np.eye(m)
    c, s = math.cos(omega), math.sin(omega)
    A[:2, :2] = (1 - gamma) * np.array([[c, -s], [s, c]])
    y = np.zeros((n, m))
    e = rng.standard_normal((n, m))
    for k in range(1, n):
        y[k] = A @ y[k - 1] + e[k]
    return y


def test_walk_and_ar1_path_match_naive_loops():
    rng = np.random.default_rng(0)
    inc = rng.standard_normal((50, 3))
    w = cal.walk(inc)
    assert w.shape == (51, 3) and np.all(w[0] == 0)
    assert np.allclose(w[17], inc[:17].sum(axis=0))
    y = cal.ar1_path(inc, 0.9)
    e = inc - inc.mean(axis=0)
    ref = np.zeros((51, 3))
    for k in range(50):
        ref[k + 1] = 0.9 * ref[k] + e[k]
    assert np.allclose(y, ref, atol=1e-12)


def test_ar1_coefficient_is_capped_so_the_surrogate_is_stationary():
    walk = cal.walk(np.random.default_rng(1).standard_normal((9999, 2)))
    assert cal.ar1_coefficient(walk) == pytest.approx(1 - 200 / 10000)
    ar = rotating_path(20000, 2, 0.0, 2, gamma=0.1)
    assert cal.ar1_coefficient(ar) == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("omega,seed", [(0.05, 3), (0.0, 4), (0.02, 5)])
def test_current_level_equals_the_pipeline_verdict_on_one_projection(omega, seed):
    y = rotating_path(6000, 4, omega, seed)
    nb, growth = 20, 2.0
    area, stat = es.area_rate(y, 1.0, nb), es.stationarity(y, growth)
    proj = sgd.Projection("diffusion", y, area, stat, np.zeros((5, 4, 4)), None)
    ref = sgd.verdict([proj], 0.01)
    level, n_ok = cal.current_level(y, nb, growth)
    assert n_ok == ref["n_pairs_tested"] == 6
    assert level == pytest.approx(ref["level"], rel=1e-12)
    if omega == 0.05:
        assert level < 1e-6  # the rotation is a current


def test_current_level_without_a_stationary_pair_is_not_a_rejection():
    walk = cal.walk(np.random.default_rng(6).standard_normal((5999, 3)))
    level, n_ok = cal.current_level(walk, 20, 2.0)
    assert n_ok == 0 and math.isnan(level) and not level <= 0.01


def small_settings(**kw) -> cal.Settings:
    base = dict(n_surrogates=300, n_surrogates_band=5, n_surrogates_lemma20=40,
                n_permutations=99, seed_alpha=0.1, current_alpha=0.1, n_lags=30)  # fmt: skip
    return dataclasses.replace(cal.Settings(), **(base | kw))


def test_fig3a_rate_is_the_level_by_exchangeability():
    """Surrogate and reference draws are the same increments in random orders: the rate of
    p <= 0.1 must be close to 0.1 (here 0.08-0.10 exactly for B = 99, up to sampling)."""
    y = rotating_path(1500, 3, 0.0, 7, gamma=0.01)
    rej, n = cal.fig3a_rejections([np.diff(y, axis=0)], small_settings(), np.random.default_rng(8))
    assert n == 300
    assert abs(rej / n - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)


def test_band_test_rejects_every_random_walk_and_about_alpha_of_white_paths():
    s = small_settings()
    rng = np.random.default_rng(9)
    inc = rng.standard_normal((799, 3))
    assert cal.fig3b_rejections([cal.walk(inc)], s, rng) == (5, 5)
    white = [cal.band_test_rejects(rng.standard_normal((300, 2)), s, rng) for _ in range(120)]
    assert abs(np.mean(white) - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 120)


def test_calibrate_rows_and_theory_rows():
    y = rotating_path(3000, 3, 0.0, 10, gamma=0.01)
    s = small_settings(current_alpha=0.05)
    d = cal.calibrate([y, y[::-1].copy()], "authors", s)
    assert list(d.columns) == list(cal.COLUMNS)
    assert set(zip(d.procedure, d.surrogate, strict=True)) == {
        ("current", "walk"), ("current", "ar1"), ("lemma20", "ar1"), ("fig3a", "walk"),
        ("fig3b", "walk"),
    }  # fmt: skip
    by = d.set_index(["procedure", "surrogate"])
    # the Bonferroni verdict is conservative on stationary paths in detailed balance
    assert by.loc[("current", "ar1"), "value"] <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / 300)
    assert by.loc[("current", "ar1"), "n_surrogates"] == 300
    assert by.loc[("fig3b", "walk"), "miscalibrated"]  # every walk leaves the band
    assert by.loc[("lemma20", "ar1"), "n_surrogates"] == 40
    assert 0 < by.loc[("lemma20", "ar1"), "value"] < 1
    rows = cal.theory_rows(d)
    assert list(rows.columns) == checks.COLUMNS and set(rows.check) == {"calibration"}
    rates = rows[rows.quantity.str.startswith("false-positive rate")]
    assert len(rates) == 4
    assert (rates.tolerance == 2 * rates.reference).all()
    assert list(rates.passed) == [v <= t for v, t in zip(rates.value, rates.tolerance, strict=True)]
    assert rows[rows.quantity.str.startswith("Lemma 20")].passed.isna().all()


def test_calibrate_needs_a_path():
    with pytest.raises(ValueError, match="no projected path"):
        cal.calibrate([], "stated", cal.Settings())


def test_with_few_permutations_the_level_is_the_smallest_p_value():
    """20 permutations cannot reach p <= 0.01: the tests are calibrated at 1/21, the level
    their p-values can reach (they still enter the pooled test)."""
    s = small_settings(n_permutations=20, seed_alpha=0.01)
    assert s.permutation_level == pytest.approx(1 / 21)
    rng = np.random.default_rng(11)
    walk = cal.walk(rng.standard_normal((499, 2)))
    assert cal.band_test_rejects(walk, s, rng)  # p = 1/21: no shuffle reaches a walk


def test_miscalibrated_needs_the_rate_above_twice_the_level_and_the_interval_above_the_level():
    from sgdvi.claims import pooling as pl

    assert not cal.miscalibrated(pl.clopper_pearson(5, 200), 0.01, 2.0)  # 2.5 %: noise
    assert cal.miscalibrated(pl.clopper_pearson(15, 200), 0.01, 2.0)  # 7.5 %, interval > 1 %
    assert cal.miscalibrated(pl.clopper_pearson(10, 10), 0.01, 2.0)
    assert not cal.miscalibrated(pl.clopper_pearson(15, 1000), 0.01, 2.0)  # 1.5 % < 2 %
