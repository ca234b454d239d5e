"""Rule theory_temperature: Remarks 11 and 12 in numbers."""

from typing import TYPE_CHECKING

from sgdvi.infra.atomic import atomic_write
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import checks, temperature

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_temperature") as log:
    p = snakemake.params.remarks
    df = temperature.temperature_table(p["N"], p["eta"], p["b"])
    log.info("temperatures:\n%s", df.to_string())
    rows = temperature.temperature_rows(df)
    atomic_write(snakemake.output.table, checks.frame(rows).to_parquet)
