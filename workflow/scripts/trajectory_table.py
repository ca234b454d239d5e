"""Rule trajectory_table: per-seed statistics of the trajectories (beyond the paper)."""

import logging
from typing import TYPE_CHECKING

from sgdvi.trajectory.plot import trajectory_table

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
    force=True,
)
log = logging.getLogger("trajectory_table")
try:
    table = trajectory_table(
        snakemake.params.seeds,
        snakemake.input.analyses,
        snakemake.input.metrics,
        snakemake.input.runs,
    )
    table.to_parquet(snakemake.output[0], index=False)
    log.info("\n%s", table.T.to_string())
except Exception:
    log.exception("trajectory_table failed")
    raise
