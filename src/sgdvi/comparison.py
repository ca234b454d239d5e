"""Every MNIST number the paper prints or claims, next to ours in both settings
(does the paper reproduce?).

Two tables, built from the workflow's own tables (no recomputation):

- :func:`comparison_table` (``results/tables/paper_comparison.{parquet,csv}``): one row per
  number of the paper (Figs. 1a, 1b: mean, std and rank % of the eigenvalues of D(x) at the
  100 % snapshot; Remark 16's ordering of the ranks; Fig. 3a's low-frequency excess over
  white noise; Fig. 3b's autocorrelation beyond the 99 % band; Fig. 3c / Remark 18's gradient
  norm), with ours under the paper's *stated* setting and under the *authors'* setting (what
  their code ran: ``experimental-details.md``, "The authors' actual settings"), the ratios
  ours / paper, and whether each claim holds.
- :func:`variants_table` (``results/tables/fig1b_variants.{parquet,csv}``): one row per small-fc
  experiment (the stated setting, each candidate cause alone, the authors' setting), so that
  the reader sees which factor moves Fig. 1b's rank and mean, and by how much.

The inputs are ``results/tables/diffusion.parquet`` (:func:`sgdvi.diffusion.stats.diffusion_table`)
and ``results/tables/trajectory.parquet`` (:func:`sgdvi.trajectory.table.trajectory_table`; its
``variant`` column names the trajectory setting, rows without it count as ``stated``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sgdvi.diffusion.paper import PAPER_CLAIMS, PAPER_VALUES

__all__ = ["COLUMNS", "comparison_table", "describe_options", "variants_table"]

#: columns of the comparison table, in order
COLUMNS = (
    "figure",
    "quantity",
    "paper",
    "stated",
    "authors",
    "ratio_stated",
    "ratio_authors",
    "claim",
    "holds_stated",
    "holds_authors",
    "source_stated",
    "source_authors",
    "note",
)

STATED, AUTHORS = "stated", "authors"

#: significance level of the permutation tests behind the Fig. 3 claims
ALPHA = 0.01


def _final(diffusion: pd.DataFrame, experiment: str | None) -> pd.Series | None:
    """The row of ``experiment``'s last snapshot (largest fraction), or None if absent."""
    if experiment is None or diffusion.empty:
        return None
    rows = diffusion[diffusion["experiment"] == experiment]
    if rows.empty:
        return None
    return rows.sort_values("fraction").iloc[-1]


def _ratio(ours: float, paper: float | None) -> float:
    if paper is None or ours is None or not np.isfinite(ours) or not paper:
        return math.nan
    return float(ours) / float(paper)


def _value(row: pd.Series | None, column: str) -> float:
    return math.nan if row is None else float(row[column])


def _row(
    figure: str,
    quantity: str,
    paper: float | None,
    stated: float,
    authors: float,
    *,
    claim: str = "",
    holds_stated: bool | None = None,
    holds_authors: bool | None = None,
    source_stated: str = "",
    source_authors: str = "",
    note: str = "",
) -> dict[str, Any]:
    return {
        "figure": figure,
        "quantity": quantity,
        "paper": math.nan if paper is None else float(paper),
        "stated": float(stated),
        "authors": float(authors),
        "ratio_stated": _ratio(stated, paper),
        "ratio_authors": _ratio(authors, paper),
        "claim": claim,
        "holds_stated": holds_stated,
        "holds_authors": holds_authors,
        "source_stated": source_stated,
        "source_authors": source_authors,
        "note": note,
    }


def _diffusion_rows(
    diffusion: pd.DataFrame, figures: Mapping[str, str]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, pd.Series | None]]]:
    """Figs. 1a and 1b: mean, std, rank % at the last snapshot, both settings."""
    rows: list[dict[str, Any]] = []
    finals: dict[str, dict[str, pd.Series | None]] = {}
    for fig, label in (("fig1a", "Fig. 1a"), ("fig1b", "Fig. 1b")):
        stated_exp = figures.get(fig)
        authors_exp = figures.get(f"{fig}-authors")
        same = authors_exp is None
        if same:
            authors_exp = stated_exp
        st, au = _final(diffusion, stated_exp), _final(diffusion, authors_exp)
        finals[fig] = {STATED: st, AUTHORS: au}
        paper = PAPER_VALUES.get(stated_exp or "", {})
        base = f"100 % snapshot; N = {int(st['N']) if st is not None else '?'}"
        if same:
            note = f"{base}; the authors' code ran {label} as stated (same run in both columns)"
        else:
            n_au = int(au["N"]) if au is not None else "?"
            note = f"{base} (stated), {n_au} (authors')"
        missing = [e for e, r in ((stated_exp, st), (authors_exp, au)) if r is None]
        if missing:
            note += f"; not in the diffusion table (not run): {', '.join(map(str, missing))}"
        for col, quantity in (
            ("mean", "mean eigenvalue of D"),
            ("std", "std of the eigenvalues of D"),
            ("rank_pct", "rank(D) / d, %"),
        ):
            rows.append(
                _row(
                    label,
                    quantity,
                    paper.get(col),
                    _value(st, col),
                    _value(au, col),
                    source_stated=str(stated_exp),
                    source_authors=str(authors_exp),
                    note=note,
                )
            )
    return rows, finals


