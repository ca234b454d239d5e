"""Rule diffusion_figure: one panel of Fig. 1 or Fig. 2 (eigenspectrum of D at 3 snapshots)."""

from typing import TYPE_CHECKING

from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.plot import SnapshotSpectrum, plot_spectra
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "diffusion_figure") as log:
    spectra = []
    for path in snakemake.input:
        r = load_result(path)
        spectra.append(SnapshotSpectrum(r["fraction"], r["eigenvalues"], r["d"], r["threshold"]))
    stats = plot_spectra(
        spectra,
        [snakemake.output.pdf, snakemake.output.png],
        title=snakemake.params.title,
        paper=snakemake.params.paper or None,
        bins=snakemake.params.bins,
        cmap=snakemake.params.cmap,
    )
    log.info("%s (%s): last snapshot %s", snakemake.wildcards.fig, snakemake.params.title, stats)
