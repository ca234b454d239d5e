"""Rule irreversibility_validation: the area-rate estimator on processes with a closed form."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.irreversibility import validation
from sgdvi.rulelog import rule_log
from sgdvi.theory import checks

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "irreversibility_validation") as log:
    rows, arrays = validation.all_rows(snakemake.params.lambdas, snakemake.params.irr)
    table = checks.frame(rows)
    for r in table.itertuples():
        log.info(
            "%s lambda=%s: %s = %.6g (reference %.6g, tolerance %.3g, s.e. %.3g, passed %s)",
            r.setting,
            r.lam,
            r.quantity,
            r.value,
            r.reference,
            r.tolerance,
            r.se,
            r.passed,
        )
    np.savez_compressed(snakemake.output.npz, **arrays)
    table.to_parquet(snakemake.output.table)
