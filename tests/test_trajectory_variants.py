"""Trajectory variants (to compare with the paper): the authors' Fig. 3 run beside the stated
one, in the DAG."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sgdvi.trajectory.variants import figure_name, parse_figure_tag, resolve_variants

import dag_tools

REPO = Path(__file__).resolve().parents[1]
BASE = {
    "enabled": True,
    "dataset": "mnist7-5class",
    "num_classes": None,
    "seeds": [42, 43],
    "lr": 0.001,
    "epochs": 100,
    "variants": {"authors": {"dataset": "mnist7-4class-512-wrap", "num_classes": 4, "lr": 0.1}},
}
CLASSES = {"mnist7-5class": 5, "mnist7-4class-512-wrap": 4}


def test_variants_merge_over_the_stated_settings():
    v = resolve_variants(BASE, CLASSES.__getitem__)
    assert list(v) == ["stated", "authors"]
    assert v["stated"]["num_classes"] == 5 and v["stated"]["lr"] == 0.001
    assert "variants" not in v["stated"] and "enabled" not in v["stated"]
    a = v["authors"]
    assert (a["dataset"], a["num_classes"], a["lr"]) == ("mnist7-4class-512-wrap", 4, 0.1)
    assert a["seeds"] == [42, 43] and a["epochs"] == 100  # inherited
    off = resolve_variants(BASE | {"variants": {"authors": None}}, CLASSES.__getitem__)
    assert list(off) == ["stated"]
    with pytest.raises(ValueError, match="stated"):
        resolve_variants(BASE | {"variants": {"stated": {"lr": 1}}}, CLASSES.__getitem__)


def test_figure_names():
    assert figure_name("a", "stated") == "fig3a" and figure_name("c", "authors") == "fig3c-authors"
    assert parse_figure_tag("b") == ("b", "stated")
    assert parse_figure_tag("b-authors") == ("b", "authors")


@pytest.fixture(scope="module")
def quick_jobs(tmp_path_factory) -> list[dag_tools.PlannedJob]:
    work = tmp_path_factory.mktemp("variants") / "work"
    shutil.copytree(REPO / "config", work / "config")
    return dag_tools.dry_run(work, configfile="config/quick.yaml")


def test_quick_profile_plans_both_variants(quick_jobs):
    outputs = {o for j in quick_jobs for o in j.outputs}
    for panel in "abc":
        for name in (f"fig3{panel}", f"fig3{panel}-authors"):
            assert f"results/figures/{name}.pdf" in outputs, name
    trains = {j.outputs[0]: j for j in quick_jobs if j.rule == "trajectory_train"}
    assert set(trains) == {
        f"results/trajectory/{v}/seed{s}/weights.npy"
        for v in ("stated", "authors")
        for s in (42, 43)
    }
    authors = trains["results/trajectory/authors/seed42/weights.npy"]
    assert authors.inputs == ["results/data/mnist7-4class-512-wrap.npz"]
    stated = trains["results/trajectory/stated/seed42/weights.npy"]
    assert stated.inputs == ["results/data/mnist7-5class.npz"]
    # each figure reads only its own variant's runs
    fig = next(j for j in quick_jobs if "results/figures/fig3c-authors.pdf" in j.outputs)
    assert fig.inputs == [f"results/trajectory/authors/seed{s}/metrics.parquet" for s in (42, 43)]
    table = next(j for j in quick_jobs if j.rule == "trajectory_table")
    for seed in (42, 43):
        for name in ("analysis.npz", "metrics.parquet", "run.json"):
            assert f"results/trajectory/authors/seed{seed}/{name}" in table.inputs


def test_a_variant_set_to_null_is_off(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(REPO / "config", work / "config")
    (work / "config" / "off.yaml").write_text("trajectory:\n  variants: {authors: null}\n")
    jobs = dag_tools.dry_run(
        work,
        "results/tables/trajectory.parquet",
        "--configfile",
        "config/quick.yaml",
        "config/off.yaml",
        configfile=None,
    )
    assert {j.rule for j in jobs if j.rule.startswith("trajectory")} == {
        "trajectory_train",
        "trajectory_analyse",
        "trajectory_table",
    }
    assert not [o for j in jobs for o in j.outputs if "authors" in o]
