"""Rule diffusion_spectrum: eigenvalues of D(x) (eq. (2)) at one snapshot (Section IV-A)."""

from typing import TYPE_CHECKING

import torch

from sgdvi.config import snapshot_epoch
from sgdvi.data import load_prepared
from sgdvi.diffusion.compute import diffusion_spectrum, save_result
from sgdvi.diffusion.moments import temperature_factor
from sgdvi.infra.devices import resolve_device
from sgdvi.infra.rulelog import rule_log
from sgdvi.snapshots import load_snapshot
from sgdvi.training import lr_at

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(
    snakemake.log[0], "diffusion_spectrum", fmt="%(asctime)s %(levelname)s %(name)s: %(message)s"
) as log:
    name = snakemake.wildcards.experiment
    fraction = float(snakemake.wildcards.fraction)
    exp = snakemake.params.settings
    cfg = snakemake.params.diffusion  # the settings that change the result (rule params)
    chunk_size = int(snakemake.config["diffusion"]["chunk_size"])  # not a param: no rerun
    lanczos = cfg.get("lanczos", {})
    torch.set_num_threads(snakemake.threads)
    device = resolve_device(snakemake.params.device)

    model, meta = load_snapshot(snakemake.input.snapshot, device)
    n = cfg.get("subset") or exp.get("train_subset")
    data = load_prepared(snakemake.input.data, train_subset=n)
    x, y = data.x_train, data.y_train
    del data
    epoch = int(meta.get("epoch", snapshot_epoch(fraction, exp["epochs"])))
    lr = float(meta["lr"]) if "lr" in meta else lr_at(exp["lr_schedule"], epoch - 1)
    batch_size = int(meta.get("batch_size", exp["batch_size"]))
    log.info(
        "%s at %.0f%% (epoch %d): %s, N=%d, device %s, %d threads, lr %g, batch %d",
        name,
        100 * fraction,
        epoch,
        meta["model"],
        len(x),
        device,
        snakemake.threads,
        lr,
        batch_size,
    )

    transform = generator = None
    if exp["augment"]:
        from sgdvi.data.augment import random_flip_crop

        transform = random_flip_crop
        generator = torch.Generator().manual_seed(int(cfg.get("augment_seed", 0)))
        log.info("one random flip + crop per example, seed %d", cfg.get("augment_seed", 0))

    step = max(1, len(x) // 10)

    def progress(done: int, total: int) -> None:
        if done % step < chunk_size or done == total:
            log.info("per-example gradients: %d / %d", done, total)

    result = diffusion_spectrum(
        model,
        x,
        y,
        formula=cfg["formula"],
        eps=cfg["eps"],
        solver=cfg["solver"],
        chunk_size=chunk_size,
        dense_max_d=cfg.get("dense_max_d", 4000),
        block_size=lanczos.get("block_size", 64),
        krylov_tol=lanczos.get("krylov_tol", 1e-3),
        eig_tol=lanczos.get("eig_tol", 1e-7),
        max_krylov_dim=lanczos.get("max_dim", 4096),
        seed=lanczos.get("seed", 0),
        transform=transform,
        generator=generator,
        progress=progress,
    )
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
    save_result(
        snakemake.output[0],
        result,
        experiment=name,
        fraction=fraction,
        epoch=epoch,
        model=meta["model"],
        lr=lr,
        batch_size=batch_size,
        temperature=temperature_factor(cfg["formula"], batch_size, result.n),
        augmented=bool(exp["augment"]),
        device=str(device),
    )
