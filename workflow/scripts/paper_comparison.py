"""Rule paper_comparison: the paper's MNIST numbers next to ours, stated and authors' settings."""

from typing import TYPE_CHECKING

from sgdvi.comparison import comparison_table, variants_table
from sgdvi.diffusion.paper import CLAIMS_SOURCE, PAPER_SOURCE
from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "paper_comparison") as log:
    diffusion = read_table(snakemake.input.diffusion)
    trajectory = read_table(snakemake.input.trajectory[0]) if snakemake.input.trajectory else None
    table = comparison_table(diffusion, trajectory, snakemake.params.figures)
    atomic_write(snakemake.output.parquet, table.to_parquet, index=False)
    atomic_write(snakemake.output.csv, table.to_csv, index=False)
    log.info("paper values: %s; %s", PAPER_SOURCE, CLAIMS_SOURCE)
    cols = ["figure", "quantity", "paper", "stated", "authors", "holds_stated", "holds_authors"]
    log.info("\n%s", table[cols].to_string())

    experiments = snakemake.params.variants
    metrics = {
        name: read_table(path)
        for name, path in zip(experiments, snakemake.input.metrics, strict=True)
    }
    variants = variants_table(diffusion, experiments, snakemake.params.stated, metrics)
    atomic_write(snakemake.output.variants_parquet, variants.to_parquet, index=False)
    atomic_write(snakemake.output.variants_csv, variants.to_csv, index=False)
    cols = ["experiment", "differs_by", "N", "d", "mean", "std", "rank_pct", "test_error"]
    log.info("\n%s", variants[cols].to_string())
