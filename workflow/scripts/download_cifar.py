"""Rule download_cifar: the extracted CIFAR-10/100 python files (sgdvi.data.cifar)."""

import logging
from typing import TYPE_CHECKING

from sgdvi.data.cifar import fetch_cifar

if TYPE_CHECKING:
    from snakemake.script import snakemake

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
try:
    fetch_cifar(
        name=snakemake.wildcards.cifar,
        dest_dir=snakemake.output[0],
        sources=snakemake.params.sources,
        local_dir=snakemake.params.local_dir,
        timeout=snakemake.params.timeout,
        verify_md5=snakemake.params.verify_md5,
    )
except Exception:
    logging.exception("download_cifar failed")
    raise
