"""Rule diffusion_spectrum: eigenvalues of D(x) (eq. (2)) at one snapshot (Section IV-A)."""

from typing import TYPE_CHECKING

from sgdvi.diffusion.snapshot import snapshot_spectrum
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(
    snakemake.log[0], "diffusion_spectrum", fmt="%(asctime)s %(levelname)s %(name)s: %(message)s"
) as log:
    snapshot_spectrum(
        snakemake.input.snapshot,
        snakemake.input.data,
        snakemake.output[0],
        experiment=snakemake.wildcards.experiment,
        fraction=float(snakemake.wildcards.fraction),
        settings=snakemake.params.settings,
        # the settings that change the result (rule params); chunk_size only bounds memory,
        # so it is read from the config and changing it reruns nothing
        diffusion=snakemake.params.diffusion,
        chunk_size=int(snakemake.config["diffusion"]["chunk_size"]),
        device=snakemake.params.device,
        threads=snakemake.threads,
        log=log,
        # > 1: data-parallel processes (torchrun, or srun tasks of the SLURM job)
        processes=int(snakemake.config["diffusion"]["processes"]),
    )
