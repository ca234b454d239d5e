"""Rule theory_sde: Euler-Maruyama of Example 19 for one lambda; stationary statistics."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import checks, sde

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_sde") as log:
    lam = float(snakemake.wildcards.lam)
    p = snakemake.params.sde
    res = sde.run_sde(
        lam,
        p["particles"],
        p["dt"],
        p["t_burn"],
        p["t_sample"],
        p["seed"],
        bins=p["bins"],
        half_width=p["half_width"],
        n_paths=p["n_paths"],
        path_time=p["path_time"],
        log=log,
    )
    table = checks.frame(sde.sde_rows(res))
    checks.log_rows(table, log)
    atomic_write(snakemake.output.npz, np.savez_compressed, **res)
    atomic_write(snakemake.output.table, table.to_parquet)
