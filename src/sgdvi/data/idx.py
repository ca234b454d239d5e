"""Reader and writer of the IDX format of the MNIST files (LeCun et al.).

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the data in C order, big-endian. The MNIST files use type
``0x08`` (unsigned byte): images ``(n, 28, 28)``, labels ``(n,)``. Files ending in ``.gz`` are
read and written gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

#: IDX type code -> numpy dtype (big-endian where it matters)
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """A file that is not a well-formed IDX file (wrong magic number, truncated, too long)."""


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            return gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise IdxFormatError(
                f"{path}: not a valid gzip file ({exc}); the download is probably incomplete. "
                f"Delete it and download it again"
            ) from exc
    return path.read_bytes()


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file into a native-endian numpy array."""
    fix = f"{name} is corrupt or not an IDX file; delete it and download it again"
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes, shorter than the IDX header. {fix}")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in IDX_TYPES:
        raise IdxFormatError(
            f"{name}: bad magic number 0x{data[:4].hex()} (expected 0x0000 followed by a type "
            f"code in {[hex(t) for t in IDX_TYPES]} and the number of dimensions). {fix}"
        )
    if ndim == 0:
        raise IdxFormatError(f"{name}: header declares 0 dimensions. {fix}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(
            f"{name}: truncated header ({len(data)} bytes, {ndim} dimensions need {header}). {fix}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_TYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "too long"
        raise IdxFormatError(
            f"{name}: {kind}: {len(data)} bytes, but the header (shape {shape}, "
            f"{dtype.itemsize}-byte values) implies {expected}. {fix}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    return parse_idx(_read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (dtype must be one of :data:`IDX_TYPES`)."""
    array = np.asarray(array)
    matches = [
        (code, dtype)
        for code, dtype in IDX_TYPES.items()
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize
    ]
    if not matches:
        raise ValueError(f"IDX has no type for dtype {array.dtype}")
    code, dtype = matches[0]
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {array.ndim}")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an IDX file (gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    data = encode_idx(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
