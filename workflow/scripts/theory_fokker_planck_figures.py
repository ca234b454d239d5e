"""Rule theory_fokker_planck_figures: free energy along (FP) and density snapshots."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_fokker_planck_figures") as log:
    results = [dict(np.load(f)) for f in snakemake.input.npz]
    out = snakemake.output
    plot.save(plot.free_energy(results), out.free_energy, out.free_energy_png)
    largest = max(results, key=lambda r: float(r["lam"]))
    plot.save(plot.fp_density(largest), out.density, out.density_png)
    log.info("wrote %s", list(out))
