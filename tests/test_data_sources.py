"""Datasets by kind (sgdvi.data.kinds, sgdvi.data.sources, sgdvi.data.fashion): header-only
checks with messages naming the key, readers, hold-out split, per-channel normalisation."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from sgdvi.data import fashion
from sgdvi.data.idx import write_idx
from sgdvi.data.kinds import (
    holdout_split,
    inspect_dataset,
    normalise_channels,
    prepare_dataset,
    prepare_fashion_dataset,
)
from sgdvi.data.sources import DatasetFileError, idx_header, inspect_npz, npz_headers

KEY = "datasets.mine"


def _idx_pair(tmp_path: Path, n: int = 12, labels: int | None = None, gz: bool = False):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    images, lab = tmp_path / f"img.idx{suffix}", tmp_path / f"lab.idx{suffix}"
    write_idx(images, rng.integers(0, 256, (n, 5, 6), dtype=np.uint8))
    write_idx(lab, (np.arange(labels if labels is not None else n) % 3).astype(np.uint8))
    return images, lab


def _npz(tmp_path: Path, **override) -> Path:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.normal(size=(20, 3, 4, 4)).astype(np.float32),
        "y_train": np.arange(20) % 4,
        "x_test": rng.normal(size=(6, 3, 4, 4)).astype(np.float32),
        "y_test": np.arange(6) % 4,
    }
    arrays.update(override)
    path = tmp_path / "data.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_reads_shape_without_the_data(tmp_path, gz):
    images, labels = _idx_pair(tmp_path, gz=gz)
    assert idx_header(images, KEY) == (np.dtype(np.uint8), (12, 5, 6))
    assert idx_header(labels, KEY)[1] == (12,)
    facts = inspect_dataset(
        "mine",
        {"kind": "idx", "train_images": str(images), "train_labels": str(labels)},
    )
    assert facts.input_shape == (1, 5, 6) and facts.max_label == 2 and facts.num_classes == 3


def test_idx_wrong_magic_truncation_and_count_mismatch_are_named(tmp_path):
    images, labels = _idx_pair(tmp_path)
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x03" + images.read_bytes()[4:])
    with pytest.raises(DatasetFileError, match=r"datasets\.mine.*not an IDX file.*0x01020803"):
        idx_header(bad, KEY)
    short = tmp_path / "short.idx"
    short.write_bytes(images.read_bytes()[:-7])
    with pytest.raises(DatasetFileError, match="truncated or corrupt"):
        idx_header(short, KEY)
    (tmp_path / "few").mkdir()
    _, few = _idx_pair(tmp_path / "few", labels=11)
    entry = {"kind": "idx", "train_images": str(images), "train_labels": str(few)}
    with pytest.raises(DatasetFileError, match="12 images but 11 labels"):
        inspect_dataset("mine", entry)
    with pytest.raises(DatasetFileError, match="set both test_images and test_labels"):
        inspect_dataset("mine", {**entry, "train_labels": str(labels), "test_images": "x"})
    with pytest.raises(DatasetFileError, match="does not exist"):
        inspect_dataset("mine", {**entry, "train_images": str(tmp_path / "nope")})


def test_idx_without_test_pair_holds_out_a_seeded_share(tmp_path):
    images, labels = _idx_pair(tmp_path, n=40)
    entry = {
        "kind": "idx",
        "train_images": str(images),
        "train_labels": str(labels),
        "test_fraction": 0.25,
        "normalisation": "unit",
        "shuffle_seed": None,
    }
    arrays = prepare_dataset("mine", entry)
    train, test = holdout_split(40, 0.25, 0)
    from sgdvi.data.idx import read_idx

    raw = read_idx(images).astype(np.float64)[:, None] / 255
    np.testing.assert_allclose(arrays["x_train"], raw[train], rtol=1e-6)
    np.testing.assert_allclose(arrays["x_test"], raw[test], rtol=1e-6)
    assert len(arrays["y_test"]) == 10


def test_holdout_split_partitions_and_is_seeded():
    train, test = holdout_split(101, 0.2, 5)
    assert len(test) == 20 and len(train) == 81
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(101))
    np.testing.assert_array_equal(holdout_split(101, 0.2, 5)[1], test)
    assert not np.array_equal(holdout_split(101, 0.2, 6)[1], test)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        holdout_split(10, 1.0, 0)


# --------------------------------------------------------------------------- npz


def test_npz_headers_match_the_arrays(tmp_path):
    path = _npz(tmp_path)
    headers = npz_headers(path, KEY)
    with np.load(path) as z:
        assert {k: (z[k].shape, z[k].dtype) for k in z.files} == headers
    train, test = inspect_npz(path, KEY)
    assert train.example_shape == (3, 4, 4) and train.n == 20 and test.max_label == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"x_train": np.zeros((20, 16), np.float32)}, r"shape \(20, 16\); expected \(N, H, W\)"),
        ({"y_train": np.arange(19) % 4}, "20 images but 19 labels"),
        ({"y_test": np.zeros(6)}, "labels are float64; class labels must be integers"),
        ({"y_test": -np.ones(6, int)}, "has label -1"),
        ({"x_test": np.zeros((6, 3, 5, 5), np.float32)}, r"test examples of shape \(3, 5, 5\)"),
        ({"y_test": None}, r"lacks arrays \['y_test'\]"),
    ],
)
def test_npz_of_the_wrong_shape_is_refused_with_the_key(tmp_path, override, message):
    path = _npz(tmp_path, **override)
    with pytest.raises(DatasetFileError, match=rf"datasets\.mine\.path.*{message}"):
        inspect_dataset("mine", {"kind": "npz", "path": str(path)})


def test_npz_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DatasetFileError, match=r"not a readable \.npz"):
        inspect_dataset("mine", {"kind": "npz", "path": str(path)})


def test_npz_preparation_shuffles_pairs_together_and_standardises_per_channel(tmp_path):
    path = _npz(tmp_path, y_train=np.arange(20) % 4)
    entry = {"kind": "npz", "path": str(path), "normalisation": "standard", "shuffle_seed": 3}
    arrays = prepare_dataset("mine", entry)
    with np.load(path) as z:
        x, y = z["x_train"].astype(np.float64), z["y_train"]
    perm = np.random.default_rng(3).permutation(20)
    np.testing.assert_array_equal(arrays["y_train"], y[perm])
    for c in range(3):  # a naive per-channel loop as the reference
        m, s = x[:, c].mean(), x[:, c].std()
        np.testing.assert_allclose(arrays["x_train"][:, c], (x[perm, c] - m) / s, rtol=1e-5)
    assert arrays["x_train"].dtype == np.float32


def test_normalise_channels_modes():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    a, b, shift, scale = normalise_channels(x, x[:1], "unit")
    np.testing.assert_allclose(a, x / 255.0, rtol=1e-6)
    assert list(scale) == [255.0, 255.0] and list(shift) == [0.0, 0.0]
    none, _, _, _ = normalise_channels(x, x, "none")
    np.testing.assert_array_equal(none, x.astype(np.float32))
    with pytest.raises(ValueError, match="zero variance"):
        normalise_channels(np.ones((2, 1, 2, 2)), np.ones((1, 1, 2, 2)), "standard")


# --------------------------------------------------------------------------- image folder


def _png(path: Path, value: int, size=(6, 5), mode="RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value, value // 2, 255 - value) if mode == "RGB" else value).save(path)


def test_image_folder_with_train_and_test(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", 40 * c + i)
    entry = {"kind": "image-folder", "path": str(tmp_path), "shuffle_seed": None}
    facts = inspect_dataset("mine", entry)
    assert facts.input_shape == (3, 5, 6) and facts.num_classes == 2 and facts.n_train == 6
    arrays = prepare_dataset("mine", entry)
    assert arrays["y_train"].tolist() == [0, 0, 0, 1, 1, 1] and arrays["y_test"].tolist() == [0, 1]
    assert arrays["x_train"][4, 0, 0, 0] == 41 and arrays["x_train"][4, 2, 0, 0] == 255 - 41
    grey = prepare_dataset("mine", {**entry, "grayscale": True, "resize": [4, 4]})
    assert grey["x_train"].shape == (6, 1, 4, 4)


def test_image_folder_errors(tmp_path):
    _png(tmp_path / "train" / "a" / "0.png", 1)
    _png(tmp_path / "test" / "b" / "0.png", 1)
    with pytest.raises(DatasetFileError, match=r"has classes \['b'\] that .* lacks"):
        inspect_dataset("mine", {"kind": "image-folder", "path": str(tmp_path)})
    flat = tmp_path / "flat"
    _png(flat / "a" / "0.png", 1, size=(4, 4))
    _png(flat / "a" / "1.png", 1, size=(5, 4))
    _png(flat / "b" / "0.png", 1, size=(4, 4))
    entry = {"kind": "image-folder", "path": str(flat), "test_fraction": 0.3}
    with pytest.raises(DatasetFileError, match="different sizes.*resize: \\[height, width\\]"):
        prepare_dataset("mine", entry)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFileError, match="holds no class folder with images"):
        inspect_dataset("mine", {"kind": "image-folder", "path": str(tmp_path / "empty")})


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_checksums_refuse_other_files(tmp_path):
    """Generated MNIST-layout files are not Fashion-MNIST: verify refuses them, verify:
    false prepares them like MNIST (no real data needed)."""
    from conftest import fake_mnist

    fake_mnist(tmp_path, n_train=30, n_test=10)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:  # a .gz is read too
        f.write((tmp_path / "t10k-labels-idx1-ubyte").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    entry = {"kind": "fashion-mnist", "dir": str(tmp_path), "size": 7, "normalisation": "unit"}
    with pytest.raises(ValueError, match="do not match the SHA-256 of the official release"):
        prepare_fashion_dataset(entry, "unit")
    arrays = prepare_fashion_dataset({**entry, "verify": False}, "unit")
    assert arrays["x_train"].shape == (30, 1, 7, 7) and arrays["y_test"].shape == (10,)
    assert inspect_dataset("f", entry).input_shape == (1, 7, 7)
    with pytest.raises(DatasetFileError, match=r"datasets\.f\.dir.*apt-get install"):
        inspect_dataset("f", {**entry, "dir": str(tmp_path / "none")})


@pytest.mark.skipif(
    not fashion.available(),
    reason=f"Fashion-MNIST is not installed in {fashion.DEFAULT_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_counts_and_statistics():
    """The published facts: 6,000 training and 1,000 test images per class, training pixel
    mean 0.2860 and standard deviation 0.3530 (Xiao et al. 2017)."""
    raw = fashion.load_fashion()
    assert np.bincount(raw["y_train"]).tolist() == [6000] * 10
    assert np.bincount(raw["y_test"]).tolist() == [1000] * 10
    unit = raw["x_train"] / 255.0
    assert abs(unit.mean() - 0.2860) < 5e-5 and abs(unit.std() - 0.3530) < 5e-5
    arrays = prepare_fashion_dataset(
        {"kind": "fashion-mnist", "size": 28, "classes": [0, 9], "per_class": 50}, "standard"
    )
    assert np.bincount(arrays["y_train"]).tolist()[::9] == [50, 50]
    assert arrays["x_test"].shape == (2000, 1, 28, 28)
