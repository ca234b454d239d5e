"""Memory-mapped result files reserve their disk blocks up front (sgdvi.infra.disk): a full
disk stops a job with a message, not a SIGBUS from a write through the map."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from sgdvi.infra import disk
from sgdvi.trajectory.storage import ChunkStore


def test_a_reserved_memmap_has_every_block_allocated(tmp_path):
    path = tmp_path / "w.npy"
    mm = disk.reserved_memmap(path, np.float32, (4096, 64))  # 1 MiB of data
    assert mm.shape == (4096, 64) and mm.dtype == np.float32 and not mm.any()
    st = os.stat(path)
    # a plain open_memmap file is sparse here: almost no blocks until pages are written
    assert st.st_blocks * 512 >= st.st_size >= 4096 * 64 * 4
    sparse = np.lib.format.open_memmap(tmp_path / "s.npy", "w+", np.float32, (4096, 64))
    del sparse
    assert os.stat(tmp_path / "s.npy").st_blocks * 512 < st.st_size


def full_disk(fd, offset, length):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_stops_with_a_message_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(disk.os, "posix_fallocate", full_disk)
    path = tmp_path / "w.npy"
    with pytest.raises(disk.DiskFullError, match=r"no space on the disk for .*w\.npy.*MiB") as e:
        disk.reserved_memmap(path, np.float64, (1000, 10))
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert "rerun" in str(e.value) and not path.exists()


def test_the_trajectory_weight_file_is_reserved(tmp_path, monkeypatch):
    """The file that met the SIGBUS on a full disk (trajectory_train, 2026-12-06)."""
    store = ChunkStore(tmp_path / "run", {"seed": 1}, n_stored=100, d=917)
    monkeypatch.setattr(disk.os, "posix_fallocate", full_disk)
    with pytest.raises(disk.DiskFullError, match="weights.partial.npy"):
        store.open_weights(resume=False)


def test_filesystems_without_preallocation_are_left_alone(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(disk.os, "posix_fallocate", unsupported)
    mm = disk.reserved_memmap(tmp_path / "w.npy", np.float32, (10, 3))
    mm[:] = 1.0
    mm.flush()
    assert np.load(tmp_path / "w.npy").sum() == 30.0
