"""Logging of the workflow scripts (``workflow/scripts/*.py``) to their rule's ``log:`` file.

Every Snakemake rule declares ``log: "logs/<stage>/<...>.log"``; its script wraps its body in
:func:`rule_log`, so that progress messages and, when the script fails, the traceback end up in
that file (``snakemake --show-failed-logs`` prints it), and the exception still propagates so
that Snakemake marks the job as failed::

    with rule_log(snakemake.log[0], "diffusion_table") as log:
        log.info("...")

Attempts (an interrupted run's record must survive the rerun). Snakemake deletes a job's log
file before it runs the job again, so the record of an interrupted run would be lost.
:func:`rule_log` therefore keeps every attempt: the log is a hard link to a history file
``.<log name>.history`` beside it, which Snakemake does not know about and does not delete;
each attempt starts with a header line (:func:`attempt_header`: attempt number, UTC time, PID
and host, and where it resumed from). Where hard links are not possible the history is copied
into the new log and written to both.
"""

import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: start of the header line of each attempt in a rule's log
HEADER = "==== attempt"

FORMAT = "%(asctime)s %(levelname)s %(message)s"
"""Default line format of a rule's log: time, level, message."""


@contextmanager
def rule_log(
    path: str | os.PathLike[str],
    name: str,
    *,
    fmt: str = FORMAT,
    datefmt: str | None = None,
    stderr: bool = False,
    capture_all: bool = True,
    failure: str | None = None,
    resumed_from: str | None = None,
    job: str | None = None,
) -> Iterator[logging.Logger]:
    """Log to the rule's log file ``path`` (appending) for the duration of the ``with`` block.

    Yields ``logging.getLogger(name)``. With ``capture_all`` (the default) the handlers go on
    the root logger at level INFO, so the messages of the library's own loggers
    (``sgdvi.data.fetch``, ``sgdvi.trajectory.runner``, ...) reach the file too; without it
    only ``name`` and its children are written. ``stderr=True`` also echoes every record to
    standard error (progress in Snakemake's own output). ``fmt`` and ``datefmt`` are those of
    :class:`logging.Formatter`.

    Every attempt appends to the history of earlier attempts after a header line
    (:func:`attempt_header`: ``job``, default ``name``, and ``resumed_from`` when given: where a
    resumable job restarts).

    An :class:`Exception` raised in the block is logged with its traceback as ``failure``
    (default ``"<name> failed"``) and re-raised. On exit the handlers are removed and closed
    and the logger's level restored, so the context can be used more than once in a process.
    """
    logger = logging.getLogger(name)
    target = logging.getLogger() if capture_all else logger
    formatter = logging.Formatter(fmt, datefmt)
    mirror = _join_history(Path(path))
    number = 1 + Path(path).read_text(errors="replace").count(f"\n{HEADER} ")
    header = attempt_header(number, job or name, resumed_from)
    handlers: list[logging.Handler] = []
    for target_path in [path, *([mirror] if mirror else [])]:
        with open(target_path, "a") as fh:
            fh.write(header + "\n")
        handlers.append(logging.FileHandler(target_path, mode="a"))
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    old_level = target.level
    for handler in handlers:
        handler.setFormatter(formatter)
        target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield logger
    except Exception:
        logger.exception("%s", failure if failure is not None else f"{name} failed")
        raise
    finally:
        for handler in handlers:
            target.removeHandler(handler)
            handler.close()
        target.setLevel(old_level)


def history_path(path: str | os.PathLike[str]) -> Path:
    """The history file of a rule's log: ``.<name>.history`` in the same directory."""
    path = Path(path)
    return path.with_name(f".{path.name}.history")


def attempt_header(number: int, name: str, resumed_from: str | None = None) -> str:
    """``==== attempt 2 | <name> | 2026-11-27 15:40:02 UTC | pid 123 on host | resumed from ...``"""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    parts = [f"{HEADER} {number}", name, stamp, f"pid {os.getpid()} on {socket.gethostname()}"]
    if resumed_from:
        parts.append(f"resumed from {resumed_from}")
    return " | ".join(parts) + " ===="


def _join_history(path: Path) -> Path | None:
    """Make ``path`` hold every earlier attempt; returns a file to mirror writes to, if any.

    Normally ``path`` becomes (or stays) a hard link of its history file, so whatever is
    written to one is in the other and nothing needs mirroring, even after ``kill -9``.
    """
    hist = history_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # every file starts with a newline so that each header line is preceded by one
    if path.exists():
        if hist.exists() and os.path.samefile(path, hist):
            return None
        hist.unlink(missing_ok=True)  # a log not linked to the history: it is the record
        if path.stat().st_size == 0:
            path.write_text("\n")
        src, dst = path, hist
    else:
        if not hist.exists():
            hist.write_text("\n")
        src, dst = hist, path
    try:
        os.link(src, dst)
        return None
    except OSError:  # no hard links here: copy the history and write to both
        if not dst.exists():
            dst.write_bytes(src.read_bytes())
        return hist
