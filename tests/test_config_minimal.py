"""A minimal config runs: only the required keys, everything else from the schema defaults.

The workdir's ``config/config.yaml`` (the file the Snakefile always reads) names one new
experiment with only an experiment's required keys (dataset, model, lr_schedule), its figure,
and where the offline test MNIST lies; Snakemake then builds that experiment's D(x) spectra and
figure, every other setting coming from ``workflow/schemas/config.schema.yaml`` through
``sgdvi.config.load``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sgdvi.config import load, read_schema, schema_default, weight_count
from sgdvi.diffusion.compute import load_result
from sgdvi.infra.parquet import read_table

from conftest import fake_mnist, run_snakemake

SCHEMA = read_schema()


def minimal_config(mnist_dir: Path, hashes: dict) -> dict:
    """Required keys only, plus the figure to draw and the offline MNIST source."""
    return {
        "run": ["my-fc"],
        "experiments": {
            "my-fc": {"dataset": "mnist7", "model": "small-fc", "lr_schedule": [[0, 0.05]]}
        },
        "diffusion": {"figures": {"fig9a": "my-fc"}},
        "data": {"mnist": {"sources": ["local"], "local_dir": str(mnist_dir), "sha256": hashes}},
    }


def test_the_minimal_config_gets_every_default():
    config = load(minimal_config(Path("/nowhere"), {}))
    exp = config["experiments"]["my-fc"]
    assert exp["epochs"] == schema_default(SCHEMA, "experiments.<name>.epochs") == 50
    assert exp["snapshots"] == [0.2, 0.4, 1.0] and exp["train_subset"] is None
    assert config["datasets"]["mnist7"]["sample_seed"] == 42
    assert config["data"]["mnist"]["normalisation"] == "raw255"
    assert config["diffusion"]["dense_max_d"] == 4000


def test_a_minimal_config_builds_a_new_experiment_spectrum_and_figure(tmp_path):
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    hashes = fake_mnist(tmp_path / "mnist_raw", n_train=300, n_test=100)
    config = minimal_config(tmp_path / "mnist_raw", hashes)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    spectra = [f"results/my-fc/diffusion/{f}.npz" for f in ("0.2", "0.4", "1.0")]
    run_snakemake(
        work, "--cores", "2", *spectra, "results/figures/fig9a.pdf", configfile="config/config.yaml"
    )
    metrics = read_table(work / "results" / "my-fc" / "metrics.parquet")
    assert len(metrics) == 50  # experiments.<name>.epochs from the schema
    for path, epoch in zip(spectra, (10, 20, 50), strict=True):
        result = load_result(work / path)
        assert (result["n"], result["d"]) == (300, weight_count("small-fc", 10))
        assert result["epoch"] == epoch and result["batch_size"] == 128
        assert result["solver"] == "gram"  # auto: N = 300 < d
    assert (work / "results" / "figures" / "fig9a.pdf").stat().st_size > 1000
    assert (work / "results" / "figures" / "fig9a.png").stat().st_size > 1000
