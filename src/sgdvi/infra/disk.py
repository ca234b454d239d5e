"""Memory-mapped result files whose disk blocks are reserved up front.

``numpy.lib.format.open_memmap(..., mode="w+")`` creates a *sparse* file: its blocks are only
allocated when a page is first written through the map. On a full disk that write cannot fail
with an exception; the kernel kills the process with SIGBUS instead, and Snakemake reports
"died with <Signals.SIGBUS: 7>" and nothing else (seen on a full ``/tmp`` on 2026-12-06).
:func:`reserved_memmap` asks the filesystem for every block first (``posix_fallocate``), so a
full disk stops the job at once with :class:`DiskFullError`, which names the file, the space it
needs, the space left and the fix.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(OSError):
    """The filesystem cannot hold a result file; the message says how much is missing."""


def reserve(path: str | Path) -> None:
    """Allocate every block of ``path`` at its current size (no sparse holes left).

    Raises :class:`DiskFullError` when the filesystem has no room; filesystems that cannot
    preallocate (``EOPNOTSUPP``, ``EINVAL``) are left as they are.
    """
    path = Path(path)
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(
                exc.errno,
                f"no space on the disk for {path}: it needs {size / 2**20:.1f} MiB, "
                f"{free / 2**20:.1f} MiB are free on that filesystem; free some space (or move "
                "results/ to a larger disk) and rerun: the job resumes from its last checkpoint",
            ) from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def reserved_memmap(path: str | Path, dtype: np.dtype | type, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file of ``shape`` opened as a writable memmap, its blocks reserved.

    On :class:`DiskFullError` the new file is removed before the error propagates.
    """
    mm = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        reserve(path)
    except BaseException:
        del mm
        Path(path).unlink(missing_ok=True)
        raise
    return mm
