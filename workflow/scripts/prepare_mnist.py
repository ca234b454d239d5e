"""Rules prepare_mnist28 / prepare_mnist7 / prepare_mnist7_5class (sgdvi.data.mnist)."""

from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.data import save_prepared
from sgdvi.data.mnist import is_official, load_mnist, prepare_mnist
from sgdvi.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(
    snakemake.log[0], "prepare_mnist", failure=f"prepare {snakemake.params.variant} failed"
) as log:
    raw_dir = Path(snakemake.input[0]).parent
    official = is_official(raw_dir)
    log.info("reading %s (official MNIST: %s)", raw_dir, official)
    arrays = prepare_mnist(
        load_mnist(raw_dir), snakemake.params.variant, snakemake.params.normalisation, official
    )
    for key in ("x_train", "x_test"):
        x = arrays[key]
        log.info(
            "%s %s mean %.6g std %.6g min %.6g max %.6g",
            key,
            x.shape,
            x.mean(),
            x.std(),
            x.min(),
            x.max(),
        )
    log.info(
        "train %d, test %d images; normalisation %s (shift %.6g, scale %.6g)",
        len(arrays["y_train"]),
        len(arrays["y_test"]),
        snakemake.params.normalisation,
        arrays["normalisation_shift"],
        arrays["normalisation_scale"],
    )
    save_prepared(snakemake.output[0], **arrays)
    log.info("wrote %s", snakemake.output[0])
