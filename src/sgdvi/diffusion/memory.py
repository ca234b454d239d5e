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

The paths of :func:`sgdvi.diffusion.spectrum` (``diffusion.solver: matrix-free`` or
``gram-tiles``, a ``diffusion.memory_budget_mb``, ``diffusion.k`` or several processes) are
estimated by :func:`path_bytes`, per process (:func:`api_peak_mb`).

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


#: bytes per Krylov vector and dimension: basis Q and image Z (d x m float64 each, a doubling
#: growth holding old and new at once) and the float64 refinement blocks
KRYLOV_BYTES_PER = 6 * 8

#: bytes per (example x weight) of one chunk of per-example gradients and its working copies
CHUNK_BYTES_PER = 16


def path_bytes(n: int, d: int, chunk: int, m_min: int, budget: int) -> dict[str, int]:
    """Estimated peak bytes of each path of :func:`sgdvi.diffusion.spectrum` (the table of
    :mod:`sgdvi.diffusion.api`). Matrix-free keeps one chunk of gradients when it fits half
    the budget (``chunks`` method), else runs the ``jvp`` method sized to a quarter of it."""
    work = CHUNK_BYTES_PER * chunk * d
    krylov = KRYLOV_BYTES_PER * d * m_min
    return {
        "dense": dense_bytes(d, chunk),
        "gram": 4 * n * d + 16 * n * n + work,
        "stored": 4 * n * d + krylov + work,
        "gram-tiles": 16 * n * n + 2 * work,
        "matrix-free": krylov + (work if work <= budget // 2 else budget // 4),
    }


#: the ``diffusion:`` settings that change a spectrum: the params of rule diffusion_spectrum
#: (changing threads, chunk_size, processes or the plot settings reruns no spectrum)
RESULT_KEYS = (
    "formula",
    "eps",
    "solver",
    "dense_max_d",
    "subset",
    "augment_seed",
    "lanczos",
    "memory_budget_mb",
    "k",
    "trace_square",
    "probes",
    "method",
)

#: ``diffusion.solver`` values that only :func:`sgdvi.diffusion.spectrum` runs
API_SOLVERS = ("matrix-free", "gram-tiles")

#: ``diffusion.solver`` -> the path of :func:`sgdvi.diffusion.spectrum`
API_PATH = {
    "auto": "auto",
    "dense": "dense",
    "gram": "gram",
    "fast": "stored",
    "matrix-free": "matrix-free",
    "gram-tiles": "gram-tiles",
}


def uses_spectrum_api(diffusion: Mapping[str, Any], processes: int = 1) -> bool:
    """Whether rule diffusion_spectrum runs :func:`sgdvi.diffusion.spectrum` (a path with no
    stored gradients, a memory budget, only the ``k`` largest, or several ``processes``)
    rather than the exact solvers of :func:`sgdvi.diffusion.compute.diffusion_spectrum`
    (default). ``diffusion``: the ``diffusion:`` settings (``processes`` is passed apart: it
    is not a setting that reruns a spectrum)."""
    return (
        diffusion["solver"] in API_SOLVERS
        or diffusion["memory_budget_mb"] is not None
        or diffusion["k"] is not None
        or processes > 1
    )


def api_peak_mb(n: int, d: int, diffusion: Mapping[str, Any], *, input_size: int) -> int:
    """Upper estimate of one process's peak memory (MB) under :func:`sgdvi.diffusion.spectrum`:
    the memory budget when one is set, else the estimate of the path ``diffusion.solver``
    names (``auto``: the largest of the paths it may take) with ``diffusion.chunk_size``
    examples per chunk; plus the inputs and the fixed base."""
    if diffusion["memory_budget_mb"] is not None:
        work = int(diffusion["memory_budget_mb"] * 2**20)
    else:
        lanczos, k = diffusion["lanczos"], diffusion["k"]
        block = lanczos["block_size"] if k is None else min(lanczos["block_size"], max(16, k))
        m_min = min(d, 4 * block if k is None else max(2 * block, 3 * k + 16))
        need = path_bytes(n, d, diffusion["chunk_size"], m_min, 2**62)
        path = API_PATH[diffusion["solver"]]
        work = max(need.values()) if path == "auto" else need[path]
    return int((work + 4 * n * input_size) / 2**20) + BASE_MB


def job_mb(n: int, d: int, diffusion: Mapping[str, Any], *, input_size: int) -> int:
    """``mem_mb`` of one diffusion_spectrum job on N examples and d weights: the exact
    solver's peak (:func:`peak_mb`), or with :func:`uses_spectrum_api` that of each process
    (:func:`api_peak_mb`) times ``diffusion.processes`` (they share a node locally)."""
    processes = int(diffusion["processes"])
    if uses_spectrum_api(diffusion, processes):
        per_process = api_peak_mb(n, d, diffusion, input_size=input_size)
        return per_process * processes
    solver = planned_solver(diffusion["solver"], d, diffusion["dense_max_d"], diffusion["eps"], n)
    return peak_mb(
        n,
        d,
        solver,
        input_size=input_size,
        chunk_size=diffusion["chunk_size"],
        max_dim=diffusion["lanczos"]["max_dim"],
    )


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
        raise ValueError(f"diffusion.solver must be auto, dense, fast or gram, got {solver!r}")
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
    network's weight count; the solver is the one ``diffusion.solver`` picks for them
    (:func:`job_mb`).
    """
    exp = config["experiments"][experiment]
    diff = config["diffusion"]
    d = weight_count(exp["model"], experiment_num_classes(config, experiment))
    n = used_train_size(config, exp["dataset"], diff["subset"], exp["train_subset"])
    return job_mb(n, d, diff, input_size=input_size(MODEL_INPUT[exp["model"]]))
