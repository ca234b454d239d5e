"""The one library function behind each thin rule script: D(x) of a snapshot
(``sgdvi.diffusion.snapshot.snapshot_spectrum``) and the probability current of a trajectory
run (``sgdvi.irreversibility.run.trajectory_current``), on small synthetic inputs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sgdvi.config import load
from sgdvi.data import save_prepared
from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.memory import RESULT_KEYS
from sgdvi.diffusion.moments import temperature_factor
from sgdvi.diffusion.snapshot import snapshot_spectrum, snapshot_state
from sgdvi.infra.parquet import read_table
from sgdvi.irreversibility import sgd
from sgdvi.irreversibility.run import current_settings, run_settings, trajectory_current
from sgdvi.models import build_model
from sgdvi.snapshots import load_snapshot, save_snapshot

LOG = logging.getLogger("test")


@pytest.fixture(scope="module")
def defaults() -> dict:
    """The filled config of a config that sets nothing but ``run``."""
    return load({"run": []})


def tiny_inputs(tmp_path, n=80):
    """A tiny-fc snapshot (5 classes: d = 917) and a prepared 7x7 dataset of n examples."""
    torch.manual_seed(0)
    model = build_model("tiny-fc", num_classes=5)
    meta = {"model": "tiny-fc", "num_classes": 5, "dropout": 0.0, "epoch": 3, "lr": 0.05}
    save_snapshot(tmp_path / "snap.pt", model, meta | {"batch_size": 32})
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 1, 7, 7)).astype(np.float32)
    y = rng.integers(0, 5, n)
    save_prepared(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    return x, y


def naive_spectrum(snapshot, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Eigenvalues of D = (1/N) sum_k (g_k - g)(g_k - g)^T (eq. (2)), one backward pass per
    example, in float64 numpy (descending)."""
    model, _ = load_snapshot(snapshot)
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        out = model(torch.from_numpy(x[i : i + 1]))
        F.cross_entropy(out, torch.from_numpy(y[i : i + 1])).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy())
    g = np.array(rows)
    gc = g - g.mean(axis=0)
    return np.linalg.eigvalsh(gc.T @ gc / len(x))[::-1]


@pytest.mark.parametrize(("solver", "subset"), [("auto", None), ("dense", 50)])
def test_snapshot_spectrum_matches_a_naive_reference(tmp_path, defaults, solver, subset):
    x, y = tiny_inputs(tmp_path)
    diffusion = {k: defaults["diffusion"][k] for k in RESULT_KEYS}
    diffusion |= {"solver": solver, "subset": subset}
    settings = {"epochs": 10, "lr_schedule": [[0, 0.1]], "batch_size": 128}
    settings |= {"train_subset": None, "augment": False}
    result = snapshot_spectrum(
        tmp_path / "snap.pt",
        tmp_path / "data.npz",
        tmp_path / "out.npz",
        experiment="toy",
        fraction=0.4,
        settings=settings,
        diffusion=diffusion,
        chunk_size=32,
        device="cpu",
        threads=1,
        log=LOG,
    )
    n = subset or len(x)
    stored = load_result(tmp_path / "out.npz")
    assert stored["n"] == result.n == n and stored["d"] == 917
    assert stored["solver"] == ("gram" if solver == "auto" else "dense")
    ref = naive_spectrum(tmp_path / "snap.pt", x[:n], y[:n])
    rank = stored["rank"]
    assert 0 < rank < n  # centred gradients of n examples
    np.testing.assert_allclose(stored["eigenvalues"][:rank], ref[:rank], rtol=1e-4)
    # the snapshot's recorded state, not the settings' (epoch 3, lr 0.05, batch 32)
    assert (stored["epoch"], stored["lr"], stored["batch_size"]) == (3, 0.05, 32)
    assert stored["temperature"] == pytest.approx(temperature_factor("A1", 32, n))


def test_snapshot_state_falls_back_to_the_settings_for_old_snapshots():
    settings = {"epochs": 50, "lr_schedule": [[0, 0.1], [15, 0.01]], "batch_size": 64}
    assert snapshot_state({}, settings, 0.4) == (20, 0.01, 64)
    assert snapshot_state({"epoch": 5, "lr": 0.3, "batch_size": 8}, settings, 0.4) == (5, 0.3, 8)


def test_run_settings_prefer_what_run_json_records():
    run = {"dataset": "mnist7-5class", "num_classes": 5, "train_subset": None}
    recorded = {"num_classes": 4, "settings": {"train_subset": 300}}
    out = run_settings(run, recorded, "authors", 43)
    assert out == {
        "dataset": "mnist7-5class",
        "num_classes": 4,
        "train_subset": 300,
        "variant": "authors",
        "seed": 43,
    }
    assert run_settings(run, {}, "stated", 1)["num_classes"] == 5


def test_trajectory_current_is_the_analysis_of_its_parts(tmp_path, defaults):
    """The rule's function against the steps called one by one: same verdict, same table."""
    tiny_inputs(tmp_path, n=60)
    rng = np.random.default_rng(2)
    d = 917
    weights = np.cumsum(rng.normal(scale=1e-3, size=(240, d)), axis=0).astype(np.float32)
    weights += rng.normal(size=d).astype(np.float32)
    np.save(tmp_path / "weights.npy", weights)
    (tmp_path / "run.json").write_text(json.dumps({"settings": {"train_subset": 40}}))
    irr = defaults["irreversibility"] | {
        "m": 3,
        "n_blocks": 8,
        "n_surrogates": 3,
        "n_boot": 3,
        "max_pca_rows": 100,
    }
    run = {"dataset": "toy", "num_classes": 5, "train_subset": None}
    summary = trajectory_current(
        tmp_path / "weights.npy",
        tmp_path / "run.json",
        tmp_path / "data.npz",
        tmp_path / "current.npz",
        tmp_path / "current.parquet",
        irr=irr,
        run=run,
        variant="stated",
        seed=7,
        log=LOG,
    )
    data = np.load(tmp_path / "data.npz")
    g = sgd.per_example_gradients(
        weights[0].astype(np.float64), data["x_train"][:40], data["y_train"][:40], 5
    )
    directions, eigenvalues = sgd.diffusion_directions(g, 3)
    settings = current_settings(irr, 7)
    assert settings.seed == irr["seed"] + 7 and settings.m == 3
    expected, projs = sgd.analyse_current(weights, directions, settings)
    assert summary == expected | {"variant": "stated", "seed": 7}
    table = read_table(tmp_path / "current.parquet")
    ref = sgd.current_table(projs, summary)
    pd.testing.assert_frame_equal(table, ref, check_dtype=False)
    with np.load(tmp_path / "current.npz") as z:
        np.testing.assert_array_equal(z["d_eigenvalues"], eigenvalues)
