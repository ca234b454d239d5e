"""One table per user experiment: is D(x) low-rank for this network, and is there a current?

Section IV-A of Chaudhari & Soatto (2018) reports that D(x) of eq. (2) is highly
low-rank for the paper's networks (rank a few percent of d, Figs. 1 and 2). For a network of
one's own the same question needs two cautions, both made explicit in the columns:

- with N examples the centred per-example gradients span at most N - 1 directions, so
  ``rank <= min(d, N - 1)`` whatever the network: with N < d the rank as a share of d says
  little, the rank as a share of ``N - 1`` (``rank_pct_of_max``) says whether the gradients
  themselves are degenerate;
- a rank counts every eigenvalue above the numerical threshold, however small; the
  *effective* ranks say how many directions carry the diffusion: the participation ratio
  ``(sum lambda)^2 / sum lambda^2 = tr(D)^2 / tr(D^2)`` and the entropy rank
  ``exp(-sum p log p)``, ``p = lambda / sum lambda`` (Roy & Vetterli 2007), and ``k90``, the
  fewest leading eigenvalues holding 90 % of the trace; over every positive eigenvalue when
  the spectrum is complete (Gram and dense solvers), else over those above the threshold
  (the fast solver stores no others; ``complete`` says which).

Rows: one per snapshot, with the test error at that epoch (the experiment's metrics), the
leading eigenvalues, and the probability-current verdict (Lemma 7, Remark 17: ``j != 0`` in
eq. (8)) when the experiment recorded its trajectory (``experiments.<name>.current``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: leading eigenvalues written as columns top1 .. topN
TOP = 5


def effective_ranks(eigenvalues: np.ndarray, threshold: float) -> dict[str, float]:
    """Participation ratio, entropy rank and ``k90`` of the eigenvalues above ``threshold``."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    lam = lam[lam > threshold]
    if lam.size == 0:
        return {"participation_ratio": 0.0, "entropy_rank": 0.0, "k90": 0}
    total = lam.sum()
    p = lam / total
    k90 = int(np.searchsorted(np.cumsum(p), 0.9 - 1e-12) + 1)
    return {
        "participation_ratio": float(total**2 / np.sum(lam**2)),
        "entropy_rank": float(np.exp(-np.sum(p * np.log(p)))),
        "k90": min(k90, lam.size),
    }


def spectrum_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """Columns of one stored spectrum (:func:`sgdvi.diffusion.compute.load_result`)."""
    d, n, rank = int(record["d"]), int(record["n"]), int(record["rank"])
    lam = np.sort(np.asarray(record["eigenvalues"], dtype=np.float64))[::-1]
    row: dict[str, Any] = {
        "experiment": record["experiment"],
        "model": record["model"],
        "fraction": float(record["fraction"]),
        "epoch": int(record["epoch"]),
        "n": n,
        "d": d,
        "solver": record["solver"],
        "rank": rank,
        "rank_pct_of_d": 100.0 * rank / d,
        "max_rank": min(d, n - 1),
        "rank_pct_of_max": 100.0 * rank / max(1, min(d, n - 1)),
        "complete": bool(record.get("complete", False)),
        **effective_ranks(lam, 0.0 if record.get("complete") else float(record["threshold"])),
        "lambda_max": float(record["lambda_max"]),
        "trace": float(record["trace"]),
        "grad_norm": float(record["grad_norm"]),
    }
    for i in range(TOP):
        row[f"top{i + 1}"] = float(lam[i]) if i < lam.size else np.nan
    return row


def user_summary(
    records: Sequence[Mapping[str, Any]],
    metrics: pd.DataFrame,
    current: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The table: :func:`spectrum_row` of each snapshot, its epoch's train/test error, and the
    current verdict (same for every row; empty when not recorded)."""
    by_epoch = metrics.set_index("epoch")
    rows = []
    for record in sorted(records, key=lambda r: float(r["fraction"])):
        row = spectrum_row(record)
        at = by_epoch.loc[row["epoch"]]
        row["train_error"], row["test_error"] = float(at.train_error), float(at.test_error)
        row["final_test_error"] = float(metrics["test_error"].iloc[-1])
        for key in ("verdict", "level", "n_pairs_tested", "strongest", "n_epochs", "every"):
            value = (current or {}).get(key, "" if key in ("verdict", "strongest") else np.nan)
            row[f"current_{key}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_files(
    spectra: Sequence[str], metrics: str, current: str | None = None
) -> pd.DataFrame:
    """:func:`user_summary` of stored spectra (npz), a ``metrics.parquet`` and, if given, a
    ``current.parquet`` (:func:`sgdvi.recording_hook.analyse_user_recording`)."""
    from sgdvi.diffusion.compute import load_result
    from sgdvi.infra.parquet import read_table

    records = [load_result(p) for p in spectra]
    state = None
    if current:
        table = read_table(current)
        state = {k: table[k].iloc[0] for k in table.columns}
        state["n_epochs"] = int(state["n_epochs"])
    return user_summary(records, read_table(metrics), state)
