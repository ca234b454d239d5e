"""The comparison with the paper: table logic on handmade inputs, and the DAG.

The tables are checked against numbers written here by hand (not recomputed with the module's
own helpers); the dry runs check that the authors' setting, its cause variants, fig1b-authors
and the comparison tables resolve from the shipped configs.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sgdvi.comparison import COLUMNS, comparison_table, describe_options, variants_table
from sgdvi.infra.parquet import read_table

import dag_tools

REPO = Path(__file__).resolve().parents[1]

FIGURES = {"fig1a": "lenet-mnist", "fig1b": "fc-mnist7", "fig1b-authors": "fc-mnist7-authors"}


def diffusion_rows() -> pd.DataFrame:
    """Three experiments; the 0.2 snapshots must be ignored (the 100 % one counts)."""
    rows = []
    for exp, n, d, final in (
        ("lenet-mnist", 60000, 13338, (0.6e-3, 4e-3, 2.0)),
        ("fc-mnist7", 60000, 3978, (5e-3, 50e-3, 16.0)),
        ("fc-mnist7-authors", 12665, 3978, (1.8e-3, 37e-3, 1.0)),
    ):
        rows.append(
            {"experiment": exp, "fraction": 0.2, "N": n, "d": d, "mean": 9.0, "std": 9.0,
             "rank": 9, "rank_pct": 99.0}
        )  # fmt: skip
        rows.append(
            {"experiment": exp, "fraction": 1.0, "N": n, "d": d, "mean": final[0],
             "std": final[1], "rank": round(final[2] * d / 100), "rank_pct": final[2]}
        )  # fmt: skip
    return pd.DataFrame(rows)


def trajectory_rows() -> pd.DataFrame:
    base = {
        "low_freq_p_value_lower": 0.5,
        "ac_frac_outside_shuffle": 0.004,
        "ac_frac_outside_ou": 0.9,
        "error_last10pct_mean": 0.01,
        "grad_norm_normalised_initial": 0.04,
        "grad_norm_normalised_after_burn_in": 0.01,
    }
    settings = {"stated": {"lr": 0.001, "n_train": 30596}, "authors": {"lr": 0.1, "n_train": 2048}}
    rows = [
        # stated: a low-frequency deficit, AC outside the band but less than a random walk
        {"variant": "stated", "seed": 42, "low_freq_ratio": 0.6, "low_freq_p_value": 1.0,
         "ac_frac_outside": 0.80, "ac_frac_outside_walk": 0.86, "ac_p_value": 0.005,
         "grad_norm_normalised_last10pct_mean": 2e-4},
        {"variant": "stated", "seed": 43, "low_freq_ratio": 0.4, "low_freq_p_value": 1.0,
         "ac_frac_outside": 0.82, "ac_frac_outside_walk": 0.86, "ac_p_value": 0.005,
         "grad_norm_normalised_last10pct_mean": 2e-4},
        # authors: a significant excess in both seeds, AC beyond the random walk
        {"variant": "authors", "seed": 42, "low_freq_ratio": 1.5, "low_freq_p_value": 0.005,
         "ac_frac_outside": 0.95, "ac_frac_outside_walk": 0.90, "ac_p_value": 0.005,
         "grad_norm_normalised_last10pct_mean": 0.01},
        {"variant": "authors", "seed": 43, "low_freq_ratio": 1.3, "low_freq_p_value": 0.01,
         "ac_frac_outside": 0.93, "ac_frac_outside_walk": 0.90, "ac_p_value": 0.005,
         "grad_norm_normalised_last10pct_mean": 0.01},
    ]  # fmt: skip
    return pd.DataFrame([base | settings[r["variant"]] | r for r in rows])


def row(table: pd.DataFrame, figure: str, quantity_start: str) -> pd.Series:
    hit = table[(table["figure"] == figure) & table["quantity"].str.startswith(quantity_start)]
    assert len(hit) == 1, (figure, quantity_start, table[["figure", "quantity"]])
    return hit.iloc[0]


def test_comparison_table_diffusion_rows_and_remark16():
    t = comparison_table(diffusion_rows(), trajectory_rows(), FIGURES)
    assert tuple(t.columns) == COLUMNS
    r = row(t, "Fig. 1b", "rank")
    assert (r.paper, r.stated, r.authors) == (0.6, 16.0, 1.0)
    assert r.ratio_stated == pytest.approx(16.0 / 0.6) and r.ratio_authors == pytest.approx(1 / 0.6)
    assert (r.source_stated, r.source_authors) == ("fc-mnist7", "fc-mnist7-authors")
    r = row(t, "Fig. 1b", "mean")
    assert (r.paper, r.stated, r.authors) == (0.9e-3, 5e-3, 1.8e-3)
    assert r.ratio_authors == pytest.approx(2.0)
    # Fig. 1a: the authors ran it as stated, so both columns hold the same run
    r = row(t, "Fig. 1a", "std")
    assert (r.paper, r.stated, r.authors) == (2.11e-3, 4e-3, 4e-3)
    assert "as stated" in r.note
    # Remark 16: rank(lenet)/rank(fc) = 2/16 (fails) stated, 2/1 (holds) authors; paper 3
    r = row(t, "Remark 16", "rank")
    assert r.paper == pytest.approx(3.0)
    assert r.stated == pytest.approx(0.125) and r.authors == pytest.approx(2.0)
    assert not r.holds_stated
    assert bool(r.holds_authors)


def test_comparison_table_trajectory_rows():
    t = comparison_table(diffusion_rows(), trajectory_rows(), FIGURES)
    r = row(t, "Fig. 3a", "low-frequency")
    assert r.stated == pytest.approx(0.5) and r.authors == pytest.approx(1.4)
    assert math.isnan(r.paper) and math.isnan(r.ratio_stated)
    assert not r.holds_stated and bool(r.holds_authors)
    r = row(t, "Fig. 3b", "fraction of lags")
    assert r.stated == pytest.approx(0.81) and bool(r.holds_stated) and bool(r.holds_authors)
    r = row(t, "Fig. 3b", "lags outside the band, SGD minus")
    assert r.stated == pytest.approx(0.81 - 0.86) and not r.holds_stated
    assert r.authors == pytest.approx(0.94 - 0.90) and bool(r.holds_authors)
    r = row(t, "Fig. 3c", "drop")
    assert r.paper == 3.0
    # from the first epoch after burn-in (Remark 18's "next 10^5 epochs"), not the very first
    assert r.stated == pytest.approx(0.01 / 2e-4) and r.authors == pytest.approx(1.0)
    assert r.ratio_authors == pytest.approx(1.0 / 3.0)
    assert "stated 200" in r.note and "authors' 4" in r.note  # burn-in included: 0.04 / ...
    r = row(t, "Fig. 3c", "|grad f|")
    assert r.stated == pytest.approx(2e-4)
    assert r.source_authors == "trajectory variant 'authors' (lr 0.1, 2048 images)"


def test_comparison_table_without_authors_runs_or_variant_column(tmp_path):
    """A trajectory table from before the `variant` column counts as the stated setting;
    missing experiments and variants give NaN (not an error), with a note."""
    traj = trajectory_rows()
    traj = traj[traj["variant"] == "stated"].drop(columns="variant")
    diff = diffusion_rows()
    diff = diff[diff["experiment"] != "fc-mnist7-authors"]
    t = comparison_table(diff, traj, FIGURES)
    r = row(t, "Fig. 1b", "rank")
    assert r.stated == 16.0 and math.isnan(r.authors) and "not run" in r.note
    r = row(t, "Fig. 3a", "low-frequency")
    assert r.stated == pytest.approx(0.5) and math.isnan(r.authors)
    assert pd.isna(r.holds_authors) and r.source_authors == "not run"
    assert r.source_stated == "trajectory variant 'stated' (lr 0.001, 30596 images)"
    t = comparison_table(diff, None, {"fig1a": "lenet-mnist", "fig1b": "fc-mnist7"})
    assert t["stated"].notna().sum() == 7  # Figs. 1a, 1b and Remark 16 only
    # the table survives a parquet round trip (nullable booleans)
    assert t["holds_stated"].dtype == "boolean"
    # rows of another stage are appended in the same columns
    extra = pd.DataFrame([{"figure": "Sec. III", "quantity": "current", "stated": 1.0}])
    t2 = comparison_table(diff, None, FIGURES, extra_rows=extra)
    assert len(t2) == len(t) + 1 and t2.iloc[-1]["quantity"] == "current"
    assert t2["holds_authors"].dtype == "boolean"
    t2.to_parquet(tmp_path / "t2.parquet")
    with pytest.raises(ValueError, match="unknown columns"):
        comparison_table(diff, None, FIGURES, extra_rows=extra.assign(bogus=1))


def test_variants_table_and_described_differences(tmp_path):
    stated = {"size": 7, "classes": None, "per_class": None, "sample_seed": 42,
              "authors_wrap": False, "normalisation": "raw255"}  # fmt: skip
    exps = {
        "fc-mnist7": {"dataset": "mnist7", "num_classes": 10, "options": stated},
        "fc-mnist7-01": {"dataset": "mnist7-01", "num_classes": 10,
                         "options": stated | {"classes": [0, 1]}},
        "fc-mnist7-authors": {"dataset": "mnist7-01-wrap", "num_classes": 10,
                              "options": stated | {"classes": [0, 1], "authors_wrap": True,
                                                   "normalisation": "unit"}},
    }  # fmt: skip
    metrics = {"fc-mnist7": pd.DataFrame({"test_error": [0.1, 0.024]})}
    v = variants_table(diffusion_rows(), exps, "fc-mnist7", metrics)
    assert list(v["experiment"]) == list(exps)
    assert list(v["differs_by"]) == [
        "(stated setting)",
        "digits 0/1",
        "digits 0/1, uint8 wrap, /255",
    ]
    a = v.set_index("experiment").loc["fc-mnist7-authors"]
    assert a.rank_pct == 1.0 and a.rank_pct_ratio_paper == pytest.approx(1 / 0.6)
    assert a.rank_pct_vs_stated == pytest.approx(1 / 16) and a.N == 12665
    assert a.classes == "0/1" and a.authors_wrap and a.normalisation == "unit"
    assert math.isnan(a.test_error)
    s = v.set_index("experiment").loc["fc-mnist7"]
    assert s.test_error == 0.024 and s.mean_vs_stated == 1.0
    assert math.isnan(v.set_index("experiment").loc["fc-mnist7-01"]["rank_pct"])  # not run
    v.to_parquet(tmp_path / "v.parquet")
    assert describe_options(stated, stated) == ""


# ------------------------------------------------------------------------------ the DAG


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("compare") / "work"
    shutil.copytree(REPO / "config", work / "config")
    return work


def _by_rule(jobs, rule):
    return [j for j in jobs if j.rule == rule]


def test_paper_mnist_dry_run_lists_every_new_target(shipped):
    jobs = dag_tools.dry_run(shipped, configfile="config/paper-mnist.yaml")
    outputs = {o for j in jobs for o in j.outputs}
    for target in (
        "results/figures/fig1b-authors.pdf",
        "results/tables/paper_comparison.csv",
        "results/tables/paper_comparison.parquet",
        "results/tables/fig1b_variants.csv",
        "results/data/mnist7-01-wrap.npz",
        "results/data/mnist7-01.npz",
        "results/data/mnist7-wrap.npz",
        "results/data/mnist7-unit.npz",
        "results/fc-mnist7-authors/snapshots/0.2.pt",
    ):
        assert target in outputs, target
    trained = {j.outputs[0] for j in _by_rule(jobs, "train")}
    for name in ("fc-mnist7-authors", "fc-mnist7-01", "fc-mnist7-wrap", "fc-mnist7-unit"):
        assert f"results/{name}/metrics.parquet" in trained
    # one prepare_mnist rule for every MNIST dataset the run needs
    prepared = sorted(j.outputs[0] for j in _by_rule(jobs, "prepare_mnist"))
    assert "results/data/mnist7-5class.npz" in prepared and len(prepared) == len(set(prepared))
    (cmp,) = _by_rule(jobs, "paper_comparison")
    assert "results/tables/diffusion.parquet" in cmp.inputs
    assert "results/fc-mnist7-authors/metrics.parquet" in cmp.inputs


def test_quick_profile_builds_fig1b_authors_and_the_comparison(shipped):
    jobs = dag_tools.dry_run(shipped, configfile="config/quick.yaml")
    outputs = {o for j in jobs for o in j.outputs}
    assert {"results/figures/fig1b-authors.pdf", "results/tables/paper_comparison.csv"} <= outputs
    trains = {j.outputs[0] for j in _by_rule(jobs, "train")}
    assert trains == {
        f"results/{n}/metrics.parquet" for n in ("lenet-mnist", "fc-mnist7", "fc-mnist7-authors")
    }


def test_fig1b_authors_plans_only_its_own_data(shipped):
    jobs = dag_tools.dry_run(shipped, "results/figures/fig1b-authors.pdf", configfile=None)
    assert [j.outputs[0] for j in _by_rule(jobs, "prepare_mnist")] == [
        "results/data/mnist7-01-wrap.npz"
    ]
    assert {j.rule for j in jobs} == {
        "download_mnist", "prepare_mnist", "train", "snapshot", "diffusion_spectrum",
        "diffusion_figure",
    }  # fmt: skip


def test_shipped_datasets_are_what_the_plan_fixes():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert cfg["datasets"]["mnist7-01-wrap"] == {
        "size": 7, "classes": [0, 1], "authors_wrap": True, "normalisation": "unit"
    }  # fmt: skip
    assert cfg["datasets"]["mnist7-4class-512-wrap"] == {
        "size": 7, "classes": [0, 1, 2, 3], "per_class": 512, "sample_seed": 42,
        "authors_wrap": True, "normalisation": "unit",
    }  # fmt: skip


@pytest.mark.slow
def test_authors_setting_runs_on_generated_mnist(tiny_workdir):
    """fc-mnist7-authors end to end on generated MNIST: digits 0/1, wrapped, a 10-way head
    (d = 3,978), Fig. 1b-authors and both comparison tables."""
    import numpy as np

    from sgdvi.data import load_dataset_options, load_prepared

    from conftest import run_snakemake

    cfg = yaml.safe_load((tiny_workdir / "config" / "tiny.yaml").read_text())
    cfg["run"] = ["fc-mnist7-authors"]
    cfg["experiments"] = {
        "fc-mnist7-authors": {"epochs": 3, "batch_size": 32, "lr_schedule": [[0, 0.05]],
                              "train_subset": None, "snapshots": [1.0]}
    }  # fmt: skip
    cfg["trajectory"]["enabled"] = False
    cfg["diffusion"]["subset"] = None  # the 120 images of digits 0/1 (tiny: 200 by default)
    (tiny_workdir / "config" / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = ["results/figures/fig1b-authors.pdf", "results/tables/paper_comparison.csv"]
    run_snakemake(tiny_workdir, "--cores", "2", *targets)
    res = tiny_workdir / "results"
    data = load_prepared(res / "data" / "mnist7-01-wrap.npz")
    assert set(np.unique(data.y_train.numpy())) == {0, 1}
    assert load_dataset_options(res / "data" / "mnist7-01-wrap.npz")["authors_wrap"] is True
    assert float(data.x_train.max()) <= 1.0  # /255 after the wrap
    t = read_table(res / "tables" / "diffusion.parquet")
    assert list(t["d"]) == [3978] and list(t["N"]) == [len(data.y_train)]
    cmp = pd.read_csv(res / "tables" / "paper_comparison.csv")
    r = cmp[(cmp["figure"] == "Fig. 1b") & cmp["quantity"].str.startswith("rank")].iloc[0]
    assert r["authors"] == pytest.approx(t["rank_pct"].iloc[0]) and math.isnan(r["stated"])
    v = pd.read_csv(res / "tables" / "fig1b_variants.csv")
    assert list(v["experiment"]) == ["fc-mnist7-authors"] and v["num_classes"].iloc[0] == 10
    assert (res / "figures" / "fig1b-authors.png").read_bytes()[:4] == b"\x89PNG"
