"""Keep one long-running job (trainer, trajectory runner) per checkpoint, and none orphaned.

Two faults this module prevents (an orphaned job, two jobs on one checkpoint): after
``kill -9`` of Snakemake its ``train.py`` child kept running, and the rerun (after
``--unlock``) trained alongside it on the same checkpoint file.

- :func:`checkpoint_lock` holds an exclusive :func:`fcntl.flock` on ``<checkpoint>.lock`` for
  the whole run; a second job on the same checkpoint refuses at once with
  :class:`CheckpointLocked`, naming the holder's PID. The kernel drops the lock when the holder
  dies, however it dies, so a stale lock file never blocks a rerun.
- :func:`die_with_parent` asks Linux to send this process a signal when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``); the trainer turns it into "save a checkpoint and exit".
- :class:`AncestorWatch` covers what PDEATHSIG cannot see: Snakemake starts a script through a
  shell, so the script's parent is ``bash`` and Snakemake is its grandparent. A daemon thread
  checks every ``interval`` seconds that the recorded ancestors are still alive and still
  linked (each one's parent unchanged) and calls ``on_orphaned`` (e.g. ``stop.request``) once
  they are not.
- :func:`job_guard` is the one guard every long job uses (the trainer in
  ``workflow/scripts/train.py``, the trajectory runner through
  :func:`sgdvi.trajectory.runner.run_guard`): the lock, PDEATHSIG and the ancestor watch, all
  three ending in one call of the job's ``on_orphaned`` in the main thread::

    with job_guard(ckpt, "trainer of lenet-mnist", lambda: stop.request(signal.SIGTERM)):
        run(...)
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PR_SET_PDEATHSIG = 1

#: the signal that says "the Snakemake job that started us is gone": sent by the kernel when the
#: parent dies (PDEATHSIG) and by :func:`job_guard`'s ancestor watch. Not SIGTERM: a
#: multi-threaded parent (Snakemake) makes the kernel send it once per reparenting, and a
#: second SIGTERM means "stop at once" to the trainer; this one only ever asks for a clean stop.
PARENT_DIED = signal.SIGUSR1


class CheckpointLocked(RuntimeError):
    """Another live process holds the lock of this checkpoint."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


