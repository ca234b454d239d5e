"""Train one experiment (rule `train`): snapshots, metrics table, resumable checkpoint.

The trainer dies with its Snakemake job (PDEATHSIG, and a watch on its parent and grandparent:
Snakemake starts this script through bash) and holds a lock on the experiment's checkpoint,
so a second trainer of the same experiment refuses to start (no two writers of one checkpoint).
"""

import signal
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sgdvi.data import load_prepared
from sgdvi.infra.devices import resolve_device
from sgdvi.infra.jobguard import PARENT_DIED, CheckpointLocked, die_with_parent, job_guard
from sgdvi.infra.rulelog import rule_log
from sgdvi.recording_hook import hook_for_experiment
from sgdvi.training import (
    LOG,
    CheckpointError,
    StopRequest,
    TrainingDiverged,
    TrainingInterrupted,
    TrainPaths,
    TrainSettings,
    describe_checkpoint,
    stop_on_signals,
    stop_orphaned,
    train,
)

if TYPE_CHECKING:
    from snakemake.script import snakemake


def main() -> int:
    name = snakemake.wildcards.experiment
    settings = TrainSettings.from_config(name, snakemake.params.settings)
    training = snakemake.config["training"]
    device = resolve_device(snakemake.params.device)
    torch.set_num_threads(snakemake.threads)
    LOG.info(
        "%s: %s on %s (%s), device %s, %d threads",
        name,
        settings.model,
        settings.dataset,
        snakemake.input.data,
        device,
        snakemake.threads,
    )
    data = load_prepared(snakemake.input.data, train_subset=settings.train_subset)
    paths = TrainPaths(
        snapshot_dir=Path(snakemake.output.trained),
        metrics=Path(snakemake.output.metrics),
        checkpoint=Path(snakemake.params.checkpoint),
    )
    # experiments.<name>.current: project the weights after every step (the current test)
    hook = hook_for_experiment(snakemake.params.settings, paths.checkpoint, len(data.y_train))
    with stop_on_signals(StopRequest()) as stop:
        try:
            with (
                job_guard(paths.checkpoint, f"trainer of {name}", lambda: stop_orphaned(stop)),
                hook if hook is not None else nullcontext(),
            ):
                metrics = train(
                    settings,
                    data,
                    paths,
                    device=device,
                    eval_batch_size=training["eval_batch_size"],
                    checkpoint_every=training["checkpoint_every"],
                    stop=stop,
                    divergence_factor=training["divergence_factor"],
                    on_step=hook,
                )
                if hook is not None:
                    LOG.info("%s: recording in %s", name, hook.finish(paths.snapshot_dir))
        except TrainingInterrupted as exc:
            LOG.error("%s", exc)
            return 128 + (exc.signum or signal.SIGTERM)
        except (TrainingDiverged, CheckpointError, CheckpointLocked, ValueError) as exc:
            LOG.error("%s", exc)
            return 1
    last = metrics.iloc[-1]
    LOG.info(
        "%s: done in %.0f s; final train error %.2f%%, test error %.2f%%",
        name,
        metrics["seconds"].sum() + metrics["eval_seconds"].sum(),
        100 * last["train_error"],
        100 * last["test_error"],
    )
    return 0


# until job_guard installs its handler, PARENT_DIED's default action ends the process: a parent
# that dies during the data load leaves nothing to save
die_with_parent(PARENT_DIED)
# only sgdvi.training's records, to the log file and (progress) to stderr
with rule_log(
    snakemake.log[0],
    LOG.name,
    datefmt="%Y-%m-%d %H:%M:%S",
    stderr=True,
    capture_all=False,
    failure="train failed",
    resumed_from=describe_checkpoint(Path(snakemake.params.checkpoint)),
    job=f"train {snakemake.wildcards.experiment}",
):
    status = main()
sys.exit(status)
