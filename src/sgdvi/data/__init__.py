"""Datasets: download with checksums, preparation (resize, GCN + ZCA), augmentation.

Prepared datasets are npz files ``results/data/{name}.npz`` with arrays

- ``x_train`` float32 (N, C, H, W), ``y_train`` int64 (N,)
- ``x_test``  float32 (M, C, H, W), ``y_test``  int64 (M,)

and, for ZCA-whitened CIFAR, ``zca_W`` (3072, 3072) and ``zca_mean`` (3072,); for MNIST,
``options_json`` (the dataset's options of the config's ``datasets:``, JSON text).
:func:`load_prepared` reads them back as torch tensors, :func:`load_dataset_options` the options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from sgdvi.data.augment import random_flip_crop

__all__ = [
    "PREPARED_KEYS",
    "Prepared",
    "load_dataset_options",
    "load_prepared",
    "random_flip_crop",
    "save_prepared",
]


class Prepared(NamedTuple):
    """A prepared dataset as tensors on one device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


PREPARED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def save_prepared(path: str | Path, **arrays: np.ndarray) -> None:
    """Write a prepared dataset (npz, uncompressed) atomically."""
    missing = [k for k in PREPARED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"prepared dataset lacks arrays {missing}")
    arrays["x_train"] = np.ascontiguousarray(arrays["x_train"], dtype=np.float32)
    arrays["x_test"] = np.ascontiguousarray(arrays["x_test"], dtype=np.float32)
    arrays["y_train"] = np.asarray(arrays["y_train"], dtype=np.int64)
    arrays["y_test"] = np.asarray(arrays["y_test"], dtype=np.int64)
    from sgdvi.infra.atomic import atomic_path  # no half-written dataset, on any failure

    with atomic_path(path) as tmp:  # tmp ends in .npz: numpy adds no suffix
        np.savez(tmp, **arrays)


def load_prepared(
    path: str | Path,
    train_subset: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Prepared:
    """Read a prepared dataset; ``train_subset`` keeps the first n training examples."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"prepared dataset {path} is missing; run the workflow rule that makes it "
            f"(snakemake {path})"
        )
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in PREPARED_KEYS}
    except Exception as exc:
        raise RuntimeError(
            f"cannot read prepared dataset {path}: {exc}. Delete it and rerun its rule"
        ) from exc
    if train_subset is not None:
        if train_subset > len(arrays["y_train"]):
            raise ValueError(
                f"train_subset={train_subset} exceeds the {len(arrays['y_train'])} training "
                f"examples of {path.name}"
            )
        arrays["x_train"] = arrays["x_train"][:train_subset]
        arrays["y_train"] = arrays["y_train"][:train_subset]
    return Prepared(
        x_train=torch.as_tensor(arrays["x_train"], dtype=dtype, device=device),
        y_train=torch.as_tensor(arrays["y_train"], dtype=torch.int64, device=device),
        x_test=torch.as_tensor(arrays["x_test"], dtype=dtype, device=device),
        y_test=torch.as_tensor(arrays["y_test"], dtype=torch.int64, device=device),
    )


def load_dataset_options(path: str | Path) -> dict[str, Any]:
    """The options a prepared MNIST dataset was made with (size, classes, per_class,
    sample_seed, authors_wrap, normalisation); ``{}`` for files without them (CIFAR)."""
    with np.load(Path(path)) as z:
        if "options_json" not in z.files:
            return {}
        return json.loads(str(z["options_json"]))
