"""Rule theory_lemma20_figure: Lemma 20 recovery and the OU covariance check."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_lemma20_figure") as log:
    plot.save(
        plot.lemma20(dict(np.load(snakemake.input.npz))), snakemake.output.pdf, snakemake.output.png
    )
    log.info("wrote %s", snakemake.output.pdf)
