"""Global contrast normalisation and ZCA whitening of CIFAR (Figs. 2a-c).

The All-CNN experiments of Chaudhari & Soatto (2018) train on CIFAR images preprocessed as in
Springenberg et al. (2015): per-image global contrast normalisation (GCN), then ZCA whitening
fitted on the 50,000 training images and applied with the same statistics to the test set.

GCN: ``x_i <- (x_i - mean(x_i)) / std(x_i, ddof=1)`` over the 3,072 values of image ``i``
(``std < 1e-8`` -> 1).

ZCA: with ``m`` the per-pixel training mean and ``A = (X - m) / sqrt(n - 1)`` (n x d),
``A = U' diag(s) V^T`` (economy SVD); ``W = V diag(1 / (s + eps)) V^T`` and
``x <- W (x - m)``. (Written ``U diag(1/(s+eps)) U^T`` in the experimental details, with
``U`` the d x d singular vectors of the data, i.e. ``V`` here.)

We compute ``V`` and ``s`` from the d x d covariance ``C = A^T A = V diag(s^2) V^T``
(``numpy.linalg.eigh``, float64), ``s = sqrt(max(lambda, 0))``, which is the same
decomposition: the right singular vectors of ``A`` are the eigenvectors of ``A^T A`` and its
singular values the square roots of the eigenvalues. It needs one d x d accumulation over
chunks of the data (no n x d float64 copy of the centred data, no n x d ``U'``), about
``n d^2`` flops instead of the SVD's several ``n d^2``. Accuracy: the eigenvalues have an
absolute error of order ``1e-16 * lambda_max``, so ``s`` is accurate to roughly
``1e-8 * s_max``; only directions with ``s`` below ~1e-6 (far below ``eps = 1e-5``) get a
different gain, and the data has no component along them (GCN makes every image sum to
zero, so the all-ones direction has ``s = 0``), so the whitened images agree with the SVD
route to about 1e-9 (``tests/test_data_zca.py`` compares both).
"""

from __future__ import annotations

import numpy as np

GCN_MIN_STD = 1e-8


def gcn(x: np.ndarray) -> np.ndarray:
    """Global contrast normalisation of each row of ``x`` (n, d), in float64.

    Subtract the row mean, divide by the row standard deviation with ddof=1 (1 where it is
    below 1e-8, e.g. a constant image).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    centred = x - x.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, ddof=1, keepdims=True)
    std[std < GCN_MIN_STD] = 1.0
    return centred / std


def zca_fit(
    x: np.ndarray, eps: float = 1e-5, chunk: int = 5000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ZCA whitening on the rows of ``x`` (n, d); returns ``(mean, W, s)`` in float64.

    ``mean`` (d,) per-pixel mean, ``W`` (d, d) symmetric whitening matrix, ``s`` (d,)
    singular values of ``(x - mean) / sqrt(n - 1)`` in decreasing order. See the module
    docstring for why the covariance eigendecomposition equals the SVD route.
    """
    x = np.asarray(x).reshape(len(x), -1)
    n, d = x.shape
    if n < 2:
        raise ValueError("ZCA needs at least 2 training images")
    mean = np.zeros(d)
    for start in range(0, n, chunk):
        mean += x[start : start + chunk].sum(axis=0, dtype=np.float64)
    mean /= n
    cov = np.zeros((d, d))
    for start in range(0, n, chunk):
        block = x[start : start + chunk].astype(np.float64) - mean
        cov += block.T @ block
    cov /= n - 1
    lam, vecs = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    lam, vecs = lam[order], vecs[:, order]
    s = np.sqrt(np.clip(lam, 0.0, None))
    w = (vecs / (s + eps)) @ vecs.T
    return mean, (w + w.T) / 2, s


def zca_apply(x: np.ndarray, mean: np.ndarray, w: np.ndarray, chunk: int = 5000) -> np.ndarray:
    """``(x - mean) @ W`` row by row (W is symmetric), computed in float64, returned float32."""
    x = np.asarray(x).reshape(len(x), -1)
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, len(x), chunk):
        out[start : start + chunk] = (x[start : start + chunk].astype(np.float64) - mean) @ w
    return out


def prepare_cifar_zca(raw: dict[str, np.ndarray], eps: float = 1e-5) -> dict[str, np.ndarray]:
    """GCN + ZCA of a CIFAR dataset (uint8 (n, 3, 32, 32) from :func:`load_cifar`).

    Returns arrays for :func:`sgdvi.data.save_prepared`: float32 ``x_train``/``x_test``
    (n, 3, 32, 32), int64 labels, and float32 ``zca_W`` (3072, 3072), ``zca_mean`` (3072,).
    """
    shape = raw["x_train"].shape[1:]
    x_train = gcn(raw["x_train"])
    mean, w, _ = zca_fit(x_train, eps)
    out_train = zca_apply(x_train, mean, w)
    del x_train
    out_test = zca_apply(gcn(raw["x_test"]), mean, w)
    return {
        "x_train": out_train.reshape(-1, *shape),
        "y_train": np.asarray(raw["y_train"], dtype=np.int64),
        "x_test": out_test.reshape(-1, *shape),
        "y_test": np.asarray(raw["y_test"], dtype=np.int64),
        "zca_W": w.astype(np.float32),
        "zca_mean": mean.astype(np.float32),
    }