def _remark16_row(finals: Mapping[str, Mapping[str, pd.Series | None]]) -> dict[str, Any]:
    """Remark 16: small-lenet has the larger rank: rank %(Fig. 1a) / rank %(Fig. 1b) > 1."""
    spec = PAPER_CLAIMS["remark16_rank_order"]
    values = {}
    for setting in (STATED, AUTHORS):
        a, b = finals["fig1a"][setting], finals["fig1b"][setting]
        values[setting] = (
            float(a["rank_pct"]) / float(b["rank_pct"])
            if a is not None and b is not None and float(b["rank_pct"]) > 0
            else math.nan
        )

    def holds(v: float) -> bool | None:
        return None if not np.isfinite(v) else bool(v > 1)

    return _row(
        spec["figure"],
        "rank % small-lenet / rank % small-fc",
        spec["value"],
        values[STATED],
        values[AUTHORS],
        claim=spec["claim"],
        holds_stated=holds(values[STATED]),
        holds_authors=holds(values[AUTHORS]),
        source_stated="Fig. 1a / Fig. 1b rows",
        source_authors="Fig. 1a / Fig. 1b rows",
        note="the paper: small-lenet, the better network, has the larger rank (1.8 % vs 0.6 %)",
    )


def _seeds(trajectory: pd.DataFrame | None, variant: str) -> pd.DataFrame:
    if trajectory is None or trajectory.empty:
        return pd.DataFrame()
    if "variant" not in trajectory.columns:
        return trajectory if variant == STATED else pd.DataFrame()
    return trajectory[trajectory["variant"] == variant]


def _mean(t: pd.DataFrame, column: str) -> float:
    if t.empty or column not in t.columns:
        return math.nan
    return float(t[column].astype(float).mean())


def _spread(t: pd.DataFrame, column: str, fmt: str = ".3g") -> str:
    if t.empty or column not in t.columns:
        return "not run"
    v = t[column].astype(float)
    if len(v) == 1:
        return f"1 seed: {v.iloc[0]:{fmt}}"
    return f"{len(v)} seeds: {v.min():{fmt}} to {v.max():{fmt}}"


def _all_below(t: pd.DataFrame, column: str, alpha: float = ALPHA) -> bool | None:
    if t.empty or column not in t.columns or t[column].isna().all():
        return None
    return bool((t[column].astype(float) <= alpha).all())


def _source(t: pd.DataFrame, variant: str) -> str:
    """``trajectory variant 'authors' (lr 0.1, 2048 images)``, or ``not run``."""
    if t.empty:
        return "not run"
    details = []
    if "lr" in t.columns:
        details.append(f"lr {float(t['lr'].iloc[0]):g}")
    if "n_train" in t.columns:
        details.append(f"{int(t['n_train'].iloc[0])} images")
    return f"trajectory variant '{variant}'" + (f" ({', '.join(details)})" if details else "")


def _fig3a_row(st: pd.DataFrame, au: pd.DataFrame, src: Mapping[str, str]) -> dict[str, Any]:
    """Fig. 3a: low-frequency excess of the increments' power over the white (permuted) null."""
    spec = PAPER_CLAIMS["fig3a_low_freq_excess"]

    def low_holds(t: pd.DataFrame) -> bool | None:
        sig = _all_below(t, "low_freq_p_value")
        return None if sig is None else bool(sig and _mean(t, "low_freq_ratio") > 1)

    return _row(
        spec["figure"],
        "low-frequency power of the increments / permuted-increment (white) null",
        spec["value"],
        _mean(st, "low_freq_ratio"),
        _mean(au, "low_freq_ratio"),
        claim=spec["claim"],
        holds_stated=low_holds(st),
        holds_authors=low_holds(au),
        **src,
        note=(
            f"holds: ratio > 1 with permutation p <= {ALPHA} in every seed; p (excess) "
            f"stated {_spread(st, 'low_freq_p_value')}, authors' "
            f"{_spread(au, 'low_freq_p_value')}; p (deficit) stated "
            f"{_spread(st, 'low_freq_p_value_lower')}, authors' "
            f"{_spread(au, 'low_freq_p_value_lower')}"
        ),
    )


