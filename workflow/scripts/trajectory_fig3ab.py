"""Rule trajectory_fig3ab: Fig. 3a (FFT of increments) or 3b (autocorrelation), all seeds."""

from typing import TYPE_CHECKING

from sgdvi.rulelog import rule_log
from sgdvi.trajectory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "trajectory_fig3ab") as log:
    analyses = plot.load_analyses(snakemake.params.seeds, snakemake.input.analyses)
    draw = plot.fig3a if snakemake.wildcards.panel == "a" else plot.fig3b
    fig = draw(analyses, lr=snakemake.params.lr)
    plot.save(fig, snakemake.output.pdf, snakemake.output.png)
    log.info("wrote %s", snakemake.output.pdf)
