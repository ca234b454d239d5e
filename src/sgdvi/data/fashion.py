"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28x28 grey images of 10 clothing classes.

The files have the layout of MNIST (four IDX files, 60,000 training and 10,000 test images,
6,000 and 1,000 of each class), so a Fashion-MNIST dataset is prepared exactly like an MNIST
one (:func:`sgdvi.data.mnist.prepare_mnist`: resize, class subset, per-class sample,
normalisation) from different raw files. Debian's package ``dataset-fashion-mnist`` installs
them as ``.gz`` under :data:`DEFAULT_DIR` (``apt-get install dataset-fashion-mnist``); any
directory with the four files, raw or ``.gz``, works (``datasets.<name>.dir``).

The uncompressed files are checked against :data:`FASHION_SHA256`, the SHA-256 of Zalando's
release as Debian packages it (the ``.gz`` bytes differ from the upstream archive, so their
MD5s in torchvision do not apply; the uncompressed content has the published class counts and
the published training-pixel mean 0.2860).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from sgdvi.data.idx import parse_idx
from sgdvi.data.mnist import MNIST_FILES

#: where Debian's ``dataset-fashion-mnist`` puts the four ``.gz`` IDX files
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")

#: the ten classes, label 0..9
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: SHA-256 of the uncompressed IDX files (same names as MNIST's)
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

INSTALL_HINT = (
    "install Debian's package (apt-get install dataset-fashion-mnist, files in "
    f"{DEFAULT_DIR}) or put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz) in a directory and set "
    "its path as the dataset's dir:"
)


def find_files(directory: str | Path) -> dict[str, Path]:
    """The four files in ``directory`` (raw preferred over ``.gz``); FileNotFoundError naming
    the missing ones and how to get them."""
    directory = Path(directory)
    found, missing = {}, []
    for name in MNIST_FILES:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(name)
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST: {directory} lacks {missing}; {INSTALL_HINT}")
    return found


def available(directory: str | Path = DEFAULT_DIR) -> bool:
    """Whether the four files are in ``directory``."""
    try:
        find_files(directory)
    except FileNotFoundError:
        return False
    return True


def load_fashion(directory: str | Path = DEFAULT_DIR, verify: bool = True) -> dict[str, np.ndarray]:
    """Read Fashion-MNIST: ``x_train`` uint8 (60000, 28, 28), ``y_train`` int64, ``x_test``,
    ``y_test``. With ``verify`` every uncompressed file must match :data:`FASHION_SHA256`."""
    files = find_files(directory)
    raw = {name: _file_bytes(path) for name, path in files.items()}
    if verify:
        bad = [
            str(files[name])
            for name, data in raw.items()
            if hashlib.sha256(data).hexdigest() != FASHION_SHA256[name]
        ]
        if bad:
            raise ValueError(
                f"Fashion-MNIST: {bad} do not match the SHA-256 of the official release; "
                f"replace them ({INSTALL_HINT}) or set the dataset's verify: false for a "
                "modified copy"
            )
    train_x, train_y, test_x, test_y = (parse_idx(raw[n], str(files[n])) for n in MNIST_FILES)
    return {
        "x_train": train_x,
        "y_train": train_y.astype(np.int64),
        "x_test": test_x,
        "y_test": test_y.astype(np.int64),
    }


def _file_bytes(path: Path) -> bytes:
    """The uncompressed bytes of an IDX file (gunzipped when the name ends in ``.gz``)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data
