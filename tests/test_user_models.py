"""Networks by import path (sgdvi.models_registry), the checks before training
(sgdvi.user_inputs), and the ResNet-20 example (sgdvi.examples.resnet)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from sgdvi.config import ConfigError
from sgdvi.examples.resnet import ResNet, resnet20, resnet_weights
from sgdvi.models import count_weights
from sgdvi.models_registry import (
    ModelSpecError,
    add_python_path,
    build_network,
    check_model_output,
    model_label,
    parse_model_spec,
    resolve_model,
)

from conftest import (
    deep_update,
    make_tiny_workdir,
    run_snakemake,
    snakemake_cmd,
    workflow_config,
)

TESTS = Path(__file__).resolve().parent
FIXTURE = "user_model_fixture:make_net"


@pytest.fixture
def on_path(monkeypatch):
    """tests/ on sys.path and PYTHONPATH (restored afterwards), as python_path: does it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    add_python_path([str(TESTS)])


# --------------------------------------------------------------------------- ResNet-20


def test_resnet20_has_he_et_al_weight_count():
    """He et al. (2016) quote 0.27 M weights for ResNet-20 on 3-channel CIFAR: 269,722 with
    option-A shortcuts and bias-free convolutions; one input channel saves 16*9*2 = 288."""
    assert count_weights(resnet20(num_classes=10, in_channels=3)) == 269_722
    assert count_weights(resnet20()) == 269_434
    for blocks, classes, channels in [(1, 5, 1), (2, 10, 3), (3, 7, 1)]:
        model = ResNet(blocks=blocks, num_classes=classes, in_channels=channels)
        assert count_weights(model) == resnet_weights(blocks, classes, channels)


def test_resnet20_layout_and_output():
    model = resnet20()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 19 and len(bns) == 19  # 6n + 1 conv layers + the linear head = 20
    assert all(c.bias is None for c in convs)
    x = torch.randn(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    h = model.stages[:4](torch.relu(model.bn(model.conv(x))))  # after the first block of stage 2
    assert h.shape == (3, 32, 14, 14)


def test_option_a_shortcut_is_subsample_and_zero_pad():
    block = ResNet(blocks=1, width=2).stages[1]  # 2 -> 4 channels, stride 2
    x = torch.randn(1, 2, 6, 6)
    s = block.shortcut(x)
    assert s.shape == (1, 4, 3, 3)
    torch.testing.assert_close(s[:, :2], x[:, :, ::2, ::2])
    assert torch.count_nonzero(s[:, 2:]) == 0


def test_per_example_gradients_of_a_residual_net_match_a_loop():
    """The hooks path of D(x) (eq. (2)) on a residual net with option-A shortcuts: each row
    equals that example's own autograd gradient (eval-mode BN, float64)."""
    from sgdvi.diffusion.gradients import hooks_supported, per_example_grad_fn

    torch.manual_seed(0)
    model = ResNet(blocks=1, num_classes=4, in_channels=1, width=2).double()
    model.train()
    model(torch.randn(16, 1, 8, 8, dtype=torch.float64))  # non-trivial running statistics
    model.eval()
    assert hooks_supported(model)
    x, y = torch.randn(5, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 3, 1, 2, 3])
    got = per_example_grad_fn(model, "hooks")(x, y)
    for k in range(5):
        model.zero_grad()
        F.cross_entropy(model(x[k : k + 1]), y[k : k + 1]).backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(got[k], ref, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- specs


def test_builtin_names_parse_and_unknown_names_are_refused():
    assert parse_model_spec("small-fc").builtin == "small-fc"
    assert model_label("tiny-fc") == "tiny-fc"
    with pytest.raises(ModelSpecError, match=r"experiments\.x\.model: unknown model 'lenet'"):
        parse_model_spec("lenet", "experiments.x.model")
    with pytest.raises(ModelSpecError, match="'module:function'"):
        parse_model_spec({"import": "no_colon"}, "m")
    with pytest.raises(ModelSpecError, match=r"unknown keys \['kwarg'\]"):
        parse_model_spec({"import": "a:b", "kwarg": {}}, "m")


def test_import_path_errors_name_the_key_and_the_fix(on_path):
    key = "experiments.mine.model"
    with pytest.raises(ModelSpecError, match=r"cannot import module 'no_such_mod'.*python_path"):
        resolve_model({"import": "no_such_mod:net"}, key)
    with pytest.raises(ModelSpecError, match=r"has no attribute 'make_nett'"):
        resolve_model({"import": "user_model_fixture:make_nett"}, key)
    with pytest.raises(ModelSpecError, match="is not callable"):
        resolve_model({"import": "user_model_fixture:NOT_A_FUNCTION"}, key)
    with pytest.raises(ModelSpecError, match=r"raised TypeError.*kwargs"):
        build_network({"import": FIXTURE, "kwargs": {"depth": 3}}, key=key)


def test_build_network_passes_num_classes_unless_kwargs_set_it(on_path):
    net = build_network({"import": FIXTURE, "kwargs": {"width": 3}}, num_classes=7, dropout=0.0)
    assert net.head.out_features == 7 and net.head.in_features == 3
    fixed = build_network({"import": FIXTURE, "kwargs": {"num_classes": 4}}, num_classes=7)
    assert fixed.head.out_features == 4
    assert model_label({"import": FIXTURE}) == FIXTURE


def test_output_check_catches_too_few_classes_and_wrong_shapes(on_path):
    ok = check_model_output(build_network({"import": FIXTURE}), (1, 9, 9), 9, "k")
    assert ok.num_outputs == 10
    assert ok.num_weights == count_weights(build_network({"import": FIXTURE}))
    few = build_network({"import": "user_model_fixture:three_outputs"})
    with pytest.raises(ModelSpecError, match="3 outputs but the dataset has label 9"):
        check_model_output(few, (1, 28, 28), 9, "k")
    flat = build_network({"import": "user_model_fixture:flat_output"})
    with pytest.raises(ModelSpecError, match=r"to \(2,\); it must return logits"):
        check_model_output(flat, (1, 28, 28), 9, "k")
    with pytest.raises(ModelSpecError, match=r"fails on a batch of inputs of shape \(1, 7, 7\)"):
        check_model_output(few, (1, 7, 7), 2, "k")


def test_python_path_is_resolved_against_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/already")
    (tmp_path / "nets").mkdir()
    entries = add_python_path(["nets"], base=tmp_path)
    assert entries == [str(tmp_path / "nets")]
    assert sys.path[0] == str(tmp_path / "nets")
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "nets"), "/already"]


