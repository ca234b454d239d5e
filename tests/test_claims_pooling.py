"""Pooling over seeds (sgdvi.claims.pooling) against closed forms and scipy as an independent
reference: t-intervals, Fisher's combination, Clopper-Pearson, Welch, TOST, and the verdict
rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sgdvi.claims import pooling as pl


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_t_interval_matches_scipy(n):
    v = np.random.default_rng(n).normal(2.0, 1.5, n)
    iv = pl.t_interval(v, 0.95)
    lo, hi = stats.t.interval(0.95, n - 1, loc=v.mean(), scale=stats.sem(v))
    assert (iv.estimate, iv.low, iv.high, iv.n) == pytest.approx((v.mean(), lo, hi, n), rel=1e-12)


def test_t_interval_one_value_and_nan_values():
    iv = pl.t_interval([3.0, math.nan])
    assert iv.n == 1 and iv.estimate == 3.0 and not iv.defined
    assert pl.t_interval([]).n == 0


def test_log_t_interval_is_the_geometric_mean_interval():
    v = np.array([0.5, 0.7, 0.6, 0.9])
    iv = pl.log_t_interval(v)
    lo, hi = stats.t.interval(0.95, 3, loc=np.log(v).mean(), scale=stats.sem(np.log(v)))
    assert iv.estimate == pytest.approx(stats.gmean(v))
    assert (iv.low, iv.high) == pytest.approx((math.exp(lo), math.exp(hi)))
    with pytest.raises(ValueError, match="positive"):
        pl.log_t_interval([1.0, 0.0])


def test_t_interval_covers_the_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = [pl.t_interval(rng.normal(1.0, 2.0, 4)) for _ in range(4000)]
    coverage = np.mean([iv.low <= 1.0 <= iv.high for iv in hits])
    assert abs(coverage - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 4000)


@pytest.mark.parametrize("p", [[0.3], [0.01, 0.5], [0.2, 0.04, 0.9, 0.004], [1.0, 1.0]])
def test_fisher_matches_scipy_combine_pvalues(p):
    x, pooled = pl.fisher_combine(p)
    ref = stats.combine_pvalues(p, method="fisher")
    assert (x, pooled) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)


def test_fisher_closed_forms():
    # k = 1: chi-square with 2 dof has sf(x) = exp(-x/2), so the pooled p is p itself;
    # k = 2: sf_4(x) = exp(-x/2)(1 + x/2), i.e. q (1 - ln q) for q = p1 p2
    assert pl.fisher_combine([0.037])[1] == pytest.approx(0.037, rel=1e-12)
    q = 0.02 * 0.3
    assert pl.fisher_combine([0.02, 0.3])[1] == pytest.approx(q * (1 - math.log(q)), rel=1e-12)
    assert math.isnan(pl.fisher_combine([math.nan])[1])
    with pytest.raises(ValueError, match="p-values"):
        pl.fisher_combine([0.0])


def test_fisher_floor_is_the_pooled_p_of_the_smallest_permutation_p_values():
    assert pl.fisher_floor(3, 200) == pytest.approx(pl.fisher_combine([1 / 201] * 3)[1])
    assert pl.fisher_floor(1, 20) == pytest.approx(1 / 21)


def test_fisher_on_discrete_permutation_p_values_is_conservative():
    """Permutation p-values (1 + c) / (B + 1), uniform on their grid under the null: the pooled
    test rejects at most 5 % of the time (here well below, B = 19)."""
    rng = np.random.default_rng(1)
    p = (1 + rng.integers(0, 20, size=(5000, 3))) / 20
    rate = np.mean([pl.fisher_combine(row)[1] < 0.05 for row in p])
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 5000)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 1), (7, 30)])
def test_clopper_pearson_matches_scipy(k, n):
    iv = pl.clopper_pearson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((k / n, ci.low, ci.high), abs=1e-10)


@pytest.mark.parametrize("direction", [pl.GREATER, pl.LESS])
def test_t_test_matches_scipy(direction):
    v = np.array([1.2, 0.4, 2.2, 1.7, 0.9])
    ref = stats.ttest_1samp(v, 1.0, alternative=direction).pvalue
    assert pl.t_test(v, 1.0, direction) == pytest.approx(ref, rel=1e-12)
    assert math.isnan(pl.t_test([1.0], 0.0, direction))
    assert pl.t_test([2.0, 2.0], 1.0, pl.GREATER) == 0.0


def test_welch_interval_and_test_by_hand():
    a, b = np.array([2.0, 2.5, 3.5, 3.0]), np.array([1.0, 1.2, 0.9])
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
    dof = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    diff = a.mean() - b.mean()
    iv = pl.welch_interval(a, b)
    expected = (diff, diff - half, diff + half, 3)
    assert (iv.estimate, iv.low, iv.high, iv.n) == pytest.approx(expected)
    t = diff / math.sqrt(va + vb)
    assert pl.welch_test(a, b, pl.GREATER) == pytest.approx(stats.t.sf(t, dof))
    assert math.isnan(pl.welch_test(a, b[:1], pl.GREATER))


def test_tost_is_the_larger_of_two_one_sided_tests():
    v = np.log([2.8, 3.3, 2.5, 3.1])
    lo, hi = math.log(1.5), math.log(6.0)
    p1 = stats.ttest_1samp(v, lo, alternative="greater").pvalue
    p2 = stats.ttest_1samp(v, hi, alternative="less").pvalue
    assert pl.tost(v, lo, hi) == pytest.approx(max(p1, p2))


def _iv(est, lo, hi, n=5):
    return pl.Interval(est, lo, hi, n, "t")


@pytest.mark.parametrize(
    "iv,p,direction,null,verdict",
    [
        (_iv(2.0, 1.5, 2.5), 0.001, pl.GREATER, 1.0, pl.HOLDS),
        (_iv(2.0, 1.5, 2.5), 0.2, pl.GREATER, 1.0, pl.UNDECIDED),  # test does not reject
        (_iv(1.2, 0.8, 1.6), 0.001, pl.GREATER, 1.0, pl.UNDECIDED),  # interval contains null
        (_iv(0.6, 0.5, 0.7), 1.0, pl.GREATER, 1.0, pl.FAILS),
        (_iv(0.6, 0.5, 0.7), 0.001, pl.LESS, 1.0, pl.HOLDS),
        (_iv(16.0, 15.0, 17.0), 1.0, pl.LESS, 5.0, pl.FAILS),
        (_iv(2.0, math.nan, math.nan, 1), 0.001, pl.GREATER, 1.0, pl.UNDECIDED),
        (_iv(math.nan, math.nan, math.nan, 0), math.nan, pl.GREATER, 1.0, pl.NOT_TESTED),
        (_iv(2.0, 1.5, 2.5), 0.001, pl.GREATER, math.nan, pl.UNDECIDED),  # no null measured
    ],
)
def test_directional_verdicts(iv, p, direction, null, verdict):
    got, reason = pl.decide(iv, p, direction=direction, null=null)
    assert got == verdict, reason


@pytest.mark.parametrize(
    "iv,p,verdict",
    [
        (_iv(3.0, 2.5, 3.6), 0.001, pl.HOLDS),
        (_iv(3.0, 1.2, 7.0), 0.3, pl.UNDECIDED),
        (_iv(236.0, 200.0, 280.0), 1.0, pl.FAILS),
        (_iv(1.1, 1.0, 1.3), 1.0, pl.FAILS),
    ],
)
def test_equivalence_verdicts(iv, p, verdict):
    got, reason = pl.decide(iv, p, direction=pl.ABOUT, region=(1.5, 6.0))
    assert got == verdict, reason


def test_one_seed_reason_says_where_the_point_value_lies():
    verdict, reason = pl.decide(_iv(16.0, math.nan, math.nan, 1), math.nan, direction=pl.LESS,
                                null=5.0)  # fmt: skip
    assert verdict == pl.UNDECIDED and "1 seed" in reason and "above 5" in reason
