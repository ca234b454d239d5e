"""The row format of ``results/tables/theory.parquet``, shared by every check of the theory stage.

Each check builds its rows next to the theory it checks: :mod:`sgdvi.theory.double_well`
(Example 19's closed forms, the zeros of ``grad f``), :mod:`sgdvi.theory.sde` (the SDE),
:mod:`sgdvi.theory.fokker_planck` (the Fokker-Planck solver), :mod:`sgdvi.theory.linearization`
(Lemma 20, Lemma 6, the OU covariance), :mod:`sgdvi.theory.temperature` (Remarks 11 and 12),
:mod:`sgdvi.irreversibility.validation` (the current estimator) and
:mod:`sgdvi.claims.calibration`; the rule scripts log them with :func:`log_rows`.

Every row: ``check`` (which experiment), ``setting`` (its parameters in words), ``lam``
(lambda of Example 19, NaN when not applicable), ``quantity``, ``value``, ``reference`` (closed
form or independent computation, NaN if none), ``tolerance`` and ``se`` (NaN if none) and
``passed`` (None for numbers that are not a check).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

NAN = float("nan")
COLUMNS = ["check", "setting", "lam", "quantity", "value", "reference", "tolerance", "se", "passed"]


def row(
    check: str,
    quantity: str,
    value: float,
    *,
    setting: str = "",
    lam: float = NAN,
    reference: float = NAN,
    tolerance: float = NAN,
    se: float = NAN,
    passed: bool | None = None,
) -> dict[str, Any]:
    """One row of :data:`COLUMNS` (``passed`` None: a number that is not a check)."""
    return {
        "check": check,
        "setting": setting,
        "lam": float(lam),
        "quantity": quantity,
        "value": float(value),
        "reference": float(reference),
        "tolerance": float(tolerance),
        "se": float(se),
        "passed": None if passed is None else bool(passed),
    }


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table with :data:`COLUMNS` (``passed`` a nullable boolean)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["passed"] = df["passed"].astype("boolean")
    return df


def describe_row(r: Any) -> str:
    """One row of :data:`COLUMNS` in words for a rule's log, leaving out the NaN/empty fields:
    ``check lambda=...: quantity = value (reference ..., tolerance ..., s.e. ..., passed ...)
    [setting]``."""
    head = r.check + (f" lambda={r.lam:g}" if not pd.isna(r.lam) else "")
    extra = [
        f"{name} {value:.6g}"
        for name, value in (("reference", r.reference), ("tolerance", r.tolerance), ("s.e.", r.se))
        if not pd.isna(value)
    ]
    if not pd.isna(r.passed):
        extra.append(f"passed {bool(r.passed)}")
    text = f"{head}: {r.quantity} = {r.value:.6g}" + (f" ({', '.join(extra)})" if extra else "")
    return text + (f" [{r.setting}]" if r.setting else "")


def log_rows(table: pd.DataFrame, log: Any, level: int = logging.INFO, prefix: str = "") -> None:
    """Write every row of a checks table to ``log`` (:func:`describe_row`), one line each."""
    for r in table.itertuples():
        log.log(level, "%s%s", prefix, describe_row(r))
