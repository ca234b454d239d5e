"""The probability current of one tiny-fc trajectory run, end to end: rule
irreversibility_current.

Section III of the paper (eq. (8), Lemma 7, Remark 17): when the force ``j(x)`` is non-zero the
steady state carries a probability current; :func:`trajectory_current` measures the
area-enclosing rate of one stored trajectory (Section IV-B, Fig. 3) in the leading D(x)
eigendirections at its first stored epoch and in held-out principal components, against
permuted-increment random walks (:func:`sgdvi.irreversibility.sgd.analyse_current`), and writes
the per-pair table and the arrays of the figure.

Every setting comes from the caller (the workflow passes the filled ``irreversibility:``
section: schema defaults are filled in by :func:`sgdvi.config.load`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sgdvi.data import load_prepared
from sgdvi.infra.atomic import atomic_write
from sgdvi.irreversibility import sgd

#: run settings that run.json records for the run as it was trained (trajectory variants)
RECORDED_KEYS = ("num_classes", "train_subset")


def run_settings(
    run: Mapping[str, Any], recorded: Mapping[str, Any], variant: str, seed: int
) -> dict[str, Any]:
    """The run's ``dataset``, ``num_classes``, ``train_subset``, ``variant`` and ``seed``: the
    rule's settings, overridden by what ``run.json`` records (top level, then its
    ``settings``) for the keys in :data:`RECORDED_KEYS`."""
    out = {**run, "variant": variant, "seed": int(seed)}
    for key in RECORDED_KEYS:
        for src in (recorded, recorded.get("settings", {})):
            if key in src:
                out[key] = src[key]
    return out


def current_settings(irr: Mapping[str, Any], seed: int) -> sgd.Settings:
    """The analysis settings of ``irreversibility:``; the random seed is
    ``irreversibility.seed`` plus the trajectory seed (independent surrogates per run)."""
    return sgd.Settings(
        m=irr["m"],
        n_blocks=irr["n_blocks"],
        n_surrogates=irr["n_surrogates"],
        n_boot=irr["n_boot"],
        alpha=irr["alpha"],
        max_pca_rows=irr["max_pca_rows"],
        growth_max=irr["growth_max"],
        seed=irr["seed"] + int(seed),
    )


def trajectory_current(
    weights: str | Path,
    run_json: str | Path,
    data: str | Path,
    npz_out: str | Path,
    table_out: str | Path,
    *,
    irr: Mapping[str, Any],
    run: Mapping[str, Any],
    variant: str,
    seed: int,
    log: logging.Logger,
) -> dict[str, Any]:
    """Probability current of the stored trajectory ``weights`` (epochs x d, float32): the
    per-example gradients at the first stored epoch give D(x) and its top ``irr["m"]``
    eigenvectors; :func:`sgd.analyse_current` projects the trajectory on them and on held-out
    principal components. Writes ``table_out`` (parquet, one row per pair) and ``npz_out``;
    returns the verdict summary."""
    recorded = json.loads(Path(run_json).read_text())
    settings = run_settings(run, recorded, variant, seed)
    w = np.load(weights, mmap_mode="r")
    prepared = load_prepared(data, train_subset=settings["train_subset"])
    log.info("%s: weights %s, %d training images", settings, w.shape, len(prepared.y_train))
    t0 = time.perf_counter()
    g = sgd.per_example_gradients(
        np.asarray(w[0], dtype=np.float64),
        prepared.x_train.numpy(),
        prepared.y_train.numpy(),
        settings["num_classes"],
        chunk=irr["gradient_chunk"],
    )
    directions, eigenvalues = sgd.diffusion_directions(g, irr["m"])
    log.info("per-example gradients and D(x) eigenvectors: %.1f s", time.perf_counter() - t0)
    log.info("D(x) at the first stored epoch: top eigenvalues %s", eigenvalues[:5])
    summary, projs = sgd.analyse_current(w, directions, current_settings(irr, seed), log=log)
    summary |= {"variant": variant, "seed": int(seed)}
    log.info("verdict: %s", summary)
    table = sgd.current_table(projs, summary)
    atomic_write(table_out, table.to_parquet, index=False)
    atomic_write(npz_out, np.savez_compressed, **sgd.current_arrays(projs, eigenvalues, summary))
    return summary
