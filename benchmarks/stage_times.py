"""Per-stage wall times of a finished run, from its Snakemake ``benchmark:`` files.

Groups the jobs of ``results/benchmarks/<stage>/...tsv`` by stage and kind (seeds and snapshot
fractions folded: ``trajectory/stated/train_seed*``, ``diffusion/lenet-mnist/*``) and prints a
Markdown table: number of jobs, total, min and max seconds per job, peak memory. The README's
"Paper-scale run time" table is this script's output on the paper-scale run.

    python benchmarks/stage_times.py [RESULTS_DIR]     # default: results
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from sgdvi.benchmark_table import benchmark_table, find_benchmarks


def kind(job: str) -> str:
    """The job's kind: seed numbers and snapshot fractions replaced by ``*``."""
    job = re.sub(r"seed\d+", "seed*", job)
    return re.sub(r"/[01]\.\d+$", "/*", job)


def stage_times(results: Path) -> pd.DataFrame:
    root = results / "benchmarks"
    table = benchmark_table(find_benchmarks(root), root)
    table["kind"] = table["stage"] + "/" + table["job"].map(kind)
    grouped = table.groupby("kind", sort=False)
    out = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "total s": grouped["seconds"].sum().round(1),
            "min s": grouped["seconds"].min().round(1),
            "max s": grouped["seconds"].max().round(1),
            "peak MB": grouped["peak memory (MB)"].max().round(0),
        }
    )
    return out.sort_values("total s", ascending=False)


def main() -> None:
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results")
    out = stage_times(results)
    print(out.to_markdown() if hasattr(out, "to_markdown") else out.to_string())
    total = out["total s"].sum()
    print(f"\nsum of job wall times: {total:.0f} s ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
