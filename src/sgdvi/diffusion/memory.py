"""Peak memory of one D(x) job (the ``mem_mb`` of rule diffusion_spectrum), without torch.

The paths of :func:`sgdvi.diffusion.compute.diffusion_spectrum` hold at their peak:

- ``dense``: the float64 scatter/D (``8 d^2`` bytes; twice for d <= 8192, the eigensolver's
  working copy) and one chunk of per-example gradients
  (``chunk_size x d`` float32 plus its float64 copy and the backward pass intermediates, ~4x);
- ``fast``: the float32 gradients (``4 N d``), the float64 Krylov basis and its image
  (``2 x 8 d max_dim``) and the refinement block (``3 x 8 d k``, k <= max_dim);
- ``gram`` (N < d): the float32 gradients and the float64 N x N Gram matrix;
- ``fast`` falling back to dense (``auto`` only): the gradients are freed first (tested), so
  the peak is the larger of the two, not their sum (what the memory estimate relies on).

Plus the inputs (``4 N x input size``) and a fixed base for the interpreter, torch and the
model. :func:`spectrum_job_mb` applies this to one job of the workflow, with N the training
examples the job really uses (the prepared dataset's size, e.g. 12,665 for digits 0/1, capped
by ``diffusion.subset`` or the experiment's ``train_subset``). Parsing the workflow imports
this module, so it must not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sgdvi.config import MODEL_INPUT, experiment_num_classes, used_train_size, weight_count

BASE_MB = 1500  # python + torch + numpy/scipy + model, measured ~1.1 GB on CPU

#: the dense CPU eigensolver takes MKL's ``syevd`` through torch (a working copy of D) up to
#: this d, else OpenBLAS's through scipy in place (:func:`sgdvi.diffusion.eigen.dense_spectrum`)
TORCH_EIGH_MAX_D = 8192


def dense_bytes(d: int, chunk_size: int) -> int:
    """The d x d float64 D (twice up to ``TORCH_EIGH_MAX_D``: the eigensolver's working copy)
    and one chunk of gradients with its working copies."""
    copies = 2 if d <= TORCH_EIGH_MAX_D else 1
    return copies * 8 * d * d + 4 * 4 * chunk_size * d


def fast_bytes(n: int, d: int, max_dim: int, chunk_size: int) -> int:
    """Stored float32 gradients, the Krylov buffers, the refinement block and one chunk."""
    k = min(d, max_dim)
    return 4 * n * d + 2 * 8 * d * k + 3 * 8 * d * k + 4 * 4 * chunk_size * d


def peak_mb(
    n: int,
    d: int,
    solver: str,
    *,
    input_size: int,
    chunk_size: int = 1000,
    max_dim: int = 4096,
) -> int:
    """Upper estimate of the peak resident memory (MB) of one job on the CPU.

    ``solver`` is the one chosen (``dense`` or ``fast``); ``fast`` includes the dense fallback.
    """
    if solver == "dense":
        work = dense_bytes(d, chunk_size)
    elif solver == "gram":
        work = 4 * n * d + 2 * 8 * n * n + 4 * 4 * chunk_size * d
    elif solver == "fast":
        work = max(fast_bytes(n, d, max_dim, chunk_size), dense_bytes(d, chunk_size))
    else:
        raise ValueError(f"solver must be dense or fast, got {solver!r}")
    return int((work + 4 * n * input_size) / 2**20) + BASE_MB


#: ``auto`` takes the N x N Gram matrix for N <= this (and N < d): N^2 d + N^3 flops
GRAM_MAX_N = 4000


def planned_solver(
    solver: str, d: int, dense_max_d: int, eps: str | float = "float32", n: int | None = None
) -> str:
    """The solver ``auto`` picks: ``gram`` (all eigenvalues of the N x N Gram matrix, the
    non-zero ones of D) when ``n < d`` and ``n <= GRAM_MAX_N``; else ``dense`` when
    ``d <= dense_max_d`` or the threshold uses float64's eps (the rank is then most of d, so
    Lanczos saves nothing); else ``fast``."""
    if solver in ("dense", "fast", "gram"):
        return solver
    if solver != "auto":
        raise ValueError(f"diffusion.solver must be auto, dense or fast, got {solver!r}")
    if n is not None and n < d and n <= GRAM_MAX_N:
        return "gram"
    eps64 = eps == "float64" or (not isinstance(eps, str) and float(eps) < 1.1920929e-07)
    return "dense" if d <= dense_max_d or eps64 else "fast"


def input_size(model_input: int | str) -> int:
    """Values per example: an MNIST side (28, 7) squared, or 3 x 32 x 32 for CIFAR."""
    return 3 * 32 * 32 if model_input == "cifar" else int(model_input) ** 2


def spectrum_job_mb(config: Mapping[str, Any], experiment: str) -> int:
    """``mem_mb`` of rule diffusion_spectrum for ``experiment`` (any of its snapshots).

    ``config``: the workflow's config as :func:`sgdvi.config.load` returns it. N is the number
    of training examples the job uses (:func:`sgdvi.config.used_train_size`: the dataset's
    size, capped by ``diffusion.subset``, else by the experiment's ``train_subset``), d the
    network's weight count; the solver is the one ``diffusion.solver`` picks for them.
    """
    exp = config["experiments"][experiment]
    diff = config["diffusion"]
    d = weight_count(exp["model"], experiment_num_classes(config, experiment))
    n = used_train_size(config, exp["dataset"], diff["subset"], exp["train_subset"])
    solver = planned_solver(diff["solver"], d, diff["dense_max_d"], diff["eps"], n)
    return peak_mb(
        n,
        d,
        solver,
        input_size=input_size(MODEL_INPUT[exp["model"]]),
        chunk_size=diff["chunk_size"],
        max_dim=diff["lanczos"]["max_dim"],
    )
