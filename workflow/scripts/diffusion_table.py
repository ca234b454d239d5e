"""Rule diffusion_table: one row per experiment x snapshot (Figs. 1, 2; Remarks 13, 15, 16)."""

import logging
from typing import TYPE_CHECKING

from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.stats import PAPER_SOURCE, diffusion_table

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
    force=True,
)
log = logging.getLogger("diffusion_table")

try:
    records = [load_result(p) for p in snakemake.input]
    table = diffusion_table(records, r13_top=snakemake.params.remark13_top)
    table.to_parquet(snakemake.output.parquet, index=False)
    table.to_csv(snakemake.output.csv, index=False)
    cols = [
        "experiment",
        "fraction",
        "mean",
        "std",
        "rank_pct",
        "paper_mean",
        "paper_std",
        "paper_rank_pct",
        "r13_max_rel_change",
    ]
    log.info("paper values: %s\n%s", PAPER_SOURCE, table[cols].to_string())
except Exception:
    log.exception("diffusion_table failed")
    raise
