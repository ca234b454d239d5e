"""One statement per claim and setting from per-seed numbers: interval, pooled test, verdict.

**Interval.** A 95 % Student-t interval of the mean of the per-seed effects (on the log scale
for ratios, which gives the geometric mean): seeds are independent runs, and with 3-30 of them
the t-interval is exact for normal effects and close for moderately skewed ones, whereas a
bootstrap over seeds undercovers badly at these sizes (3 seeds give 10 distinct resamples and
a percentile interval no wider than the sample's range). A per-seed yes/no (the probability
current: detected or not) gets a Clopper-Pearson interval of the fraction of seeds, which
never undercovers. One seed gives no interval.

**Pooled test.** Where every seed has its own one-sided p-value, Fisher's combination
``X = -2 sum ln p_i ~ chi^2_{2k}`` (valid for independent seeds). Permutation p-values are
discrete and never below ``1/(B + 1)`` (``B`` surrogates): they are super-uniform under the
null, so Fisher's statistic is stochastically smaller than chi-square and the pooled p-value is
conservative (still valid); :func:`fisher_floor` gives the smallest pooled p-value that ``k``
such p-values can reach. Where seeds give no p-value, a one-sided one-sample t-test of the
effects against the null value; for "about c" claims the two one-sided tests (TOST) of an
equivalence region.

**Verdict** (:func:`decide`), at pooled level ``alpha`` (0.05) and interval level 95 %:

- *holds*: the pooled test rejects the null and the interval lies entirely on the claimed side
  of the null (inside the region for an "about" claim);
- *fails*: the interval lies entirely on the other side of the null (entirely outside the
  region);
- *undecided*: anything else at this number of seeds, and always with fewer than
  :data:`MIN_SEEDS` seeds;
- *not tested*: no seed was run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  #: level of the pooled tests
LEVEL = 0.95  #: coverage of the intervals
MIN_SEEDS = 2  #: fewer seeds give no verdict

HOLDS, FAILS, UNDECIDED, NOT_TESTED = "holds", "fails", "undecided", "not tested"
GREATER, LESS, ABOUT = "greater", "less", "about"


@dataclass(frozen=True)
class Interval:
    """A point estimate over ``n`` seeds with its interval (NaN bounds when undefined)."""

    estimate: float
    low: float
    high: float
    n: int
    method: str

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def _finite(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of the finite ``values`` with ``mean +- t_{(1+level)/2, n-1} s / sqrt(n)``."""
    v = _finite(values)
    n = v.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "t")
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, "t")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, "t")


def log_t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Geometric mean of positive ``values`` with the t-interval of their logarithms,
    exponentiated (for ratios and factors); non-positive values are an error."""
    v = _finite(values)
    if np.any(v <= 0):
        raise ValueError(f"log_t_interval needs positive values, got {v[v <= 0][:3]}")
    t = t_interval(np.log(v), level)
    return Interval(*(math.exp(x) for x in (t.estimate, t.low, t.high)), t.n, "t on log")


def clopper_pearson(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Fraction ``successes / n`` with its exact (Clopper-Pearson) binomial interval."""
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "Clopper-Pearson")
    a = (1 - level) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(a, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - a, successes + 1, n - successes))
    return Interval(successes / n, low, high, n, "Clopper-Pearson")


def fisher_combine(p_values: Sequence[float]) -> tuple[float, float]:
    """Fisher's statistic ``-2 sum ln p`` over the finite p-values and its chi-square
    (``2k`` degrees of freedom) p-value; ``(nan, nan)`` when there is none."""
    p = _finite(p_values)
    if p.size == 0:
        return math.nan, math.nan
    if np.any((p <= 0) | (p > 1)):
        raise ValueError(f"p-values must lie in (0, 1], got {p[(p <= 0) | (p > 1)][:3]}")
    x = float(-2.0 * np.log(p).sum())
    return x, float(stats.chi2.sf(x, 2 * p.size))


def fisher_floor(k: int, n_permutations: int) -> float:
    """The smallest pooled p-value of :func:`fisher_combine` over ``k`` permutation p-values,
    each at least ``1 / (n_permutations + 1)``."""
    return float(stats.chi2.sf(2 * k * math.log(n_permutations + 1), 2 * k))


