"""Rule download_cifar: the extracted CIFAR-10/100 python files (sgdvi.data.cifar)."""

from typing import TYPE_CHECKING

from sgdvi.data.cifar import fetch_cifar
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "download_cifar"):
    fetch_cifar(
        name=snakemake.wildcards.cifar,
        dest_dir=snakemake.output[0],
        sources=snakemake.params.sources,
        local_dir=snakemake.params.local_dir,
        timeout=snakemake.params.timeout,
        verify_md5=snakemake.params.verify_md5,
    )
