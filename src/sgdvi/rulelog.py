"""Logging of the workflow scripts (``workflow/scripts/*.py``) to their rule's ``log:`` file.

Every Snakemake rule declares ``log: "logs/<stage>/<...>.log"``; its script wraps its body in
:func:`rule_log`, so that progress messages and, when the script fails, the traceback end up in
that file (``snakemake --show-failed-logs`` prints it), and the exception still propagates so
that Snakemake marks the job as failed::

    with rule_log(snakemake.log[0], "diffusion_table") as log:
        log.info("...")
"""

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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
) -> Iterator[logging.Logger]:
    """Log to the rule's log file ``path`` (appending) for the duration of the ``with`` block.

    Yields ``logging.getLogger(name)``. With ``capture_all`` (the default) the handlers go on
    the root logger at level INFO, so the messages of the library's own loggers
    (``sgdvi.data.fetch``, ``sgdvi.trajectory.runner``, ...) reach the file too; without it
    only ``name`` and its children are written. ``stderr=True`` also echoes every record to
    standard error (progress in Snakemake's own output). ``fmt`` and ``datefmt`` are those of
    :class:`logging.Formatter`.

    An :class:`Exception` raised in the block is logged with its traceback as ``failure``
    (default ``"<name> failed"``) and re-raised. On exit the handlers are removed and closed
    and the logger's level restored, so the context can be used more than once in a process.
    """
    logger = logging.getLogger(name)
    target = logging.getLogger() if capture_all else logger
    formatter = logging.Formatter(fmt, datefmt)
    handlers: list[logging.Handler] = [logging.FileHandler(path, mode="a")]
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
