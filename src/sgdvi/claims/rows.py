"""Rows of the claims ledger: a claim's specification, its per-seed evidence, the pooled row
(:mod:`.pooling`) and the supporting per-seed rows, and the readers of the workflow's tables.
The claims themselves: :mod:`.ledger`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sgdvi.claims import pooling as pl

STATED, AUTHORS = "stated", "authors"
#: columns of the ledger, in order
COLUMNS = (
    "claim",
    "paper",
    "statement",
    "setting",
    "row",
    "run",
    "n_seeds",
    "effect",
    "estimate",
    "low",
    "high",
    "null",
    "test",
    "p_value",
    "verdict",
    "reason",
    "calibration",
    "source",
)


@dataclass(frozen=True)
class Settings:
    """Config ``claims:`` (levels and the thresholds that turn a claim in words into a test)."""

    alpha: float = pl.ALPHA  # pooled tests
    level: float = pl.LEVEL  # intervals
    seed_alpha: float = 0.01  # per-seed permutation tests (sgdvi.comparison.ALPHA)
    current_alpha: float = 0.01  # irreversibility.alpha
    low_rank_max_pct: float = 5.0  # "low rank": rank(D)/d below this, in %
    about_factor: float = 2.0  # "about 3": within [3 / f, 3 f]


@dataclass(frozen=True)
class Spec:
    """One claim: what the paper says and how it is tested."""

    claim: str
    paper: str
    statement: str
    effect: str
    test: str
    source: str
    direction: str = pl.GREATER
    null: float = math.nan
    procedure: str = ""  # calibration procedure behind the per-seed p-values
    #: False where a small effect cannot show the opposite of the claim (a current or Q that
    #: is not detected is not shown to be absent): "fails" becomes "undecided"
    can_fail: bool = True


@dataclass
class Evidence:
    """Per-seed numbers of one claim in one setting: ``runs`` names the per-seed rows (empty:
    none), ``p`` the one-sided per-seed p-values, ``notes`` replaces the per-seed verdict,
    ``other`` is the second sample of a two-sample claim."""

    runs: list[str]
    effects: np.ndarray
    p: np.ndarray | None = None
    notes: list[str] | None = None
    other: np.ndarray | None = None


def row(spec: Spec, setting: str, **kw) -> dict:
    base = dict.fromkeys(COLUMNS, "")
    base |= {k: math.nan for k in ("estimate", "low", "high", "null", "p_value")}
    base |= {
        "claim": spec.claim,
        "paper": spec.paper,
        "statement": spec.statement,
        "setting": setting,
        "effect": spec.effect,
        "test": spec.test,
        "source": spec.source,
        "null": spec.null,
        "n_seeds": 0,
    }
    return base | kw


def _seed_rows(spec: Spec, setting: str, ev: Evidence, st: Settings) -> list[dict]:
    """The supporting rows: one per seed with its effect and, where it has one, its p-value."""
    rows = []
    for k, run in enumerate(ev.runs):
        p = float(ev.p[k]) if ev.p is not None else math.nan
        if ev.notes is not None:
            verdict = ev.notes[k]
        elif np.isfinite(p):
            verdict = "significant" if p <= st.seed_alpha else "not significant"
            verdict += f" at {st.seed_alpha:g}"
        else:
            verdict = ""
        rows.append(
            row(spec, setting, row="seed", run=run, n_seeds=1, estimate=float(ev.effects[k]))
            | {"p_value": p, "verdict": verdict}
        )
    return rows


def _calibration_text(cal: pd.DataFrame | None, procedure: str, setting: str) -> tuple[str, bool]:
    """The measured false-positive rates behind a claim's per-seed test, and whether any is
    above its tolerance."""
    if not procedure:
        return "", False
    if cal is None or cal.empty:
        return "not measured", False
    rows = cal[(cal.procedure == procedure) & (cal.variant == setting)]
    if rows.empty:
        return "not measured", False
    parts = [
        f"rejects {r.value:.1%} of {r.n_surrogates} {r.surrogate} surrogates at level "
        f"{r.level:.0%}" + (" (miscalibrated)" if r.miscalibrated else "")
        for r in rows.itertuples()
    ]
    return "; ".join(parts), bool(rows.miscalibrated.any())


def _pooled_row(
    spec: Spec,
    setting: str,
    ev: Evidence,
    pool: Callable[[Evidence], tuple[pl.Interval, float]],
    st: Settings,
    cal: pd.DataFrame | None,
    region: tuple[float, float] | None = None,
) -> dict:
    iv, p = pool(ev)
    verdict, reason = pl.decide(
        iv, p, direction=spec.direction, null=spec.null, region=region, alpha=st.alpha
    )
    if verdict == pl.FAILS and not spec.can_fail:
        verdict = pl.UNDECIDED
        reason += "; not detected, which does not show its absence"
    text, bad = _calibration_text(cal, spec.procedure, setting)
    if bad and verdict == pl.HOLDS:
        verdict = pl.UNDECIDED
        reason += "; but the per-seed test rejects structureless surrogates too often"
    return row(
        spec,
        setting,
        row="pooled",
        run=f"{iv.n} seed{'s' if iv.n != 1 else ''}",
        n_seeds=iv.n,
        estimate=iv.estimate,
        low=iv.low,
        high=iv.high,
        p_value=p,
        verdict=verdict,
        reason=reason,
        calibration=text,
    )


def claim_rows(
    spec: Spec,
    setting: str,
    ev: Evidence,
    pool: Callable[[Evidence], tuple[pl.Interval, float]],
    st: Settings,
    cal: pd.DataFrame | None = None,
    region: tuple[float, float] | None = None,
) -> list[dict]:
    """The pooled row of one claim in one setting, then its per-seed rows."""
    return [
        _pooled_row(spec, setting, ev, pool, st, cal, region),
        *_seed_rows(spec, setting, ev, st),
    ]


# ------------------------------------------------------------------------------ pooling rules
def pool_mean_fisher(level: float) -> Callable[[Evidence], tuple[pl.Interval, float]]:
    """t-interval of the effects, Fisher's combination of the per-seed p-values."""
    return lambda ev: (pl.t_interval(ev.effects, level), pl.fisher_combine(ev.p)[1])


