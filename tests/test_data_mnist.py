"""MNIST preparation: 7x7 resize, normalisation, class subsets, per-class samples, the wrap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sgdvi.data.mnist import (
    MNIST_5CLASS_TRAIN,
    OFFICIAL_TEST_PER_DIGIT,
    OFFICIAL_TRAIN_PER_DIGIT,
    MnistOptions,
    authors_wrap_resize,
    authors_wrap_uint8,
    is_official,
    load_mnist,
    normalise,
    prepare_mnist,
    resize_bilinear_antialias,
    select_training_images,
)


def triangle_resize_1d(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an antialiased linear resize, written from the definition.

    Output pixel i has centre c = (i + 1/2) * s in input coordinates (s = n_in / n_out >= 1);
    input pixel j (centre j + 1/2) gets weight max(0, 1 - |j + 1/2 - c| / s), rows normalised.
    """
    s = n_in / n_out
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        c = (i + 0.5) * s
        for j in range(n_in):
            w[i, j] = max(0.0, 1.0 - abs(j + 0.5 - c) / s)
        w[i] /= w[i].sum()
    return w


@pytest.fixture
def toy_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    images[0] = 0
    images[0, 5:20, 12:16] = 255  # a bar, like a "1"
    return images


def test_resize_matches_triangle_formula(toy_images):
    w = triangle_resize_1d(28, 7)
    expected = np.einsum("ij,njk,lk->nil", w, toy_images.astype(np.float64), w)
    got = resize_bilinear_antialias(toy_images)
    assert got.shape == (3, 7, 7) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_resize_matches_pil_float_image(toy_images):
    for img, got in zip(toy_images, resize_bilinear_antialias(toy_images), strict=True):
        pil = Image.fromarray(img.astype(np.float32), mode="F").resize((7, 7), Image.BILINEAR)
        np.testing.assert_allclose(got, np.asarray(pil), rtol=0, atol=1e-3)


def test_resize_has_no_uint8_round_trip():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, :, :14] = 255
    img[0, :, 14:] = 254
    out = resize_bilinear_antialias(img)
    assert not np.allclose(out, np.round(out))  # fractional values survive
    assert out.min() >= 254 and out.max() <= 255  # nothing wraps modulo 256


def test_resize_chunks_agree(toy_images):
    np.testing.assert_array_equal(
        resize_bilinear_antialias(toy_images, chunk=1), resize_bilinear_antialias(toy_images)
    )


def test_normalise_modes():
    rng = np.random.default_rng(1)
    tr = rng.integers(0, 256, (50, 4, 4)).astype(np.uint8)
    te = rng.integers(0, 256, (20, 4, 4)).astype(np.uint8)
    a, b, shift, scale = normalise(tr, te, "raw255")
    np.testing.assert_array_equal(a, tr)
    np.testing.assert_array_equal(b, te)
    assert (shift, scale) == (0.0, 1.0)
    a, b, _, _ = normalise(tr, te, "unit")
    np.testing.assert_allclose(b, te / 255.0)
    a, b, shift, scale = normalise(tr, te, "standard")
    m, s = (tr / 255.0).mean(), (tr / 255.0).std()
    np.testing.assert_allclose(b, (te / 255.0 - m) / s, rtol=1e-12)
    assert abs(a.mean()) < 1e-12 and abs(a.std() - 1) < 1e-12
    assert abs(b.mean()) > 1e-3  # the test set uses the training statistics
    np.testing.assert_allclose((te - shift) / scale, b)
    with pytest.raises(ValueError, match="normalisation"):
        normalise(tr, te, "zscore")


def raw_dataset(n_train=40, n_test=20, seed=2):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "y_test": (np.arange(n_test) * 3) % 10,
    }


def opts(size: int, normalisation: str = "raw255", **kw) -> MnistOptions:
    return MnistOptions(size=size, normalisation=normalisation, **kw)


