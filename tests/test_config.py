"""Config validation: the schema and the cross-key checks reject bad configs, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sgdvi.config import ConfigError, fraction_tag, snapshot_epoch, validate_config

from conftest import deep_update

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_shipped_configs_are_valid(paper):
    validate_config(paper)
    quick = deep_update(paper, yaml.safe_load((REPO / "config" / "quick.yaml").read_text()))
    validate_config(quick)
    cifar = deep_update(quick, yaml.safe_load((REPO / "config" / "cifar-quick.yaml").read_text()))
    validate_config(cifar)
    assert len(cifar["run"]) == 5
    tiny = deep_update(paper, yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text()))
    validate_config(tiny)


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
    ],
)
def test_bad_configs_are_rejected_naming_the_key(paper, change, key_in_message):
    with pytest.raises(ConfigError, match=key_in_message.replace(".", r"\.")):
        validate_config(deep_update(paper, change))


def test_snapshot_naming_and_epochs():
    assert [fraction_tag(f) for f in (0.2, 0.4, 1, 1.0)] == ["0.2", "0.4", "1.0", "1.0"]
    assert [snapshot_epoch(f, 50) for f in (0.2, 0.4, 1.0)] == [10, 20, 50]
    assert snapshot_epoch(0.01, 5) == 1
