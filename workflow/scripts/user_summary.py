"""Rule user_summary: one experiment's D(x) ranks, effective ranks, leading eigenvalues, test
error and current verdict (sgdvi.user_summary)."""

from typing import TYPE_CHECKING

from sgdvi.infra.rulelog import rule_log
from sgdvi.user_summary import summarise_files

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "user_summary") as log:
    table = summarise_files(
        snakemake.input.spectra, snakemake.input.metrics, snakemake.input.get("current")
    )
    table.to_parquet(snakemake.output.parquet, index=False)
    table.to_csv(snakemake.output.csv, index=False)
    log.info("%s\n%s", snakemake.wildcards.experiment, table.T.to_string())
