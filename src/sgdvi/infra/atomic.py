"""Atomic writes of result files: a complete new file or none at all, never debris.

Every writer of a result (snapshots, checkpoints, metrics tables, prepared datasets, spectra)
writes through :func:`atomic_path`: the data go to a temporary file in the target's own
directory (same filesystem, so the final :func:`os.replace` is atomic), which is flushed to disk
(``fsync``) and renamed over the target only when the writer returned normally. On *any*
failure (``OSError(ENOSPC)`` of a full disk, a bug, ``KeyboardInterrupt``, the ``SystemExit``
of a signal handler) the temporary file is removed and the exception propagates; the previous
target, if any, is left untouched. Only a ``kill -9`` can leave a temporary file behind; its
name starts with ``.`` and contains ``.tmp`` (see :data:`TMP_MARK`), so it is easy to spot.

    with atomic_path("results/x/1.0.npz") as tmp:
        np.savez(tmp, a=a)          # tmp ends in ".npz", so numpy adds no suffix

    with atomic_open("results/x/run.json", "w") as fh:
        json.dump(record, fh)

    atomic_write("results/tables/x.parquet", table.to_parquet, index=False)   # one call
    atomic_write("results/figures/x.pdf", fig.savefig, dpi=200)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: part of every temporary file name: ``.<target name>.<random>.tmp<target suffix>``
TMP_MARK = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or directory's) data to disk; directories may refuse (then ignored)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if os.path.isdir(path):
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


def temp_name_for(target: str | os.PathLike[str]) -> tuple[str, str]:
    """``(prefix, suffix)`` of the temporary files of ``target`` (for tests and cleanup)."""
    target = Path(target)
    return f".{target.name}.", f"{TMP_MARK}{target.suffix}"


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``.

    The temporary path ends in the target's suffix (``.npz``, ``.pt``, ``.parquet``, ...), so
    writers that add a suffix (``np.savez``) keep the name. The writer may create the file or
    not (it is created empty first, with the permissions a plain ``open`` would give). On
    success the file is fsync'ed, renamed over ``target`` and the directory fsync'ed; on any
    exception, ``BaseException`` included, it is removed and the exception re-raised.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = temp_name_for(target)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer of {target} did not create its temporary file")
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, target)
        if fsync:
            fsync_path(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(
    target: str | os.PathLike[str], mode: str = "wb", *, fsync: bool = True, **kwargs: Any
) -> Iterator[IO[Any]]:
    """:func:`atomic_path` as an open file (``mode`` ``"w"``/``"wb"``, ``kwargs`` to ``open``)."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a new file; mode {mode!r} is not a write mode")
    with atomic_path(target, fsync=fsync) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()


def atomic_write(
    target: str | os.PathLike[str],
    writer: Callable[..., object],
    /,
    *args: Any,
    fsync: bool = True,
    **kwargs: Any,
) -> Path:
    """``writer(tmp, *args, **kwargs)`` through :func:`atomic_path`; return ``target``.

    ``writer`` is any function that writes a file given its path first: ``np.savez``,
    ``np.savez_compressed``, ``DataFrame.to_parquet``, ``DataFrame.to_csv``, ``Figure.savefig``
    (the temporary name ends in the target's suffix, so the format follows from it).
    """
    with atomic_path(target, fsync=fsync) as tmp:
        writer(tmp, *args, **kwargs)
    return Path(target)


def leftover_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of :func:`atomic_path` in ``directory`` (debris of a ``kill -9``)."""
    return sorted(
        p for p in Path(directory).iterdir() if p.name.startswith(".") and TMP_MARK in p.name
    )
