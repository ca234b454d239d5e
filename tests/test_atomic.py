"""sgdvi.infra.atomic and its users: a failed write (full disk, interrupt) leaves no debris and the
previous file intact (a full disk must not corrupt results)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sgdvi.data import load_prepared, save_prepared
from sgdvi.infra.atomic import atomic_open, atomic_path, leftover_temp_files
from sgdvi.infra.parquet import read_table
from sgdvi.models import build_model
from sgdvi.snapshots import load_snapshot, save_snapshot
from sgdvi.training import save_checkpoint

META = {"model": "small-fc", "num_classes": 10, "dropout": 0.0}


def enospc(*args, **kwargs):
    """A writer that gets half-way, then finds the disk full."""
    target = args[1] if len(args) > 1 else kwargs.get("f") or args[0]
    if isinstance(target, str | os.PathLike):
        Path(target).write_bytes(b"x" * 1000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_success_renames_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "a.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".npz") and tmp != target
        np.savez(tmp, x=np.arange(3))
    assert files(target.parent) == ["a.npz"]
    np.testing.assert_array_equal(np.load(target)["x"], np.arange(3))
    plain = tmp_path / "plain"
    plain.write_text("")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    with atomic_open(tmp_path / "t.json", "w") as fh:
        fh.write("{}")
    assert (tmp_path / "t.json").read_text() == "{}"


@pytest.mark.parametrize(
    "exc", [OSError(errno.ENOSPC, "No space"), KeyboardInterrupt(), SystemExit(143)]
)
def test_any_failure_removes_the_temp_file_and_keeps_the_old_target(tmp_path, exc):
    target = tmp_path / "a.pt"
    target.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise exc
    assert files(tmp_path) == ["a.pt"] and target.read_bytes() == b"old"
    assert leftover_temp_files(tmp_path) == []


def test_writer_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="did not create"):
        with atomic_path(tmp_path / "a.npz") as tmp:
            tmp.unlink()
    assert files(tmp_path) == []


def test_snapshot_checkpoint_prepared_and_metrics_on_a_full_disk(tmp_path, monkeypatch):
    """Every converted writer, with its low-level write failing with ENOSPC half-way."""
    model = build_model("small-fc")
    save_snapshot(tmp_path / "1.0.pt", model, META)
    save_checkpoint(tmp_path / "checkpoint.pt", {"format": 1})
    arrays = {
        "x_train": np.zeros((4, 1, 7, 7)),
        "y_train": np.zeros(4),
        "x_test": np.zeros((2, 1, 7, 7)),
        "y_test": np.zeros(2),
    }
    save_prepared(tmp_path / "mnist7.npz", **arrays)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}

    monkeypatch.setattr(torch, "save", enospc)
    with pytest.raises(OSError, match="No space left"):
        save_snapshot(tmp_path / "1.0.pt", model, META)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"format": 1, "more": 2})
    monkeypatch.setattr(np, "savez", enospc)
    with pytest.raises(OSError, match="No space left"):
        save_prepared(tmp_path / "mnist7.npz", **arrays)

    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # no debris, old intact
    monkeypatch.undo()
    load_snapshot(tmp_path / "1.0.pt")
    assert load_prepared(tmp_path / "mnist7.npz").x_train.shape == (4, 1, 7, 7)


def test_training_on_a_full_disk_leaves_no_debris(tmp_path, monkeypatch):
    """train(): the metrics table fails to write; only the checkpoint (resumable) remains."""
    from test_training import make_data, make_paths, make_settings

    from sgdvi.training import train

    data = make_data(tmp_path)
    paths = make_paths(tmp_path / "run")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", enospc)
    with pytest.raises(OSError, match="No space left"):
        train(make_settings(epochs=2, snapshots=[1.0]), data, paths)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.rglob("*") if p.is_file()) == ["1.0.pt", "checkpoint.pt"]
    assert leftover_temp_files(run) == [] and leftover_temp_files(run / "trained") == []


@pytest.fixture
def small_fs(tmp_path):
    """A 64 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_filesystem_leaves_no_debris(small_fs):
    x = np.zeros((400, 1, 7, 7), np.float32)  # 78 KB: does not fit
    with pytest.raises(OSError) as exc:
        save_prepared(
            small_fs / "mnist7.npz",
            x_train=x,
            y_train=np.zeros(400),
            x_test=x[:1],
            y_test=np.zeros(1),
        )
    assert exc.value.errno == errno.ENOSPC
    with pytest.raises((OSError, RuntimeError)):  # torch reports ENOSPC as a RuntimeError
        save_snapshot(small_fs / "big.pt", torch.nn.Linear(200, 200), META)
    assert files(small_fs) == []


