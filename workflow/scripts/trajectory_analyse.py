"""Rule trajectory_analyse: Fig. 3a/3b curves, null models and permutation tests of one seed."""

from typing import TYPE_CHECKING

import numpy as np

from sgdvi.infra.atomic import atomic_path
from sgdvi.infra.rulelog import rule_log
from sgdvi.trajectory.analysis import analyse_trajectory

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "trajectory_analyse") as log:
    p = snakemake.params
    result = analyse_trajectory(
        snakemake.input.weights,
        n_lags=p.n_lags,
        max_lag_fraction=p.max_lag_fraction,
        low_frequency_cutoff=p.low_frequency_cutoff,
        n_permutations=p.n_permutations,
        seed=int(snakemake.wildcards.seed),
        workers=snakemake.threads,
        log=log.info,
    )
    for key, value in result.items():
        if np.ndim(value) == 0:
            log.info("%s = %s", key, value)
    with atomic_path(snakemake.output[0]) as tmp:  # no debris on ENOSPC or any failure
        np.savez(tmp, **{k: np.asarray(v) for k, v in result.items()})