# --------------------------------------------------------------------------- checks before training


def _config(tmp_path: Path, model, **exp) -> dict:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.normal(size=(8, 1, 9, 9)).astype(np.float32),
        y_train=np.arange(8) % 6,
        x_test=rng.normal(size=(4, 1, 9, 9)).astype(np.float32),
        y_test=np.arange(4),
    )
    return {
        "python_path": [str(TESTS)],
        "run": ["mine"],
        "datasets": {"tiny": {"kind": "npz", "path": str(tmp_path / "d.npz")}},
        "experiments": {
            "mine": {"model": model, "dataset": "tiny", "dropout": 0.0, "augment": False, **exp},
            "paper": {"model": "small-fc", "dataset": "mnist7", "dropout": 0.0},
        },
    }


def test_check_user_inputs_returns_the_facts(tmp_path, monkeypatch):
    from sgdvi.user_inputs import check_user_inputs

    monkeypatch.setattr(sys, "path", list(sys.path))
    facts = check_user_inputs(_config(tmp_path, {"import": FIXTURE}))
    assert set(facts) == {"mine"}  # the paper's experiments keep their own checks
    assert facts["mine"].input_shape == (1, 9, 9) and facts["mine"].num_classes == 6
    assert facts["mine"].num_weights == count_weights(build_network({"import": FIXTURE}, 6))


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ({"import": "nets_nowhere:net"}, {}, r"experiments\.mine\.model\.import: cannot import"),
        ({"import": "user_model_fixture:nett"}, {}, r"experiments\.mine\.model\.import: .*nett"),
        ({"import": FIXTURE}, {"num_classes": 5}, "5 outputs but the dataset has label 5"),
        ({"import": FIXTURE, "kwargs": {"in_channels": 3}}, {}, r"fails on a batch .*\(1, 9, 9\)"),
        ("small-lenet", {}, r"experiments\.mine\.model: the network fails on a batch"),
        ({"import": FIXTURE}, {"augment": True}, r"experiments\.mine\.augment"),
    ],
)
def test_check_user_inputs_names_the_key(tmp_path, monkeypatch, model, extra, message):
    from sgdvi.user_inputs import check_user_inputs

    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ConfigError, match=message) as info:
        check_user_inputs(_config(tmp_path, model, **extra))
    assert len(str(info.value).splitlines()) <= 2


