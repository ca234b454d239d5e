"""Rule diffusion_table: one row per experiment x snapshot (Figs. 1, 2; Remarks 13, 15, 16)."""

from typing import TYPE_CHECKING

from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.stats import PAPER_SOURCE, diffusion_table
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "diffusion_table") as log:
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
