"""Rule trajectory_fig3c: normalised full-dataset gradient norm against epoch, one variant,
all its seeds."""

from typing import TYPE_CHECKING

from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.trajectory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "trajectory_fig3c") as log:
    fig = snakemake.params.fig
    metrics = {
        int(seed): read_table(path)
        for seed, path in zip(fig["seeds"], snakemake.input.metrics, strict=True)
    }
    figure = plot.fig3c(metrics, burn_in=fig["burn_in"], setting=plot.setting_label(fig["variant"]))
    plot.save(figure, snakemake.output.pdf, snakemake.output.png)
    log.info("variant %s: wrote %s", fig["variant"], snakemake.output.pdf)
