"""Rule irreversibility_current: probability current of one tiny-fc trajectory (Section III,
eq. (8), Lemma 7; the trajectory of Section IV-B)."""

import os
from typing import TYPE_CHECKING

# one BLAS thread: the matrices are small and threads only contend (10x slower measured)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from sgdvi.infra.rulelog import rule_log  # noqa: E402
from sgdvi.irreversibility.run import trajectory_current  # noqa: E402

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "irreversibility_current") as log:
    trajectory_current(
        snakemake.input.weights,
        snakemake.input.run,
        snakemake.input.data,
        snakemake.output.npz,
        snakemake.output.table,
        irr=snakemake.params.irr,
        run=snakemake.params.run,
        variant=snakemake.wildcards.variant,
        seed=int(snakemake.wildcards.seed),
        log=log,
    )