def lock_path(checkpoint: str | os.PathLike[str]) -> Path:
    """The lock file of ``checkpoint``: ``<checkpoint>.lock`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".lock")


def _holder(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None, ""
    first = text.split(maxsplit=1)
    try:
        return int(first[0]), text
    except (IndexError, ValueError):
        return None, text


@contextmanager
def checkpoint_lock(checkpoint: str | os.PathLike[str], what: str = "job") -> Iterator[Path]:
    """Hold ``<checkpoint>.lock`` for the ``with`` block, or raise :class:`CheckpointLocked`.

    The lock file holds ``"<pid> <host> <start time>"`` of the holder and is removed on exit.
    ``what`` names the job in the error (``"trainer of lenet-mnist"``).
    """
    path = lock_path(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid, text = _holder(path)
            who = f"PID {pid}" if pid is not None else "another process"
            raise CheckpointLocked(
                f"{what}: checkpoint {checkpoint} is in use by {who} ({text or 'no details'}). "
                f"Wait for it to finish, or stop it (kill {pid if pid is not None else '<pid>'}) "
                "and rerun",
                pid,
            ) from None
        # the holder may have removed the file between our open and flock: lock the new one
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {stamp}\n".encode())
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux only).

    Returns whether it was set. If the parent already died before the call (we were
    reparented), ``sig`` is sent to ourselves at once. A multi-threaded parent (Snakemake)
    can make the kernel send ``sig`` more than once (once per reparenting), so pick a signal
    whose handler only requests a clean stop (the trainer uses SIGUSR1), not one where a
    second delivery means "stop at once".
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def _parent_of(pid: int) -> int | None:
    """Parent PID of ``pid`` from /proc (None if the process is gone or /proc unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: dead, not yet reaped
        return None
    return int(fields[1])


def _is_program(pid: int, name: str) -> bool:
    """Whether process ``pid`` runs the program ``name`` (``name ...``, ``python .../name ...``
    or ``python -m name ...``); a mere mention (``bash -c '... .snakemake/...'``) is not."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    argv = [a.decode(errors="replace") for a in args[:4]]
    if any(os.path.basename(a) == name for a in argv[:2]):
        return True
    return "-m" in argv[:3] and name in argv[1:4]


def ancestors(depth: int | None = None, root_name: str = "snakemake") -> list[int]:
    """PIDs from this process's parent up to the process to watch, nearest first.

    With ``depth``: exactly that many ancestors (fewer if the chain reaches init). Without:
    up to and including the nearest ancestor (at most 4 up) running the program ``root_name``
    (the Snakemake that runs the job, directly or through bash); if there is none, only the
    parent. Ancestors above it are not watched: a user's shell may exit while
    Snakemake carries on (``nohup``), and that must not stop the job.
    """
    chain: list[int] = []
    pid = os.getppid()
    for _ in range(depth if depth is not None else 4):
        if pid <= 1 or _parent_of(pid) is None:
            break
        chain.append(pid)
        if depth is None and _is_program(pid, root_name):
            return chain
        pid = _parent_of(pid) or 0
    return chain if depth is not None else chain[:1]


class AncestorWatch:
    """Daemon thread calling ``on_orphaned()`` once a watched ancestor dies.

    Watches :func:`ancestors` (``depth``/``root_name``): the parent must stay our parent, each
    watched ancestor must keep the next one as its parent, and the last must be alive; so the
    death of Snakemake is seen even when bash stands between it and the script. Use as a
    context manager; the thread stops on exit.
    """

    def __init__(
        self,
        on_orphaned: Callable[[], None],
        depth: int | None = None,
        interval: float = 1.0,
        root_name: str = "snakemake",
    ) -> None:
        self.on_orphaned = on_orphaned
        self.interval = interval
        linux = sys.platform.startswith("linux")
        self.chain = ancestors(depth, root_name) if linux else []
        self.orphaned = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ancestor-watch", daemon=True)

    def intact(self) -> bool:
        """Whether the watched ancestors are alive and still linked as at the start."""
        if not self.chain:
            return True
        if os.getppid() != self.chain[0]:
            return False
        links = zip(self.chain, self.chain[1:], strict=False)
        if any(_parent_of(child) != parent for child, parent in links):
            return False
        return _parent_of(self.chain[-1]) is not None

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            if not self.intact():
                self.orphaned = True
                self.on_orphaned()
                return

    def __enter__(self) -> AncestorWatch:
        if self.chain:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


@contextmanager
def job_guard(
    target: str | os.PathLike[str], what: str, on_orphaned: Callable[[], None]
) -> Iterator[Path]:
    """One job per ``target``, and none outliving its Snakemake job, for the ``with`` block.

    Holds :func:`checkpoint_lock` on ``target`` (a second job refuses at once with
    :class:`CheckpointLocked` naming ``what`` and the holder's PID), and calls ``on_orphaned()``
    once, in the main thread, when the parent dies (PDEATHSIG, :func:`die_with_parent`) or
    Snakemake above the script's bash does (:class:`AncestorWatch`, which sends
    :data:`PARENT_DIED` to this process); later deliveries are ignored. ``on_orphaned`` either
    requests a clean stop (the trainer: a checkpoint at the next step) or raises (the trajectory
    runner: ``SystemExit``, so a file being written is removed by :mod:`sgdvi.infra.atomic`).
    Call from the main thread: it installs a :data:`PARENT_DIED` handler, restored on exit.
    """
    with checkpoint_lock(target, what) as lock:
        fired = False

        def parent_died(signum: int, frame: object) -> None:
            nonlocal fired
            if fired:
                return
            fired = True
            on_orphaned()

        previous = signal.signal(PARENT_DIED, parent_died)
        try:
            die_with_parent(PARENT_DIED)
            with AncestorWatch(lambda: os.kill(os.getpid(), PARENT_DIED)):
                yield lock
        finally:
            signal.signal(PARENT_DIED, previous)
