"""Rule theory_fokker_planck: finite-volume Fokker-Planck of Example 19 for one lambda."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import checks
from sgdvi.theory import fokker_planck as fp

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_fokker_planck") as log:
    lam = float(snakemake.wildcards.lam)
    p = snakemake.params.fp
    res = fp.run_fokker_planck(lam, p["grid"], p["half_width"], p["t_end"], p["dt"], log=log)
    table = checks.frame(fp.fokker_planck_rows(res))
    checks.log_rows(table, log)
    atomic_write(snakemake.output.npz, np.savez_compressed, **res)
    atomic_write(snakemake.output.table, table.to_parquet)
