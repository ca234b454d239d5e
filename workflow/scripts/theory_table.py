"""Rule theory_table: every number of the theory stage in results/tables/theory.parquet."""

import logging
from typing import TYPE_CHECKING

import pandas as pd

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import checks

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_table") as log:
    table = pd.concat([read_table(f) for f in snakemake.input], ignore_index=True)
    failed = table[table.passed.eq(False).fillna(False)]
    log.info(
        "%d rows, %d checks, %d failed", len(table), int(table.passed.notna().sum()), len(failed)
    )
    checks.log_rows(failed, log, logging.WARNING, prefix="FAILED ")
    atomic_write(snakemake.output[0], table.to_parquet)
