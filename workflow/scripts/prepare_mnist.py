"""Rule prepare_mnist: one named MNIST dataset of the config's `datasets:` (sgdvi.data.mnist)."""

from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.data import save_prepared
from sgdvi.data.mnist import MnistOptions, is_official, load_mnist, prepare_mnist
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

name = snakemake.wildcards.dataset
with rule_log(snakemake.log[0], "prepare_mnist", failure=f"prepare {name} failed") as log:
    raw_dir = Path(snakemake.input[0]).parent
    official = is_official(raw_dir)
    options = MnistOptions(**snakemake.params.options)
    log.info("%s: %s", name, options)
    if options.authors_wrap:
        log.warning(
            "%s reproduces the authors' 2017 uint8 wrap (v -> (-v) mod 256) before the resize: "
            "a bug of their preprocessing, not the paper's stated setting",
            name,
        )
    log.info("reading %s (official MNIST: %s)", raw_dir, official)
    arrays = prepare_mnist(load_mnist(raw_dir), options, official)
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
        options.normalisation,
        arrays["normalisation_shift"],
        arrays["normalisation_scale"],
    )
    save_prepared(snakemake.output[0], **arrays)
    log.info("wrote %s", snakemake.output[0])
