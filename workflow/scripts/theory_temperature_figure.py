"""Rule theory_temperature_figure: beta^-1 against batch size (Remarks 11 and 12)."""

from typing import TYPE_CHECKING

from sgdvi.theory import plot, script_logger

if TYPE_CHECKING:
    from snakemake.script import snakemake

log = script_logger(snakemake.log[0], "theory_temperature_figure")
try:
    p = snakemake.params
    plot.save(
        plot.temperature(list(p.N), float(p.eta), int(p.b)),
        snakemake.output.pdf,
        snakemake.output.png,
    )
    log.info("wrote %s", snakemake.output.pdf)
except Exception:
    log.exception("theory_temperature_figure failed")
    raise
