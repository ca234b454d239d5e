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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, special

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
