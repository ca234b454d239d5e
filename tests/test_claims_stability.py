"""Verdicts that survive a rerun: perturbing every initial weight of every trajectory in its
lowest float32 mantissa bit (what another machine's rounding does to a run) changes the
per-seed numbers but not the pooled verdicts of the claims ledger.

At test scale (250 images with noisy labels, 300 epochs at lr 0.1, 6 seeds, few surrogates;
the perturbed runs' weights differ by ~0.1-0.4 after 150 epochs) this checks the
mechanism: the per-seed rows are built by the pipeline's own functions (trainer, Fig. 3
analysis, probability current, trajectory table) from runs that differ only in the last bit,
and the ledger pools them. Whether the paper-scale verdicts are stable is what the claims
profile (config/claims.yaml: 20+ seeds per variant) measures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sgdvi.claims import calibration as cal
from sgdvi.claims import pooling as pl
from sgdvi.claims.ledger import claims_table, pooled, verdicts
from sgdvi.irreversibility import sgd
from sgdvi.trajectory import runner
from sgdvi.trajectory.analysis import analyse_trajectory
from sgdvi.trajectory.table import trajectory_table

SEEDS = [42, 43, 44, 45, 46, 47]
IRR = sgd.Settings(m=4, n_blocks=8, n_surrogates=5, n_boot=5, alpha=0.01, max_pca_rows=500)


def _data(n: int = 250, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images with 30 % of the labels redrawn at random: SGD at lr 0.1 never
    settles, and a last-bit difference grows to the size of the weights' fluctuations within
    about 150 epochs (on clean labels it converges and the difference stays at 1e-6)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 100, size=(n, 1, 7, 7)).astype(np.float32)
    for c in range(classes):
        x[y == c, 0, :, c] += 150
    noisy = rng.random(n) < 0.3
    return x, np.where(noisy, rng.integers(0, classes, n), y)


def flip_lowest_bit(params: np.ndarray) -> np.ndarray:
    """Every weight, as float32, with its lowest mantissa bit flipped (back in float64)."""
    bits = np.asarray(params, dtype=np.float32).view(np.uint32) ^ np.uint32(1)
    return bits.view(np.float32).astype(np.float64)


def _current(run_dir: Path, x: np.ndarray, y: np.ndarray, seed: int):
    """rule irreversibility_current for one run (directions of D(x) at the first epoch): its
    current.parquet table and the projected path (``diffusion_y`` of current.npz)."""
    weights = np.load(run_dir / "weights.npy", mmap_mode="r")
    g = sgd.per_example_gradients(np.asarray(weights[0], dtype=np.float64), x, y, 5)
    directions, _ = sgd.diffusion_directions(g, IRR.m)
    settings = sgd.Settings(**{**IRR.__dict__, "seed": seed})
    summary, projs = sgd.analyse_current(weights, directions, settings)
    return sgd.current_table(projs, summary | {"variant": "stated", "seed": seed}), projs[0].y


def per_seed_tables(base: Path, perturb: bool, monkeypatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/tables/trajectory.parquet of 6 seeds, as rule trajectory_table builds it, and
    the calibration rows of rule claims_calibration (on the first 3 seeds' paths)."""
    x, y = _data()
    if perturb:
        original = runner.initial_state

        def flipped(seed: int, num_classes: int = 5):
            state = original(seed, num_classes)
            state.params = flip_lowest_bit(state.params)
            return state

        monkeypatch.setattr(runner, "initial_state", flipped)
    analyses, metrics, runs, currents, paths = [], [], [], [], []
    for seed in SEEDS:
        run_dir = base / f"seed{seed}"
        settings = runner.TrajectorySettings(seed=seed, epochs=300, burn_in=20, batch_size=64,
                                             lr_burn_in=0.1, lr=0.1, chunk_epochs=300)  # fmt: skip
        runner.run_trajectory(x, y, settings, run_dir)
        result = analyse_trajectory(
            run_dir / "weights.npy", n_lags=30, n_permutations=40, seed=seed
        )
        np.savez(run_dir / "analysis.npz", **{k: np.asarray(v) for k, v in result.items()})
        analyses.append(run_dir / "analysis.npz")
        metrics.append(run_dir / "metrics.parquet")
        runs.append(run_dir / "run.json")
        current, path = _current(run_dir, x.reshape(len(x), -1), y, seed)
        currents.append(current)
        paths.append(path)
    table = trajectory_table(SEEDS, analyses, metrics, runs)
    table.insert(0, "variant", "stated")
    table = table.merge(sgd.trajectory_rows(currents), on=["variant", "seed"], how="left")
    settings = cal.Settings(n_surrogates=100, n_surrogates_band=3, n_surrogates_lemma20=50,
                            n_permutations=40, n_lags=30, n_blocks=IRR.n_blocks)  # fmt: skip
    return table, cal.calibrate(paths[:3], "stated", settings)


@pytest.mark.slow
def test_pooled_verdicts_survive_a_last_bit_perturbation(tmp_path, monkeypatch):
    original, cal0 = per_seed_tables(tmp_path / "original", False, monkeypatch)
    perturbed, cal1 = per_seed_tables(tmp_path / "perturbed", True, monkeypatch)
    # the runs differ: in the weights and in per-seed numbers of the ledger
    w0 = np.load(tmp_path / "original" / "seed42" / "weights.npy")
    w1 = np.load(tmp_path / "perturbed" / "seed42" / "weights.npy")
    assert np.abs(w0[-1] - w1[-1]).max() > 0.01  # chaos: the last bit grew
    cols = ["low_freq_ratio", "ac_frac_outside_walk", "current_diffusion_q_over_d"]
    assert not np.array_equal(original[cols].to_numpy(), perturbed[cols].to_numpy())
    led0 = claims_table(None, {}, original, cal0)
    led1 = claims_table(None, {}, perturbed, cal1)
    seeds0, seeds1 = (t[t.row == "seed"].estimate.to_numpy() for t in (led0, led1))
    assert not np.allclose(seeds0, seeds1, equal_nan=True)
    # ... and every pooled verdict is the same
    v0, v1 = verdicts(led0), verdicts(led1)
    assert v0 == v1, pd.concat([pooled(led0), pooled(led1)])[["claim", "setting", "verdict"]]
    # the trajectory claims of the stated setting were all tested with the six seeds
    for claim in ("fig3a_low_frequency", "fig3b_band_vs_walk", "fig3c_plateau", "current",
                  "lemma20_q"):  # fmt: skip
        assert v0[(claim, "stated")] != pl.NOT_TESTED
