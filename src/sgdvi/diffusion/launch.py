"""One D(x) job of the workflow on several processes (``diffusion.processes > 1``).

Rule diffusion_spectrum calls :func:`sgdvi.diffusion.snapshot.snapshot_spectrum`, which hands a
job with ``processes > 1`` to :func:`run_processes`: the job's arguments go to a JSON file, and
``processes`` copies of ``python -m sgdvi.diffusion.launch JOB.json`` are started by

- ``srun`` inside a SLURM job (the slurm profile submits the rule with ``--ntasks=P``: one job,
  several tasks, on one node or several), or
- ``torchrun --standalone`` (``python -m torch.distributed.run``) on this machine otherwise.

Each process joins the ``torch.distributed`` group (:func:`sgdvi.diffusion.distributed.
init_from_env`: gloo on the CPU, NCCL on GPUs, ranks from torchrun's or SLURM's variables),
runs its share of the data passes of :func:`sgdvi.diffusion.spectrum` and rank 0 writes the
result. The processes' output goes into the rule's log (each line tagged ``rank r``; ranks
other than 0 log warnings only). A failing process fails the job (srun
``--kill-on-bad-exit``; torchrun stops the others) with the last lines of their output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def in_slurm_job(env: Mapping[str, str]) -> bool:
    """Whether this process runs inside a SLURM allocation with ``srun`` on the PATH."""
    return "SLURM_JOB_ID" in env and shutil.which("srun", path=env.get("PATH")) is not None


def launcher(processes: int, env: Mapping[str, str]) -> list[str]:
    """The command prefix that starts ``processes`` copies of a Python module: ``srun`` with
    that many tasks inside a SLURM job, else ``torchrun --standalone`` on this machine."""
    if processes < 2:
        raise ValueError(f"a launcher is for 2 or more processes, got {processes}")
    if in_slurm_job(env):
        return ["srun", f"--ntasks={processes}", "--kill-on-bad-exit=1", sys.executable]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
    ]


def worker_command(job_file: str | Path, processes: int, env: Mapping[str, str]) -> list[str]:
    """The full command that runs the job in ``job_file`` on ``processes`` processes."""
    return [*launcher(processes, env), "-m", "sgdvi.diffusion.launch", str(job_file)]


def run_processes(job: Mapping[str, Any], processes: int, logger: logging.Logger) -> None:
    """Run ``job`` (the keyword arguments of :func:`~sgdvi.diffusion.snapshot.
    snapshot_spectrum`) on ``processes`` processes, relaying their output to ``logger``;
    raise with the last lines of that output when they fail."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(job["threads"])
    out_dir = Path(job["output"]).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=out_dir, delete=False) as f:
        json.dump(job, f)
    try:
        cmd = worker_command(f.name, processes, env)
        logger.info("%d processes: %s", processes, " ".join(cmd))
        tail: list[str] = []
        errors: list[str] = []  # a process's own exception, before the launcher's traceback
        with subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                logger.info("| %s", line.rstrip())
                tail = [*tail[-9:], line.rstrip()]
                if re.search(r"^\[rank\d+\]: \w*(Error|Exception)\b", line):
                    errors.append(line.rstrip())
        if proc.returncode != 0:
            raise RuntimeError(
                f"the {processes} processes of this D(x) job failed (exit {proc.returncode}): "
                + "\n".join([*errors[:4], "the last lines (all in the rule's log):", *tail])
            )
    finally:
        Path(f.name).unlink(missing_ok=True)


def _worker(job_file: str) -> int:
    """One process of a job: join the group, compute its share, rank 0 writes the result."""
    import torch.distributed as dist

    from sgdvi.diffusion.distributed import init_from_env
    from sgdvi.diffusion.snapshot import snapshot_spectrum

    job = json.loads(Path(job_file).read_text())
    backend = "gloo" if job["device"] == "cpu" else None
    shard, device = init_from_env(backend)
    logging.basicConfig(
        level=logging.INFO if shard.rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank {shard.rank} %(name)s: %(message)s",
    )
    try:
        snapshot_spectrum(
            **{**job, "device": str(device)},
            log=logging.getLogger("sgdvi.diffusion.snapshot"),
            shard=shard,
        )
    finally:
        if shard.world > 1:
            dist.destroy_process_group()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sgdvi.diffusion.launch JOB.json`` (started by :func:`run_processes`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m sgdvi.diffusion.launch JOB.json", file=sys.stderr)
        return 2
    return _worker(args[0])


if __name__ == "__main__":
    sys.exit(main())
