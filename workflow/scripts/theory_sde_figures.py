"""Rule theory_sde_figures: marginals, circulation and sample paths of the SDE."""

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_sde_figures") as log:
    results = [dict(np.load(f)) for f in snakemake.input.npz]
    table = pd.concat([read_table(f) for f in snakemake.input.tables], ignore_index=True)
    out = snakemake.output
    plot.save(plot.sde_marginals(results, table), out.marginals, out.marginals_png)
    plot.save(plot.sde_circulation(table), out.circulation, out.circulation_png)
    largest = max(results, key=lambda r: float(r["lam"]))
    plot.save(plot.sde_paths(largest), out.paths, out.paths_png)
    log.info("wrote %s", list(out))
