"""IDX reader/writer and the MNIST loader on generated and corrupt files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from sgdvi.data.idx import IdxFormatError, encode_idx, parse_idx, read_idx, write_idx
from sgdvi.data.mnist import MNIST_FILES, load_mnist


def manual_idx(array: np.ndarray) -> bytes:
    """IDX bytes built by hand from the format description (uint8 only)."""
    head = bytes([0, 0, 0x08, array.ndim])
    for size in array.shape:
        head += int(size).to_bytes(4, "big")
    return head + array.astype(np.uint8).tobytes(order="C")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_roundtrip_uint8_raw_and_gz(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / f"images{suffix}"
    write_idx(path, images)
    raw = path.read_bytes()
    if suffix:
        raw = gzip.decompress(raw)
    assert raw == manual_idx(images)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == (5, 28, 28)
    np.testing.assert_array_equal(back, images)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_roundtrip_other_types_big_endian(dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    data = encode_idx(array)
    # big-endian payload as the format requires
    width = np.dtype(dtype).itemsize
    first = array.reshape(-1)[:1].astype(np.dtype(dtype).newbyteorder(">"))
    assert data[4 + 12 : 4 + 12 + width] == first.tobytes()
    np.testing.assert_array_equal(parse_idx(data), array)


def test_bad_magic_number():
    data = bytearray(manual_idx(np.zeros((2, 3), np.uint8)))
    data[0] = 0x1F  # e.g. a gzip file read as raw
    with pytest.raises(IdxFormatError, match="bad magic number"):
        parse_idx(bytes(data), "x")
    data = bytearray(manual_idx(np.zeros((2, 3), np.uint8)))
    data[2] = 0x07  # unknown type code
    with pytest.raises(IdxFormatError, match="bad magic number"):
        parse_idx(bytes(data), "x")


def test_truncated_and_too_long(tmp_path):
    good = manual_idx(np.ones((4, 28, 28), np.uint8))
    path = tmp_path / "t"
    path.write_bytes(good[:-10])
    with pytest.raises(IdxFormatError, match=r"truncated.*download it again"):
        read_idx(path)
    with pytest.raises(IdxFormatError, match="too long"):
        parse_idx(good + b"\0", "x")
    with pytest.raises(IdxFormatError, match="truncated header"):
        parse_idx(good[:9], "x")
    with pytest.raises(IdxFormatError, match="shorter than the IDX header"):
        parse_idx(good[:3], "x")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(manual_idx(np.ones((3, 3), np.uint8)))[:-8])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(tmp_path / "nope")


def write_mnist(directory, n_train=12, n_test=7, size=28, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        (directory / name).write_bytes(manual_idx(a))
    return arrays


def test_load_mnist(tmp_path):
    arrays = write_mnist(tmp_path)
    out = load_mnist(tmp_path)
    np.testing.assert_array_equal(out["x_train"], arrays[MNIST_FILES[0]])
    np.testing.assert_array_equal(out["y_train"], arrays[MNIST_FILES[1]])
    np.testing.assert_array_equal(out["x_test"], arrays[MNIST_FILES[2]])
    np.testing.assert_array_equal(out["y_test"], arrays[MNIST_FILES[3]])
    assert out["y_train"].dtype == np.int64


def test_load_mnist_mismatched_labels(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(manual_idx(np.zeros(11, np.uint8)))
    with pytest.raises(ValueError, match="do not belong together"):
        load_mnist(tmp_path)


def test_load_mnist_truncated_file_names_it(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IdxFormatError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_header_shape_is_big_endian():
    data = manual_idx(np.zeros((1, 258), np.uint8))
    assert struct.unpack(">I", data[8:12])[0] == 258
    assert parse_idx(data).shape == (1, 258)
