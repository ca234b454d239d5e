"""The diffusion rules through Snakemake on synthetic snapshots and data (tiny config)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdvi.config import fraction_tag
from sgdvi.data import save_prepared
from sgdvi.diffusion.compute import load_result
from sgdvi.diffusion.stats import spectrum_statistics
from sgdvi.infra.parquet import read_table
from sgdvi.models import build_model
from sgdvi.snapshots import save_snapshot

from conftest import run_snakemake

EXPERIMENTS = {
    "lenet-mnist": ("small-lenet", "mnist28", 28),
    "fc-mnist7": ("small-fc", "mnist7", 7),
}


def fake_inputs(work, n=300):
    """Prepared datasets and snapshots (random weights) as the data and train stages write."""
    rng = np.random.default_rng(0)
    for k, (name, (model_name, dataset, side)) in enumerate(EXPERIMENTS.items()):
        y = rng.integers(0, 10, n)
        x = rng.normal(size=(n, 1, side, side)).astype(np.float32)
        x[np.arange(n), 0, y % side, :] += 3.0  # class-dependent rows: a learnable signal
        save_prepared(
            work / "results" / "data" / f"{dataset}.npz",
            x_train=x,
            y_train=y,
            x_test=x[:10],
            y_test=y[:10],
        )
        for j, f in enumerate((0.2, 0.4, 1.0)):
            torch.manual_seed(10 * k + j)
            model = build_model(model_name)
            meta = {
                "model": model_name,
                "num_classes": 10,
                "dropout": 0.1 if side == 28 else 0.0,
                "experiment": name,
                "dataset": dataset,
                "epoch": j + 1,
                "fraction": f,
                "epochs": 3,
                "lr": 0.1 / (j + 1),
                "batch_size": 128,
            }
            save_snapshot(
                work / "results" / name / "snapshots" / f"{fraction_tag(f)}.pt", model, meta
            )


@pytest.mark.slow
def test_diffusion_rules_build_figure_and_table(tiny_workdir):
    fake_inputs(tiny_workdir)
    # one figure builds alone, then the table over `run:`
    run_snakemake(tiny_workdir, "--cores", "2", "results/figures/fig1b.pdf")
    assert (tiny_workdir / "results" / "figures" / "fig1b.png").stat().st_size > 5000
    assert not (tiny_workdir / "results" / "lenet-mnist" / "diffusion").exists()
    run_snakemake(
        tiny_workdir,
        "--cores",
        "2",
        "results/tables/diffusion.parquet",
        "results/figures/fig1a.pdf",
    )
    table = read_table(tiny_workdir / "results" / "tables" / "diffusion.parquet")
    assert len(table) == 6
    assert set(table.experiment) == set(EXPERIMENTS)
    assert (tiny_workdir / "results" / "tables" / "diffusion.csv").exists()
    row = table[(table.experiment == "lenet-mnist") & (table.fraction == 0.4)].iloc[0]
    res = load_result(tiny_workdir / "results" / "lenet-mnist" / "diffusion" / "0.4.npz")
    assert res["n"] == 200 and res["d"] == 13338 and res["solver"] == "gram"  # tiny: subset 200
    st = spectrum_statistics(res["eigenvalues"], res["d"], res["threshold"])
    assert row["mean"] == pytest.approx(st["mean"]) and row["rank"] == res["rank"] == st["rank"]
    assert 0 < res["rank"] < 200  # centred gradients of 200 examples: rank <= 199
    assert row["lr"] == pytest.approx(0.05)  # from the snapshot's meta
    assert row["remark15"] == pytest.approx(0.05 / 128 * res["trace"] / res["d"])
    assert row["paper_rank_pct"] == 1.8 and not math.isnan(row["r13_max_rel_change"])
    for key in ("lambda_max", "threshold", "eps", "rank", "trace", "grad_norm", "seconds"):
        assert key in res
    log = (tiny_workdir / "logs" / "diffusion" / "lenet-mnist" / "0.4.log").read_text()
    assert "rank" in log and "solver gram" in log and "check dense" in log
    assert res["rank_check"] == "dense" and res["rank_check_count"] == res["rank"]
