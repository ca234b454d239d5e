"""Rule trajectory_fig3ab: Fig. 3a (FFT of increments) or 3b (autocorrelation), all seeds."""

import logging
from typing import TYPE_CHECKING

from sgdvi.trajectory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
    force=True,
)
log = logging.getLogger("trajectory_fig3ab")
try:
    analyses = plot.load_analyses(snakemake.params.seeds, snakemake.input.analyses)
    draw = plot.fig3a if snakemake.wildcards.panel == "a" else plot.fig3b
    fig = draw(analyses, lr=snakemake.params.lr)
    plot.save(fig, snakemake.output.pdf, snakemake.output.png)
    log.info("wrote %s", snakemake.output.pdf)
except Exception:
    log.exception("trajectory_fig3ab failed")
    raise
