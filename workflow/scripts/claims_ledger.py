"""Rule claims_ledger: one verdict per claim of the paper and setting, pooled over seeds, with
the per-seed rows that support it (results/tables/claims.{parquet,csv})."""

from typing import TYPE_CHECKING

import pandas as pd

from sgdvi.claims.ledger import claims_table
from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "claims_ledger") as log:
    inputs = snakemake.input
    diffusion = read_table(inputs.diffusion[0]) if inputs.diffusion else None
    trajectory = read_table(inputs.trajectory[0]) if inputs.trajectory else None
    calibration = (
        pd.concat([read_table(p) for p in inputs.calibration], ignore_index=True)
        if inputs.calibration
        else None
    )
    table = claims_table(
        diffusion, snakemake.params.figures, trajectory, calibration, snakemake.params.settings
    )
    atomic_write(snakemake.output.parquet, table.to_parquet, index=False)
    atomic_write(snakemake.output.csv, table.to_csv, index=False)
    cols = ["claim", "setting", "n_seeds", "estimate", "low", "high", "p_value", "verdict"]
    log.info("\n%s", table[table["row"] == "pooled"][cols].to_string())
