"""Rule theory_fig4: one panel of Fig. 4 (Example 19) for one lambda."""

from typing import TYPE_CHECKING

from sgdvi.infra.parquet import read_table
from sgdvi.infra.rulelog import rule_log
from sgdvi.theory import plot

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "theory_fig4") as log:
    lam = float(snakemake.params.lam)
    crit = read_table(snakemake.input.critical)
    crit = crit[crit.lam == lam]
    if crit.empty:
        raise ValueError(
            f"no critical points for lambda={lam} in {snakemake.input.critical}; "
            "rerun rule theory_double_well"
        )
    log.info("lambda=%g, zeros of grad f:\n%s", lam, crit.to_string())
    fig = plot.fig4_panel(
        lam,
        crit,
        box=snakemake.params.box,
        density=snakemake.params.density,
        title=f"Fig. 4{snakemake.wildcards.panel}: $\\lambda = {lam:g}$",
    )
    plot.save(fig, snakemake.output.pdf, snakemake.output.png)
    log.info("wrote %s", snakemake.output.pdf)
