"""One table of the time and memory of the heavy jobs, from their Snakemake ``benchmark:`` files.

Heavy rules write ``results/benchmarks/<stage>/<job>.tsv`` (one row per run: wall-clock seconds
``s``, peak resident memory ``max_rss`` in MB, CPU time, mean load, ...). :func:`benchmark_table`
gathers them into one row per job for the report (rule ``benchmark_summary``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

#: columns of the summary, in order
COLUMNS = [
    "stage",
    "job",
    "wall time",
    "seconds",
    "peak memory (MB)",
    "CPU seconds",
    "mean load (%)",
    "finished",
]


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def read_benchmark(path: Path) -> pd.Series:
    """The last run recorded in one benchmark TSV (Snakemake writes one row per repeat)."""
    frame = pd.read_csv(path, sep="\t")
    missing = {"s", "max_rss"} - set(frame.columns)
    if frame.empty or missing:
        raise ValueError(
            f"{path} is not a Snakemake benchmark file (missing columns {sorted(missing)} or no "
            "rows); delete it and rerun the rule that writes it"
        )
    return frame.iloc[-1]


def benchmark_table(paths: Iterable[Path], root: Path) -> pd.DataFrame:
    """One row per benchmark file under ``root`` (``<root>/<stage>/<job>.tsv``), slowest first."""
    rows = []
    for path in sorted(Path(p) for p in paths):
        rel = path.relative_to(root)
        last = read_benchmark(path)
        seconds = float(last["s"])

        def number(key: str, row: pd.Series = last) -> float:
            value = pd.to_numeric(row.get(key), errors="coerce")
            return float(value) if pd.notna(value) else float("nan")

        rows.append(
            {
                "stage": rel.parts[0] if len(rel.parts) > 1 else "",
                "job": str(rel.with_suffix(""))
                if len(rel.parts) == 1
                else str(Path(*rel.parts[1:]).with_suffix("")),
                "wall time": _hms(seconds),
                "seconds": round(seconds, 2),
                "peak memory (MB)": round(number("max_rss"), 1),
                "CPU seconds": round(number("cpu_time"), 2),
                "mean load (%)": round(number("mean_load"), 1),
                "finished": dt.datetime.fromtimestamp(path.stat().st_mtime).strftime(
                    "%Y-%m-%d %H:%M"
                ),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values("seconds", ascending=False, kind="stable").reset_index(drop=True)


def find_benchmarks(root: Path) -> list[Path]:
    """Every ``*.tsv`` under ``root`` (empty when the directory does not exist)."""
    return sorted(root.rglob("*.tsv")) if root.exists() else []
