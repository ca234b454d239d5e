"""Rules prepare_mnist28 / prepare_mnist7 / prepare_mnist7_5class (sgdvi.data.mnist)."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.data import save_prepared
from sgdvi.data.mnist import is_official, load_mnist, prepare_mnist

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
log = logging.getLogger("prepare_mnist")
try:
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
except Exception:
    log.exception("prepare %s failed", snakemake.params.variant)
    raise
