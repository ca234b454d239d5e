"""The workflow end to end on the tiny config (generated MNIST), and its refusal of bad configs.

Every test but the first reads the session's shared tiny build (``tiny_built``, conftest.py):
the workflow runs once, and each stage's outputs are checked here against numbers derived
independently in the test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from sgdvi.data import load_prepared
from sgdvi.infra.parquet import read_table
from sgdvi.snapshots import load_snapshot

from conftest import run_snakemake, snakemake_cmd

EPS_FLOAT32 = float(np.finfo(np.float32).eps)


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


def tiny_cfg(work: Path) -> dict:
    return yaml.safe_load((work / "config" / "tiny.yaml").read_text())


@pytest.mark.slow
def test_training_learns_and_keeps_the_snapshots(tiny_built):
    res = tiny_built / "results"
    for name in ("lenet-mnist", "fc-mnist7"):
        m = read_table(res / name / "metrics.parquet")
        assert list(m["epoch"]) == [1, 2, 3, 4, 5]
        # the fake digits are a bright bar whose row is the class: learnable in 5 epochs
        assert m["train_loss"].iloc[-1] < 0.5 * m["train_loss"].iloc[0]
        assert m["test_error"].iloc[-1] < 0.5
        assert not (res / name / "checkpoint.pt").exists()
        epochs = [
            load_snapshot(res / name / "snapshots" / f"{f}.pt")[1]["epoch"]
            for f in (
                "0.2",
                "0.4",
                "1.0",
            )
        ]
        assert epochs == [1, 2, 5]  # round(f * 5)


def independent_spectrum(snapshot: Path, data: Path, n: int) -> np.ndarray:
    """Non-zero eigenvalues of D(x) (eq. (2), formula A1) from scratch: per-example gradients by
    a plain float64 autograd loop, then the N x N Gram matrix of the centred gradients (same
    non-zero spectrum as the d x d matrix D = G_c^T G_c / N)."""
    model, _ = load_snapshot(snapshot)
    model = model.double()
    prepared = load_prepared(data, train_subset=n, dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(n):
        loss = F.cross_entropy(model(prepared.x_train[i : i + 1]), prepared.y_train[i : i + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    g = torch.stack(rows).numpy()
    gc = g - g.mean(axis=0)
    return np.linalg.eigvalsh(gc @ gc.T / n)[::-1]


@pytest.mark.slow
def test_diffusion_rank_matches_an_independent_computation(tiny_built):
    res = tiny_built / "results"
    cfg = tiny_cfg(tiny_built)
    n = cfg["diffusion"]["subset"]
    t = read_table(res / "tables" / "diffusion.parquet")
    assert sorted(zip(t["experiment"], t["fraction"], strict=True)) == sorted(
        (e, f) for e in ("lenet-mnist", "fc-mnist7") for f in (0.2, 0.4, 1.0)
    )
    # weights of small-lenet and small-fc (Section IV), counted in models.py's closed form
    assert dict(zip(t["experiment"], t["d"], strict=False)) == {
        "lenet-mnist": 13338,
        "fc-mnist7": 3978,
    }
    datasets = {"lenet-mnist": "mnist28", "fc-mnist7": "mnist7"}
    for name, dataset in datasets.items():
        row = t[(t["experiment"] == name) & (t["fraction"] == 1.0)].iloc[0]
        eig = independent_spectrum(
            res / name / "snapshots" / "1.0.pt", res / "data" / f"{dataset}.npz", n
        )
        lam_max = eig[0]
        threshold = lam_max * int(row["d"]) * EPS_FLOAT32  # footnote 1: lambda_max d eps
        expected = int(np.count_nonzero(eig > threshold))
        assert row["lambda_max"] == pytest.approx(lam_max, rel=1e-5)
        # at most N - 1 non-zero eigenvalues (centred gradients of N examples)
        assert 0 < expected <= n - 1
        near = np.abs(eig / threshold - 1) < 1e-4  # an eigenvalue on the threshold may flip
        assert abs(int(row["rank"]) - expected) <= int(near.sum()), (name, row["rank"], expected)
        z = np.load(res / name / "diffusion" / "1.0.npz")
        assert int(z["rank"]) == row["rank"]
        assert float(z["trace"]) == pytest.approx(eig.sum(), rel=1e-5)  # trace D


@pytest.mark.slow
def test_trajectory_stores_every_post_burn_in_epoch(tiny_built):
    cfg = tiny_cfg(tiny_built)["trajectory"]
    res = tiny_built / "results"
    tr = read_table(res / "tables" / "trajectory.parquet")
    assert list(tr["seed"]) == cfg["seeds"]
    n = cfg["epochs"] - cfg["burn_in"]
    assert int(tr["n"].iloc[0]) == n and int(tr["d"].iloc[0]) == 917  # tiny-fc on 5 classes
    weights = sorted(res.rglob("seed1/weights.npy"))
    assert len(weights) == 1, weights
    w = np.load(weights[0], mmap_mode="r")
    assert w.shape == (n, 917) and np.isfinite(w).all()
    assert np.abs(np.diff(w, axis=0)).max() > 0  # SGD moved the weights


@pytest.mark.slow
def test_theory_checks_pass(tiny_built):
    th = read_table(tiny_built / "results" / "tables" / "theory.parquet")
    assert {"double_well", "sde", "fokker_planck", "lemma20"} <= set(th["check"])
    deterministic = th[th["check"].isin(["double_well", "fokker_planck", "lemma20"])]
    assert deterministic["passed"].all(), deterministic[~deterministic["passed"]]
    # Z of Example 19 is the same number however computed
    z = th[(th["check"] == "double_well") & (th["quantity"] == "Z")].iloc[0]
    assert z["value"] == pytest.approx(7.6235, abs=1e-4)


def image_ink(path: Path) -> tuple[tuple[int, int], float, int]:
    """(size, fraction of pixels that are not background white, distinct colours)."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    ink = (np.abs(rgb - 255).sum(axis=-1) > 30).mean()
    colours = len(np.unique(rgb.reshape(-1, 3)[:: max(1, rgb.size // 300_000)], axis=0))
    return (rgb.shape[1], rgb.shape[0]), float(ink), colours


@pytest.mark.slow
def test_every_figure_is_drawn(tiny_built):
    figures = tiny_built / "results" / "figures"
    pngs = {p.stem: p for p in figures.glob("*.png")}
    expected = {"fig1a", "fig1b", "fig3a", "fig3b", "fig3c", "fig4a", "fig4b", "fig4c"}
    assert expected <= set(pngs), sorted(pngs)
    for name, png in sorted(pngs.items()):
        (w, h), ink, colours = image_ink(png)
        assert w >= 300 and h >= 200, (name, w, h)
        # axes, labels and data: a blank or one-colour canvas fails
        assert 0.01 < ink < 0.9, (name, ink)
        assert colours >= 8, (name, colours)
        pdf = png.with_suffix(".pdf").read_bytes()
        assert pdf[:5] == b"%PDF-" and b"%%EOF" in pdf[-1024:], name
        assert len(pdf) > 5000, (name, len(pdf))


@pytest.mark.slow
def test_second_run_has_nothing_to_do(tiny_built):
    proc = run_snakemake(tiny_built, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_report_of_one_figure_builds_without_the_landing_page(tiny_built, tmp_path):
    """``snakemake <figure> --report``: the landing page is not part of that DAG; the report
    says so and holds the figure (it used to stop on the include of the missing page)."""
    out = tmp_path / "fig1a.html"
    # the target after an option that takes one value (--configfile would read it as a file)
    run_snakemake(tiny_built, "--report", str(out), "results/figures/fig1a.pdf", timeout=300)
    html = out.read_text()
    assert "covers only the targets named on the command line" in html
    assert "fig1a.png" in html and "fig3a.png" not in html
