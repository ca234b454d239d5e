"""Datasets by kind: what an entry of the config's ``datasets:`` is, what it holds, and how
it becomes a prepared dataset ``results/data/{name}.npz`` (:func:`sgdvi.data.save_prepared`).

Kinds (``datasets.<name>.kind``; default ``mnist``, the paper's datasets):

- ``mnist``: MNIST as before (:class:`sgdvi.data.mnist.MnistOptions`, rule ``prepare_mnist``);
- ``fashion-mnist``: Fashion-MNIST from ``dir`` (default Debian's
  ``/usr/share/datasets/fashion-mnist``), with MNIST's options (``size`` 28 or 7, ``classes``,
  ``per_class``, ``normalisation``) and SHA-256 checks (``verify``);
- ``idx``: an (images, labels) IDX pair for training (``train_images``, ``train_labels``) and
  one for testing (``test_images``, ``test_labels``) or a held-out share (``test_fraction``);
- ``npz``: one ``.npz`` (``path``) with ``x_train``, ``y_train``, ``x_test``, ``y_test``;
- ``image-folder``: a torchvision ``ImageFolder`` tree (``path``; ``train/`` and ``test/``
  subfolders, or class folders and a held-out share), ``grayscale``, optional ``resize``.

The user kinds (``idx``, ``npz``, ``image-folder``) share ``normalisation`` (``none``: values
as stored; ``unit``: /255; ``standard``: minus the per-channel training mean, over the
per-channel training standard deviation) and ``shuffle_seed`` (one seeded permutation of the
training set, so that an experiment's ``train_subset`` prefix mixes the classes even when the
files are sorted by class, as an image folder always is; null keeps the file order).

CIFAR-10/100 (``cifar10-zca``, ``cifar100-zca``) stay built in (rule ``prepare_cifar_zca``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sgdvi.data import sources
from sgdvi.data.sources import DatasetFileError, SplitFacts

KINDS = ("mnist", "fashion-mnist", "idx", "npz", "image-folder")
USER_KINDS = ("idx", "npz", "image-folder")
USER_NORMALISATIONS = ("none", "unit", "standard")

#: built-in CIFAR datasets: input shape and number of classes
CIFAR_FACTS = {"cifar10-zca": ((3, 32, 32), 10), "cifar100-zca": ((3, 32, 32), 100)}


@dataclass(frozen=True)
class DatasetFacts:
    """What the workflow knows of a dataset before preparing it (Section IV's networks need
    the input shape; the head needs ``num_classes`` > ``max_label``)."""

    input_shape: tuple[int, ...]
    max_label: int
    num_classes: int
    n_train: int | None = None


def dataset_kind(entry: Mapping[str, Any]) -> str:
    """The ``kind`` of a ``datasets:`` entry (``mnist`` when absent)."""
    return str(entry.get("kind") or "mnist")


def _mnist_like_facts(entry: Mapping[str, Any]) -> DatasetFacts:
    size = int(entry.get("size") or 28)
    classes = entry.get("classes")
    top = 9 if classes is None else max(int(c) for c in classes)
    n_classes = 10 if classes is None else len(classes)
    return DatasetFacts((1, size, size), top, n_classes)


def _fashion_facts(entry: Mapping[str, Any], key: str) -> DatasetFacts:
    from sgdvi.data import fashion

    directory = entry.get("dir") or fashion.DEFAULT_DIR
    try:
        files = fashion.find_files(directory)
    except FileNotFoundError as exc:
        raise DatasetFileError(f"{key}.dir: {exc}") from exc
    for name, path in files.items():
        sources.idx_header(path, f"{key}.dir ({name})")
    facts = _mnist_like_facts(entry)
    per_class = 6000 if entry.get("per_class") is None else min(6000, int(entry["per_class"]))
    return replace(facts, n_train=per_class * facts.num_classes)  # 6,000 images per class


def _combine(key: str, train: SplitFacts, test: SplitFacts | None) -> DatasetFacts:
    top = train.max_label if test is None else max(train.max_label, test.max_label)
    if test is not None and test.example_shape != train.example_shape:
        raise DatasetFileError(
            f"{key}: training examples have shape {train.example_shape} but test examples "
            f"{test.example_shape}; they must match"
        )
    return DatasetFacts(train.example_shape, top, top + 1, train.n)


def _idx_facts(entry: Mapping[str, Any], key: str) -> DatasetFacts:
    train = sources.inspect_idx_pair(entry["train_images"], entry["train_labels"], key)
    has_test = [entry.get(k) is not None for k in ("test_images", "test_labels")]
    if any(has_test) and not all(has_test):
        raise DatasetFileError(
            f"{key}: set both test_images and test_labels, or neither (a held-out share "
            "test_fraction of the training pair is then the test set)"
        )
    test = None
    if all(has_test):
        test = sources.inspect_idx_pair(entry["test_images"], entry["test_labels"], key)
    return _combine(key, train, test)


def _folder_facts(entry: Mapping[str, Any], key: str) -> DatasetFacts:
    size = entry.get("resize")
    names, train, test = sources.inspect_image_folder(
        entry["path"], key, bool(entry.get("grayscale", False)), size and tuple(size)
    )
    facts = _combine(key, train, test)
    return DatasetFacts(facts.input_shape, facts.max_label, len(names), facts.n_train)


def inspect_dataset(name: str, entry: Mapping[str, Any] | None) -> DatasetFacts:
    """Facts of dataset ``name`` (``entry``: its ``datasets:`` entry; None for CIFAR), read
    from headers and labels only. Raises :class:`DatasetFileError` naming ``datasets.<name>``
    for a missing file, a wrong IDX magic, wrong array dims or a label count mismatch."""
    if name in CIFAR_FACTS:
        shape, classes = CIFAR_FACTS[name]
        return DatasetFacts(shape, classes - 1, classes)
    key = f"datasets.{name}"
    if entry is None:
        raise DatasetFileError(f"{key}: not defined; add it under datasets:")
    kind = dataset_kind(entry)
    if kind == "mnist":
        return _mnist_like_facts(entry)
    if kind == "fashion-mnist":
        return _fashion_facts(entry, key)
    if kind == "idx":
        return _idx_facts(entry, key)
    if kind == "npz":
        train, test = sources.inspect_npz(entry["path"], f"{key}.path")
        return _combine(key, train, test)
    if kind == "image-folder":
        return _folder_facts(entry, key)
    raise DatasetFileError(f"{key}.kind: {kind!r} is not one of {list(KINDS)}")


# --------------------------------------------------------------------------- preparing


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): a seeded random ``fraction`` of ``range(n)`` held out
    (at least one example each side), both sorted."""
    if not 0 < fraction < 1:
        raise ValueError(f"test_fraction {fraction} must be strictly between 0 and 1")
    n_test = min(n - 1, max(1, round(fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def normalise_channels(
    x_train: np.ndarray, x_test: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float32 copies normalised by ``mode`` (:data:`USER_NORMALISATIONS`), and the
    per-channel ``shift`` and ``scale`` used: ``x_prepared = (x - shift) / scale``."""
    if mode not in USER_NORMALISATIONS:
        raise ValueError(f"normalisation {mode!r} is not one of {USER_NORMALISATIONS}")
    channels = x_train.shape[1]
    shift, scale = np.zeros(channels), np.ones(channels)
    if mode == "unit":
        scale[:] = 255.0
    elif mode == "standard":
        flat = np.asarray(x_train, dtype=np.float64).transpose(1, 0, 2, 3).reshape(channels, -1)
        shift, scale = flat.mean(axis=1), flat.std(axis=1)
        if np.any(scale == 0):
            raise ValueError("standard normalisation: a channel has zero variance in training")
    view = (1, channels, 1, 1)
    out = [
        ((np.asarray(x, dtype=np.float64) - shift.reshape(view)) / scale.reshape(view)).astype(
            np.float32
        )
        for x in (x_train, x_test)
    ]
    return out[0], out[1], shift, scale


def _with_holdout(x: np.ndarray, y: np.ndarray, entry: Mapping[str, Any]) -> dict[str, np.ndarray]:
    fraction = float(entry.get("test_fraction") or 0.1)
    seed = int(entry.get("split_seed") or 0)
    train, test = holdout_split(len(y), fraction, seed)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def read_user_dataset(entry: Mapping[str, Any], key: str) -> dict[str, np.ndarray]:
    """Raw arrays (images ``(N, C, H, W)`` as stored, int64 labels) of a user-kind entry."""
    kind = dataset_kind(entry)
    if kind == "npz":
        return sources.read_npz(entry["path"])
    if kind == "idx":
        x, y = sources.read_idx_pair(entry["train_images"], entry["train_labels"])
        if entry.get("test_images") is None:
            return _with_holdout(x, y, entry)
        xt, yt = sources.read_idx_pair(entry["test_images"], entry["test_labels"])
        return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    if kind == "image-folder":
        grey, size = bool(entry.get("grayscale", False)), entry.get("resize")
        size = size and tuple(size)
        names, _, _ = sources.inspect_image_folder(entry["path"], key, grey, size)
        train_root, test_root = sources.image_folder_splits(entry["path"], key)
        x, y = sources.read_image_folder_split(train_root, names, key, grey, size)
        if test_root is None:
            return _with_holdout(x, y, entry)
        xt, yt = sources.read_image_folder_split(test_root, names, key, grey, size)
        return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    raise ValueError(f"{key}.kind: {kind!r} is not one of the user kinds {list(USER_KINDS)}")


def prepare_user_dataset(entry: Mapping[str, Any], name: str) -> dict[str, np.ndarray]:
    """Arrays of prepared dataset ``name`` of a user kind (:func:`sgdvi.data.save_prepared`):
    read, shuffle the training set once (``shuffle_seed``), normalise per channel."""
    key = f"datasets.{name}"
    raw = read_user_dataset(entry, key)
    seed = entry.get("shuffle_seed", 0)
    if seed is not None:
        perm = np.random.default_rng(int(seed)).permutation(len(raw["y_train"]))
        raw["x_train"], raw["y_train"] = raw["x_train"][perm], raw["y_train"][perm]
    mode = entry.get("normalisation") or "none"
    x_train, x_test, shift, scale = normalise_channels(raw["x_train"], raw["x_test"], mode)
    options = dict(entry)
    return {
        "x_train": x_train,
        "y_train": raw["y_train"],
        "x_test": x_test,
        "y_test": raw["y_test"],
        "normalisation_shift": shift,
        "normalisation_scale": scale,
        "options_json": np.array(json.dumps(options, sort_keys=True, default=str)),
    }


def prepare_fashion_dataset(
    entry: Mapping[str, Any], default_normalisation: str
) -> dict[str, np.ndarray]:
    """Arrays of a ``fashion-mnist`` dataset: MNIST's preparation (resize, classes,
    per-class sample, normalisation; :func:`sgdvi.data.mnist.prepare_mnist`) of the
    Fashion-MNIST files, verified against their SHA-256 unless ``verify: false``."""
    from sgdvi.data import fashion
    from sgdvi.data.mnist import MnistOptions, prepare_mnist

    raw = fashion.load_fashion(
        entry.get("dir") or fashion.DEFAULT_DIR, verify=bool(entry.get("verify", True))
    )
    options = MnistOptions.from_config(entry, default_normalisation)
    arrays = prepare_mnist(raw, options, official=False)
    meta = {**options.as_dict(), "kind": "fashion-mnist", "dir": str(entry.get("dir") or "")}
    arrays["options_json"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def prepare_dataset(
    name: str, entry: Mapping[str, Any], default_normalisation: str = "standard"
) -> dict[str, np.ndarray]:
    """Prepared arrays of a ``fashion-mnist`` or user-kind dataset (the rule of
    ``workflow/rules/user.smk``; MNIST keeps rule ``prepare_mnist``), checked against what
    :func:`inspect_dataset` read from the headers."""
    kind = dataset_kind(entry)
    facts = inspect_dataset(name, entry)
    if kind == "fashion-mnist":
        arrays = prepare_fashion_dataset(entry, default_normalisation)
    elif kind in USER_KINDS:
        arrays = prepare_user_dataset(entry, name)
    else:
        raise ValueError(f"datasets.{name}: kind {kind!r} is prepared by another rule")
    check_prepared(name, arrays, facts)
    return arrays


def check_prepared(name: str, arrays: Mapping[str, np.ndarray], facts: DatasetFacts) -> None:
    """The prepared arrays have the shape :func:`inspect_dataset` promised (a file changed
    between DAG building and the job would otherwise reach training)."""
    for split in ("train", "test"):
        shape = tuple(arrays[f"x_{split}"].shape[1:])
        if shape != facts.input_shape:
            raise DatasetFileError(
                f"datasets.{name}: prepared {split} examples have shape {shape}, expected "
                f"{facts.input_shape}; did the files change? Rerun the workflow"
            )
        top = int(arrays[f"y_{split}"].max())
        if top > facts.max_label:
            raise DatasetFileError(
                f"datasets.{name}: prepared {split} labels reach {top}, expected at most "
                f"{facts.max_label}; did the files change? Rerun the workflow"
            )
