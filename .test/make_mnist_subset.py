"""Write the .test workflow's MNIST: the first images of the official MNIST files, gzipped IDX.

    .venv/bin/python .test/make_mnist_subset.py resources/mnist .test/data/mnist

reads the four official IDX files (raw or ``.gz``, e.g. ``resources/mnist`` after
``snakemake resources/mnist/train-images-idx3-ubyte``), keeps the first ``--train`` training and
``--test`` test images with their labels, and writes them as ``<name>.gz`` (gzip with a zero
timestamp: the same bytes on every run). It prints the SHA-256 of each uncompressed file, the
values of ``data.mnist.sha256`` in ``.test/config/config.yaml``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

from sgdvi.data.idx import encode_idx, read_idx

#: file name -> (split, kind) of the four MNIST files
FILES = {
    "train-images-idx3-ubyte": "train",
    "train-labels-idx1-ubyte": "train",
    "t10k-images-idx3-ubyte": "test",
    "t10k-labels-idx1-ubyte": "test",
}


def read_any(directory: Path, name: str):
    """The IDX array of ``name`` in ``directory``, raw or gzipped."""
    raw = directory / name
    if raw.is_file():
        return read_idx(raw)
    packed = directory / f"{name}.gz"
    if not packed.is_file():
        raise SystemExit(f"{directory} has neither {name} nor {name}.gz (official MNIST IDX)")
    return read_idx(packed)


def write_subset(source: Path, dest: Path, n_train: int, n_test: int) -> dict[str, str]:
    """Write the first ``n_train`` / ``n_test`` images of each split; {file: sha256 raw}."""
    dest.mkdir(parents=True, exist_ok=True)
    keep = {"train": n_train, "test": n_test}
    hashes = {}
    for name, split in FILES.items():
        data = encode_idx(read_any(source, name)[: keep[split]])
        (dest / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        hashes[name] = hashlib.sha256(data).hexdigest()
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of the official MNIST IDX files")
    parser.add_argument("dest", type=Path, help="output folder, e.g. .test/data/mnist")
    parser.add_argument("--train", type=int, default=1000, help="training images kept")
    parser.add_argument("--test", type=int, default=200, help="test images kept")
    args = parser.parse_args()
    for name, digest in write_subset(args.source, args.dest, args.train, args.test).items():
        print(f"      {name}: {digest}")


if __name__ == "__main__":
    main()
