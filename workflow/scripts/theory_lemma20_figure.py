"""Rule theory_lemma20_figure: Lemma 20 recovery and the OU covariance check."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.theory import plot, script_logger

if TYPE_CHECKING:
    from snakemake.script import snakemake

log = script_logger(snakemake.log[0], "theory_lemma20_figure")
try:
    plot.save(
        plot.lemma20(dict(np.load(snakemake.input.npz))), snakemake.output.pdf, snakemake.output.png
    )
    log.info("wrote %s", snakemake.output.pdf)
except Exception:
    log.exception("theory_lemma20_figure failed")
    raise