def t_test(values: Sequence[float], null: float, direction: str) -> float:
    """One-sided one-sample t-test p-value of ``mean > null`` (``greater``) or ``< null``
    (``less``); NaN for fewer than 2 values; identical values give 0 or 1."""
    v = _finite(values)
    if v.size < 2:
        return math.nan
    sign = {GREATER: 1.0, LESS: -1.0}[direction]
    diff = sign * (v.mean() - null)
    s = v.std(ddof=1)
    if s == 0:
        return 0.0 if diff > 0 else 1.0
    return float(stats.t.sf(diff / (s / math.sqrt(v.size)), v.size - 1))


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Difference of means ``mean(a) - mean(b)`` with Welch's t-interval (Welch-Satterthwaite
    degrees of freedom); ``n`` is the smaller sample, bounds NaN below 2 values in either."""
    a, b = _finite(a), _finite(b)
    n = min(a.size, b.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "Welch t")
    diff = float(a.mean() - b.mean())
    if n < 2:
        return Interval(diff, math.nan, math.nan, n, "Welch t")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, diff, diff, n, "Welch t")
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof) * se)
    return Interval(diff, diff - half, diff + half, n, "Welch t")


def welch_test(a: Sequence[float], b: Sequence[float], direction: str) -> float:
    """One-sided Welch t-test p-value of ``mean(a) > mean(b)`` (``greater``) or ``<``
    (``less``); NaN below 2 values in either sample."""
    a, b = _finite(a), _finite(b)
    if min(a.size, b.size) < 2:
        return math.nan
    res = stats.ttest_ind(a, b, equal_var=False, alternative=direction)
    return float(res.pvalue)


def tost(values: Sequence[float], low: float, high: float) -> float:
    """Two one-sided t-tests of ``low < mean < high`` (equivalence): the larger p-value."""
    return max(t_test(values, low, GREATER), t_test(values, high, LESS))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _directional(iv: Interval, p: float, null: float, direction: str, alpha: float):
    above, below = iv.low > null, iv.high < null
    on_side, other_side = (above, below) if direction == GREATER else (below, above)
    side = "above" if direction == GREATER else "below"
    other = "below" if direction == GREATER else "above"
    span = f"[{_fmt(iv.low)}, {_fmt(iv.high)}]"
    if other_side:
        return FAILS, f"the interval {span} lies {other} {_fmt(null)}"
    if on_side and p < alpha:
        return HOLDS, f"pooled p = {p:.2g} < {alpha:g} and the interval {span} lies {side} " + (
            _fmt(null)
        )
    if on_side:
        return UNDECIDED, f"the interval {span} lies {side} {_fmt(null)} but pooled p = {p:.2g}"
    return UNDECIDED, f"the interval {span} contains {_fmt(null)} (pooled p = {p:.2g})"


def _equivalence(iv: Interval, p: float, region: tuple[float, float], alpha: float):
    lo, hi = region
    span, where = f"[{_fmt(iv.low)}, {_fmt(iv.high)}]", f"[{_fmt(lo)}, {_fmt(hi)}]"
    if iv.high < lo or iv.low > hi:
        return FAILS, f"the interval {span} lies outside {where}"
    if lo <= iv.low and iv.high <= hi and p < alpha:
        return HOLDS, f"equivalence p = {p:.2g} < {alpha:g}; the interval {span} lies in {where}"
    return UNDECIDED, f"the interval {span} is not inside {where} (equivalence p = {p:.2g})"


def decide(
    iv: Interval,
    p: float,
    *,
    direction: str,
    null: float = math.nan,
    region: tuple[float, float] | None = None,
    alpha: float = ALPHA,
) -> tuple[str, str]:
    """The verdict and its reason in words (rule: the module docstring).

    ``direction``: :data:`GREATER` or :data:`LESS` (the claim is ``effect > null`` or
    ``< null``) or :data:`ABOUT` (``effect`` in ``region``).
    """
    if iv.n == 0:
        return NOT_TESTED, "no seed run"
    if iv.n < MIN_SEEDS or not iv.defined:
        where = ""
        if direction != ABOUT and np.isfinite(null) and np.isfinite(iv.estimate):
            rel = "above" if iv.estimate > null else "below" if iv.estimate < null else "at"
            where = f"; the point value {_fmt(iv.estimate)} is {rel} {_fmt(null)}"
        return UNDECIDED, f"{iv.n} seed{'s' if iv.n != 1 else ''}: no interval{where}"
    if direction != ABOUT and not np.isfinite(null):
        return UNDECIDED, "no null value measured"
    if direction == ABOUT:
        if region is None:
            raise ValueError("an 'about' claim needs its region")
        return _equivalence(iv, p, region, alpha)
    return _directional(iv, p, null, direction, alpha)
