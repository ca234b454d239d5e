"""D(x) over several processes: the data passes of the matrix-free path, data-parallel.

Each process takes a contiguous run of whole chunks of the examples
(:func:`sgdvi.diffusion.matrix_free.chunk_ranges`) for every data pass (the exact mean
gradient and trace, each product ``D v``, the Gram tiles or Hutchinson probes of ``tr(D^2)``);
the partial float64 sums are added by ``all_reduce`` (gloo on the CPU, NCCL on GPUs). The
small dense work (Krylov basis, Rayleigh-Ritz) runs redundantly on every process from the same
reduced numbers, so every process ends with the same spectrum; the chunk boundaries do not
depend on the number of processes, so one process and several agree to rounding of the
float64 sums.

Run it on several processes (a model built by ``module:function`` or a snapshot ``.pt``; the
data an ``.npz`` with ``x`` and ``y``)::

    torchrun --standalone --nproc-per-node 4 -m sgdvi.diffusion.distributed \\
        --model results/lenet-mnist/snapshots/1.0.pt --data train.npz --out d.npz --k 20

    # SLURM: one task per GPU (or per CPU socket), MASTER_ADDR from the first node
    srun --ntasks 8 --gpus-per-task 1 python -m sgdvi.diffusion.distributed \\
        --model mypkg.nets:resnet20 --seed 0 --data train.npz --out d.npz

Ranks come from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun) or ``SLURM_PROCID``/
``SLURM_NTASKS``/``SLURM_LOCALID`` (srun); the rendezvous from ``MASTER_ADDR``/``MASTER_PORT``
or, under SLURM, the first host of ``SLURM_JOB_NODELIST`` and a port from the job id.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from sgdvi.diffusion.matrix_free import LOCAL, Shard

log = logging.getLogger(__name__)


def env_ranks(env: Mapping[str, str]) -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from torchrun's or SLURM's variables (else 0, 1, 0)."""
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return 0, 1, 0


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[03-05,09],cpu1`` -> ``gpu03``."""
    head = re.match(r"([^,\[]+)(\[([^\]]*)\])?", nodelist.strip())
    if head is None or not head.group(1):
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    if head.group(3) is None:
        return head.group(1)
    first = head.group(3).split(",")[0].split("-")[0]
    return head.group(1) + first


def rendezvous(env: Mapping[str, str]) -> tuple[str, int]:
    """``(MASTER_ADDR, MASTER_PORT)``: from the environment, else (SLURM) the first node of
    the job and ``29500 + job id % 1000``, else localhost:29500."""
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    addr = env.get("MASTER_ADDR") or (first_host(nodes) if nodes else "127.0.0.1")
    if "MASTER_PORT" in env:
        return addr, int(env["MASTER_PORT"])
    job = env.get("SLURM_JOB_ID")
    return addr, 29500 + (int(job) % 1000 if job and job.isdigit() else 0)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over the processes in place (through the GPU for NCCL, the CPU for gloo)."""
    via = torch.device("cuda", torch.cuda.current_device()) if _nccl() else torch.device("cpu")
    if t.device == via:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t
    tmp = t.to(via)
    dist.all_reduce(tmp, op=dist.ReduceOp.SUM)
    return t.copy_(tmp)


def _nccl() -> bool:
    return dist.get_backend() == "nccl"


def process_group_shard() -> Shard:
    """This process's :class:`~sgdvi.diffusion.matrix_free.Shard` of the initialised group."""
    return Shard(dist.get_rank(), dist.get_world_size(), all_reduce_sum)


def init_from_env(
    backend: str | None = None, env: Mapping[str, str] | None = None, timeout_s: float = 1800
) -> tuple[Shard, torch.device]:
    """Join the process group described by the environment; ``(shard, device)``.

    One process (no rank variables): no group, the local shard. ``backend``: NCCL when CUDA
    is available, else gloo; the device is ``cuda:LOCAL_RANK`` with NCCL, else the CPU.
    """
    env = dict(os.environ if env is None else env)
    rank, world, local = env_ranks(env)
    use_cuda = torch.cuda.is_available() and backend != "gloo"
    device = torch.device("cuda", local % torch.cuda.device_count()) if use_cuda else None
    device = device or torch.device("cpu")
    if world == 1:
        return LOCAL, device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    addr, port = rendezvous(env)  # torchrun sets both (its own store); srun sets neither
    os.environ.setdefault("MASTER_ADDR", addr)
    os.environ.setdefault("MASTER_PORT", str(port))
    dist.init_process_group(
        backend or ("nccl" if use_cuda else "gloo"),
        init_method="env://",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
    )
    return process_group_shard(), device


# --------------------------------------------------------------------------- command line


