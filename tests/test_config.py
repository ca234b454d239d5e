"""Config validation through the one entry point ``sgdvi.config.load``: the schema and the
cross-key checks reject bad configs, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sgdvi.config import (
    ConfigError,
    dataset_names,
    dataset_options,
    experiment_num_classes,
    fraction_tag,
    load,
    snapshot_epoch,
    weight_count,
)

from conftest import deep_update, workflow_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw_paper() -> dict:
    """config/config.yaml as written (before load fills the schema defaults)."""
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def paper() -> dict:
    return workflow_config("config/config.yaml")


def test_shipped_configs_are_valid():
    workflow_config("config/config.yaml", "config/quick.yaml")
    cifar = workflow_config("config/config.yaml", "config/quick.yaml", "config/cifar-quick.yaml")
    assert len(cifar["run"]) == 6
    workflow_config("config/config.yaml", "config/paper-mnist.yaml")
    workflow_config("config/config.yaml", "tests/tiny.yaml")


@pytest.mark.parametrize(
    ("change", "key_in_message"),
    [
        ({"epochz": 3}, "epochz"),
        ({"experiments": {"lenet-mnist": {"epochs": -1}}}, "experiments.lenet-mnist.epochs"),
        ({"experiments": {"lenet-mnist": {"epochs": "ten"}}}, "experiments.lenet-mnist.epochs"),
        ({"experiments": {"lenet-mnist": {"snapshots": [0.2, 1.5]}}}, "snapshots"),
        ({"experiments": {"lenet-mnist": {"snapshots": [0.0]}}}, "snapshots"),
        ({"experiments": {"lenet-mnist": {"model": "resnet"}}}, "experiments.lenet-mnist.model"),
        ({"experiments": {"lenet-mnist": {"dataset": "svhn"}}}, "experiments.lenet-mnist.dataset"),
        ({"experiments": {"lenet-mnist": {"batchsize": 3}}}, "batchsize"),
        ({"device": "tpu"}, "device"),
        ({"diffusion": {"formula": "A3"}}, "diffusion.formula"),
        ({"run": ["lenet-mnist", "no-such-experiment"]}, "no-such-experiment"),
        (
            {"experiments": {"lenet-mnist": {"dataset": "mnist7"}}},
            "experiments.lenet-mnist.dataset",
        ),
        ({"experiments": {"lenet-mnist": {"lr_schedule": [[3, 0.1]]}}}, "lr_schedule"),
        ({"trajectory": {"burn_in": 10**6}}, "trajectory.burn_in"),
        # datasets: options, references, model/dataset fit by image size, head size
        ({"datasets": {"mnist7": {"size": 14}}}, "datasets.mnist7.size"),
        ({"datasets": {"mnist7": {"clases": [0, 1]}}}, "clases"),
        ({"datasets": {"mnist7": {"classes": [0, 10]}}}, "datasets.mnist7.classes"),
        ({"datasets": {"mnist7": {"per_class": 0}}}, "datasets.mnist7.per_class"),
        ({"datasets": {"cifar10-zca": {"size": 7}}}, "datasets.cifar10-zca"),
        ({"experiments": {"fc-mnist7": {"dataset": "mnist28"}}}, "experiments.fc-mnist7.dataset"),
        (
            {"experiments": {"allcnn-cifar10": {"dataset": "mnist7"}}},
            "experiments.allcnn-cifar10.dataset",
        ),
        (
            {"experiments": {"fc-mnist7": {"dataset": "cifar10-zca"}}},
            "experiments.fc-mnist7.dataset",
        ),
        (
            {
                "datasets": {"odd": {"size": 7, "classes": [3, 5]}},
                "experiments": {"fc-mnist7": {"dataset": "odd"}},
            },
            "experiments.fc-mnist7.num_classes",
        ),
        (
            {"experiments": {"fc-mnist7-authors": {"num_classes": 1}}},
            "experiments.fc-mnist7-authors.num_classes",
        ),
        ({"diffusion": {"figures": {"fig1b-authors": "no-such"}}}, "fig1b-authors"),
        ({"diffusion": {"figures": {"figure-1": "fc-mnist7"}}}, "figure-1"),
    ],
)
def test_bad_configs_are_rejected_naming_the_key(raw_paper, change, key_in_message):
    with pytest.raises(ConfigError, match=key_in_message.replace(".", r"\.")):
        load(deep_update(raw_paper, change))


def test_snapshot_naming_and_epochs():
    assert [fraction_tag(f) for f in (0.2, 0.4, 1, 1.0)] == ["0.2", "0.4", "1.0", "1.0"]
    assert [snapshot_epoch(f, 50) for f in (0.2, 0.4, 1.0)] == [10, 20, 50]
    assert snapshot_epoch(0.01, 5) == 1


def test_datasets_resolve_with_defaults(paper):
    assert {"mnist28", "mnist7", "mnist7-5class", "mnist7-01-wrap", "cifar10-zca"} <= set(
        dataset_names(paper)
    )
    assert dataset_options(paper, "mnist7") == {
        "size": 7,
        "classes": None,
        "per_class": None,
        "sample_seed": 42,
        "authors_wrap": False,
        "normalisation": paper["data"]["mnist"]["normalisation"],
    }
    assert dataset_options(paper, "mnist7-4class-512-wrap") == {
        "size": 7,
        "classes": [0, 1, 2, 3],
        "per_class": 512,
        "sample_seed": 42,
        "authors_wrap": True,
        "normalisation": "unit",
    }
    # only the authors' datasets wrap
    wrapped = {n for n in paper["datasets"] if dataset_options(paper, n)["authors_wrap"]}
    assert wrapped == {"mnist7-wrap", "mnist7-01-wrap", "mnist7-4class-512-wrap"}
    # head sizes: the dataset's class count by default, 10 for the authors' small-fc
    heads = {n: experiment_num_classes(paper, n) for n in paper["experiments"]}
    assert heads["lenet-mnist"] == heads["fc-mnist7"] == heads["fc-mnist7-authors"] == 10
    assert heads["fc-mnist7-01"] == 10 and heads["allcnn-cifar100"] == 100
    assert weight_count("small-fc", heads["fc-mnist7-authors"]) == 3978
    five = deep_update(paper, {"experiments": {"fc-mnist7-01": {"num_classes": None}}})
    assert experiment_num_classes(five, "fc-mnist7-01") == 2


def test_dataset_options_need_the_filled_config(raw_paper):
    """dataset_options supplies no default of its own: the raw file lacks sample_seed for
    mnist7 and only load() puts the schema's 42 there."""
    with pytest.raises(KeyError):
        dataset_options(raw_paper, "mnist7")
    assert dataset_options(load(deep_update(raw_paper, {})), "mnist7")["sample_seed"] == 42


