"""Rule trajectory_table: per-seed statistics of the trajectories (beyond the paper)."""

from typing import TYPE_CHECKING

from sgdvi.rulelog import rule_log
from sgdvi.trajectory.plot import trajectory_table

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "trajectory_table") as log:
    table = trajectory_table(
        snakemake.params.seeds,
        snakemake.input.analyses,
        snakemake.input.metrics,
        snakemake.input.runs,
    )
    table.to_parquet(snakemake.output[0], index=False)
    log.info("\n%s", table.T.to_string())
