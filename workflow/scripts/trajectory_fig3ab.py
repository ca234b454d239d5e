"""Rule trajectory_fig3ab: Fig. 3a (FFT of increments) or 3b (autocorrelation) of one variant,
all its seeds."""

from typing import TYPE_CHECKING

from sgdvi.infra.rulelog import rule_log
from sgdvi.trajectory import plot
from sgdvi.trajectory.table import load_analyses

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "trajectory_fig3ab") as log:
    fig = snakemake.params.fig
    analyses = load_analyses(fig["seeds"], snakemake.input.analyses)
    draw = plot.fig3a if fig["panel"] == "a" else plot.fig3b
    figure = draw(analyses, lr=fig["lr"], setting=plot.setting_label(fig["variant"]))
    plot.save(figure, snakemake.output.pdf, snakemake.output.png)
    log.info("variant %s: wrote %s", fig["variant"], snakemake.output.pdf)
