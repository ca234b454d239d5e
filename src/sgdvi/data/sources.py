"""Readers of a user's own data: an IDX pair, an ``.npz`` of arrays, an image-folder tree.

Each reader has a cheap ``inspect_*`` twin that reads headers only (IDX header, the ``.npy``
headers inside an ``.npz``, one image of an image folder) plus the labels, so that a file of
the wrong shape is reported when the workflow is built, before any job runs
(:func:`sgdvi.data.kinds.inspect_dataset`). Every error is a :class:`DatasetFileError` naming
the config key, the file, what is wrong and the fix.

Layouts:

- IDX pair: images ``(N, H, W)`` or ``(N, C, H, W)`` and labels ``(N,)`` (any IDX type; the
  format of the MNIST files, :mod:`sgdvi.data.idx`);
- npz: ``x_train`` ``(N, H, W)`` or ``(N, C, H, W)``, ``y_train`` ``(N,)`` integers,
  ``x_test``, ``y_test`` likewise, the same image shape;
- image folder (torchvision ``ImageFolder``): ``<root>/train/<class>/<image>`` and
  ``<root>/test/<class>/<image>``, or ``<root>/<class>/<image>`` with a held-out test share;
  the class index is the position of the class folder name in the sorted training classes.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgdvi.data.idx import IDX_TYPES, read_idx

#: file suffixes an image folder's images may have (torchvision's IMG_EXTENSIONS)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DatasetFileError(ValueError):
    """A dataset file or folder that cannot be used; the message names key, file and fix."""


@dataclass(frozen=True)
class SplitFacts:
    """Shape facts of one split: number of examples, one example's shape, label range."""

    n: int
    example_shape: tuple[int, ...]
    min_label: int
    max_label: int


# --------------------------------------------------------------------------- IDX


def idx_header(path: str | Path, key: str) -> tuple[np.dtype, tuple[int, ...]]:
    """dtype and shape from the header of an IDX file (raw or ``.gz``); a raw file's size
    must match them. :class:`DatasetFileError` naming ``key`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{key}: file {path} does not exist; fix the path")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            magic_ok = len(head) == 4 and head[:2] == b"\0\0" and head[2] in IDX_TYPES
            ndim = head[3] if magic_ok else 0
            dims = f.read(4 * ndim)
    except OSError as exc:
        raise DatasetFileError(f"{key}: cannot read {path} ({exc})") from exc
    if not magic_ok or ndim == 0 or len(dims) != 4 * ndim:
        raise DatasetFileError(
            f"{key}: {path} is not an IDX file (magic number 0x{head.hex()}, expected "
            "0x0000, a type code and the number of dimensions); give an IDX file or use "
            "kind: npz"
        )
    dtype, shape = IDX_TYPES[head[2]], struct.unpack(f">{ndim}I", dims)
    if path.suffix != ".gz":
        expected = 4 + 4 * ndim + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if path.stat().st_size != expected:
            raise DatasetFileError(
                f"{key}: {path} has {path.stat().st_size} bytes, but its header (shape "
                f"{shape}) implies {expected}; the file is truncated or corrupt"
            )
    return dtype, tuple(int(s) for s in shape)


def _check_images_labels(
    key: str, where: str, x_shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> None:
    if len(x_shape) not in (3, 4):
        raise DatasetFileError(
            f"{key}: {where} images have shape {x_shape}; expected (N, H, W) or (N, C, H, W)"
        )
    if len(y_shape) != 1:
        raise DatasetFileError(f"{key}: {where} labels have shape {y_shape}; expected (N,)")
    if x_shape[0] != y_shape[0]:
        raise DatasetFileError(
            f"{key}: {where} has {x_shape[0]} images but {y_shape[0]} labels; they must be "
            "the same number, in the same order"
        )


def _label_range(key: str, where: str, labels: np.ndarray) -> tuple[int, int]:
    if labels.dtype.kind not in "iu":
        raise DatasetFileError(
            f"{key}: {where} labels are {labels.dtype}; class labels must be integers 0..C-1"
        )
    if labels.size == 0:
        raise DatasetFileError(f"{key}: {where} has no examples")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise DatasetFileError(f"{key}: {where} has label {low}; labels must be 0..C-1")
    return low, high


def example_shape(x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) of one example: ``(N, H, W)`` images get one channel."""
    return (1, *x_shape[1:]) if len(x_shape) == 3 else tuple(x_shape[1:])


def inspect_idx_pair(images: str | Path, labels: str | Path, key: str) -> SplitFacts:
    """Facts of an (images, labels) IDX pair from the headers and the labels file."""
    _, x_shape = idx_header(images, f"{key}: images")
    _, y_shape = idx_header(labels, f"{key}: labels")
    _check_images_labels(key, f"{images} / {labels}", x_shape, y_shape)
    low, high = _label_range(key, str(labels), read_idx(labels))
    return SplitFacts(x_shape[0], example_shape(x_shape), low, high)


