"""Euler-Maruyama simulation of the double-well SDE of Example 19 and its stationary statistics.

``dx = b(x) dt + sqrt(2) dW`` with ``b = -grad Phi + j`` (beta = 1), many independent particles
advanced together (vectorised over particles). The checks (beyond the paper):

* the empirical stationary density equals ``e^{-Phi} / Z`` for every lambda (the force ``j`` does
  not change the steady state, eq. (6)); measured by the total-variation distance between the
  histogram of the particles at the final time (independent samples) and the exact bin
  probabilities, next to its sampling distribution under the null (multinomial);
* circulation: ``E[d theta / dt]`` against its closed form ``lambda pi^{3/2} / Z``
  (:func:`sgdvi.theory.double_well.angular_velocity_closed_form`).

``E[d theta/dt]`` is estimated as the time average, over the sampling window and all particles,
of the drift's angular component ``(x1 b2 - x2 b1) / |x|^2`` (Ito: ``d theta`` has this drift plus
a zero-mean martingale, since ``Laplace(theta) = 0``). Its standard error comes from the spread of
the per-particle time averages (particles are independent). The winding estimator (unwrapped
angle increments over the window divided by its length) is recorded too; it is unbiased as well
but much noisier, since the martingale part has variance ``2 E[1/|x|^2]`` per unit time, which is
infinite in the continuum limit (log divergence at the origin; Spitzer's law).

One run and its rows of ``results/tables/theory.parquet``: :func:`run_sde`, :func:`sde_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, special, stats

from sgdvi.theory import checks
from sgdvi.theory import double_well as dw
from sgdvi.theory.double_well import START, START_STD


@dataclass
class SDEResult:
    """Accumulated statistics of one run (one lambda)."""

    lam: float
    dt: float
    t_burn: float
    t_sample: float
    edges: np.ndarray  # bin edges shared by both coordinates (histograms)
    hist_final: np.ndarray  # 2-D counts of the particles at the final time (independent)
    hist_pooled: np.ndarray  # 2-D counts pooled over recorded times in the sampling window
    n_outside_final: int  # final particles outside the histogram box
    omega_particle: np.ndarray  # per-particle time average of the angular drift
    winding_particle: np.ndarray  # per-particle unwrapped angle change / t_sample
    path_t: np.ndarray  # times of the recorded sample paths
    paths: np.ndarray  # (n_times, n_paths, 2)
    path_theta: np.ndarray  # unwrapped angle of the recorded paths, (n_times, n_paths)

    @property
    def omega_mean(self) -> float:
        return float(self.omega_particle.mean())

    @property
    def omega_se(self) -> float:
        return float(self.omega_particle.std(ddof=1) / np.sqrt(self.omega_particle.size))

    @property
    def winding_mean(self) -> float:
        return float(self.winding_particle.mean())

    @property
    def winding_se(self) -> float:
        return float(self.winding_particle.std(ddof=1) / np.sqrt(self.winding_particle.size))


def _drift_inplace(x1: np.ndarray, x2: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """``b(x)`` for coordinate arrays (same formula as :func:`double_well.drift`, fewer temps)."""
    a = x1 * x1
    r2 = a + x2 * x2
    b1 = -x1 * (a - 1.0)
    b2 = -x2
    if lam != 0.0:
        g = lam * np.exp((a - 1.0) ** 2 / 4.0 + x2 * x2 / 2.0 - r2 * r2 / 4.0)
        b1 -= x2 * g
        b2 += x1 * g
    return b1, b2


@dataclass
class _Window:
    """Statistics accumulated over the sampling window (after burn-in) of :func:`simulate`."""

    edges: np.ndarray
    particles: int
    n_paths: int
    rec_stride: int
    path_stride: int
    n_path_steps: int
    dt: float

    def __post_init__(self) -> None:
        bins = len(self.edges) - 1
        self.hist_pooled = np.zeros((bins, bins))
        self.omega_sum = np.zeros(self.particles)
        self.winding = np.zeros(self.particles)
        self.path_t: list[float] = []
        self.paths: list[np.ndarray] = []
        self.path_theta: list[np.ndarray] = []
        self.theta_paths = np.zeros(self.n_paths)

    def before_step(self, k: int, x1, x2, b1, b2) -> None:
        """Record step ``k`` of the window at the current positions and drift."""
        r2 = x1 * x1 + x2 * x2
        num = x1 * b2 - x2 * b1
        self.omega_sum += np.divide(num, r2, out=np.zeros_like(num), where=r2 > 0)
        if k % self.rec_stride == 0:
            self.hist_pooled += np.histogram2d(x1, x2, bins=(self.edges, self.edges))[0]
        if k < self.n_path_steps and k % self.path_stride == 0:
            self.path_t.append(k * self.dt)
            self.paths.append(np.stack([x1[: self.n_paths], x2[: self.n_paths]], axis=-1))
            self.path_theta.append(self.theta_paths.copy())

    def after_step(self, k: int, x1, x2, y1, y2) -> None:
        """Add the angle swept by the move ``x -> y`` of step ``k``, in (-pi, pi]."""
        dtheta = np.arctan2(x1 * y2 - x2 * y1, x1 * y1 + x2 * y2)
        self.winding += dtheta
        if k < self.n_path_steps:
            self.theta_paths += dtheta[: self.n_paths]


def simulate(
    lam: float,
    particles: int,
    dt: float,
    t_burn: float,
    t_sample: float,
    seed: int,
    *,
    x0: tuple[float, float] = START,
    x0_std: float = START_STD,
    half_width: float = 3.0,
    bins: int = 24,
    record_every: float = 0.05,
    n_paths: int = 4,
    path_time: float = 20.0,
    path_every: float = 0.01,
    log=None,
) -> SDEResult:
    """Simulate ``particles`` independent copies from ``N(x0, x0_std^2 I)`` (far from stationary),
    discard ``t_burn``, then accumulate statistics for ``t_sample`` (Euler-Maruyama, step ``dt``).
    """
    if dt <= 0 or t_sample <= 0 or particles < 2:
        raise ValueError("simulate: need dt > 0, t_sample > 0 and particles >= 2")
    # one stream per (seed, lambda): runs for different lambdas are independent
    rng = np.random.default_rng([seed, int(round(lam * 1e6))])
    n_burn = int(round(t_burn / dt))
    n_sample = int(round(t_sample / dt))
    if n_sample < 1:
        raise ValueError(f"theory.sde: t_sample={t_sample} is shorter than dt={dt}")
    window = _Window(
        edges=np.linspace(-half_width, half_width, bins + 1),
        particles=particles,
        n_paths=min(n_paths, particles),
        rec_stride=max(1, int(round(record_every / dt))),
        path_stride=max(1, int(round(path_every / dt))),
        n_path_steps=min(n_sample, int(round(path_time / dt))),
        dt=dt,
    )
    noise = np.sqrt(2.0 * dt)
    x1 = x0[0] + x0_std * rng.standard_normal(particles)
    x2 = x0[1] + x0_std * rng.standard_normal(particles)
    for step in range(n_burn + n_sample):
        b1, b2 = _drift_inplace(x1, x2, lam)
        if step >= n_burn:
            window.before_step(step - n_burn, x1, x2, b1, b2)
        z = rng.standard_normal((2, particles))
        y1 = x1 + b1 * dt + noise * z[0]
        y2 = x2 + b2 * dt + noise * z[1]
        if step >= n_burn:
            window.after_step(step - n_burn, x1, x2, y1, y2)
        x1, x2 = y1, y2
        if log is not None and (step + 1) % max(1, (n_burn + n_sample) // 10) == 0:
            log.info("lambda=%g: step %d / %d", lam, step + 1, n_burn + n_sample)
    if not (np.all(np.isfinite(x1)) and np.all(np.isfinite(x2))):
        raise FloatingPointError(
            f"theory.sde: Euler-Maruyama diverged for lambda={lam}, dt={dt}; lower theory.sde.dt"
        )
    return _result(lam, dt, t_burn, n_sample, window, x1, x2)


def _result(lam: float, dt: float, t_burn: float, n_sample: int, w: _Window, x1, x2) -> SDEResult:
    """The :class:`SDEResult` of a finished run from its window statistics and final positions."""
    hist_final = np.histogram2d(x1, x2, bins=(w.edges, w.edges))[0]
    return SDEResult(
        lam=float(lam),
        dt=float(dt),
        t_burn=float(t_burn),
        t_sample=n_sample * dt,
        edges=w.edges,
        hist_final=hist_final,
        hist_pooled=w.hist_pooled,
        n_outside_final=int(x1.size - hist_final.sum()),
        omega_particle=w.omega_sum / n_sample,
        winding_particle=w.winding / (n_sample * dt),
        path_t=np.asarray(w.path_t),
        paths=np.asarray(w.paths).reshape(-1, w.n_paths, 2),
        path_theta=np.asarray(w.path_theta).reshape(-1, w.n_paths),
    )


def bin_probabilities(edges: np.ndarray) -> np.ndarray:
    """Exact probabilities of the cells ``edges x edges`` under ``e^{-Phi}/Z`` (the density
    factorises, so each is a product of 1-D integrals), plus nothing for the outside."""
    z1 = dw.z_double_well() / np.sqrt(2.0 * np.pi)
    p1 = (
        np.array(
            [
                integrate.quad(lambda s: np.exp(-((s * s - 1.0) ** 2) / 4.0), a, b, epsabs=1e-13)[0]
                for a, b in zip(edges[:-1], edges[1:], strict=True)
            ]
        )
        / z1
    )
    cdf = special.ndtr(edges)
    p2 = np.diff(cdf)
    return np.outer(p1, p2)


def total_variation(counts: np.ndarray, probs: np.ndarray, n: int) -> float:
    """TV distance between the empirical distribution of ``n`` samples over the cells (plus one
    cell 'outside the box') and the exact cell probabilities."""
    c = counts.ravel() / n
    p = probs.ravel()
    return 0.5 * (np.abs(c - p).sum() + abs((1.0 - c.sum()) - (1.0 - p.sum())))


def tv_null_quantiles(
    probs: np.ndarray,
    n: int,
    q: tuple[float, ...] = (0.5, 0.99),
    draws: int = 2000,
    seed: int = 12345,
) -> tuple[float, ...]:
    """Quantiles of the TV distance between ``n`` exact independent samples and ``probs``
    (multinomial sampling distribution): the statistical tolerance of :func:`total_variation`."""
    rng = np.random.default_rng(seed)
    p = np.append(probs.ravel(), max(0.0, 1.0 - probs.sum()))
    p = p / p.sum()
    counts = rng.multinomial(n, p, size=draws)
    tv = 0.5 * np.abs(counts / n - p).sum(axis=1)
    return tuple(float(v) for v in np.quantile(tv, q))


# ------------------------------------------------ rows of results/tables/theory.parquet
def run_sde(
    lam: float,
    particles: int,
    dt: float,
    t_burn: float,
    t_sample: float,
    seed: int,
    *,
    bins: int,
    half_width: float,
    n_paths: int,
    path_time: float,
    log=None,
) -> dict[str, Any]:
    """Simulate and return everything the rows and plots need (``np.savez``-able)."""
    r = simulate(
        lam,
        particles,
        dt,
        t_burn,
        t_sample,
        seed,
        bins=bins,
        half_width=half_width,
        n_paths=n_paths,
        path_time=path_time,
        log=log,
    )
    return {
        "lam": r.lam,
        "dt": r.dt,
        "t_burn": r.t_burn,
        "t_sample": r.t_sample,
        "particles": particles,
        "edges": r.edges,
        "hist_final": r.hist_final,
        "hist_pooled": r.hist_pooled,
        "n_outside_final": r.n_outside_final,
        "omega_particle": r.omega_particle,
        "winding_particle": r.winding_particle,
        "path_t": r.path_t,
        "paths": r.paths,
        "path_theta": r.path_theta,
    }


def coarsen(a: np.ndarray) -> np.ndarray:
    """Sum 2 x 2 blocks of a 2-D array (an odd last row/column joins the previous block)."""
    for axis in (0, 1):
        m = a.shape[axis]
        starts = np.arange(0, m - 1 if m % 2 else m, 2)
        a = np.add.reduceat(a, starts, axis=axis)
    return a


def chi2_pvalue(
    counts: np.ndarray, probs: np.ndarray, n: int, min_expected: float = 5.0
) -> tuple[float, int]:
    """Pearson chi-square p-value of ``counts`` against ``probs``.

    Cells with expected count below ``min_expected`` and the outside of the box are lumped into
    one cell; while fewer than 10 cells are left, neighbouring cells are merged 2 x 2 first.
    """
    counts, probs = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    while np.count_nonzero(n * probs >= min_expected) < 10 and min(probs.shape) > 1:
        counts, probs = coarsen(counts), coarsen(probs)
    c, e = counts.ravel(), n * probs.ravel()
    keep = e >= min_expected
    obs = np.append(c[keep], n - c[keep].sum())
    exp = np.append(e[keep], n - e[keep].sum())
    ok = exp > 0
    dof = int(ok.sum() - 1)
    if dof < 1:
        return float("nan"), 0
    stat = float(np.sum((obs[ok] - exp[ok]) ** 2 / exp[ok]))
    return float(stats.chi2.sf(stat, dof)), dof


def sde_rows(res: dict[str, Any], *, z_tol: float = 4.0) -> list[dict[str, Any]]:
    """Rows of one SDE run (:func:`run_sde`): the final histogram against the steady state
    e^{-Phi}/Z (Theorem 5 with Example 19's j), the mean angular velocity against its closed
    form lambda pi^{3/2}/Z, and the mass outside the histogram box."""
    lam, n = float(res["lam"]), int(res["particles"])
    setting = (
        f"{n} particles, dt={float(res['dt']):g}, burn-in {float(res['t_burn']):g}, "
        f"window {float(res['t_sample']):g}"
    )
    probs = bin_probabilities(res["edges"])
    return [
        *_sde_histogram_rows(res, probs, lam, n, setting),
        *_sde_circulation_rows(res, lam, setting, z_tol),
        checks.row(
            "sde",
            "fraction_outside_histogram_box",
            int(res["n_outside_final"]) / n,
            lam=lam,
            reference=1.0 - probs.sum(),
            setting=setting,
        ),
    ]


def _sde_histogram_rows(
    res: dict[str, Any], probs: np.ndarray, lam: float, n: int, setting: str
) -> list[dict[str, Any]]:
    """TV distance and chi-square p-value of the final histogram against e^{-Phi}/Z."""
    tv = total_variation(res["hist_final"], probs, n)
    med, q99 = tv_null_quantiles(probs, n)
    pval, dof = chi2_pvalue(res["hist_final"], probs, n)
    return [
        checks.row(
            "sde",
            "tv_final_histogram",
            tv,
            lam=lam,
            reference=med,
            tolerance=q99,
            passed=tv <= q99,
            setting=setting + f"; {len(res['edges']) - 1}^2 bins; reference = median and "
            "tolerance = 99% quantile of TV for exact samples",
        ),
        checks.row(
            "sde",
            "chi2_pvalue_final_histogram",
            pval,
            lam=lam,
            tolerance=1e-3,
            passed=None if np.isnan(pval) else pval > 1e-3,
            setting=setting + f"; {dof} degrees of freedom",
        ),
    ]


def _sde_circulation_rows(
    res: dict[str, Any], lam: float, setting: str, z_tol: float
) -> list[dict[str, Any]]:
    """Mean angular velocity (from the drift and from the winding angle) vs lambda pi^{3/2}/Z."""
    cf = dw.angular_velocity_closed_form(lam)
    out = []
    for quantity, values, how in (
        (
            "mean_angular_velocity_drift",
            res["omega_particle"],
            "time average of (x1 b2 - x2 b1)/|x|^2",
        ),
        (
            "mean_angular_velocity_winding",
            res["winding_particle"],
            "unwrapped angle change / window",
        ),
    ):
        mean, se = float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))
        out.append(
            checks.row(
                "sde",
                quantity,
                mean,
                lam=lam,
                reference=cf,
                se=se,
                tolerance=z_tol * se,
                passed=abs(mean - cf) <= z_tol * se,
                setting=setting + f"; {how}, tolerance 4 s.e.",
            )
        )
    return out
