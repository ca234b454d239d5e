"""Rule trajectory_fig3c: normalised full-dataset gradient norm against epoch, all seeds."""

import logging
from typing import TYPE_CHECKING

import pandas as pd

from sgdvi.trajectory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
    force=True,
)
log = logging.getLogger("trajectory_fig3c")
try:
    metrics = {
        int(seed): pd.read_parquet(path)
        for seed, path in zip(snakemake.params.seeds, snakemake.input.metrics, strict=True)
    }
    fig = plot.fig3c(metrics, burn_in=snakemake.params.burn_in)
    plot.save(fig, snakemake.output.pdf, snakemake.output.png)
    log.info("wrote %s", snakemake.output.pdf)
except Exception:
    log.exception("trajectory_fig3c failed")
    raise
