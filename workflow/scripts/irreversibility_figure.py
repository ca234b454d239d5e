"""Rule irreversibility_figure: validation, SGD z per pair vs surrogates, strongest plane."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.irreversibility import plot
from sgdvi.irreversibility.plot import save

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "irreversibility_figure") as log:
    table = read_table(snakemake.input.validation)
    currents = [dict(np.load(f)) for f in snakemake.input.current]
    for c in currents:
        c["verdict"] = str(c["verdict"])
    fig = plot.figure(table, currents, list(snakemake.params.labels))
    save(fig, snakemake.output.pdf, snakemake.output.png)
    log.info("wrote %s", snakemake.output.pdf)
