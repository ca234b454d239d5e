"""Rule report_landing: the report's first section (the claims ledger, the comparison with the
paper, then the figures that carry it) as reStructuredText for workflow/report/workflow.rst."""

from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.infra.atomic import atomic_open
from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.report_landing import landing_rst

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "report_landing") as log:
    comparison = read_table(snakemake.input.comparison[0]) if snakemake.input.comparison else None
    ledger = read_table(snakemake.input.claims[0]) if snakemake.input.claims else None
    figures = [(Path(png).stem, Path(png), str(png)) for png in snakemake.input.figures]
    text = landing_rst(comparison, figures, ledger)
    with atomic_open(snakemake.output[0], "w", encoding="utf-8") as fh:
        fh.write(text)
    log.info(
        "%d comparison rows, %d figures, %d characters",
        0 if comparison is None else len(comparison),
        len(figures),
        len(text),
    )
