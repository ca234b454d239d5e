"""Rule prepare_cifar_zca: GCN + ZCA-whitened CIFAR-10/100 (sgdvi.data.zca)."""

import time
from typing import TYPE_CHECKING

from sgdvi.data import save_prepared
from sgdvi.data.cifar import load_cifar
from sgdvi.data.zca import prepare_cifar_zca
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(
    snakemake.log[0], "prepare_cifar_zca", failure=f"prepare {snakemake.params.name}-zca failed"
) as log:
    start = time.perf_counter()
    raw = load_cifar(snakemake.input[0], snakemake.params.name)
    log.info(
        "read %s: train %s, test %s (%.1f s)",
        snakemake.input[0],
        raw["x_train"].shape,
        raw["x_test"].shape,
        time.perf_counter() - start,
    )
    arrays = prepare_cifar_zca(raw, eps=snakemake.params.eps)
    for key in ("x_train", "x_test"):
        x = arrays[key]
        log.info("%s %s mean %.4g std %.4g", key, x.shape, x.mean(), x.std())
    save_prepared(snakemake.output[0], **arrays)
    log.info("wrote %s (%.1f s)", snakemake.output[0], time.perf_counter() - start)