def pool_mean_t(level: float, null: float, direction: str):
    """t-interval of the effects and the one-sided t-test against ``null``."""
    return lambda ev: (pl.t_interval(ev.effects, level), pl.t_test(ev.effects, null, direction))


def pool_welch(level: float):
    """Welch's interval of ``mean(effects) - mean(other)`` and the one-sided Welch test."""
    return lambda ev: (
        pl.welch_interval(ev.effects, ev.other, level),
        pl.welch_test(ev.effects, ev.other, pl.GREATER),
    )


def pool_log_fisher(level: float):
    """Geometric mean with the log-scale t-interval, Fisher's combination of the p-values."""
    return lambda ev: (pl.log_t_interval(ev.effects, level), pl.fisher_combine(ev.p)[1])


def pool_log_tost(level: float, region: tuple[float, float]):
    """Geometric mean with the log-scale t-interval, TOST of the logs within ``region``."""
    lo, hi = math.log(region[0]), math.log(region[1])
    return lambda ev: (
        pl.log_t_interval(ev.effects, level),
        pl.tost(np.log(_positive(ev.effects)), lo, hi),
    )


def pool_fraction_fisher(level: float):
    """Clopper-Pearson interval of the fraction of seeds with a detection (effects 0/1),
    Fisher's combination of the per-seed p-values (a seed without a test counts as p = 1)."""

    def pool(ev: Evidence) -> tuple[pl.Interval, float]:
        e = np.asarray(ev.effects, dtype=float)
        iv = pl.clopper_pearson(int(e.sum()), e.size, level)
        p = np.where(np.isfinite(ev.p), ev.p, 1.0) if e.size else ev.p
        return iv, pl.fisher_combine(p)[1]

    return pool


def _positive(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v[np.isfinite(v) & (v > 0)]


# ------------------------------------------------------------------------------ inputs
def seeds_of(trajectory: pd.DataFrame | None, variant: str) -> pd.DataFrame:
    """The rows of one trajectory variant (rows without ``variant`` count as ``stated``)."""
    if trajectory is None or trajectory.empty:
        return pd.DataFrame()
    if "variant" not in trajectory.columns:
        return trajectory if variant == STATED else pd.DataFrame()
    return trajectory[trajectory["variant"] == variant].sort_values("seed")


def replicas(diffusion: pd.DataFrame | None, experiment: str | None) -> pd.DataFrame:
    """The last snapshot of ``experiment`` and of its training-seed replicas
    (``<experiment>-seed<k>``), one row each."""
    if diffusion is None or diffusion.empty or not experiment:
        return pd.DataFrame()
    pattern = re.compile(rf"{re.escape(experiment)}(-seed[0-9]+)?")
    rows = diffusion[diffusion["experiment"].map(lambda e: bool(pattern.fullmatch(str(e))))]
    if rows.empty:
        return rows
    last = rows.sort_values("fraction").groupby("experiment", sort=False).tail(1)
    order = [_replica_index(str(e), experiment) for e in last["experiment"]]
    return last.iloc[np.argsort(order, kind="stable")]


def _replica_index(name: str, experiment: str) -> int:
    """1 for the experiment itself, k for ``<experiment>-seed<k>``."""
    return 1 if name == experiment else int(name.rsplit("-seed", 1)[1])


def column(t: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float (all NaN when missing)."""
    if t.empty or name not in t.columns:
        return np.full(len(t), np.nan)
    return t[name].astype(float).to_numpy()


def runs_of(t: pd.DataFrame) -> list[str]:
    """``seed 42``, ... for trajectory rows."""
    return [f"seed {int(s)}" for s in t["seed"]] if not t.empty else []