def _fig3b_rows(st: pd.DataFrame, au: pd.DataFrame, src: Mapping[str, str]) -> list[dict[str, Any]]:
    """Fig. 3b: autocorrelation beyond the 99 % band, against the shuffled null (the paper's
    comparison) and against a random walk of the same increments (beyond the paper)."""
    spec = PAPER_CLAIMS["fig3b_ac_beyond_band"]
    band = _row(
        spec["figure"],
        "fraction of lags with the autocorrelation outside the 99 % band",
        spec["value"],
        _mean(st, "ac_frac_outside"),
        _mean(au, "ac_frac_outside"),
        claim="> shuffled null",
        holds_stated=_all_below(st, "ac_p_value"),
        holds_authors=_all_below(au, "ac_p_value"),
        **src,
        note=(
            "the paper's comparison: positions shuffled in time (white, stays in the band): "
            f"stated {_mean(st, 'ac_frac_outside_shuffle'):.3g}, authors' "
            f"{_mean(au, 'ac_frac_outside_shuffle'):.3g}; holds: permutation p <= {ALPHA} "
            "in every seed"
        ),
    )

    def walk_holds(t: pd.DataFrame) -> bool | None:
        excess = _mean(t, "ac_frac_outside") - _mean(t, "ac_frac_outside_walk")
        return None if not np.isfinite(excess) else bool(excess > 0)

    walk = _row(
        spec["figure"],
        "lags outside the band, SGD minus a random walk of the same increments",
        None,
        _mean(st, "ac_frac_outside") - _mean(st, "ac_frac_outside_walk"),
        _mean(au, "ac_frac_outside") - _mean(au, "ac_frac_outside_walk"),
        claim="> 0",
        holds_stated=walk_holds(st),
        holds_authors=walk_holds(au),
        **src,
        note=(
            "beyond the paper: Brownian motion proper (a random walk) also leaves the band; "
            f"OU null: stated {_mean(st, 'ac_frac_outside_ou'):.3g}, authors' "
            f"{_mean(au, 'ac_frac_outside_ou'):.3g} of lags outside"
        ),
    )
    return [band, walk]


def _fig3c_rows(st: pd.DataFrame, au: pd.DataFrame, src: Mapping[str, str]) -> list[dict[str, Any]]:
    """Fig. 3c / Remark 18: the drop of the normalised gradient norm and its final level."""
    spec = PAPER_CLAIMS["fig3c_grad_norm_drop"]
    drop, drop_all = {}, {}
    for name, t in ((STATED, st), (AUTHORS, au)):
        last = _mean(t, "grad_norm_normalised_last10pct_mean")
        drop[name] = _mean(t, "grad_norm_normalised_after_burn_in") / last
        drop_all[name] = _mean(t, "grad_norm_normalised_initial") / last
    drop_row = _row(
        spec["figure"],
        "drop of |grad f|/sqrt(d): first epoch after burn-in / mean of the last 10 %",
        spec["value"],
        drop[STATED],
        drop[AUTHORS],
        claim=spec["claim"],
        **src,
        note="Remark 18: 'drops only by about a factor of 3 over the next 10^5 epochs' (Fig. 3c "
        "'without burnin'); from the very first epoch (burn-in included): stated "
        f"{drop_all[STATED]:.3g}, authors' {drop_all[AUTHORS]:.3g}",
    )
    spec = PAPER_CLAIMS["fig3c_grad_norm_level"]
    level_row = _row(
        spec["figure"],
        "|grad f|/sqrt(d), mean of the last 10 % of epochs",
        spec["value"],
        _mean(st, "grad_norm_normalised_last10pct_mean"),
        _mean(au, "grad_norm_normalised_last10pct_mean"),
        claim=spec["claim"],
        **src,
        note=(
            "the paper prints no number (a curve only); training error over the last 10 %: "
            f"stated {_spread(st, 'error_last10pct_mean')}, authors' "
            f"{_spread(au, 'error_last10pct_mean')}"
        ),
    )
    return [drop_row, level_row]