def test_check_user_inputs_reports_a_bad_data_file_by_dataset_key(tmp_path, monkeypatch):
    from sgdvi.user_inputs import check_user_inputs

    monkeypatch.setattr(sys, "path", list(sys.path))
    config = _config(tmp_path, {"import": FIXTURE})
    y = np.zeros(7, dtype=np.int64)
    with np.load(tmp_path / "d.npz") as z:
        np.savez(tmp_path / "d.npz", **{**{k: z[k] for k in z.files}, "y_train": y})
    with pytest.raises(ConfigError, match=r"datasets\.tiny\.path: .*8 images but 7 labels"):
        check_user_inputs(config)


# --------------------------------------------------------------------------- summary, recording


def test_effective_ranks_against_closed_forms():
    from sgdvi.user_summary import effective_ranks

    flat = effective_ranks(np.array([2.0, 2.0, 2.0, 2.0, 1e-20]), threshold=1e-12)
    assert flat["participation_ratio"] == pytest.approx(4.0)
    assert flat["entropy_rank"] == pytest.approx(4.0)
    assert flat["k90"] == 4
    lam = np.array([9.0, 1.0, 0.5, 0.0])
    got = effective_ranks(lam, threshold=0.0)
    p = lam[:3] / lam[:3].sum()
    assert got["participation_ratio"] == pytest.approx(10.5**2 / (81 + 1 + 0.25))
    assert got["entropy_rank"] == pytest.approx(np.exp(-sum(q * np.log(q) for q in p)))
    assert got["k90"] == 2  # 9/10.5 = 0.857 < 0.9 <= 10/10.5
    assert effective_ranks(np.zeros(3), 0.0)["k90"] == 0


def test_user_summary_rows():
    import pandas as pd

    from sgdvi.user_summary import user_summary

    lam = np.concatenate([[4.0, 1.0, 1e-3], np.zeros(7)])
    record = {
        "experiment": "e", "model": "m:f", "fraction": 1.0, "epoch": 2, "n": 3, "d": 10,
        "solver": "gram", "rank": 3, "eigenvalues": lam, "threshold": 1e-9,
        "lambda_max": 4.0, "trace": lam.sum(), "grad_norm": 0.1,
    }  # fmt: skip
    metrics = pd.DataFrame({"epoch": [1, 2], "train_error": [0.5, 0.25], "test_error": [0.6, 0.3]})
    table = user_summary([record], metrics, {"verdict": "current detected", "level": 1e-4})
    row = table.iloc[0]
    assert row.max_rank == 2 and row.rank_pct_of_max == pytest.approx(150.0)
    assert row.rank_pct_of_d == pytest.approx(30.0) and row.top2 == 1.0
    assert row.test_error == 0.3 and row.final_test_error == 0.3
    assert row.current_verdict == "current detected" and row.current_strongest == ""


def test_recording_hook_rows_resume_and_finish(tmp_path):
    from sgdvi.recording_hook import CurrentSettings, RecordingHook
    from sgdvi.trajectory.recorder import load_recording

    settings = CurrentSettings.from_config(
        {"enabled": True, "k": 3}, [[0, 0.1], [2, 0.01]], epochs=4
    )
    assert settings.from_epoch == 2 and settings.every == "step"
    model = torch.nn.Linear(4, 2)
    path, out = tmp_path / "rec", tmp_path / "trained"
    out.mkdir()
    steps = 3
    with RecordingHook(settings, path, steps) as hook:
        assert hook.burn_in == 6
        for step in range(1, steps + 1):
            with torch.no_grad():
                model.weight += 0.1 * step
            hook(model, 0, step, steps)
    snapshot = [p.detach().clone() for p in model.parameters()]
    with RecordingHook(settings, path, steps) as hook:  # resumed from an earlier checkpoint
        hook(model, 0, 3, steps)  # row 3 exists: skipped
        hook(model, 1, 1, steps)  # row 4: recorded
        with pytest.raises(RuntimeError, match="rows are missing"):
            hook(model, 1, 3, steps)
        dest = hook.finish(out)
    rec = load_recording(dest)
    assert len(rec.rows) == 4 and not path.exists() and not list(dest.glob("*.lock"))
    flat = torch.cat([p.reshape(-1) for p in snapshot]).double().numpy()
    np.testing.assert_allclose(rec.rows[3], flat @ rec.directions(), rtol=1e-12)
    with pytest.raises(ValueError, match="from_epoch 4 must be in 0..3"):
        CurrentSettings.from_config({"from_epoch": 4}, [[0, 0.1]], epochs=4)


