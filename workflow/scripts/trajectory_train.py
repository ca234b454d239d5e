"""Rule trajectory_train: one seed's long SGD trajectory of tiny-fc (Section IV-B).

Resumes from the chunks of a killed run in results/tinyfc-trajectory/seed{seed}/chunks/.
"""

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snakemake.script import snakemake

# BLAS threads: the kernels' matrix products are small; parallelism comes from the overlap
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

from sgdvi.data import load_prepared  # noqa: E402
from sgdvi.rulelog import rule_log  # noqa: E402
from sgdvi.trajectory.runner import TrajectorySettings, run_trajectory  # noqa: E402

with rule_log(snakemake.log[0], "trajectory_train") as log:
    p = snakemake.params
    settings = TrajectorySettings(
        seed=int(snakemake.wildcards.seed),
        epochs=p.epochs,
        burn_in=p.burn_in,
        batch_size=p.batch_size,
        lr_burn_in=p.lr_burn_in,
        lr=p.lr,
        momentum=p.momentum,
        nesterov=p.nesterov,
        chunk_epochs=p.chunk_epochs,
        dtype=p.dtype,
        engine=p.engine,
    )
    data = load_prepared(snakemake.input.data, train_subset=p.train_subset)
    log.info("settings %s; %d training images", settings, len(data.y_train))
    if p.engine == "torch":
        import torch

        torch.set_num_threads(snakemake.threads)
    run_dir = Path(snakemake.output.weights).parent
    summary = run_trajectory(
        data.x_train.numpy(),
        data.y_train.numpy(),
        settings,
        run_dir,
        threads=snakemake.threads,
        device=p.device,
    )
    log.info(
        "stored %d epochs x %d weights; %.1f s this session",
        summary["n_stored"],
        summary["d"],
        summary["wall_seconds_this_session"],
    )
