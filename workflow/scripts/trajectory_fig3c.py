"""Rule trajectory_fig3c: normalised full-dataset gradient norm against epoch, all seeds."""

from typing import TYPE_CHECKING

import pandas as pd

from sgdvi.rulelog import rule_log
from sgdvi.trajectory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "trajectory_fig3c") as log:
    metrics = {
        int(seed): pd.read_parquet(path)
        for seed, path in zip(snakemake.params.seeds, snakemake.input.metrics, strict=True)
    }
    fig = plot.fig3c(metrics, burn_in=snakemake.params.burn_in)
    plot.save(fig, snakemake.output.pdf, snakemake.output.png)
    log.info("wrote %s", snakemake.output.pdf)