def test_datasets():
    raw = raw_dataset()
    m28 = prepare_mnist(raw, opts(28, "unit"))
    assert m28["x_train"].shape == (40, 1, 28, 28) and m28["x_train"].dtype == np.float32
    np.testing.assert_allclose(m28["x_test"][:, 0], raw["x_test"] / 255.0, rtol=1e-6)

    m7 = prepare_mnist(raw, opts(7))
    assert m7["x_train"].shape == (40, 1, 7, 7)
    np.testing.assert_allclose(
        m7["x_train"][:, 0], resize_bilinear_antialias(raw["x_train"]), rtol=1e-6
    )
    np.testing.assert_array_equal(m7["y_test"], raw["y_test"])

    m5 = prepare_mnist(raw, opts(7, "standard", classes=(0, 1, 2, 3, 4)))
    keep_tr, keep_te = raw["y_train"] < 5, raw["y_test"] < 5
    np.testing.assert_array_equal(m5["y_train"], raw["y_train"][keep_tr])
    np.testing.assert_array_equal(m5["y_test"], raw["y_test"][keep_te])
    small = resize_bilinear_antialias(raw["x_train"][keep_tr]) / 255.0
    expected = (resize_bilinear_antialias(raw["x_test"][keep_te]) / 255.0 - small.mean()) / (
        small.std()
    )
    np.testing.assert_allclose(m5["x_test"][:, 0], expected, rtol=1e-5, atol=1e-5)
    assert m5["y_train"].dtype == np.int64
    assert json.loads(str(m5["options_json"])) == {
        "size": 7,
        "classes": [0, 1, 2, 3, 4],
        "per_class": None,
        "sample_seed": 42,
        "authors_wrap": False,
        "normalisation": "standard",
    }


def test_official_checks_counts():
    with pytest.raises(ValueError, match="60000"):
        prepare_mnist(raw_dataset(), opts(28), official=True)
    assert MNIST_5CLASS_TRAIN == 30_596 == sum(OFFICIAL_TRAIN_PER_DIGIT[:5])
    assert sum(OFFICIAL_TRAIN_PER_DIGIT[:2]) == 12_665 and sum(OFFICIAL_TEST_PER_DIGIT[:2]) == 2_115
    assert sum(OFFICIAL_TRAIN_PER_DIGIT) == 60_000 and sum(OFFICIAL_TEST_PER_DIGIT) == 10_000
    with pytest.raises(ValueError, match="size"):
        opts(14)
    with pytest.raises(ValueError, match="digits"):
        opts(7, classes=(0, 10))


# --------------------------------------------------------------------------- authors' wrap


