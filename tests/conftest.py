"""Shared fixtures: a tiny, offline, end-to-end copy of the workflow on generated data.

``tiny_workdir`` makes a Snakemake working directory holding ``config/`` (copied from the
repository, plus ``config/tiny.yaml``) and four generated MNIST IDX files whose SHA-256 the tiny
config lists, so the real download rule runs its ``local`` source and checksum verification.
Run the workflow there with :func:`snakemake_cmd`.

``tiny_built`` is the same directory after a full run of the tiny workflow, built once per test
session and shared read-only by every test that only reads outputs (the e2e checks, the report).
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


MNIST_FILES = {
    "train-images-idx3-ubyte": ("images", "train"),
    "train-labels-idx1-ubyte": ("labels", "train"),
    "t10k-images-idx3-ubyte": ("images", "test"),
    "t10k-labels-idx1-ubyte": ("labels", "test"),
}


def deep_update(base: dict, extra: dict) -> dict:
    """A copy of ``base`` with ``extra`` merged in recursively, as Snakemake merges config files."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def workflow_config(*files: str | Path, extra: dict | None = None) -> dict:
    """The config the workflow's rules see: the YAML ``files`` (relative to the repository)
    merged in order as Snakemake merges ``--configfile``, then ``extra``, then the one entry
    point :func:`sgdvi.config.load` (schema defaults, validation, cross-key checks)."""
    from sgdvi.config import load

    merged: dict = {}
    for name in files:
        merged = deep_update(merged, yaml.safe_load((REPO / name).read_text()) or {})
    return load(deep_update(merged, extra or {}))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the original MNIST files."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def fake_mnist(directory: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict:
    """Generate learnable MNIST-like IDX files (a bright bar whose position encodes the class).

    Returns {file name: sha256}.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 5 + 2 * c, 4:24] = 255
        data[split] = (images.astype(np.uint8), labels.astype(np.uint8))
    for name, (kind, split) in MNIST_FILES.items():
        images, labels = data[split]
        write_idx(directory / name, images if kind == "images" else labels)
        hashes[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    return hashes


def tiny_config(mnist_dir: Path, hashes: dict) -> dict:
    """Smallest configuration that still runs every MNIST rule and every theory rule."""
    return yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text()) | {
        "data": {
            "mnist": {
                "sources": ["local"],
                "local_dir": str(mnist_dir),
                "normalisation": "unit",
                "sha256": hashes,
            },
            "cifar": yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["cifar"],
        }
    }


def make_tiny_workdir(base: Path) -> Path:
    """``base/work``: a working directory for ``snakemake --directory`` with ``config/`` (the
    repository's plus ``config/tiny.yaml``) and generated MNIST under ``base/mnist_raw``."""
    work = base / "work"
    shutil.copytree(REPO / "config", work / "config")
    hashes = fake_mnist(base / "mnist_raw")
    cfg = tiny_config(base / "mnist_raw", hashes)
    (work / "config" / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return work


@pytest.fixture
def tiny_workdir(tmp_path: Path) -> Path:
    """A fresh working directory of its own (nothing run yet), for tests that run rules or
    change files. Tests that only read the outputs of a full run use ``tiny_built``."""
    return make_tiny_workdir(tmp_path)


def _manifest(work: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``results/`` and ``logs/`` of ``work``."""
    out = {}
    for top in ("results", "logs"):
        for path in sorted((work / top).rglob("*")):
            if path.is_file():
                st = path.stat()
                out[str(path.relative_to(work))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tiny workflow run once per test session (every default target), shared read-only.

    Tests that use it must not run rules in it nor change its files (``snakemake -n`` and
    ``--report <path outside results/>`` are fine): at the end of the session the fixture
    fails if any file under ``results/`` or ``logs/`` was added, removed or rewritten.
    """
    work = make_tiny_workdir(tmp_path_factory.mktemp("tiny_built"))
    run_snakemake(work, "--cores", "2")
    before = _manifest(work)
    yield work
    after = _manifest(work)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test changed the shared tiny build (use tiny_workdir): {changed[:10]}"


def snakemake_cmd(workdir: Path, *args: str, configfile: str = "config/tiny.yaml") -> list[str]:
    """Command line running the repository's Snakefile in ``workdir`` with ``configfile``."""
    return [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / configfile),
        *args,
    ]


def run_snakemake(
    workdir: Path, *args: str, timeout: int = 900, **kw
) -> subprocess.CompletedProcess:
    """Run snakemake; on failure raise with its output (and the rule logs) in the message."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(
        snakemake_cmd(workdir, *args, **kw),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        logs = ""
        for log in sorted((workdir / "logs").rglob("*.log")) if (workdir / "logs").exists() else []:
            logs += f"\n--- {log.relative_to(workdir)}\n{log.read_text()[-3000:]}"
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n"
            f"{proc.stderr[-6000:]}{logs}"
        )
    return proc
