"""Stop requests: SIGTERM/SIGINT, or the Snakemake job gone, become a clean stop (a checkpoint
at the next step boundary, then :class:`TrainingInterrupted`)."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sgdvi.training.settings import LOG


class TrainingInterrupted(RuntimeError):
    """A stop was requested (SIGTERM/SIGINT); the state was saved to a checkpoint."""

    def __init__(self, message: str, signum: int | None, checkpoint: Path) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint


class StopRequest:
    """Flag set by a signal handler; :func:`train` checks it after every optimizer step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.requested = False

    def request(self, signum: int | None = None) -> None:
        self.signum = signum
        self.requested = True


def stop_orphaned(stop: StopRequest) -> None:
    """The Snakemake job that started the trainer is gone: request a clean stop (a checkpoint,
    then :class:`TrainingInterrupted`), once; the ``on_orphaned`` of
    :func:`sgdvi.infra.jobguard.job_guard` for the trainer."""
    if not stop.requested:
        LOG.error("the Snakemake job that started this trainer is gone; stopping")
        stop.request(signal.SIGTERM)


@contextmanager
def stop_on_signals(
    stop: StopRequest, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[StopRequest]:
    """Turn the first SIGTERM/SIGINT into ``stop.request()``; a second one interrupts at once.

    The training loop then saves a checkpoint at the next step boundary and raises
    :class:`TrainingInterrupted`. The previous handlers are restored on exit.
    """

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}")
        stop.request(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
