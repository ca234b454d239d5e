"""D(x) of one stored snapshot, end to end: the work of rule diffusion_spectrum.

:func:`snapshot_spectrum` loads a snapshot (Section IV: kept after 20, 40 and 100 % of
training) and its prepared training set, computes the eigenvalues of the diffusion matrix D(x)
of eq. (2)/(A1) (or (A2)) with :func:`sgdvi.diffusion.compute.diffusion_spectrum`, logs what it
did and saves the result with the snapshot's learning rate, batch size and the temperature
factor of Remarks 11-12 (:func:`sgdvi.diffusion.moments.temperature_factor`).

With ``diffusion.solver`` matrix-free or gram-tiles, a ``memory_budget_mb``, ``k`` or several
``processes`` (:func:`sgdvi.diffusion.memory.uses_spectrum_api`) the spectrum comes from
:func:`sgdvi.diffusion.spectrum` instead (no stored per-example gradients where the path needs
none), written to the same file with its extra numbers (path, effective rank, ``tr(D^2)``);
several processes are launched by :mod:`sgdvi.diffusion.launch` (torchrun, or srun tasks of
the SLURM job).

Every setting comes from the caller (the workflow passes the filled config: schema defaults
are filled in by :func:`sgdvi.config.load`); this module supplies none of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from sgdvi.config import snapshot_epoch
from sgdvi.data import load_prepared
from sgdvi.diffusion.compute import DiffusionResult, diffusion_spectrum, save_result
from sgdvi.diffusion.matrix_free import LOCAL, Shard
from sgdvi.diffusion.memory import API_PATH, uses_spectrum_api
from sgdvi.diffusion.moments import temperature_factor
from sgdvi.infra.devices import resolve_device
from sgdvi.snapshots import load_snapshot
from sgdvi.training import lr_at


def snapshot_state(
    meta: Mapping[str, Any], settings: Mapping[str, Any], fraction: float
) -> tuple[int, float, int]:
    """(epoch, learning rate, batch size) of a snapshot: as its metadata records them, else
    (snapshots written before they were recorded) from the experiment's settings."""
    epoch = int(meta.get("epoch", snapshot_epoch(fraction, settings["epochs"])))
    lr = float(meta["lr"]) if "lr" in meta else lr_at(settings["lr_schedule"], epoch - 1)
    batch_size = int(meta.get("batch_size", settings["batch_size"]))
    return epoch, lr, batch_size


