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
    rows = []
    for r in df.itertuples():
        setting = f"N={r.N}, eta={r.eta:g}, b={r.b}"
        rows += [
            checks.row("remarks", "inv_beta_with_replacement", r.inv_beta_with, setting=setting),
            checks.row(
                "remarks", "inv_beta_without_replacement", r.inv_beta_without, setting=setting
            ),
            checks.row("remarks", "factor_1_minus_b_over_N", r.factor, setting=setting),
            checks.row("remarks", "eta_over_b", r.eta_over_b, setting=setting),
        ]
    atomic_write(snakemake.output.table, checks.frame(rows).to_parquet)