# --------------------------------------------------------------------------- the whole workflow


def _learnable_npz(path: Path, n_train: int = 400, n_test: int = 100) -> None:
    """1x9x9 images of 4 classes: a bright 3x3 block whose corner encodes the class."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 4, n)
        x = rng.normal(0.0, 0.3, (n, 1, 9, 9)).astype(np.float32)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 0, 1 + 4 * r : 4 + 4 * r, 1 + 4 * q : 4 + 4 * q] += 2.0
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    np.savez(path, **arrays)


def _user_workdir(tmp_path: Path, model: dict) -> Path:
    work = make_tiny_workdir(tmp_path)
    _learnable_npz(tmp_path / "blocks.npz")
    user = {
        "python_path": [str(TESTS)],
        "run": ["mine"],
        "datasets": {
            "blocks": {
                "kind": "npz",
                "path": str(tmp_path / "blocks.npz"),
                "normalisation": "standard",
            }
        },
        "experiments": {
            "mine": {
                "dataset": "blocks",
                "model": model,
                "epochs": 6,
                "batch_size": 8,
                "lr_schedule": [[0, 0.05], [2, 0.02]],
                "snapshots": [0.5, 1.0],
                "current": {"enabled": True, "k": 6, "every": "step"},
            }
        },
        "diffusion": {"subset": 100, "chunk_size": 50},
        "trajectory": {"enabled": False},
        "irreversibility": {"m": 4, "n_blocks": 8, "n_surrogates": 20, "n_boot": 20},
    }
    tiny = yaml.safe_load((work / "config" / "tiny.yaml").read_text())
    (work / "config" / "user.yaml").write_text(yaml.safe_dump(deep_update(tiny, user)))
    return work


@pytest.mark.slow
def test_a_network_the_package_never_saw_runs_the_whole_workflow(tmp_path):
    """train -> snapshots -> D(x) spectra -> figure and summary, and the current test on the
    path recorded during training, for tests/user_model_fixture.py:make_net on an npz dataset.
    The stored top eigenvalues equal those of D formed from a one-example-at-a-time autograd
    loop over the same snapshot (rebuilt from its import path)."""
    from sgdvi.data import load_prepared
    from sgdvi.diffusion.compute import load_result
    from sgdvi.infra.parquet import read_table
    from sgdvi.snapshots import load_snapshot

    work = _user_workdir(tmp_path, {"import": FIXTURE, "kwargs": {"width": 4}})
    run_snakemake(work, "--cores", "2", "user", configfile="config/user.yaml")
    summary = read_table(work / "results/mine/summary.parquet")
    assert list(summary.fraction) == [0.5, 1.0]
    d = count_weights(build_network({"import": FIXTURE, "kwargs": {"width": 4}}, 4))
    assert (summary.d == d).all() and (summary.n == 100).all()
    assert (summary["rank"] <= summary.max_rank).all() and (summary.max_rank == 99).all()
    assert summary.final_test_error.iloc[-1] < 0.5  # chance is 0.75
    assert summary.current_verdict.iloc[0] != "" and summary.current_n_epochs.iloc[0] == 200
    assert (work / "results/figures/user-mine.png").stat().st_size > 0

    model, meta = load_snapshot(work / "results/mine/snapshots/1.0.pt")
    assert meta["model"] == FIXTURE and meta["model_spec"]["kwargs"] == {"width": 4}
    data = load_prepared(work / "results/data/blocks.npz", train_subset=100)
    model.double()
    rows = []
    for k in range(100):
        model.zero_grad()
        F.cross_entropy(model(data.x_train[k : k + 1].double()), data.y_train[k : k + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy())
    g = np.array(rows)
    g -= g.mean(axis=0)
    stored = load_result(work / "results/mine/diffusion/1.0.npz")
    scale = 1 / 100 if stored["formula"] == "A1" else 1 / 99
    reference = np.sort(np.linalg.eigvalsh(scale * g.T @ g))[::-1]
    np.testing.assert_allclose(stored["eigenvalues"][:5], reference[:5], rtol=1e-4)
    assert stored["rank"] == int(np.sum(reference > stored["threshold"]))


def test_bad_user_inputs_stop_snakemake_before_any_job(tmp_path):
    """`snakemake -n` names the key of a missing module, a head too small for the labels,
    and an npz whose labels do not match its images; no job ran (no results/, no logs/)."""
    cases = [
        ({"import": "nets_nowhere:make"}, None, "experiments.mine.model.import: cannot import"),
        ({"import": FIXTURE, "kwargs": {"num_classes": 3}}, None, "3 outputs but the dataset"),
        ({"import": FIXTURE}, "y_train", "datasets.blocks.path"),
    ]
    for i, (model, corrupt, message) in enumerate(cases):
        base = tmp_path / f"case{i}"
        work = _user_workdir(base, model)
        if corrupt:
            with np.load(base / "blocks.npz") as z:
                arrays = {k: z[k] for k in z.files}
            arrays[corrupt] = arrays[corrupt][:-1]
            np.savez(base / "blocks.npz", **arrays)
        proc = subprocess.run(
            snakemake_cmd(work, "-n", "user", configfile="config/user.yaml"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode != 0
        assert message in proc.stderr + proc.stdout
        assert not (work / "results").exists() and not (work / "logs").exists()


def test_the_config_entry_point_takes_import_paths_kinds_and_current(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    base = _config(tmp_path, {"import": FIXTURE, "kwargs": {"width": 3}}, lr_schedule=[[0, 0.1]])
    extra = {k: base[k] for k in ("python_path", "datasets")} | {
        "run": ["mine"],
        "experiments": {"mine": base["experiments"]["mine"]},
    }
    cfg = workflow_config("config/config.yaml", extra=extra)
    assert cfg["experiments"]["mine"]["current"] == {
        "enabled": False, "k": 10, "seed": 0, "every": "step", "from_epoch": None,
    }  # fmt: skip
    assert cfg["datasets"]["tiny"]["shuffle_seed"] == 0 and cfg["datasets"]["tiny"]["size"] is None
    assert "mnist28" in cfg["datasets"]  # the built-in entries stay
    bad = [
        ({"model": "lenet"}, "experiments.mine.model"),
        ({"model": {"import": "no_colon"}}, "experiments.mine.model.import"),
        ({"current": {"enabled": True, "k": 2}}, r"current\.k: 2 projections are fewer"),
        ({"current": {"enabled": True, "from_epoch": 50}}, r"current\.from_epoch: 50 is not"),
    ]
    for change, message in bad:
        exp = deep_update(extra["experiments"]["mine"], change)
        with pytest.raises(ConfigError, match=message):
            workflow_config("config/config.yaml", extra={**extra, "experiments": {"mine": exp}})
    with pytest.raises(ConfigError, match=r"datasets\.tiny\.kind"):
        workflow_config(
            "config/config.yaml", extra=deep_update(extra, {"datasets": {"tiny": {"kind": "csv"}}})
        )


def test_a_stale_recording_is_never_continued(tmp_path):
    """A recording left next to the checkpoint is kept only when that checkpoint is there and
    the experiment's settings are the same (a killed job resuming); else it starts over."""
    from sgdvi.recording_hook import RECORDING_NAME, hook_for_experiment

    exp = {
        "current": {"enabled": True, "k": 2, "seed": 0, "every": "step", "from_epoch": None},
        "lr_schedule": [[0, 0.1]],
        "epochs": 2,
        "batch_size": 4,
    }
    checkpoint = tmp_path / "checkpoint.pt"
    rec = tmp_path / RECORDING_NAME
    assert hook_for_experiment({**exp, "current": {"enabled": False}}, checkpoint, 16) is None

    def leave_rows() -> None:
        with hook_for_experiment(exp, checkpoint, 16) as hook:
            assert hook.steps == 4
            hook(torch.nn.Linear(2, 1), 0, 1, 4)
        (rec / "marker").write_text("")

    leave_rows()
    hook_for_experiment(exp, checkpoint, 16)  # no checkpoint: a fresh run
    assert not (rec / "marker").exists()
    leave_rows()
    checkpoint.write_bytes(b"")
    hook_for_experiment(exp, checkpoint, 16)  # checkpoint and same settings: resumed
    assert (rec / "marker").exists()
    hook_for_experiment({**exp, "batch_size": 8}, checkpoint, 16)  # other settings
    assert not (rec / "marker").exists()
