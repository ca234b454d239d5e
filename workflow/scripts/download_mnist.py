"""Rule download_mnist: the four raw MNIST IDX files, SHA-256 verified (sgdvi.data.mnist)."""

from pathlib import Path
from typing import TYPE_CHECKING

from sgdvi.data.mnist import fetch_mnist
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "download_mnist"):
    fetch_mnist(
        dest_dir=Path(snakemake.output[0]).parent,
        sources=snakemake.params.sources,
        sha256=snakemake.params.sha256,
        local_dir=snakemake.params.local_dir,
        timeout=snakemake.params.timeout,
    )
