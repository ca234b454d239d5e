"""Global contrast normalisation and ZCA whitening (CIFAR preprocessing, Figs. 2a-c)."""

from __future__ import annotations

import numpy as np
import pytest

from sgdvi.data import load_prepared, save_prepared
from sgdvi.data.zca import gcn, prepare_cifar_zca, zca_apply, zca_fit


def test_gcn_against_direct_formula():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 3, 4, 4)).astype(np.uint8)
    x[2] = 17  # constant image: std 0 -> divided by 1
    got = gcn(x)
    assert got.shape == (6, 48) and got.dtype == np.float64
    for i in range(6):
        v = x[i].reshape(-1).astype(np.float64)
        mu = sum(v) / len(v)
        sd = (sum((v - mu) ** 2) / (len(v) - 1)) ** 0.5
        sd = 1.0 if sd < 1e-8 else sd
        np.testing.assert_allclose(got[i], (v - mu) / sd, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got[2], 0.0)


def correlated(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.linspace(0.05, 3, d)
    return rng.normal(size=(n, d)) @ mix + rng.normal(size=d) * 5


def svd_reference(x: np.ndarray, eps: float):
    """ZCA exactly as described: economy SVD of the centred data / sqrt(n - 1)."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd((x - mean) / np.sqrt(len(x) - 1), full_matrices=False)
    return mean, vt.T @ np.diag(1 / (s + eps)) @ vt, s


def test_whitened_training_covariance_is_identity_up_to_eps():
    x = correlated(3000, 24, seed=1)
    eps = 1e-5
    mean, w, s = zca_fit(x, eps, chunk=700)
    z = zca_apply(x, mean, w).astype(np.float64)
    cov = np.cov(z, rowvar=False)
    # exactly V diag((s / (s + eps))^2) V^T: identity up to 2 eps / s_min
    assert np.max(np.abs(cov - np.eye(24))) < 4 * eps / s.min() + 1e-6
    assert np.max(np.abs(cov - np.eye(24))) > 0  # not trivially exact
    # with a large eps the deviation is visible and predicted
    mean, w, s = zca_fit(x, 0.5)
    cov = np.cov(zca_apply(x, mean, w).astype(np.float64), rowvar=False)
    eig_sorted = np.sort(np.linalg.eigvalsh(cov))
    np.testing.assert_allclose(eig_sorted, np.sort((s / (s + 0.5)) ** 2), rtol=1e-5)


def test_eigh_route_equals_svd_route():
    x = correlated(500, 30, seed=2)
    mean, w, s = zca_fit(x, 1e-5, chunk=128)
    ref_mean, ref_w, ref_s = svd_reference(x, 1e-5)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s, ref_s, rtol=1e-9)
    np.testing.assert_allclose(w, ref_w, rtol=1e-7, atol=1e-9 * np.abs(ref_w).max())


def test_eigh_route_equals_svd_route_after_gcn():
    """GCN data is rank-deficient (every row sums to zero): outputs still agree."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, (400, 48)).astype(np.float64)
    raw += rng.normal(size=(400, 1)) * 30  # per-image brightness: GCN removes it
    g = gcn(raw)
    mean, w, s = zca_fit(g, 1e-5)
    ref_mean, ref_w, ref_s = svd_reference(g, 1e-5)
    assert ref_s[-1] < 1e-12 and s[-1] < 1e-6  # the all-ones direction
    np.testing.assert_allclose((g - mean) @ w, (g - ref_mean) @ ref_w, rtol=0, atol=1e-8)


def test_prepare_uses_training_statistics(tmp_path):
    rng = np.random.default_rng(4)
    raw = {
        "x_train": rng.integers(0, 256, (300, 3, 4, 4)).astype(np.uint8),
        "y_train": rng.integers(0, 10, 300),
        "x_test": (rng.integers(0, 256, (50, 3, 4, 4)) // 2 + 100).astype(np.uint8),
        "y_test": rng.integers(0, 10, 50),
    }
    eps = 1e-5
    out = prepare_cifar_zca(raw, eps)
    g_train, g_test = gcn(raw["x_train"]), gcn(raw["x_test"])
    ref_mean, ref_w, _ = svd_reference(g_train, eps)
    assert out["x_test"].shape == (50, 3, 4, 4) and out["x_test"].dtype == np.float32
    np.testing.assert_allclose(
        out["x_test"].reshape(50, -1), (g_test - ref_mean) @ ref_w, rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(
        out["x_train"].reshape(300, -1), (g_train - ref_mean) @ ref_w, rtol=1e-5, atol=1e-4
    )
    # fitting on the test set instead would give something else
    own_mean, own_w, _ = svd_reference(g_test, eps)
    assert not np.allclose(out["x_test"].reshape(50, -1), (g_test - own_mean) @ own_w, atol=1e-2)
    np.testing.assert_allclose(out["zca_mean"], ref_mean, rtol=1e-6, atol=1e-7)
    assert out["zca_W"].shape == (48, 48) and out["zca_W"].dtype == np.float32

    save_prepared(tmp_path / "c.npz", **out)
    back = load_prepared(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.x_test.numpy(), out["x_test"])
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_array_equal(z["zca_W"], out["zca_W"])


def test_zca_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        zca_fit(np.zeros((1, 4)))
