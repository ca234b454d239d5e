"""Rule trajectory_train: one run (variant, seed) of tiny-fc's long SGD trajectory (Sec. IV-B).

Resumes from the chunks of a killed run in results/trajectory/{variant}/seed{seed}/chunks/;
stops with an error naming variant, seed and epoch if the run diverges. Holds a lock on the
seed's chunks (a second runner of the same seed refuses, naming the holder's PID) and stops
when its Snakemake job is gone (PDEATHSIG and a watch on the ancestors up to Snakemake, as the
trainer does, so no orphan writes the same chunks): sgdvi.trajectory.runner.run_guard.
"""

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snakemake.script import snakemake

# BLAS threads: the kernels' matrix products are small; parallelism comes from the overlap
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

from sgdvi.data import load_prepared  # noqa: E402
from sgdvi.infra.jobguard import CheckpointLocked  # noqa: E402
from sgdvi.infra.rulelog import rule_log  # noqa: E402
from sgdvi.trajectory.runner import TrajectorySettings, run_guard, run_trajectory  # noqa: E402

with rule_log(snakemake.log[0], "trajectory_train") as log:
    p = snakemake.params
    s = dict(p.settings)
    train_subset = s.pop("train_subset")
    settings = TrajectorySettings(seed=int(snakemake.wildcards.seed), **s)
    data = load_prepared(snakemake.input.data, train_subset=train_subset)
    variant = snakemake.wildcards.variant
    log.info("variant %s, dataset %s: %s; %d training images", variant, p.dataset, settings,
             len(data.y_train))  # fmt: skip
    if settings.engine == "torch":
        import torch

        torch.set_num_threads(snakemake.threads)
    run_dir = Path(snakemake.output.weights).parent
    try:
        with run_guard(run_dir, f"{variant} seed {settings.seed}"):
            summary = run_trajectory(
                data.x_train.numpy(),
                data.y_train.numpy(),
                settings,
                run_dir,
                threads=snakemake.threads,
                device=p.device,
                meta={"variant": variant, "dataset": p.dataset, "train_subset": train_subset},
            )
    except CheckpointLocked as exc:
        log.error("%s", exc)
        sys.exit(1)
    log.info(
        "stored %d epochs x %d weights; %.1f s this session",
        summary["n_stored"],
        summary["d"],
        summary["wall_seconds_this_session"],
    )
