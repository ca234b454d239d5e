"""D(x) of one snapshot, end to end: per-example gradients -> centred moment -> eigenvalues.

:func:`diffusion_spectrum` runs Section IV-A's computation for one network: the per-example
gradients over the training examples (one random augmentation each for the augmented
experiment), the exact full gradient, D of eq. (2)/(A1) or (A2), and its eigenvalues above the
rank threshold with the solver picked by :func:`sgdvi.diffusion.eigen.choose_solver`.
On CUDA, TF32 is switched off for the whole computation.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sgdvi.diffusion.eigen import (
    GradientOperator,
    NotConverged,
    RankCheckFailed,
    Spectrum,
    certify_rank,
    choose_solver,
    dense_spectrum,
    fast_spectrum,
    gram_spectrum,
)
from sgdvi.diffusion.gradients import InputTransform, gradient_matrix, iter_gradient_chunks
from sgdvi.diffusion.moments import (
    CentredMoment,
    Formula,
    centre_and_square,
    exact_mean,
    formula_scale,
)
from sgdvi.infra.atomic import atomic_path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Turn TF32 off (CUDA matmuls and cuDNN convolutions) inside the block, then restore."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.backends.cudnn.allow_tf32 = saved[1]
        torch.set_float32_matmul_precision(saved[2])


@dataclass
class DiffusionResult:
    """The spectrum of D at one point x and the scalars stored beside it.

    Times: ``seconds_gradients`` the per-example gradients, ``seconds_moment`` the full
    gradient and D (dense: the float64 scatter, accumulated chunk by chunk) or the centring
    (fast), ``seconds_eigen`` the eigensolver and the rank check.
    """

    spectrum: Spectrum
    n: int
    d: int
    formula: str
    trace: float
    grad_norm: float
    seconds: float
    seconds_gradients: float
    seconds_eigen: float
    seconds_moment: float = 0.0


@dataclass
class _Run:
    """What one solver path returns to :func:`diffusion_spectrum`."""

    spectrum: Spectrum
    trace: float
    grad_norm: float
    seconds_gradients: float
    seconds_moment: float
    seconds_eigen: float


def _dense_run(model, x, y, formula, eps, chunk_size, transform, generator, progress) -> _Run:
    """Gradient chunks streamed into a float64 d x d scatter, then all eigenvalues of D.

    Peak memory: D (``8 d^2`` bytes) and one chunk; no ``N x d`` matrix.
    """
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    moment = CentredMoment(d, device=next(model.parameters()).device)
    t_moment, t0 = 0.0, time.perf_counter()
    for start, chunk in iter_gradient_chunks(model, x, y, chunk_size, transform, generator):
        t = time.perf_counter()
        moment.update(chunk)
        t_moment += time.perf_counter() - t
        if progress is not None:
            progress(start + len(chunk), len(x))
    t_grad = time.perf_counter() - t0 - t_moment
    grad_norm = float(moment.mean.norm())
    D = moment.diffusion(formula)
    del moment
    trace = float(D.diagonal().sum())
    t = time.perf_counter()
    spectrum = dense_spectrum(D, eps)
    del D
    return _Run(spectrum, trace, grad_norm, t_grad, t_moment, time.perf_counter() - t)


def _centred_gradients(model, x, y, formula, chunk_size, transform, generator, progress):
    """Stored float32 per-example gradients, centred in place by their exact mean; returns
    ``(g, scale, trace(D), |mean|, (t_start, t_gradients_done, t_moments_done))``."""
    t0 = time.perf_counter()
    g = gradient_matrix(model, x, y, chunk_size, transform, generator, progress)
    t1 = time.perf_counter()
    mean = exact_mean(g)
    grad_norm = float(mean.norm())
    scale = formula_scale(formula, len(x))
    trace = centre_and_square(g, mean) * scale  # centred in place, one pass
    return g, scale, trace, grad_norm, (t0, t1, time.perf_counter())


def _gram_run(model, x, y, formula, eps, chunk_size, transform, generator, progress) -> _Run:
    """Few examples (N < d): stored gradients, centred, all eigenvalues of the N x N Gram."""
    g, scale, trace, grad_norm, (t0, t1, t2) = _centred_gradients(
        model, x, y, formula, chunk_size, transform, generator, progress
    )
    spectrum = gram_spectrum(g, scale, eps)
    return _Run(spectrum, trace, grad_norm, t1 - t0, t2 - t1, time.perf_counter() - t2)


def _fast_run(model, x, y, formula, eps, chunk_size, transform, generator, progress, lanczos):
    """Stored float32 gradients, centred, block Lanczos, and the rank check when cheap.

    On :class:`NotConverged` or :class:`RankCheckFailed` the gradients are released before
    the exception leaves (no traceback keeps them), so a dense fallback does not hold both
    the ``N x d`` gradients and the ``d x d`` D (peak memory: the larger, not the sum).
    """
    g, scale, trace, grad_norm, (t0, t1, t2) = _centred_gradients(
        model, x, y, formula, chunk_size, transform, generator, progress
    )
    failure = None
    try:
        spectrum = fast_spectrum(GradientOperator(g, scale), eps=eps, **lanczos)
        certify_rank(spectrum, g, scale)
    except (NotConverged, RankCheckFailed) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    del g
    if failure is not None:
        raise NotConverged(failure)  # raised outside the handler: no reference to g survives
    return _Run(spectrum, trace, grad_norm, t1 - t0, t2 - t1, time.perf_counter() - t2)


def _solve(
    chosen: str,
    solver: str,
    args: tuple[Any, ...],
    lanczos: dict[str, Any],
    generator: torch.Generator | None,
) -> _Run:
    """Run the ``chosen`` solver path with TF32 off and log its rank and times; under
    ``solver="auto"`` a fast run that does not converge falls back to dense, with the
    generator rewound (same augmentations)."""
    gen_state = generator.get_state() if generator is not None else None
    with full_precision():
        run = None
        if chosen == "fast":
            try:
                run = _fast_run(*args, lanczos)
            except NotConverged as exc:
                if solver != "auto":
                    raise
                log.warning("%s; falling back to the dense solver", exc)
                if generator is not None:
                    generator.set_state(gen_state)
        if chosen == "gram":
            run = _gram_run(*args)
        if run is None:
            run = _dense_run(*args)
    sp = run.spectrum
    log.info(
        "D(x): rank %d (check %s: %d); gradients %.1f s, moment %.1f s, eigensolver %.1f s",
        sp.rank, sp.rank_check, sp.rank_check_count,
        run.seconds_gradients, run.seconds_moment, run.seconds_eigen,
    )  # fmt: skip
    return run


def diffusion_spectrum(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    formula: Formula = "A1",
    eps: str = "float32",
    solver: str = "auto",
    chunk_size: int = 1000,
    dense_max_d: int = 4000,
    block_size: int = 64,
    krylov_tol: float = 1e-3,
    eig_tol: float = 1e-7,
    max_krylov_dim: int = 4096,
    seed: int = 0,
    transform: InputTransform | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DiffusionResult:
    """Eigenvalues of D(x) (eq. (2)) for ``model`` (eval mode) on the examples ``x, y``.

    ``solver``: ``dense`` streams gradient chunks into a float64 d x d moment and calls the
    symmetric eigensolver; ``fast`` stores the ``N x d`` float32 gradients, centres them with
    the exact float64 mean and runs block Lanczos (rank certified by the Gram matrix's
    inertia when that is cheaper); ``gram`` (N < d) takes all eigenvalues of the N x N Gram
    matrix; ``auto`` picks gram for N < d and N <= 4000, dense for ``d <= dense_max_d`` and
    otherwise fast, falling back to dense (gradients recomputed with the same augmentation
    draws, after the stored ones are freed) if Lanczos does not converge within
    ``max_krylov_dim`` or the rank check disagrees.
    """
    t0 = time.perf_counter()
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    chosen = choose_solver(solver, d, dense_max_d, eps, len(x))
    log.info(
        "D(x): N=%d, d=%d, formula %s, solver %s (asked: %s)", len(x), d, formula, chosen, solver
    )
    args = (model, x, y, formula, eps, chunk_size, transform, generator, progress)
    lanczos = {
        "block_size": block_size,
        "krylov_tol": krylov_tol,
        "eig_tol": eig_tol,
        "max_dim": max_krylov_dim,
        "seed": seed,
    }
    run = _solve(chosen, solver, args, lanczos, generator)
    return DiffusionResult(
        spectrum=run.spectrum,
        n=len(x),
        d=d,
        formula=formula,
        trace=run.trace,
        grad_norm=run.grad_norm,
        seconds=time.perf_counter() - t0,
        seconds_gradients=run.seconds_gradients,
        seconds_eigen=run.seconds_eigen,
        seconds_moment=run.seconds_moment,
    )


#: scalar fields of a stored result besides the eigenvalues
_SCALARS = (
    "lambda_max",
    "threshold",
    "eps",
    "rank",
    "d",
    "n",
    "trace",
    "grad_norm",
    "solver",
    "formula",
    "complete",
    "n_negative",
    "most_negative",
    "max_rel_residual",
    "max_rel_error_bound",
    "krylov_dim",
    "operator_passes",
    "seconds",
    "seconds_gradients",
    "seconds_eigen",
)


#: fields added later (rank certificate, timing): saved always, optional when reading older files
_OPTIONAL = ("rank_check", "rank_check_count", "seconds_moment")


def save_result(path: str | Path, result: DiffusionResult, **meta: Any) -> None:
    """Write ``results/{experiment}/diffusion/{fraction}.npz`` (atomically).

    Holds ``eigenvalues`` (descending; all d for the dense solver, the leading ones for the
    fast one), every field of :data:`_SCALARS` and the extra ``meta`` (experiment, fraction,
    epoch, lr, batch_size, temperature, ...).
    """
    sp = result.spectrum
    fields: dict[str, Any] = {
        "eigenvalues": np.asarray(sp.eigenvalues, dtype=np.float64),
        "lambda_max": sp.lambda_max,
        "threshold": sp.threshold,
        "eps": sp.eps,
        "rank": sp.rank,
        "d": result.d,
        "n": result.n,
        "trace": result.trace,
        "grad_norm": result.grad_norm,
        "solver": sp.solver,
        "formula": result.formula,
        "complete": sp.complete,
        "n_negative": sp.n_negative,
        "most_negative": sp.most_negative,
        "max_rel_residual": sp.max_rel_residual,
        "max_rel_error_bound": sp.max_rel_error_bound,
        "krylov_dim": sp.krylov_dim,
        "operator_passes": sp.operator_passes,
        "seconds": result.seconds,
        "seconds_gradients": result.seconds_gradients,
        "seconds_eigen": result.seconds_eigen,
        "seconds_moment": result.seconds_moment,
        "rank_check": sp.rank_check,
        "rank_check_count": sp.rank_check_count,
    }
    clash = set(meta) & set(fields)
    if clash:
        raise ValueError(f"meta keys {sorted(clash)} would overwrite computed fields")
    fields.update({k: ("" if v is None else v) for k, v in meta.items()})
    with atomic_path(path) as tmp:  # no debris on ENOSPC or any other failure
        np.savez(tmp, **{k: np.asarray(v) for k, v in fields.items()})


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a stored result: ``eigenvalues`` as an array, every other field as a Python scalar."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing; run the rule that makes it (snakemake {path})"
        ) from None
    except Exception as exc:
        raise RuntimeError(f"cannot read {path}: {exc}. Delete it and rerun its rule") from exc
    missing = [k for k in ("eigenvalues", *_SCALARS) if k not in out]
    if missing:
        raise RuntimeError(f"{path} lacks {missing}; it was not written by sgdvi.diffusion")
    return {k: (v if k == "eigenvalues" else v.item()) for k, v in out.items()}
