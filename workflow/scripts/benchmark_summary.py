"""Rule benchmark_summary: every benchmark file under results/benchmarks/ in one TSV."""

from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.benchmark_table import benchmark_table, find_benchmarks
from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "benchmark_summary") as log:
    root = Path(snakemake.params.root)
    paths = find_benchmarks(root)
    table = benchmark_table(paths, root)
    atomic_write(snakemake.output.table, table.to_csv, sep="\t", index=False)
    log.info("%d benchmark files under %s -> %s", len(paths), root, snakemake.output.table)
