"""Shared download machinery: checksums, short network timeouts, ordered source fallback.

Every dataset is fetched by trying an ordered list of *sources* (callables that put candidate
files in a scratch directory and return them). The first source whose files all verify wins;
when none does, a single :class:`DownloadError` lists each source tried with its reason and
says how to use a local copy instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """No source produced verified files; the message lists every attempt and the fix."""


class SourceFailed(Exception):
    """One source could not provide verified files (the message is the reason)."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 digest of a file (only to compare with torchvision's published checksums)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksum_mismatches(files: dict[str, Path], expected: dict[str, str], algo: str) -> list[str]:
    """Names of ``files`` whose digest differs from ``expected`` (as 'name: got X, expected Y')."""
    digest = sha256_file if algo == "sha256" else md5_file
    bad = []
    for name, path in files.items():
        want = expected[name].lower()
        got = digest(path)
        if got != want:
            bad.append(f"{name}: {algo} {got} != expected {want}")
    return bad


def verify_checksums(
    files: dict[str, Path], expected: dict[str, str], algo: str = "sha256"
) -> None:
    """Raise :class:`SourceFailed` naming every file whose checksum differs."""
    bad = checksum_mismatches(files, expected, algo)
    if bad:
        raise SourceFailed("checksum mismatch: " + "; ".join(bad))


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Set the default socket timeout (used by urllib, hence torchvision) for a block.

    torchvision's downloaders open URLs without a timeout, so a machine whose firewall drops
    packets would hang; with this, connecting and every read give up after ``seconds``.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def try_sources(
    what: str,
    sources: Sequence[tuple[str, Callable[[], object]]],
    hint: str,
) -> tuple[str, object]:
    """Call each ``(name, attempt)`` in order; return ``(name, result)`` of the first success.

    ``attempt`` signals failure by raising any exception (its message is the reason).
    When all fail, raise one :class:`DownloadError` listing ``name: reason`` for each and
    ending with ``hint`` (how to point the configuration at a local copy).
    """
    if not sources:
        raise DownloadError(f"cannot obtain {what}: no source configured. {hint}")
    reasons = []
    for name, attempt in sources:
        log.info("%s: trying source %r", what, name)
        try:
            result = attempt()
        except Exception as exc:  # any failure means: try the next source
            reason = str(exc).strip() or type(exc).__name__
            if not isinstance(exc, SourceFailed):
                reason = f"{type(exc).__name__}: {reason}"
            log.warning("%s: source %r failed: %s", what, name, reason)
            reasons.append(f"  - {name}: {reason}")
            continue
        log.info("%s: obtained from source %r", what, name)
        return name, result
    raise DownloadError(
        f"cannot obtain {what}; every configured source failed:\n"
        + "\n".join(reasons)
        + f"\n{hint}"
    )
