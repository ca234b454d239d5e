"""Rule prepare_dataset: a Fashion-MNIST or user-kind dataset (idx, npz, image-folder) of the
config's `datasets:` as results/data/{dataset}.npz (sgdvi.data.kinds)."""

from typing import TYPE_CHECKING

from sgdvi.data import save_prepared
from sgdvi.data.kinds import prepare_dataset
from sgdvi.infra.rulelog import rule_log

if TYPE_CHECKING:
    from snakemake.script import snakemake

name = snakemake.wildcards.dataset
with rule_log(snakemake.log[0], "prepare_dataset", failure=f"prepare {name} failed") as log:
    entry = snakemake.params.entry
    log.info("%s: %s", name, entry)
    arrays = prepare_dataset(name, entry, snakemake.params.default_normalisation)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        log.info(
            "%s: x %s mean %.6g std %.6g, %d labels in 0..%d",
            split,
            x.shape,
            x.mean(),
            x.std(),
            len(y),
            y.max(),
        )
    save_prepared(snakemake.output[0], **arrays)
    log.info("wrote %s", snakemake.output[0])
