"""The `train` and `snapshot` rules through Snakemake, on a small prepared dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sgdvi.data import save_prepared
from sgdvi.snapshots import load_snapshot

from conftest import run_snakemake


def test_train_rule_writes_snapshots_metrics_log_and_benchmark(tiny_workdir):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 1, 7, 7)).astype(np.float32)
    y = (x.reshape(400, -1) @ rng.normal(size=(49, 10))).argmax(1)
    save_prepared(
        tiny_workdir / "results/data/mnist7.npz",
        x_train=x[:300],
        y_train=y[:300],
        x_test=x[300:],
        y_test=y[300:],
    )
    targets = [f"results/fc-mnist7/snapshots/{f}.pt" for f in ("0.2", "0.4", "1.0")]
    # the prepared dataset is given: forbid the data rules from remaking it
    args = ["--cores", "1", "--allowed-rules", "train", "snapshot", "--", *targets]
    run_snakemake(tiny_workdir, *args)

    metrics = pd.read_parquet(tiny_workdir / "results/fc-mnist7/metrics.parquet")
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5]  # tiny.yaml: 5 epochs
    assert metrics["test_error"].iloc[-1] < metrics["test_error"].iloc[0]  # it learns
    epochs = []
    for target in targets:
        model, meta = load_snapshot(tiny_workdir / target)
        assert meta["experiment"] == "fc-mnist7" and meta["train_subset"] == 300  # tiny.yaml
        epochs.append(meta["epoch"])
        out = model(torch.as_tensor(x[300:]))
        assert out.shape == (100, 10)
    assert epochs == [1, 2, 5]
    log = (tiny_workdir / "logs/train/fc-mnist7.log").read_text()
    assert "fc-mnist7 epoch 5/5" in log and "ETA" in log
    assert (tiny_workdir / "results/benchmarks/train/fc-mnist7.tsv").exists()
    assert not (tiny_workdir / "results/fc-mnist7/checkpoint.pt").exists()

    proc = run_snakemake(tiny_workdir, "--dry-run", *args)
    assert "Nothing to be done" in proc.stdout + proc.stderr
