"""The claims ledger (``results/tables/claims.{parquet,csv}``): one pooled row per claim of the
paper and setting, then the per-seed rows that support it.

Claims (Chaudhari & Soatto 2018), each in the paper's *stated* setting and in the *authors'*
setting (``experimental-details.md``), from the workflow's own tables:

- **Figs. 1a, 1b** (low rank): ``rank(D)/d`` in % at the last snapshot is below
  ``low_rank_max_pct``; one value per training seed (the experiment and its replicas
  ``<name>-seed<k>``, ``diffusion.parquet``);
- **Remark 16**: rank % of small-lenet exceeds that of small-fc (Welch's difference);
- **Fig. 3a**: the low-frequency power of the increments exceeds the permuted (white) null,
  ratio > 1 (``trajectory.parquet``: ``low_freq_ratio``, ``low_freq_p_value``);
- **Fig. 3b**: more lags outside the 99 % band than positions shuffled in time (the paper's
  comparison, ``ac_p_value``), and than a random walk of the same increments (beyond it);
- **Fig. 3c / Remark 18**: the normalised gradient norm drops "only by about a factor of 3"
  after burn-in: the drop lies within ``about_factor`` of 3 (two one-sided tests);
- **Remark 17, eq. (8)**: broken detailed balance, a probability current (``current_level``
  per seed; the fraction of seeds where it is detected, against the per-seed level);
- **Lemma 20 on data**: ``||Q|| / ||D||`` exceeds what a path in detailed balance gives (the
  mean over the calibration's reversible surrogates of the same increments);
- **Remarks 11-12**: the temperature ``beta^-1 = eta / 2b (1 - b/N)``, a closed form that no
  run measures (listed, not tested).

Pooling, tests and verdict rule: :mod:`.pooling`. A per-seed test whose false-positive rate on
structureless surrogates (:mod:`.calibration`) exceeds ``fpr_factor`` times its level (and
significantly exceeds the level) is reported as such, and a "holds" that rests on it becomes
"undecided".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace

import pandas as pd

from sgdvi.claims import pooling as pl
from sgdvi.claims.rows import (
    AUTHORS,
    COLUMNS,
    STATED,
    Evidence,
    Settings,
    Spec,
    claim_rows,
    column,
    pool_fraction_fisher,
    pool_log_fisher,
    pool_log_tost,
    pool_mean_fisher,
    pool_mean_t,
    pool_welch,
    replicas,
    row,
    runs_of,
    seeds_of,
)

__all__ = ["COLUMNS", "Settings", "claims_table"]

SETTINGS = (STATED, AUTHORS)


def _experiment(figures: Mapping[str, str], fig: str, setting: str) -> str | None:
    """The experiment of ``fig`` in ``setting`` (the authors ran a figure without a
    ``-authors`` entry as stated)."""
    if setting == AUTHORS:
        return figures.get(f"{fig}-authors", figures.get(fig))
    return figures.get(fig)


def _fig1_rows(diffusion: pd.DataFrame | None, figures: Mapping[str, str], st: Settings):
    """Figs. 1a, 1b: D(x) is low rank (rank % below the threshold), per training seed."""
    rows = []
    thr = st.low_rank_max_pct
    for fig, paper in (("fig1a", "Fig. 1a"), ("fig1b", "Fig. 1b")):
        spec = Spec(
            claim=f"{fig}_low_rank",
            paper=paper,
            statement=f"D(x) is low rank: rank(D)/d < {thr:g} %",
            effect="rank(D)/d at the last snapshot, %",
            test="one-sided t-test over training seeds",
            source="",
            direction=pl.LESS,
            null=thr,
        )
        for setting in SETTINGS:
            exp = _experiment(figures, fig, setting)
            t = replicas(diffusion, exp)
            ev = Evidence(list(t["experiment"]) if len(t) else [], column(t, "rank_pct"))
            src = replace(spec, source=f"diffusion.parquet: {exp} and its -seed<k> replicas")
            rows += claim_rows(src, setting, ev, pool_mean_t(st.level, thr, pl.LESS), st)
    return rows


def _remark16_rows(diffusion: pd.DataFrame | None, figures: Mapping[str, str], st: Settings):
    """Remark 16: small-lenet has the larger rank (difference of rank % over seeds)."""
    spec = Spec(
        claim="remark16_rank_order",
        paper="Remark 16",
        statement="small-lenet has a larger rank than small-fc: rank % lenet > rank % fc",
        effect="rank % small-lenet minus rank % small-fc (percentage points)",
        test="one-sided Welch t-test over training seeds",
        source="diffusion.parquet (the Fig. 1a and 1b rows)",
        null=0.0,
    )
    rows = []
    for setting in SETTINGS:
        a = column(replicas(diffusion, _experiment(figures, "fig1a", setting)), "rank_pct")
        b = column(replicas(diffusion, _experiment(figures, "fig1b", setting)), "rank_pct")
        rows += claim_rows(spec, setting, Evidence([], a, other=b), pool_welch(st.level), st)
    return rows


def _fig3a_rows(traj: pd.DataFrame | None, st: Settings, cal: pd.DataFrame | None):
    spec = Spec(
        claim="fig3a_low_frequency",
        paper="Fig. 3a",
        statement="the increments carry low-frequency modes: their power below the cutoff "
        "exceeds that of permuted (white) increments, ratio > 1",
        effect="low-frequency power / permuted-increment null (geometric mean over seeds)",
        test="Fisher's combination of the per-seed permutation p-values (excess)",
        source="trajectory.parquet: low_freq_ratio, low_freq_p_value",
        null=1.0,
        procedure="fig3a",
    )
    rows = []
    for setting in SETTINGS:
        t = seeds_of(traj, setting)
        ev = Evidence(runs_of(t), column(t, "low_freq_ratio"), column(t, "low_freq_p_value"))
        rows += claim_rows(spec, setting, ev, pool_log_fisher(st.level), st, cal)
    return rows


def _fig3b_rows(traj: pd.DataFrame | None, st: Settings, cal: pd.DataFrame | None):
    """Fig. 3b against shuffled positions (the paper's comparison) and a random walk."""
    shuffled = Spec(
        claim="fig3b_band_vs_shuffled",
        paper="Fig. 3b",
        statement="the weights stay correlated at large lags: more lags outside the 99 % band "
        "than positions shuffled in time",
        effect="fraction of lags outside the band minus that of shuffled positions",
        test="Fisher's combination of the per-seed permutation p-values",
        source="trajectory.parquet: ac_frac_outside, ac_frac_outside_shuffle, ac_p_value",
        null=0.0,
        procedure="fig3b",
    )
    walk = Spec(
        claim="fig3b_band_vs_walk",
        paper="Fig. 3b",
        statement="SGD is not Brownian motion: more lags outside the 99 % band than a random "
        "walk of the same increments (beyond the paper)",
        effect="fraction of lags outside the band minus that of the random walk",
        test="one-sided t-test over seeds",
        source="trajectory.parquet: ac_frac_outside, ac_frac_outside_walk",
        null=0.0,
    )
    rows, beyond = [], []
    for setting in SETTINGS:
        t = seeds_of(traj, setting)
        frac = column(t, "ac_frac_outside")
        ev = Evidence(runs_of(t), frac - column(t, "ac_frac_outside_shuffle"))
        ev.p = column(t, "ac_p_value")
        rows += claim_rows(shuffled, setting, ev, pool_mean_fisher(st.level), st, cal)
        ev = Evidence(runs_of(t), frac - column(t, "ac_frac_outside_walk"))
        beyond += claim_rows(walk, setting, ev, pool_mean_t(st.level, 0.0, pl.GREATER), st)
    return rows + beyond


def _fig3c_rows(traj: pd.DataFrame | None, st: Settings):
    """Remark 18: the gradient norm drops only by about a factor of 3 after burn-in."""
    f = st.about_factor
    region = (3.0 / f, 3.0 * f)
    spec = Spec(
        claim="fig3c_plateau",
        paper="Fig. 3c, Remark 18",
        statement=f"|grad f| drops only by about a factor of 3 after burn-in: the drop lies "
        f"in [{region[0]:g}, {region[1]:g}]",
        effect="first epoch after burn-in / mean of the last 10 % (geometric mean over seeds)",
        test="two one-sided t-tests of the log drop (equivalence)",
        source="trajectory.parquet: grad_norm_normalised_after_burn_in, _last10pct_mean",
        direction=pl.ABOUT,
        null=3.0,
    )
    rows = []
    for setting in SETTINGS:
        t = seeds_of(traj, setting)
        drop = column(t, "grad_norm_normalised_after_burn_in") / column(
            t, "grad_norm_normalised_last10pct_mean"
        )
        ev = Evidence(runs_of(t), drop)
        rows += claim_rows(spec, setting, ev, pool_log_tost(st.level, region), st, region=region)
    return rows


def _current_rows(traj: pd.DataFrame | None, st: Settings, cal: pd.DataFrame | None):
    """Remark 17 / eq. (8): a probability current in SGD's steady state. The null fraction is
    the per-seed level, or the false-positive rate measured on surrogates where larger."""
    rows = []
    for setting in SETTINGS:
        null = max(st.current_alpha, _measured_rate(cal, "current", setting))
        spec = Spec(
            claim="current",
            paper="Remark 17, eq. (8)",
            statement="SGD's steady state breaks detailed balance: a probability current is "
            "detected in more seeds than chance (the per-seed level, or the measured "
            "false-positive rate where larger)",
            effect="fraction of seeds with a current detected",
            test="Fisher's combination of the per-seed Bonferroni levels (no stationary pair: "
            "1); Clopper-Pearson interval",
            source="trajectory.parquet: current_level, current_verdict",
            null=null,
            procedure="current",
            can_fail=False,
        )
        t = seeds_of(traj, setting)
        level = column(t, "current_level")
        notes = [str(v) for v in t["current_verdict"]] if "current_verdict" in t else None
        ev = Evidence(runs_of(t), (level <= st.current_alpha).astype(float), level, notes)
        rows += claim_rows(spec, setting, ev, pool_fraction_fisher(st.level), st, cal)
    return rows


def _lemma20_rows(traj: pd.DataFrame | None, st: Settings, cal: pd.DataFrame | None):
    """Lemma 20 on data: |Q|/|D| above its value for a path in detailed balance."""
    rows = []
    for setting in SETTINGS:
        null = _lemma20_null(cal, setting)
        spec = Spec(
            claim="lemma20_q",
            paper="Lemma 20",
            statement="the fitted linear SDE has Q != 0: |Q|/|D| above its mean over paths in "
            "detailed balance with the same increments",
            effect="|Q|/|D| in the D(x) directions",
            test="one-sided t-test over seeds against the reversible surrogates' mean",
            source="trajectory.parquet: current_diffusion_q_over_d; the calibration's ar1 rows",
            null=null,
            can_fail=False,
        )
        t = seeds_of(traj, setting)
        ev = Evidence(runs_of(t), column(t, "current_diffusion_q_over_d"))
        rows += claim_rows(spec, setting, ev, pool_mean_t(st.level, null, pl.GREATER), st)
    return rows


def _measured_rate(cal: pd.DataFrame | None, procedure: str, setting: str) -> float:
    """The largest false-positive rate measured for ``procedure`` in ``setting`` (0 if none)."""
    if cal is None or cal.empty:
        return 0.0
    hit = cal[(cal.procedure == procedure) & (cal.variant == setting)]
    return float(hit["value"].max()) if len(hit) else 0.0


def _lemma20_null(cal: pd.DataFrame | None, setting: str) -> float:
    if cal is None or cal.empty:
        return float("nan")
    hit = cal[(cal.procedure == "lemma20") & (cal.variant == setting)]
    return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def _temperature_row() -> dict:
    spec = Spec(
        claim="temperature",
        paper="Remarks 11-12",
        statement="the temperature of SGD is beta^-1 = eta / 2b (with replacement), "
        "eta / 2b (1 - b/N) without; linear scaling of eta with b keeps it",
        effect="",
        test="",
        source="theory.parquet, check 'remarks' (tabulated)",
    )
    return row(
        spec,
        "both",
        row="pooled",
        verdict=pl.NOT_TESTED,
        reason="a closed form (Lemma 2, Remark 12): tabulated by the theory stage; no run of "
        "this workflow measures a temperature",
    )


def _settings(settings: Settings | Mapping | None) -> Settings:
    if settings is None or isinstance(settings, Settings):
        return settings or Settings()
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown claims settings {unknown}; known: {sorted(known)}")
    return Settings(**settings)


def claims_table(
    diffusion: pd.DataFrame | None,
    figures: Mapping[str, str],
    trajectory: pd.DataFrame | None,
    calibration: pd.DataFrame | None = None,
    settings: Settings | Mapping | None = None,
) -> pd.DataFrame:
    """The ledger: for every claim, its pooled row per setting followed by the per-seed rows
    (columns :data:`COLUMNS`). ``figures``: the config's ``diffusion.figures``;
    ``calibration``: the rows of :func:`sgdvi.claims.calibration.calibrate` of every variant
    (None: not measured); ``settings``: :class:`Settings` or a mapping of its fields."""
    st = _settings(settings)
    rows = _fig1_rows(diffusion, figures, st)
    rows += _remark16_rows(diffusion, figures, st)
    rows += _fig3a_rows(trajectory, st, calibration)
    rows += _fig3b_rows(trajectory, st, calibration)
    rows += _fig3c_rows(trajectory, st)
    rows += _current_rows(trajectory, st, calibration)
    rows += _lemma20_rows(trajectory, st, calibration)
    rows.append(_temperature_row())
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["n_seeds"] = table["n_seeds"].astype(int)
    for col in ("estimate", "low", "high", "null", "p_value"):
        table[col] = table[col].astype(float)
    return table


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows of a ledger (one per claim and setting)."""
    return table[table["row"] == "pooled"].reset_index(drop=True)


def verdicts(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(claim, setting) -> pooled verdict."""
    p = pooled(table)
    return {(r.claim, r.setting): r.verdict for r in p.itertuples()}
