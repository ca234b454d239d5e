"""Resource models of the workflow (``mem_mb`` of diffusion_spectrum and trajectory_analyse)
from the real prepared dataset sizes, computed when the DAG is built (no torch import)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from sgdvi.config import (
    MNIST_TRAIN_PER_DIGIT,
    dataset_train_size,
    load,
    read_schema,
    schema_default,
    used_train_size,
    weight_count,
)
from sgdvi.diffusion import memory
from sgdvi.trajectory.memory import analyse_mem_mb

from conftest import workflow_config


def config_with(datasets: dict, experiments: dict | None = None) -> dict:
    return load({"run": [], "datasets": datasets, "experiments": experiments or {}})


@pytest.fixture(scope="module")
def paper() -> dict:
    return workflow_config("config/config.yaml")


def test_official_counts_match_the_data_module():
    from sgdvi.data.mnist import OFFICIAL_TRAIN_PER_DIGIT

    assert MNIST_TRAIN_PER_DIGIT == OFFICIAL_TRAIN_PER_DIGIT
    assert sum(MNIST_TRAIN_PER_DIGIT) == 60000


def test_prepared_dataset_sizes(paper):
    assert dataset_train_size(paper, "mnist28") == 60000
    assert dataset_train_size(paper, "mnist7-01-wrap") == 5923 + 6742 == 12665
    assert dataset_train_size(paper, "mnist7-5class") == 30596  # tiny-fc's digits 0-4
    assert dataset_train_size(paper, "mnist7-4class-512-wrap") == 512 * 4 == 2048
    assert dataset_train_size(paper, "cifar10-zca") == dataset_train_size(paper, "cifar100-zca")
    assert dataset_train_size(paper, "cifar100-zca") == 50000
    # a per-class cap above a digit's count keeps the whole digit (5 has 5,421 images)
    capped = config_with({"big": {"size": 7, "classes": [1, 5], "per_class": 6000}})
    assert dataset_train_size(capped, "big") == 6000 + 5421


def test_subsets_cap_in_the_rule_order(paper):
    """diffusion.subset first, else the experiment's train_subset, each capped by the data."""
    assert used_train_size(paper, "mnist7-01-wrap", None, None) == 12665
    assert used_train_size(paper, "mnist7-01-wrap", 10000, None) == 10000
    assert used_train_size(paper, "mnist7-01-wrap", None, 500) == 500
    assert used_train_size(paper, "mnist7-01-wrap", 20000, 500) == 12665
    assert used_train_size(paper, "mnist7-01-wrap", 300, 500) == 300


def test_spectrum_memory_uses_the_real_dataset_size():
    """small-lenet on digits 0/1 stores 12,665 float32 gradient rows, not 60,000."""
    datasets = {"all": {"size": 28}, "pair": {"size": 28, "classes": [0, 1]}}
    lenet = {"model": "small-lenet", "lr_schedule": [[0, 0.1]], "num_classes": 10}
    config = config_with(
        datasets, {"on-all": lenet | {"dataset": "all"}, "on-pair": lenet | {"dataset": "pair"}}
    )
    d = weight_count("small-lenet", 10)
    assert d == 13338
    for name, n in (("on-all", 60000), ("on-pair", 12665)):
        # independent of spectrum_job_mb: the fast solver's bytes written out (float32
        # gradients 4 N d, Krylov basis and image 2 * 8 d k, refinement block 3 * 8 d k, one
        # chunk 16 * chunk d with k = min(d, max_dim)), the inputs 4 N 784, then the base
        k = min(d, 4096)
        work = max(4 * n * d + 5 * 8 * d * k + 16 * 1000 * d, 2 * 8 * d * d + 16 * 1000 * d)
        expected = int((work + 4 * n * 784) / 2**20) + memory.BASE_MB
        assert memory.spectrum_job_mb(config, name) == expected
    assert memory.spectrum_job_mb(config, "on-pair") < memory.spectrum_job_mb(config, "on-all")


def test_few_examples_plan_the_gram_solver():
    """512 images x 2 digits = 1,024 < d = 3,458 (a 2-way head): auto takes the N x N Gram
    matrix."""
    config = config_with(
        {"few": {"size": 7, "classes": [0, 1], "per_class": 512}},
        {"fc": {"dataset": "few", "model": "small-fc", "lr_schedule": [[0, 0.1]]}},
    )
    n, d = 1024, weight_count("small-fc", 2)
    assert d == 3458
    work = 4 * n * d + 2 * 8 * n * n + 16 * 1000 * d
    assert memory.spectrum_job_mb(config, "fc") == int((work + 4 * n * 49) / 2**20) + 1500
    assert memory.planned_solver("auto", d, 4000, "float32", n) == "gram"


def test_memory_keyword_defaults_are_the_schema_defaults():
    params = inspect.signature(memory.peak_mb).parameters
    schema = read_schema()
    assert params["chunk_size"].default == schema_default(schema, "diffusion.chunk_size")
    assert params["max_dim"].default == schema_default(schema, "diffusion.lanczos.max_dim")


def test_trajectory_analysis_memory():
    """99,000 stored epochs of 917 float32 weights, five copies, plus 1 GB."""
    stated = {"epochs": 100000, "burn_in": 1000, "num_classes": 5}
    assert analyse_mem_mb(stated) == int(5 * 99000 * 917 * 4 / 1048576) + 1000 == 2731
    authors = {"epochs": 100000, "burn_in": 1000, "num_classes": 4}  # d = 900
    assert analyse_mem_mb(authors) == int(5 * 99000 * 900 * 4 / 1048576) + 1000


def test_the_models_import_no_torch():
    """The Snakefile evaluates them when it builds the DAG: torch must stay out."""
    code = (
        "import sys, sgdvi.diffusion.memory, sgdvi.trajectory.memory, sgdvi.config; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