def _examples(data: str | Path, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` (None: all) training examples of the prepared dataset ``data``."""
    prepared = load_prepared(data, train_subset=n)
    return prepared.x_train, prepared.y_train


def _augmentation(
    settings: Mapping[str, Any], diffusion: Mapping[str, Any], log: logging.Logger
) -> tuple[Callable[..., torch.Tensor] | None, torch.Generator | None]:
    """One random flip + crop per example for augmented experiments (seed
    ``diffusion.augment_seed``), else no transform."""
    if not settings["augment"]:
        return None, None
    from sgdvi.data.augment import random_flip_crop

    seed = int(diffusion["augment_seed"])
    log.info("one random flip + crop per example, seed %d", seed)
    return random_flip_crop, torch.Generator().manual_seed(seed)


def _progress(n: int, chunk_size: int, log: logging.Logger) -> Callable[[int, int], None]:
    """Log the per-example gradients about every tenth of the examples."""
    step = max(1, n // 10)

    def progress(done: int, total: int) -> None:
        if done % step < chunk_size or done == total:
            log.info("per-example gradients: %d / %d", done, total)

    return progress


def _log_result(log: logging.Logger, result: DiffusionResult) -> None:
    sp = result.spectrum
    log.info(
        "solver %s: lambda_max %.6g, threshold %.6g, rank %d of %d (%.3g%%; check %s: %d), "
        "trace %.6g, |grad f| %.4g, %d negative (most %.3g), error bound %.2e; %.1f s "
        "(gradients %.1f s, moment %.1f s, eigensolver %.1f s)",
        sp.solver,
        sp.lambda_max,
        sp.threshold,
        sp.rank,
        result.d,
        100 * sp.rank / result.d,
        sp.rank_check,
        sp.rank_check_count,
        result.trace,
        result.grad_norm,
        sp.n_negative,
        sp.most_negative,
        sp.max_rel_error_bound,
        result.seconds,
        result.seconds_gradients,
        result.seconds_moment,
        result.seconds_eigen,
    )


def _solve(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    diffusion: Mapping[str, Any],
    chunk_size: int,
    augmentation: tuple[Any, Any],
    progress: Callable[[int, int], None],
) -> DiffusionResult:
    """:func:`diffusion_spectrum` with the result settings of ``diffusion:``."""
    lanczos = diffusion["lanczos"]
    transform, generator = augmentation
    return diffusion_spectrum(
        model,
        x,
        y,
        formula=diffusion["formula"],
        eps=diffusion["eps"],
        solver=diffusion["solver"],
        chunk_size=chunk_size,
        dense_max_d=diffusion["dense_max_d"],
        block_size=lanczos["block_size"],
        krylov_tol=lanczos["krylov_tol"],
        eig_tol=lanczos["eig_tol"],
        max_krylov_dim=lanczos["max_dim"],
        seed=lanczos["seed"],
        transform=transform,
        generator=generator,
        progress=progress,
    )


def _augmented(x: torch.Tensor, chunk_size: int, augmentation: tuple[Any, Any]) -> torch.Tensor:
    """The inputs with one random augmentation per example, drawn chunk by chunk in order as
    :func:`sgdvi.diffusion.gradients.iter_gradient_chunks` draws them (the same inputs as the
    exact solvers see for the same ``chunk_size``)."""
    transform, generator = augmentation
    if transform is None:
        return x
    return torch.cat(
        [transform(x[i : i + chunk_size], generator) for i in range(0, len(x), chunk_size)]
    )


def _solve_api(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    diffusion: Mapping[str, Any],
    chunk_size: int,
    augmentation: tuple[Any, Any],
    shard: Shard,
) -> tuple[DiffusionResult, dict[str, Any]]:
    """:func:`sgdvi.diffusion.spectrum` with the settings of ``diffusion:``; the result as a
    :class:`DiffusionResult` and the numbers only that path gives (stored beside it)."""
    from sgdvi.diffusion.api import spectrum

    res = spectrum(
        model, (_augmented(x, chunk_size, augmentation), y), formula=diffusion["formula"],
        eps=diffusion["eps"], memory_budget_mb=diffusion["memory_budget_mb"],
        k=diffusion["k"], chunk_size=chunk_size, path=API_PATH[diffusion["solver"]],
        method=diffusion["method"], trace_square=diffusion["trace_square"],
        probes=diffusion["probes"], dense_max_d=diffusion["dense_max_d"],
        lanczos=diffusion["lanczos"], shard=shard,
    )  # fmt: skip
    sec = res.seconds
    result = DiffusionResult(
        spectrum=res.spectrum, n=res.n, d=res.d, formula=res.formula, trace=res.trace,
        grad_norm=res.grad_norm, seconds=sec["total"], seconds_gradients=sec["gradients"],
        seconds_eigen=sec["eigen"] + sec.get("trace_square", 0.0),
    )  # fmt: skip
    extra = {
        "spectrum_path": res.path,
        "method": res.method,
        "k": -1 if res.k is None else res.k,
        "rank_upper": res.rank_upper,
        "trace_square": res.trace_square,
        "trace_square_stderr": res.trace_square_stderr,
        "trace_square_method": res.trace_square_method,
        "effective_rank": res.effective_rank,
        "processes": shard.world,
        "chunk_size": res.plan.chunk_size,
    }
    return result, extra


def _launch(args: Mapping[str, Any], log: logging.Logger) -> None:
    """Run :func:`snapshot_spectrum` with the arguments ``args`` on ``args["processes"]``
    processes (:func:`sgdvi.diffusion.launch.run_processes`), each with its share of the
    threads."""
    from sgdvi.diffusion.launch import run_processes

    processes = int(args["processes"])
    job = {k: args[k] for k in ("experiment", "fraction", "chunk_size", "device", "processes")}
    job |= {k: str(args[k]) for k in ("snapshot", "data", "output")}
    job |= {k: dict(args[k]) for k in ("settings", "diffusion")}
    job["threads"] = max(1, int(args["threads"]) // processes)
    run_processes(job, processes, log)


def snapshot_spectrum(
    snapshot: str | Path,
    data: str | Path,
    output: str | Path,
    *,
    experiment: str,
    fraction: float,
    settings: Mapping[str, Any],
    diffusion: Mapping[str, Any],
    chunk_size: int,
    device: str,
    threads: int,
    log: logging.Logger,
    processes: int = 1,
    shard: Shard | None = None,
) -> DiffusionResult | None:
    """Eigenvalues of D(x) (eq. (2)) at the snapshot ``snapshot`` of ``experiment``, saved to
    ``output`` (:func:`sgdvi.diffusion.compute.save_result`).

    ``settings``: the experiment's ``experiments.<name>`` entry (``num_classes`` resolved);
    ``diffusion``: the settings that change the result
    (:data:`sgdvi.diffusion.memory.RESULT_KEYS`); ``chunk_size`` (memory only).
    The examples: the first ``diffusion.subset`` (else the experiment's ``train_subset``, else
    all) training examples of the prepared dataset ``data``; the network in eval mode.
    ``processes > 1``: runs itself on that many processes and returns None; ``shard``: this
    process's part of such a run (rank 0 writes ``output``).
    """
    if processes > 1 and shard is None:
        _launch(locals(), log)
        return None
    shard = shard or LOCAL
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    model, meta = load_snapshot(snapshot, dev)
    x, y = _examples(data, diffusion["subset"] or settings["train_subset"])
    epoch, lr, batch_size = snapshot_state(meta, settings, fraction)
    log.info(
        "%s at %.0f%% (epoch %d): %s, N=%d, device %s, %d threads, lr %g, batch %d",
        experiment, 100 * fraction, epoch, meta["model"], len(x), dev, threads, lr, batch_size,
    )  # fmt: skip
    augmentation = _augmentation(settings, diffusion, log)
    extra: dict[str, Any] = {}
    if uses_spectrum_api(diffusion, max(processes, shard.world)):
        result, extra = _solve_api(model, x, y, diffusion, chunk_size, augmentation, shard)
        log.info(
            "path %s (%s), %d process(es)", extra["spectrum_path"], extra["method"], shard.world
        )
    else:
        progress = _progress(len(x), chunk_size, log)
        result = _solve(model, x, y, diffusion, chunk_size, augmentation, progress)
    _log_result(log, result)
    if shard.rank != 0:
        return result
    save_result(
        output, result, experiment=experiment, fraction=fraction, epoch=epoch,
        model=meta["model"], lr=lr, batch_size=batch_size,
        temperature=temperature_factor(diffusion["formula"], batch_size, result.n),
        augmented=bool(settings["augment"]), device=str(dev), **extra,
    )  # fmt: skip
    return result
