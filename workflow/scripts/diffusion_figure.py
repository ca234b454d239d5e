"""Rule diffusion_figure: one panel of Fig. 1 or Fig. 2 (eigenspectrum of D at 3 snapshots)."""

import logging
from typing import TYPE_CHECKING

from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.plot import SnapshotSpectrum, plot_spectra

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
    force=True,
)
log = logging.getLogger("diffusion_figure")

try:
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
except Exception:
    log.exception("diffusion_figure failed")
    raise
