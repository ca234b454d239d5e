"""Rule irreversibility_current: probability current of one tiny-fc trajectory (issue 13)."""

import os
from typing import TYPE_CHECKING

# one BLAS thread: the matrices are small and threads only contend (10x slower measured)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from sgdvi.data import load_prepared  # noqa: E402
from sgdvi.infra.atomic import atomic_write  # noqa: E402
from sgdvi.infra.rulelog import rule_log  # noqa: E402
from sgdvi.irreversibility import sgd  # noqa: E402

if TYPE_CHECKING:
    from snakemake.script import snakemake

with rule_log(snakemake.log[0], "irreversibility_current") as log:
    p = snakemake.params.irr
    run = dict(snakemake.params.run)
    run |= {"variant": snakemake.wildcards.variant, "seed": int(snakemake.wildcards.seed)}
    recorded = json.loads(open(snakemake.input.run).read())
    # run.json wins where it records the dataset settings (trajectory variants)
    for key in ("num_classes", "train_subset"):
        for src in (recorded, recorded.get("settings", {})):
            if key in src:
                run[key] = src[key]
    weights = np.load(snakemake.input.weights, mmap_mode="r")
    data = load_prepared(snakemake.input.data, train_subset=run["train_subset"])
    log.info("%s: weights %s, %d training images", run, weights.shape, len(data.y_train))
    t0 = time.perf_counter()
    g = sgd.per_example_gradients(
        np.asarray(weights[0], dtype=np.float64),
        data.x_train.numpy(),
        data.y_train.numpy(),
        run["num_classes"],
        chunk=p["gradient_chunk"],
    )
    directions, eigenvalues = sgd.diffusion_directions(g, p["m"])
    log.info("per-example gradients and D(x) eigenvectors: %.1f s", time.perf_counter() - t0)
    log.info("D(x) at the first stored epoch: top eigenvalues %s", eigenvalues[:5])
    s = sgd.Settings(
        m=p["m"],
        n_blocks=p["n_blocks"],
        n_surrogates=p["n_surrogates"],
        n_boot=p["n_boot"],
        alpha=p["alpha"],
        max_pca_rows=p["max_pca_rows"],
        growth_max=p["growth_max"],
        seed=p["seed"] + int(run["seed"]),
    )
    summary, projs = sgd.analyse_current(weights, directions, s, log=log)
    summary |= {"variant": run["variant"], "seed": int(run["seed"])}
    log.info("verdict: %s", summary)
    table = sgd.current_table(projs, summary)
    atomic_write(snakemake.output.table, table.to_parquet, index=False)
    atomic_write(
        snakemake.output.npz, np.savez_compressed, **sgd.current_arrays(projs, eigenvalues, summary)
    )