def load_model(spec: str, kwargs: Mapping[str, Any], seed: int, device: torch.device) -> nn.Module:
    """A snapshot ``.pt`` (:func:`sgdvi.snapshots.load_snapshot`) or ``module:function``
    called with ``kwargs`` after ``torch.manual_seed(seed)`` (the same weights on every
    process); in eval mode on ``device``."""
    if spec.endswith(".pt"):
        from sgdvi.snapshots import load_snapshot

        if not Path(spec).is_file():
            raise FileNotFoundError(f"--model {spec}: no such snapshot file")
        return load_snapshot(spec, device)[0]
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"--model {spec!r}: give a snapshot .pt or module:function")
    torch.manual_seed(seed)
    model = getattr(importlib.import_module(module), name)(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"--model {spec}: returned {type(model).__name__}, not an nn.Module")
    return model.to(device).eval()


def load_npz_data(path: str | Path, x_key: str = "x", y_key: str = "y"):
    """``(x, y)`` tensors from an ``.npz`` file (keys ``x_key`` and ``y_key``)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in (x_key, y_key) if k not in z.files]
        if missing:
            raise KeyError(
                f"--data {path}: no {missing} in it (it has {z.files}); save the inputs and "
                "targets as np.savez(path, x=..., y=...) or pass --x-key/--y-key"
            )
        return torch.from_numpy(z[x_key]), torch.from_numpy(z[y_key])


#: scalar fields of a SpectrumResult written to the result file
RESULT_SCALARS = (
    "path", "method", "n", "d", "formula", "threshold", "lambda_max", "rank", "rank_upper",
    "rank_check", "rank_check_count", "mean", "std", "trace", "trace_square",
    "trace_square_stderr", "trace_square_method", "grad_norm",
)  # fmt: skip


def result_fields(res: Any, world: int) -> dict[str, Any]:
    """The numbers of a :class:`~sgdvi.diffusion.api.SpectrumResult` for an ``.npz``."""
    fields = {
        "eigenvalues": np.asarray(res.eigenvalues, dtype=np.float64),
        "effective_rank": res.effective_rank,
        "effective_rank_stderr": res.effective_rank_stderr,
        "fraction_in_top": res.fraction_in_top(),
        "world_size": world,
        "k": -1 if res.k is None else res.k,
        "chunk_size": res.plan.chunk_size,
    }
    for name in RESULT_SCALARS:
        fields[name] = getattr(res, name)
    fields.update({f"seconds_{k}": v for k, v in res.seconds.items()})
    return fields


def save_npz(path: str | Path, fields: Mapping[str, Any]) -> None:
    """Write ``fields`` to ``path`` atomically."""
    from sgdvi.infra.atomic import atomic_path

    with atomic_path(path) as tmp:
        np.savez(tmp, **{k: np.asarray(v) for k, v in fields.items()})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sgdvi.diffusion.distributed",
        description="Eigenspectrum of D(x) (sgdvi.diffusion.spectrum) on one or several "
        "processes (torchrun / srun); writes an .npz from rank 0.",
    )
    p.add_argument("--model", required=True, help="snapshot .pt or module:function")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of the function")
    p.add_argument("--seed", type=int, default=0, help="torch seed before building the model")
    p.add_argument("--data", required=True, help=".npz with the inputs and targets")
    p.add_argument("--x-key", default="x")
    p.add_argument("--y-key", default="y")
    p.add_argument("--out", required=True, help="result .npz (written by rank 0)")
    p.add_argument("--formula", default="A1", choices=["A1", "A2"])
    p.add_argument("--eps", default="float32", choices=["float32", "float64"])
    p.add_argument("--k", type=int, default=None, help="only the k largest eigenvalues")
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--memory-budget-mb", type=float, default=None)
    p.add_argument("--path", default="auto")
    p.add_argument("--method", default="auto", choices=["auto", "jvp", "chunks"])
    p.add_argument("--trace-square", default="auto", choices=["auto", "exact", "hutchinson"])
    p.add_argument("--probes", type=int, default=32)
    p.add_argument("--backend", default=None, choices=["gloo", "nccl"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, join the process group, compute, write the result from rank 0."""
    from sgdvi.diffusion.api import spectrum

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    shard, device = init_from_env(args.backend)
    try:
        model = load_model(args.model, json.loads(args.model_kwargs), args.seed, device)
        res = spectrum(
            model, load_npz_data(args.data, args.x_key, args.y_key), formula=args.formula,
            eps=args.eps, k=args.k, chunk_size=args.chunk_size, path=args.path,
            memory_budget_mb=args.memory_budget_mb, method=args.method,
            trace_square=args.trace_square, probes=args.probes, shard=shard,
        )  # fmt: skip
        if shard.rank == 0:
            log.info("%s", res.summary())
            save_npz(args.out, result_fields(res, shard.world))
    finally:
        if shard.world > 1:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
