"""Peak memory of one D(x) job (the ``mem_mb`` of rule diffusion_spectrum), without torch.

The paths of :func:`sgdvi.diffusion.compute.diffusion_spectrum` hold at their peak:

- ``dense``: the float64 scatter/D (``8 d^2`` bytes; twice for d <= 8192, the eigensolver's
  working copy) and one chunk of per-example gradients
  (``chunk_size x d`` float32 plus its float64 copy and the backward pass intermediates, ~4x);
- ``fast``: the float32 gradients (``4 N d``), the float64 Krylov basis and its image
  (``2 x 8 d max_dim``) and the refinement block (``3 x 8 d k``, k <= max_dim);
- ``gram`` (N < d): the float32 gradients and the float64 N x N Gram matrix;
- ``fast`` falling back to dense (``auto`` only): the gradients are freed first (tested), so
  the peak is the larger of the two, not their sum (issue 10, item 9).

Plus the inputs (``4 N x input size``) and a fixed base for the interpreter, torch and the
model. Parsing the workflow imports this module, so it must not import torch.
"""

from __future__ import annotations

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
