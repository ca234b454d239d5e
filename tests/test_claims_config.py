"""The claims ledger in the configuration and the DAG: the library defaults are the schema's,
seed counts go through sgdvi.config.load, and dry runs of the paper profile and of the claims
profile plan the seeds, replicas, calibration and ledger jobs."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from sgdvi.claims import calibration, rows
from sgdvi.config import load, read_schema, schema_default

import dag_tools
from conftest import deep_update

REPO = Path(__file__).resolve().parents[1]


def test_library_defaults_are_the_schema_defaults():
    schema = read_schema()
    st, cs = rows.Settings(), calibration.Settings()
    for key in ("alpha", "level", "low_rank_max_pct", "about_factor"):
        assert getattr(st, key) == schema_default(schema, f"claims.{key}"), key
    for key in ("n_surrogates", "n_surrogates_band", "n_surrogates_lemma20", "fpr_factor", "seed"):
        assert getattr(cs, key) == schema_default(schema, f"claims.calibration.{key}"), key
    same = {
        "current_alpha": "irreversibility.alpha",
        "n_blocks": "irreversibility.n_blocks",
        "growth_max": "irreversibility.growth_max",
        "n_permutations": "trajectory.n_permutations",
        "low_frequency_cutoff": "trajectory.low_frequency_cutoff",
        "n_lags": "trajectory.n_lags",
        "max_lag_fraction": "trajectory.max_lag_fraction",
    }
    for key, path in same.items():
        assert getattr(cs, key) == schema_default(schema, path), key
    assert st.current_alpha == schema_default(schema, "irreversibility.alpha")
    assert {f.name for f in dataclasses.fields(cs)} >= set(same)


def shipped(*files: str) -> dict:
    config: dict = {}
    for f in files:
        config = deep_update(config, yaml.safe_load((REPO / f).read_text()))
    return load(config)


def test_paper_profile_seeds_and_claims_profile_replicas():
    paper = shipped("config/config.yaml", "config/paper-mnist.yaml")
    assert paper["trajectory"]["seeds"] == [42, 43, 44]
    assert paper["trajectory"]["variants"]["authors"]["seeds"] == list(range(42, 52))
    claims = shipped("config/config.yaml", "config/paper-mnist.yaml", "config/claims.yaml")
    assert claims["trajectory"]["seeds"] == list(range(42, 62))
    assert claims["trajectory"]["variants"]["authors"]["seeds"] == list(range(42, 62))
    assert claims["run"][:3] == ["lenet-mnist", "lenet-mnist-seed2", "lenet-mnist-seed3"]
    assert claims["experiments"]["fc-mnist7-authors-seed3"]["seed"] == 44
    base = {k: v for k, v in claims["experiments"]["fc-mnist7"].items() if k != "seeds"}
    replica = {k: v for k, v in claims["experiments"]["fc-mnist7-seed2"].items() if k != "seeds"}
    assert replica == base | {"seed": base["seed"] + 1}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("claims") / "work"
    shutil.copytree(REPO / "config", work / "config")
    return work


@pytest.mark.parametrize(
    "files,stated,authors,trainings",
    [
        (["config/paper-mnist.yaml"], 3, 10, 6),
        (["config/paper-mnist.yaml", "config/claims.yaml"], 20, 20, 12),
    ],
)
def test_dry_run_plans_the_seeds_the_calibration_and_the_ledger(
    workdir, files, stated, authors, trainings
):
    jobs = dag_tools.dry_run(workdir, "--configfile", *files, "--", configfile=None)
    count = Counter(j.rule for j in jobs)
    assert count["trajectory_train"] == count["irreversibility_current"] == stated + authors
    assert count["train"] == trainings
    assert count["claims_calibration"] == 2 and count["claims_ledger"] == 1
    ledger = next(j for j in jobs if j.rule == "claims_ledger")
    assert "results/claims/calibration_authors.parquet" in ledger.inputs
    theory = next(j for j in jobs if j.rule == "theory_table")
    assert "results/claims/calibration_stated_rows.parquet" in theory.inputs
    landing = next(j for j in jobs if j.rule == "report_landing")
    assert "results/tables/claims.parquet" in landing.inputs
    # calibration from the first 3 seeds of a variant (claims.calibration.max_seeds)
    cal = next(j for j in jobs if j.rule == "claims_calibration" and "authors" in j.outputs[0])
    assert cal.inputs == [f"results/trajectory/authors/seed{s}/current.npz" for s in (42, 43, 44)]
    # replicas are not Fig. 1b's cause variants
    comparison = next(j for j in jobs if j.rule == "paper_comparison")
    assert not any("-seed" in i for i in comparison.inputs)
