"""The workflow end to end on the tiny config (generated MNIST), and its refusal of bad configs."""

from __future__ import annotations

import subprocess

import yaml

from conftest import run_snakemake, snakemake_cmd


def test_bad_config_stops_before_any_job(tiny_workdir):
    cfg = yaml.safe_load((tiny_workdir / "config" / "tiny.yaml").read_text())
    cfg["experiments"]["lenet-mnist"]["epochs"] = -3
    (tiny_workdir / "config" / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        snakemake_cmd(tiny_workdir, "--cores", "1", configfile="config/bad.yaml"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "epochs" in out and "-3" in out
    assert not (tiny_workdir / "results").exists()


def test_tiny_config_runs_end_to_end(tiny_workdir):
    """Every rule of the tiny config runs; the outputs hold sane, cross-consistent numbers."""
    import numpy as np
    import pandas as pd

    run_snakemake(tiny_workdir, "--cores", "2")
    res = tiny_workdir / "results"

    # training: loss goes down on the learnable fake data, snapshots at 0.2/0.4/1.0 of 5 epochs
    for name in ("lenet-mnist", "fc-mnist7"):
        m = pd.read_parquet(res / name / "metrics.parquet")
        assert list(m["epoch"]) == [1, 2, 3, 4, 5]
        assert m["train_loss"].iloc[-1] < m["train_loss"].iloc[0]
        assert not (res / name / "checkpoint.pt").exists()

    # diffusion: one row per experiment x snapshot, rank within (0, d], PSD up to round-off
    t = pd.read_parquet(res / "tables" / "diffusion.parquet")
    assert sorted(zip(t["experiment"], t["fraction"], strict=True)) == sorted(
        (e, f) for e in ("lenet-mnist", "fc-mnist7") for f in (0.2, 0.4, 1.0)
    )
    assert ((t["rank"] > 0) & (t["rank"] <= t["d"])).all()
    assert set(t["d"]) == {13338, 3978}
    for _, row in t.iterrows():
        z = np.load(res / row["experiment"] / "diffusion" / f"{row['fraction']!r}.npz")
        assert int(z["rank"]) == row["rank"]
        assert np.isclose(float(z["lambda_max"]), row["lambda_max"])

    # trajectory: one row per seed, stored epochs = epochs - burn_in
    tr = pd.read_parquet(res / "tables" / "trajectory.parquet")
    assert list(tr["seed"]) == [1]
    assert int(tr["n"].iloc[0]) == 40 - 10 and int(tr["d"].iloc[0]) == 917
    assert np.load(res / "tinyfc-trajectory" / "seed1" / "weights.npy", mmap_mode="r").shape == (
        30,
        917,
    )

    # theory: every recorded check passed
    th = pd.read_parquet(res / "tables" / "theory.parquet")
    assert {"double_well", "sde", "fokker_planck", "lemma20"} <= set(th["check"])
    deterministic = th[th["check"].isin(["double_well", "fokker_planck", "lemma20"])]
    assert deterministic["passed"].all(), deterministic[~deterministic["passed"]]

    # figures are real images of the declared kind
    for fig in ("fig1a", "fig1b", "fig3a", "fig3b", "fig3c", "fig4a", "fig4b", "fig4c"):
        assert (res / "figures" / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (res / "figures" / f"{fig}.pdf").read_bytes()[:5] == b"%PDF-"

    # a second run has nothing to do
    proc = run_snakemake(tiny_workdir, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
