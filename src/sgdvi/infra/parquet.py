"""Parquet tables read by path, never through a Python file object.

:func:`pandas.read_parquet` opens a local file itself and hands pyarrow the Python file
object; pyarrow's I/O threads then can abort the interpreter at exit ("terminate called
without an active exception", exit status 134) or hang it (apache/arrow#50482). With pandas
2.3 / pyarrow 22 here, a script that exits right after such a read aborted intermittently (4 of
12 runs in one trial), so a rule could fail after writing its outputs. :func:`read_table`
gives pyarrow the path (pyarrow opens the file natively) and returns the same DataFrame (pandas
metadata, so index and extension dtypes such as ``boolean`` come back as written).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
import pyarrow.parquet as pq


def read_table(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The Parquet file at ``path`` as a DataFrame (what :func:`pandas.read_parquet` returns,
    without its file-object read; see the module docstring)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_table takes a path, got {type(path).__name__}")
    table = pq.read_table(os.fspath(path), columns=columns, use_pandas_metadata=True)
    return table.to_pandas()