def test_authors_wrap_known_pixels():
    """ToPILImage of 2017 on a float tensor holding 0..255: uint8(255 v) = (-v) mod 256."""
    v = np.array([[[0, 1, 128, 255, 2, 127, 129, 254]]], dtype=np.uint8)
    want = np.array([[[0, 255, 128, 1, 254, 129, 127, 2]]], dtype=np.uint8)
    np.testing.assert_array_equal(authors_wrap_uint8(v), want)
    # independently: float32 product 255 v, then the C cast through int64 modulo 256
    via_float = (v.astype(np.float32) * 255).astype(np.int64) & 0xFF
    np.testing.assert_array_equal(authors_wrap_uint8(v), via_float.astype(np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        authors_wrap_uint8(v.astype(np.float64))


def test_authors_wrap_resize_constant_and_pil():
    """A constant image stays constant through the Pillow resize (wrapped value, uint8)."""
    for value, wrapped in ((0, 0), (1, 255), (128, 128), (255, 1), (200, 56)):
        img = np.full((2, 28, 28), value, dtype=np.uint8)
        out = authors_wrap_resize(img, 7)
        assert out.shape == (2, 7, 7) and out.dtype == np.float64
        np.testing.assert_array_equal(out, wrapped)
    # a non-constant image: the Pillow uint8 bilinear resize of the wrapped pixels, rounded
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (1, 28, 28)).astype(np.uint8)
    out = authors_wrap_resize(img, 7)[0]
    assert np.array_equal(out, np.round(out)) and out.min() >= 0 and out.max() <= 255
    w = triangle_resize_1d(28, 7)
    exact = w @ ((256 - img[0].astype(np.float64)) % 256) @ w.T
    assert np.abs(out - exact).max() <= 1.0  # Pillow rounds its fixed-point result


def test_authors_wrap_dataset_is_the_authors_pipeline():
    """wrap -> Pillow bilinear -> /255 (ToTensor) with normalisation unit."""
    raw = raw_dataset()
    got = prepare_mnist(raw, opts(7, "unit", authors_wrap=True))
    pil = np.stack(
        [
            np.asarray(
                Image.fromarray(((256 - im.astype(int)) % 256).astype(np.uint8)).resize(
                    (7, 7), Image.BILINEAR
                )
            )
            for im in raw["x_train"]
        ]
    )
    np.testing.assert_allclose(got["x_train"][:, 0], pil / 255.0, rtol=1e-6)
    stated = prepare_mnist(raw, opts(7, "unit"))
    assert not np.allclose(got["x_train"], stated["x_train"], atol=0.05)


# --------------------------------------------------------------------------- sampling


def test_per_class_sampling_exact_counts_and_seed():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, 2000)
    idx = select_training_images(labels, (0, 1, 2, 3), 20, sample_seed=42)
    assert np.bincount(labels[idx], minlength=10).tolist() == [20] * 4 + [0] * 6
    assert len(np.unique(idx)) == 80
    np.testing.assert_array_equal(idx, select_training_images(labels, (0, 1, 2, 3), 20, 42))
    assert not np.array_equal(idx, select_training_images(labels, (0, 1, 2, 3), 20, 43))
    # the definition: walk one permutation of all indices, keep the first 20 of each class
    perm = np.random.default_rng(42).permutation(2000)
    seen: dict[int, int] = {}
    want = []
    for i in perm:
        c = int(labels[i])
        if c < 4 and seen.get(c, 0) < 20:
            seen[c] = seen.get(c, 0) + 1
            want.append(i)
    np.testing.assert_array_equal(idx, want)
    # no per_class: the class subset in file order; too few images: an error
    np.testing.assert_array_equal(
        select_training_images(labels, (1, 3), None), np.flatnonzero(np.isin(labels, (1, 3)))
    )
    with pytest.raises(ValueError, match="per_class"):
        select_training_images(labels, (0,), 10_000)


def test_per_class_dataset_keeps_the_test_set():
    raw = raw_dataset(n_train=400, n_test=50)
    got = prepare_mnist(raw, opts(7, classes=(0, 1, 2, 3), per_class=7, sample_seed=1))
    assert np.bincount(got["y_train"]).tolist() == [7, 7, 7, 7]
    np.testing.assert_array_equal(got["y_test"], raw["y_test"][raw["y_test"] < 4])


# --------------------------------------------------------------------------- real MNIST

REAL_MNIST = Path(__file__).resolve().parents[1] / "resources" / "mnist"


@pytest.fixture(scope="module")
def real_mnist() -> dict[str, np.ndarray]:
    """The official MNIST as the workflow's download_mnist rule stores it (resources/mnist/)."""
    if not is_official(REAL_MNIST):
        pytest.skip(
            f"the official MNIST files are not in {REAL_MNIST}: run `make quick` (or "
            "`snakemake --cores 1 resources/mnist/train-images-idx3-ubyte`) to fetch them"
        )
    return load_mnist(REAL_MNIST)


def test_real_mnist_digits_01_and_authors_subset(real_mnist):
    """Digits 0/1 (the authors' small-fc data): 12,665 training and 2,115 test images;
    digits 0-3, 512 each (the authors' Fig. 3 data): 2,048. The official-count checks pass."""
    y = real_mnist["y_train"]
    keep = select_training_images(y, (0, 1), None)
    assert len(keep) == 12_665
    assert int(np.isin(real_mnist["y_test"], (0, 1)).sum()) == 2_115
    idx = select_training_images(y, (0, 1, 2, 3), 512, 42)
    assert len(idx) == 2_048 and np.bincount(y[idx]).tolist() == [512] * 4
    got = prepare_mnist(real_mnist, opts(7, "unit", classes=(0, 1), authors_wrap=True), True)
    assert len(got["y_train"]) == 12_665 and len(got["y_test"]) == 2_115
    assert got["x_train"].min() >= 0 and got["x_train"].max() <= 1
