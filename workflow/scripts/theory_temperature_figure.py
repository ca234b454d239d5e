"""Rule theory_temperature_figure: beta^-1 against batch size (Remarks 11 and 12)."""

from typing import TYPE_CHECKING

from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_temperature_figure") as log:
    p = snakemake.params
    plot.save(
        plot.temperature(list(p.N), float(p.eta), int(p.b)),
        snakemake.output.pdf,
        snakemake.output.png,
    )
    log.info("wrote %s", snakemake.output.pdf)
