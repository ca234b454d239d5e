"""Seeds as a scale knob (sgdvi.claims.seeds): a count of trajectory seeds becomes 42, 43, ...;
experiments.<name>.seeds: k becomes the experiment itself plus replicas <name>-seed2..k with
the training seed changed, next to it in run:; idempotent."""

from __future__ import annotations

import copy

import pytest

from sgdvi.claims import seeds


def config() -> dict:
    return {
        "run": ["lenet-mnist", "fc-mnist7", "fc-mnist7-authors"],
        "experiments": {
            "lenet-mnist": {"seed": 42, "seeds": 3, "epochs": 50},
            "fc-mnist7": {"seed": 42, "seeds": 1, "epochs": 50},
            "fc-mnist7-authors": {"seed": 7, "seeds": 2, "epochs": 50},
            "allcnn-cifar10": {"seed": 42, "seeds": 2},  # not in run: replicas defined only
        },
        "trajectory": {
            "seeds": 4,
            "variants": {"authors": {"seeds": 10, "lr": 0.1}, "off": None},
        },  # fmt: skip
    }


def test_counts_become_seed_lists():
    c = seeds.expand(config())
    assert c["trajectory"]["seeds"] == [42, 43, 44, 45]
    assert c["trajectory"]["variants"]["authors"]["seeds"] == list(range(42, 52))
    assert seeds.seed_list([42, 43, 44], "x") == [42, 43, 44]  # a list stays as written
    with pytest.raises(ValueError, match="trajectory.seeds: a count of seeds must be at least 1"):
        seeds.expand({"trajectory": {"seeds": 0}})


def test_replicas_change_only_the_training_seed_and_follow_the_experiment_in_run():
    before = config()
    c = seeds.expand(copy.deepcopy(before))
    assert c["run"] == ["lenet-mnist", "lenet-mnist-seed2", "lenet-mnist-seed3", "fc-mnist7",
                        "fc-mnist7-authors", "fc-mnist7-authors-seed2"]  # fmt: skip
    exps = c["experiments"]
    assert exps["lenet-mnist"] == before["experiments"]["lenet-mnist"]  # the first run unchanged
    assert exps["lenet-mnist-seed3"] == {"seed": 44, "seeds": 1, "epochs": 50}
    assert exps["fc-mnist7-authors-seed2"]["seed"] == 8
    assert "allcnn-cifar10-seed2" in exps and "allcnn-cifar10-seed2" not in c["run"]
    assert seeds.replica_of("lenet-mnist-seed3", exps) == "lenet-mnist"
    assert seeds.replica_of("lenet-mnist", exps) is None


def test_expand_is_idempotent():
    once = seeds.expand(config())
    twice = seeds.expand(copy.deepcopy(once))
    assert twice == once
