"""Rule download_mnist: the four raw MNIST IDX files, SHA-256 verified (sgdvi.data.mnist)."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.data.mnist import fetch_mnist

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
try:
    fetch_mnist(
        dest_dir=Path(snakemake.output[0]).parent,
        sources=snakemake.params.sources,
        sha256=snakemake.params.sha256,
        local_dir=snakemake.params.local_dir,
        timeout=snakemake.params.timeout,
    )
except Exception:
    logging.exception("download_mnist failed")
    raise
