"""Rule benchmark_summary: every benchmark file under results/benchmarks/ in one TSV."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.benchmark_table import benchmark_table, find_benchmarks

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
root = Path(snakemake.params.root)
paths = find_benchmarks(root)
table = benchmark_table(paths, root)
table.to_csv(snakemake.output.table, sep="\t", index=False)
logging.info("%d benchmark files under %s -> %s", len(paths), root, snakemake.output.table)
