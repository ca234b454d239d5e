"""Rule theory_double_well: closed-form checks of Example 19 and the zeros of grad f."""

from typing import TYPE_CHECKING

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import checks
from sgdvi.theory import double_well as dw

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_double_well") as log:
    table, crit = dw.double_well_rows(list(snakemake.params.lambdas))
    checks.log_rows(table, log)
    log.info("critical points of f:\n%s", crit.to_string())
    atomic_write(snakemake.output.table, table.to_parquet)
    atomic_write(snakemake.output.critical, crit.to_parquet)
