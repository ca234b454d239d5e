"""MNIST preparation: 7x7 antialiased resize, normalisation, the three variants."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sgdvi.data.mnist import (
    MNIST_5CLASS_TRAIN,
    normalise,
    prepare_mnist,
    resize_bilinear_antialias,
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


def test_variants():
    raw = raw_dataset()
    m28 = prepare_mnist(raw, "mnist28", "unit")
    assert m28["x_train"].shape == (40, 1, 28, 28) and m28["x_train"].dtype == np.float32
    np.testing.assert_allclose(m28["x_test"][:, 0], raw["x_test"] / 255.0, rtol=1e-6)

    m7 = prepare_mnist(raw, "mnist7", "raw255")
    assert m7["x_train"].shape == (40, 1, 7, 7)
    np.testing.assert_allclose(
        m7["x_train"][:, 0], resize_bilinear_antialias(raw["x_train"]), rtol=1e-6
    )
    np.testing.assert_array_equal(m7["y_test"], raw["y_test"])

    m5 = prepare_mnist(raw, "mnist7-5class", "standard")
    keep_tr, keep_te = raw["y_train"] < 5, raw["y_test"] < 5
    np.testing.assert_array_equal(m5["y_train"], raw["y_train"][keep_tr])
    np.testing.assert_array_equal(m5["y_test"], raw["y_test"][keep_te])
    small = resize_bilinear_antialias(raw["x_train"][keep_tr]) / 255.0
    expected = (resize_bilinear_antialias(raw["x_test"][keep_te]) / 255.0 - small.mean()) / (
        small.std()
    )
    np.testing.assert_allclose(m5["x_test"][:, 0], expected, rtol=1e-5, atol=1e-5)
    assert m5["y_train"].dtype == np.int64


def test_official_checks_counts():
    with pytest.raises(ValueError, match="60000"):
        prepare_mnist(raw_dataset(), "mnist28", "raw255", official=True)
    assert MNIST_5CLASS_TRAIN == 30_596
    with pytest.raises(ValueError, match="unknown MNIST variant"):
        prepare_mnist(raw_dataset(), "mnist14", "raw255")