def _trajectory_rows(trajectory: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Fig. 3a-3c / Remarks 17-18 per trajectory setting (means over seeds)."""
    st, au = _seeds(trajectory, STATED), _seeds(trajectory, AUTHORS)
    src = {"source_stated": _source(st, STATED), "source_authors": _source(au, AUTHORS)}
    return [_fig3a_row(st, au, src), *_fig3b_rows(st, au, src), *_fig3c_rows(st, au, src)]


def comparison_table(
    diffusion: pd.DataFrame,
    trajectory: pd.DataFrame | None,
    figures: Mapping[str, str],
    extra_rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per number the paper prints or claims for MNIST (see the module docstring).

    ``figures``: the config's ``diffusion.figures`` (``fig1a``, ``fig1b`` name the experiments
    of the stated setting, ``fig1b-authors`` that of the authors' setting; a figure without a
    ``-authors`` entry was run by the authors as stated, and both columns show the same run).
    ``trajectory``: None when the trajectory stage is off. Values of experiments or variants
    that were not run are NaN and the note says so. ``extra_rows``: rows another stage
    computes in the same columns (:data:`COLUMNS`; e.g. the probability current), appended.
    """
    rows, finals = _diffusion_rows(diffusion, figures)
    rows.append(_remark16_row(finals))
    rows += _trajectory_rows(trajectory)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if extra_rows is not None and len(extra_rows):
        unknown = sorted(set(extra_rows.columns) - set(COLUMNS))
        if unknown:
            raise ValueError(f"extra comparison rows have unknown columns {unknown}")
        table = pd.concat([table, extra_rows.reindex(columns=list(COLUMNS))], ignore_index=True)
    for col in ("holds_stated", "holds_authors"):
        table[col] = table[col].astype("boolean")
    return table


def describe_options(options: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """How a dataset's options differ from the stated setting's, in words ("" if not at all)."""
    parts = []
    if options.get("classes") != reference.get("classes"):
        classes = options.get("classes")
        parts.append("all digits" if classes is None else f"digits {'/'.join(map(str, classes))}")
    if options.get("per_class") != reference.get("per_class"):
        parts.append(f"{options.get('per_class')} per class")
    if bool(options.get("authors_wrap")) != bool(reference.get("authors_wrap")):
        parts.append("uint8 wrap" if options.get("authors_wrap") else "no wrap")
    if options.get("normalisation") != reference.get("normalisation"):
        parts.append(
            {"unit": "/255", "raw255": "raw 0-255", "standard": "standardised"}.get(
                str(options.get("normalisation")), str(options.get("normalisation"))
            )
        )
    if options.get("size") != reference.get("size"):
        parts.append(f"{options.get('size')}x{options.get('size')}")
    return ", ".join(parts)


def variants_table(
    diffusion: pd.DataFrame,
    experiments: Mapping[str, Mapping[str, Any]],
    stated: str,
    metrics: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per small-fc experiment at its last snapshot: which factor moves Fig. 1b.

    ``experiments``: name -> {"dataset", "num_classes", "options"} (the dataset's resolved
    options), in display order; ``stated``: the experiment of the stated setting, against
    which each row's ``differs_by`` and ``rank_pct_vs_stated`` are computed. ``metrics``:
    name -> the experiment's per-epoch metrics (final test error), optional.
    """
    paper = PAPER_VALUES.get(stated, {})
    ref = _final(diffusion, stated)
    ref_options = experiments.get(stated, {}).get("options", {})
    rows = []
    for name, exp in experiments.items():
        r = _final(diffusion, name)
        options = exp.get("options", {})
        m = (metrics or {}).get(name)
        rows.append(
            {
                "experiment": name,
                "dataset": exp.get("dataset", ""),
                "differs_by": "(stated setting)"
                if name == stated
                else describe_options(options, ref_options) or "(same data)",
                "classes": "all"
                if options.get("classes") is None
                else "/".join(map(str, options["classes"])),
                "authors_wrap": bool(options.get("authors_wrap", False)),
                "normalisation": options.get("normalisation", ""),
                "num_classes": int(exp.get("num_classes", 0)),
                "fraction": _value(r, "fraction"),
                "N": _value(r, "N"),
                "d": _value(r, "d"),
                "mean": _value(r, "mean"),
                "std": _value(r, "std"),
                "rank": _value(r, "rank"),
                "rank_pct": _value(r, "rank_pct"),
                "mean_ratio_paper": _ratio(_value(r, "mean"), paper.get("mean")),
                "std_ratio_paper": _ratio(_value(r, "std"), paper.get("std")),
                "rank_pct_ratio_paper": _ratio(_value(r, "rank_pct"), paper.get("rank_pct")),
                "rank_pct_vs_stated": _ratio(_value(r, "rank_pct"), _value(ref, "rank_pct")),
                "mean_vs_stated": _ratio(_value(r, "mean"), _value(ref, "mean")),
                "test_error": float(m["test_error"].iloc[-1])
                if m is not None and len(m)
                else math.nan,
            }
        )
    return pd.DataFrame(rows)
