"""Rule theory_linearization: Lemma 20 on random matrices, Lemma 6, the OU covariance, and
Lemma 20 at the zeros of grad f of Example 19."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import checks
from sgdvi.theory import linearization as lz

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_linearization") as log:
    p = snakemake.params.linearization
    arrays, rows = lz.run_linearization(
        p["dim"], p["seed"], beta=p["beta"], particles=p["particles"]
    )
    rows += lz.example19_lemma20_rows(read_table(snakemake.input.critical))
    table = checks.frame(rows)
    checks.log_rows(table, log)
    atomic_write(snakemake.output.npz, np.savez_compressed, **arrays)
    atomic_write(snakemake.output.table, table.to_parquet)
