"""The data rules through Snakemake on generated MNIST (local source, the files' own SHA-256)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import yaml

from sgdvi.data import load_prepared
from sgdvi.data.mnist import load_mnist, resize_bilinear_antialias

from conftest import run_snakemake, snakemake_cmd

TARGETS = ["results/data/mnist28.npz", "results/data/mnist7.npz", "results/data/mnist7-5class.npz"]


@pytest.mark.slow
def test_mnist_rules(tiny_built):
    """The prepared datasets of the session's tiny run (read only)."""
    cfg = yaml.safe_load((tiny_built / "config" / "tiny.yaml").read_text())
    raw = load_mnist(cfg["data"]["mnist"]["local_dir"])
    for name in ("download_mnist", "prepare_mnist28", "prepare_mnist7", "prepare_mnist7-5class"):
        assert (tiny_built / "logs" / "data" / f"{name}.log").stat().st_size > 0
    assert (
        "obtained from source 'local'"
        in (tiny_built / "logs" / "data" / "download_mnist.log").read_text()
    )

    m28 = load_prepared(tiny_built / TARGETS[0])  # tiny config: normalisation unit
    np.testing.assert_allclose(m28.x_train[:, 0].numpy(), raw["x_train"] / 255.0, rtol=1e-6)
    m5 = load_prepared(tiny_built / TARGETS[2])
    keep = raw["y_test"] < 5
    np.testing.assert_array_equal(m5.y_test.numpy(), raw["y_test"][keep])
    np.testing.assert_allclose(
        m5.x_test[:, 0].numpy(),
        resize_bilinear_antialias(raw["x_test"][keep]) / 255.0,
        rtol=1e-5,
        atol=1e-6,
    )
    m7 = load_prepared(tiny_built / TARGETS[1])
    assert m7.x_train.shape == (len(raw["y_train"]), 1, 7, 7)


def test_wrong_hash_stops_with_one_message(tiny_workdir):
    cfg = yaml.safe_load((tiny_workdir / "config" / "tiny.yaml").read_text())
    cfg["data"]["mnist"]["sha256"]["t10k-labels-idx1-ubyte"] = "ab" * 32
    (tiny_workdir / "config" / "badhash.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        snakemake_cmd(tiny_workdir, "--cores", "1", TARGETS[0], configfile="config/badhash.yaml"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "every configured source failed" in out
    assert "local: checksum mismatch: t10k-labels-idx1-ubyte" in out
    assert "data.mnist.local_dir" in out
    assert not (tiny_workdir / "resources" / "mnist" / "t10k-labels-idx1-ubyte").exists()


def test_cifar_dag(tiny_workdir):
    """The CIFAR rules resolve (dry run): download (local rule) then GCN + ZCA."""
    proc = run_snakemake(
        tiny_workdir,
        "-n",
        "--cores",
        "1",
        "results/data/cifar10-zca.npz",
        "results/data/cifar100-zca.npz",
    )
    out = proc.stdout + proc.stderr
    for rule in ("download_cifar", "prepare_cifar_zca"):
        assert rule in out
    assert "resources/cifar10" in out and "resources/cifar100" in out
