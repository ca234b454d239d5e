"""sgdvi.infra.parquet.read_table: the same DataFrame as pandas.read_parquet, read by path (pandas'
file-object read can abort the interpreter at exit: apache/arrow#50482)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdvi.infra.parquet import read_table

REPO = Path(__file__).resolve().parents[1]


def _frame() -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "check": ["sde", "ou", "remarks"],
            "value": [0.5, np.nan, 2.0],
            "n": np.array([1, 2, 3], dtype=np.int64),
            "passed": pd.array([True, None, False], dtype="boolean"),
        },
        index=pd.Index([10, 20, 30], name="row"),
    )
    return df


def test_read_table_equals_pandas_read_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    _frame().to_parquet(path)
    got = read_table(path)
    pd.testing.assert_frame_equal(got, pd.read_parquet(path))
    pd.testing.assert_frame_equal(got, _frame())  # index and the nullable boolean round-trip
    assert str(got["passed"].dtype) == "boolean"
    pd.testing.assert_frame_equal(
        read_table(str(path), columns=["value"]), pd.read_parquet(path, columns=["value"])
    )


def test_read_table_refuses_a_file_object(tmp_path):
    path = tmp_path / "t.parquet"
    _frame().to_parquet(path)
    with open(path, "rb") as fh, pytest.raises(TypeError, match="takes a path"):
        read_table(fh)


def test_a_script_exiting_right_after_a_read_exits_cleanly(tmp_path):
    """The failure mode: a process that exits right after the read. With
    pandas.read_parquet about a third of such runs aborted (status 134) on the development
    machine; through read_table none may."""
    path = tmp_path / "t.parquet"
    _frame().to_parquet(path)
    code = f"from sgdvi.infra.parquet import read_table; read_table({str(path)!r})"
    status = [
        subprocess.run([sys.executable, "-c", code], capture_output=True).returncode
        for _ in range(6)
    ]
    assert status == [0] * 6


def test_no_code_reads_parquet_through_pandas():
    """Rule scripts, the package and the benchmarks read Parquet with read_table only."""
    offenders = []
    for folder in ("src", "workflow/scripts", "benchmarks"):
        for p in (REPO / folder).rglob("*.py"):
            for i, line in enumerate(p.read_text().splitlines(), 1):
                if re.search(r"\b(pd|pandas)\.read_parquet\(", line):
                    offenders.append(f"{p.relative_to(REPO)}:{i}")
    assert offenders == []
