"""Remarks 11 and 12: the temperature of SGD.

``beta^{-1} = eta / (2 b)`` (Lemma 2) when mini-batches are drawn with replacement, and
``beta'^{-1} = eta / (2 b) (1 - b / N)`` without replacement (Remark 12, Appendix A.2). Linear
scaling (Remark 11) keeps ``eta / b`` and hence ``beta^{-1}`` constant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from sgdvi.theory import checks


def inverse_temperature_with_replacement(eta: float | np.ndarray, b: float | np.ndarray):
    """``beta^{-1} = eta / (2 b)``."""
    return np.asarray(eta, dtype=float) / (2.0 * np.asarray(b, dtype=float))


def inverse_temperature_without_replacement(eta, b, N):
    """``beta'^{-1} = eta / (2 b) (1 - b / N)``; needs ``b <= N``."""
    b = np.asarray(b, dtype=float)
    N = np.asarray(N, dtype=float)
    if np.any(b > N):
        raise ValueError("Remark 12: the batch size b cannot exceed the dataset size N")
    return inverse_temperature_with_replacement(eta, b) * (1.0 - b / N)


def temperature_table(N: Iterable[int], eta: Iterable[float], b: Iterable[int]) -> pd.DataFrame:
    """One row per ``(N, eta, b)``: both temperatures, their ratio ``1 - b/N`` and ``eta / b``."""
    rows = []
    for n in N:
        for e in eta:
            for bb in b:
                if bb > n:
                    raise ValueError(
                        f"theory.remarks: batch size b={bb} exceeds dataset size N={n}; "
                        "lower b or raise N"
                    )
                w = float(inverse_temperature_with_replacement(e, bb))
                wo = float(inverse_temperature_without_replacement(e, bb, n))
                rows.append(
                    {
                        "N": int(n),
                        "eta": float(e),
                        "b": int(bb),
                        "inv_beta_with": w,
                        "inv_beta_without": wo,
                        "factor": wo / w,
                        "eta_over_b": float(e) / bb,
                    }
                )
    return pd.DataFrame(rows)


def temperature_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``results/tables/theory.parquet`` (check ``remarks``) for each row of
    :func:`temperature_table`: both temperatures, ``1 - b/N`` and ``eta / b``."""
    rows = []
    for r in table.itertuples():
        setting = f"N={r.N}, eta={r.eta:g}, b={r.b}"
        rows += [
            checks.row("remarks", "inv_beta_with_replacement", r.inv_beta_with, setting=setting),
            checks.row(
                "remarks", "inv_beta_without_replacement", r.inv_beta_without, setting=setting
            ),
            checks.row("remarks", "factor_1_minus_b_over_N", r.factor, setting=setting),
            checks.row("remarks", "eta_over_b", r.eta_over_b, setting=setting),
        ]
    return rows