def read_idx_pair(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, C, H, W)`` (dtype as stored) and int64 labels of an IDX pair."""
    x, y = read_idx(images), read_idx(labels).astype(np.int64)
    return x.reshape(len(x), *example_shape(x.shape)), y


# --------------------------------------------------------------------------- npz


def npz_headers(path: str | Path, key: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an ``.npz`` from the ``.npy`` headers alone."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{key}: file {path} does not exist; fix the path")
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                out[info.filename[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DatasetFileError(
            f"{key}: {path} is not a readable .npz ({type(exc).__name__}: {exc}); write it "
            "with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        ) from exc
    return out


def inspect_npz(path: str | Path, key: str) -> tuple[SplitFacts, SplitFacts]:
    """(train, test) facts of an ``.npz`` dataset; checks keys, dims, lengths, labels."""
    headers = npz_headers(path, key)
    missing = [k for k in NPZ_KEYS if k not in headers]
    if missing:
        raise DatasetFileError(
            f"{key}: {path} lacks arrays {missing} (has {sorted(headers)}); it needs "
            f"{list(NPZ_KEYS)}"
        )
    facts = []
    with np.load(path) as z:
        for split in ("train", "test"):
            x_shape, y_shape = headers[f"x_{split}"][0], headers[f"y_{split}"][0]
            where = f"{path} ({split})"
            _check_images_labels(key, where, x_shape, y_shape)
            low, high = _label_range(key, where, z[f"y_{split}"])
            facts.append(SplitFacts(x_shape[0], example_shape(x_shape), low, high))
    if facts[0].example_shape != facts[1].example_shape:
        raise DatasetFileError(
            f"{key}: {path} has training examples of shape {facts[0].example_shape} but test "
            f"examples of shape {facts[1].example_shape}; they must match"
        )
    return facts[0], facts[1]


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of an ``.npz`` dataset, images as ``(N, C, H, W)``, labels int64."""
    with np.load(path) as z:
        out = {k: z[k] for k in NPZ_KEYS}
    for split in ("train", "test"):
        x = out[f"x_{split}"]
        out[f"x_{split}"] = x.reshape(len(x), *example_shape(x.shape))
        out[f"y_{split}"] = out[f"y_{split}"].astype(np.int64)
    return out


# --------------------------------------------------------------------------- image folder


def folder_classes(root: Path, key: str) -> dict[str, list[Path]]:
    """Class folder name -> its image files (sorted) under ``root``."""
    if not root.is_dir():
        raise DatasetFileError(f"{key}: folder {root} does not exist; fix the path")
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            classes[sub.name] = files
    if not classes:
        raise DatasetFileError(
            f"{key}: {root} holds no class folder with images ({', '.join(IMAGE_SUFFIXES)}); "
            "lay it out as <path>/<class>/<image> or <path>/train/<class>/<image>"
        )
    return classes


def image_folder_splits(root: str | Path, key: str) -> tuple[Path, Path | None]:
    """(training root, test root or None): ``train/`` and ``test/`` when both exist."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root / "train", root / "test"
    return root, None


def image_shape(path: Path, grayscale: bool, size: tuple[int, int] | None) -> tuple[int, ...]:
    """(C, H, W) a prepared image will have: ``size`` if given, else the file's own size."""
    from PIL import Image

    channels = 1 if grayscale else 3
    if size is not None:
        return (channels, int(size[0]), int(size[1]))
    with Image.open(path) as img:
        width, height = img.size
    return (channels, height, width)


def inspect_image_folder(
    root: str | Path, key: str, grayscale: bool, size: tuple[int, int] | None
) -> tuple[list[str], SplitFacts, SplitFacts | None]:
    """(class names, train facts, test facts or None) of an image-folder dataset.

    The example shape comes from the first training image (or ``size``); test classes must
    be training classes (the label of a class is its index among the training classes).
    """
    train_root, test_root = image_folder_splits(root, key)
    train = folder_classes(train_root, key)
    names = list(train)
    first = next(iter(train.values()))[0]
    shape = image_shape(first, grayscale, size)
    train_facts = SplitFacts(sum(map(len, train.values())), shape, 0, len(names) - 1)
    if test_root is None:
        return names, train_facts, None
    test = folder_classes(test_root, key)
    unknown = sorted(set(test) - set(train))
    if unknown:
        raise DatasetFileError(
            f"{key}: {test_root} has classes {unknown} that {train_root} lacks; every test "
            "class needs training images"
        )
    labels = [names.index(c) for c in test]
    facts = SplitFacts(sum(map(len, test.values())), shape, min(labels), max(labels))
    return names, train_facts, facts


def _load_image(path: Path, grayscale: bool, size: tuple[int, int] | None) -> np.ndarray:
    """One image as uint8 (C, H, W): converted to L or RGB, resized (bilinear) to ``size``."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L" if grayscale else "RGB")
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_image_folder_split(
    root: Path, names: list[str], key: str, grayscale: bool, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, C, H, W)`` and int64 labels (index in ``names``) under ``root``."""
    images, labels = [], []
    for cls, files in folder_classes(root, key).items():
        for f in files:
            images.append(_load_image(f, grayscale, size))
            labels.append(names.index(cls))
    shapes = sorted({im.shape for im in images})
    if len(shapes) > 1:
        raise DatasetFileError(
            f"{key}: images under {root} have different sizes {shapes[:3]}; set the dataset's "
            "resize: [height, width] to resize them"
        )
    return np.stack(images), np.asarray(labels, dtype=np.int64)
