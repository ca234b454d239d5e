"""Rule claims_calibration: false-positive rates of the per-seed tests of one trajectory
variant on structureless surrogates of its projected increments (and the Lemma 20 null)."""

import os
from typing import TYPE_CHECKING

# one BLAS thread: the matrices are small (m coordinates) and threads only contend
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from sgdvi.claims.calibration import calibration_tables  # noqa: E402
from sgdvi.infra.atomic import atomic_write  # noqa: E402
from sgdvi.infra.rulelog import rule_log  # noqa: E402
from sgdvi.theory import checks  # noqa: E402

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "claims_calibration") as log:
    paths = []
    for path in snakemake.input.currents:
        with np.load(path) as npz:
            paths.append(np.asarray(npz["diffusion_y"], dtype=np.float64))
    log.info("%d projected paths %s", len(paths), [p.shape for p in paths])
    details, rows = calibration_tables(
        paths, snakemake.wildcards.variant, snakemake.params.settings
    )
    checks.log_rows(rows, log)
    atomic_write(snakemake.output.details, details.to_parquet, index=False)
    atomic_write(snakemake.output.rows, rows.to_parquet)