def test_authors_experiments_are_run_and_drawn(paper):
    """fc-mnist7-authors and the three cause variants: the fc-mnist7 settings otherwise."""
    base = paper["experiments"]["fc-mnist7"]
    expect = {
        "fc-mnist7-authors": ("mnist7-01-wrap", [0.2, 0.4, 1.0]),
        "fc-mnist7-01": ("mnist7-01", [1.0]),
        "fc-mnist7-wrap": ("mnist7-wrap", [1.0]),
        "fc-mnist7-unit": ("mnist7-unit", [1.0]),
    }
    for name, (dataset, snapshots) in expect.items():
        exp = paper["experiments"][name]
        assert (exp["dataset"], exp["snapshots"], exp["num_classes"]) == (dataset, snapshots, 10)
        same = {k: v for k, v in exp.items() if k not in ("dataset", "snapshots", "num_classes")}
        assert same == {
            k: v for k, v in base.items() if k not in ("dataset", "snapshots", "num_classes")
        }
        assert name in paper["run"]
    mnist = workflow_config("config/config.yaml", "config/paper-mnist.yaml")
    assert set(expect) <= set(mnist["run"])
    quick = workflow_config("config/config.yaml", "config/quick.yaml")
    assert "fc-mnist7-authors" in quick["run"]
    assert (
        quick["experiments"]["fc-mnist7-authors"]["epochs"]
        == quick["experiments"]["fc-mnist7"]["epochs"]
    )
    assert paper["diffusion"]["figures"]["fig1b-authors"] == "fc-mnist7-authors"


def test_training_gets_the_experiment_head_size(paper):
    """The workflow hands train.py the experiment's settings with num_classes resolved
    (common.smk's experiment()); TrainSettings builds the head from it, not from the name."""
    from sgdvi.training import TrainSettings

    exp = paper["experiments"]["fc-mnist7-authors"]
    resolved = exp | {"num_classes": experiment_num_classes(paper, "fc-mnist7-authors")}
    assert TrainSettings.from_config("fc-mnist7-authors", resolved).num_classes == 10
    two = deep_update(paper, {"experiments": {"fc-mnist7-01": {"num_classes": None}}})
    exp01 = two["experiments"]["fc-mnist7-01"]
    resolved = exp01 | {"num_classes": experiment_num_classes(two, "fc-mnist7-01")}
    assert TrainSettings.from_config("fc-mnist7-01", resolved).num_classes == 2
