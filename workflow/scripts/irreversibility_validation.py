"""Rule irreversibility_validation: the area-rate estimator on processes with a closed form."""

import os
from typing import TYPE_CHECKING

# one BLAS thread: the matrices are small and threads only contend
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from sgdvi.infra.atomic import atomic_write  # noqa: E402
from sgdvi.infra.rulelog import rule_log  # noqa: E402
from sgdvi.irreversibility import validation  # noqa: E402
from sgdvi.theory import checks  # noqa: E402

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "irreversibility_validation") as log:
    rows, arrays = validation.all_rows(snakemake.params.lambdas, snakemake.params.irr)
    table = checks.frame(rows)
    checks.log_rows(table, log)
    atomic_write(snakemake.output.npz, np.savez_compressed, **arrays)
    atomic_write(snakemake.output.table, table.to_parquet)