def test_trajectory_chunk_and_metrics_on_a_full_disk(tmp_path, monkeypatch):
    """The trajectory store: a chunk record and the assembled metrics table fail with ENOSPC
    half-way; the old chunk stays intact, nothing else is left behind."""
    from sgdvi.trajectory.state import TrainState
    from sgdvi.trajectory.storage import ChunkStore, assemble

    store = ChunkStore(tmp_path, {"seed": 0}, n_stored=2, d=3)
    store.open_weights(resume=False)
    state = TrainState(np.ones(3), np.zeros(3), np.zeros(16), np.ones(16), 4, 2)
    metrics = {
        "epoch": np.array([1, 2]),
        "lr": np.array([0.1, 0.1]),
        **{k: np.array([1.0, 0.5]) for k in ("grad_norm", "loss", "error")},
        **{k: np.array([1.0, 0.5]) for k in ("batch_loss", "batch_error")},
        "stored": np.array([True, True]),
    }
    init = dict.fromkeys(metrics, 1.0) | {"epoch": 0, "lr": np.nan, "stored": False}
    init |= {"batch_loss": np.nan, "batch_error": np.nan}
    store.write_rows(0, np.ones((2, 3), np.float32))
    store.write(0, metrics, state, init)
    chunk = store.path(0).read_bytes()

    monkeypatch.setattr(np, "savez", enospc)
    with pytest.raises(OSError, match="No space left"):
        store.write(0, metrics, state, init)
    assert files(store.dir) == ["chunk_000000.npz"] and store.path(0).read_bytes() == chunk

    monkeypatch.undo()
    monkeypatch.setattr(pd.DataFrame, "to_parquet", enospc)
    with pytest.raises(OSError, match="No space left"):
        assemble(store, 1, tmp_path / "weights.npy", tmp_path / "metrics.parquet")
    assert files(tmp_path) == ["chunks", "weights.partial.npy"]  # no metrics, nothing moved
    monkeypatch.undo()
    n_stored, table = assemble(store, 1, tmp_path / "weights.npy", tmp_path / "metrics.parquet")
    assert n_stored == 2 and files(tmp_path) == ["chunks", "metrics.parquet", "weights.npy"]
    pd.testing.assert_frame_equal(read_table(tmp_path / "metrics.parquet"), table)


@pytest.mark.parametrize(
    "module", ["sgdvi.trajectory.plot", "sgdvi.theory.plot", "sgdvi.irreversibility.plot"]
)
def test_figures_on_a_full_disk(tmp_path, monkeypatch, module):
    """A figure whose PDF (then whose PNG) fails to write with ENOSPC leaves no file behind
    but the complete PDF; a good write gives a real PDF and PNG."""
    import importlib

    import matplotlib.figure
    import matplotlib.pyplot as plt

    save = importlib.import_module(module).save
    pdf, png = tmp_path / "fig.pdf", tmp_path / "fig.png"
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", enospc)
    fig = plt.figure()
    with pytest.raises(OSError, match="No space left"):
        save(fig, pdf, png)
    assert files(tmp_path) == [] and not plt.fignum_exists(fig.number)  # closed all the same

    def png_fails(self, fname, *args, **kwargs):
        if str(fname).endswith(".png"):
            enospc(self, fname)
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", png_fails)
    with pytest.raises(OSError, match="No space left"):
        save(plt.figure(), pdf, png)
    assert files(tmp_path) == ["fig.pdf"] and pdf.read_bytes().startswith(b"%PDF")
    monkeypatch.undo()
    save(plt.figure(), pdf, png)
    assert files(tmp_path) == ["fig.pdf", "fig.png"]
    assert png.read_bytes().startswith(b"\x89PNG") and leftover_temp_files(tmp_path) == []


@pytest.mark.parametrize(
    "module, pdf_kwargs, png_kwargs",
    [
        ("sgdvi.trajectory.plot", {"dpi": 200}, {"dpi": 150}),
        ("sgdvi.theory.plot", {"bbox_inches": "tight"}, {"dpi": 150, "bbox_inches": "tight"}),
        (
            "sgdvi.irreversibility.plot",
            {"bbox_inches": "tight"},
            {"dpi": 150, "bbox_inches": "tight"},
        ),
    ],
)
def test_figure_savers_keep_their_resolution(tmp_path, monkeypatch, module, pdf_kwargs, png_kwargs):
    """Every plotting module saves through sgdvi.infra.figures.save_figure with its own
    resolution and cropping; a 2 x 1 inch PNG at 150 dpi (uncropped) is 300 x 150 pixels."""
    import importlib

    import matplotlib.figure
    import matplotlib.pyplot as plt
    from PIL import Image

    calls, real = [], matplotlib.figure.Figure.savefig

    def spy(self, fname, *args, **kwargs):
        calls.append((Path(fname).suffix, kwargs))
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    fig = plt.figure(figsize=(2, 1))
    fig.add_axes((0, 0, 1, 1)).plot([0, 1], [0, 1])
    importlib.import_module(module).save(fig, tmp_path / "f.pdf", tmp_path / "f.png")
    assert calls == [(".pdf", pdf_kwargs), (".png", png_kwargs)]
    assert not plt.fignum_exists(fig.number)
    if "bbox_inches" not in png_kwargs:
        assert Image.open(tmp_path / "f.png").size == (300, 150)


def test_save_figure_skips_none_and_sets_the_pdf_resolution_apart(tmp_path):
    """``None`` paths are skipped; a ``.pdf`` gets ``pdf_dpi``, any other suffix ``dpi``."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from sgdvi.infra.figures import save_figure

    fig = plt.figure(figsize=(2, 1))
    save_figure(fig, tmp_path / "a.pdf", None, tmp_path / "a.png", dpi=50, pdf_dpi=300)
    assert files(tmp_path) == ["a.pdf", "a.png"] and not plt.fignum_exists(fig.number)
    assert Image.open(tmp_path / "a.png").size == (100, 50)
