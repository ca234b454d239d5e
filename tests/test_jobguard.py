"""sgdvi.infra.jobguard: one job per checkpoint, and no job outliving its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sgdvi.infra import jobguard
from sgdvi.infra.jobguard import (
    PARENT_DIED,
    AncestorWatch,
    CheckpointLocked,
    checkpoint_lock,
    job_guard,
    lock_path,
)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, **kw
    )


def test_second_holder_is_refused_naming_the_pid(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    with checkpoint_lock(ckpt, "trainer of toy") as path:
        assert path == lock_path(ckpt) and path.read_text().split()[0] == str(os.getpid())
        with pytest.raises(
            CheckpointLocked, match=rf"trainer of toy: .* in use by PID {os.getpid()}"
        ):
            with checkpoint_lock(ckpt, "trainer of toy"):
                pass
    assert not lock_path(ckpt).exists()
    with checkpoint_lock(ckpt):  # free again
        pass


def test_lock_of_another_process_and_of_a_killed_one(tmp_path):
    """Another process holds it: refused with its PID. After kill -9 the kernel drops the
    flock, so the stale lock file does not block the rerun."""
    ckpt = tmp_path / "checkpoint.pt"
    holder = python(
        f"""
        import time
        from sgdvi.infra.jobguard import checkpoint_lock
        with checkpoint_lock({str(ckpt)!r}):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointLocked) as exc:
            with checkpoint_lock(ckpt):
                pass
        assert exc.value.pid == holder.pid and f"kill {holder.pid}" in str(exc.value)
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(ckpt).exists()  # stale file left by kill -9
    with checkpoint_lock(ckpt) as path:
        assert path.read_text().split()[0] == str(os.getpid())


@linux
def test_child_dies_with_its_parent_killed_9(tmp_path):
    """die_with_parent(): parent -> child; kill -9 of the parent ends the child (SIGTERM)."""
    parent = python(
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import time; from sgdvi.infra.jobguard import die_with_parent; die_with_parent(); "
            "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()
    parent.wait()
    assert wait_until(lambda: not alive(child), 10), "child outlived its parent"


@linux
def test_ancestor_watch_sees_the_grandparent_die(tmp_path):
    """Snakemake -> bash -> script: PDEATHSIG only sees bash. The watch sees the grandparent
    (here: a python standing in for Snakemake) die and calls on_orphaned."""
    flag = tmp_path / "orphaned"
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from sgdvi.infra.jobguard import AncestorWatch
            def orphaned():
                Path({str(flag)!r}).write_text("yes")
            with AncestorWatch(orphaned, depth=2, interval=0.1) as watch:
                assert len(watch.chain) == 2 and watch.intact()
                print("ready", flush=True)
                for _ in range(600):
                    if watch.orphaned:
                        break
                    time.sleep(0.1)
            """
        )
    )
    top = python(
        f"""
        import subprocess, sys, time
        # a compound command, so bash forks instead of exec'ing python (as in Snakemake)
        p = subprocess.Popen(["bash", "-c", f"{{sys.executable}} {str(script)!r}; true"],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    assert top.stdout.readline().strip() == "ready"
    assert not flag.exists()
    top.kill()
    top.wait()
    assert wait_until(flag.exists, 10), "the watch did not notice the grandparent's death"


@linux
def test_ancestor_chain_stops_at_the_root_program(tmp_path):
    """Without depth the chain goes up to the nearest process running 'snakemake' (here a
    python script of that name), not above; without one, only the parent is watched."""
    child = tmp_path / "child.py"
    child.write_text(
        "from sgdvi.infra.jobguard import ancestors\n"
        "print(ancestors(), ancestors(root_name='no-such-name'), ancestors(depth=2), flush=True)"
    )
    fake = tmp_path / "snakemake"  # stands in for Snakemake; bash mentions .snakemake too
    fake.write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys
            cmd = f"{{sys.executable}} {child}; true  # .snakemake/scripts"
            p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
            print(p.stdout.strip(), flush=True)
            """
        )
    )
    top = subprocess.run([sys.executable, str(fake)], capture_output=True, text=True, check=True)
    parts = top.stdout.strip().replace("] [", "]|[").split("|")
    found, fallback, two = (json.loads(p) for p in parts)
    assert len(found) == 2  # bash, then the "snakemake"
    assert fallback == found[:1]  # no such program among the ancestors: only the parent
    assert two == found


@linux
def test_ancestor_watch_is_quiet_while_intact():
    calls = []
    with AncestorWatch(lambda: calls.append(1), depth=2, interval=0.05) as watch:
        assert watch.chain[0] == os.getppid()
        time.sleep(0.2)
        assert watch.intact() and not watch.orphaned
    assert calls == []


def test_job_guard_locks_and_calls_on_orphaned_once(tmp_path, monkeypatch):
    """job_guard (the trainer's and the trajectory runner's guard): holds the lock, asks for
    PDEATHSIG with PARENT_DIED, turns repeated PARENT_DIED deliveries (one per reparenting)
    into one on_orphaned call, and restores the previous handler on exit."""
    asked = []
    monkeypatch.setattr(jobguard, "die_with_parent", asked.append)  # not on pytest itself
    calls, previous = [], signal.getsignal(PARENT_DIED)
    ckpt = tmp_path / "checkpoint.pt"
    with job_guard(ckpt, "job of toy", lambda: calls.append(1)) as path:
        assert path == lock_path(ckpt) and asked == [PARENT_DIED]
        with pytest.raises(CheckpointLocked, match="job of toy: .* in use by PID"):
            with job_guard(ckpt, "job of toy", lambda: None):
                pass
        os.kill(os.getpid(), PARENT_DIED)
        os.kill(os.getpid(), PARENT_DIED)
        assert wait_until(lambda: calls == [1], 5)
    assert calls == [1] and signal.getsignal(PARENT_DIED) is previous
    assert not lock_path(ckpt).exists()


# ------------------------------------------------------------------ the trajectory runner

TRAJ_SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "trajectory_train.py"


def trajectory_job(tmp_path: Path, epochs: int) -> str:
    """Python code running rule trajectory_train's script on toy data, with a stand-in for
    Snakemake's ``snakemake`` object; the run directory is ``tmp_path / "run"``."""
    from sgdvi.data import save_prepared

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    x = rng.normal(size=(200, 1, 7, 7)).astype(np.float32) + y[:, None, None, None]
    data = tmp_path / "toy.npz"
    save_prepared(data, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    settings = {
        "epochs": epochs,
        "burn_in": 2,
        "batch_size": 50,
        "lr_burn_in": 0.1,
        "lr": 0.01,
        "chunk_epochs": 20,
        "train_subset": None,
    }
    return f"""
        import runpy
        from types import SimpleNamespace as ns
        sm = ns(
            log=[{str(tmp_path / "train.log")!r}],
            params=ns(settings={settings!r}, dataset="toy", device="cpu"),
            wildcards=ns(variant="stated", seed="3"),
            input=ns(data={str(data)!r}),
            output=ns(weights={str(tmp_path / "run" / "weights.npy")!r}),
            threads=1,
        )
        runpy.run_path({str(TRAJ_SCRIPT)!r}, init_globals={{"snakemake": sm}})
        """


@linux
def test_second_trajectory_runner_refuses_naming_the_pid(tmp_path):
    """rule trajectory_train's script: while a runner holds the seed's directory, a second
    one exits 1 at once and its log names the holder's PID; the holder is unaffected."""
    from sgdvi.trajectory.runner import lock_target, run_guard

    run_dir = tmp_path / "run"
    holder = python(
        f"""
        import time
        from sgdvi.trajectory.runner import run_guard
        with run_guard({str(run_dir)!r}, "stated seed 3"):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            CheckpointLocked, match=rf"stated seed 3: .* in use by PID {holder.pid}"
        ):
            with run_guard(run_dir, "stated seed 3"):
                pass
        second = python(trajectory_job(tmp_path, epochs=10))
        assert second.wait(timeout=60) == 1
        log = (tmp_path / "train.log").read_text()
        assert f"trajectory runner of stated seed 3: checkpoint {lock_target(run_dir)}" in log
        assert f"in use by PID {holder.pid}" in log
        assert holder.poll() is None and not (run_dir / "chunks").exists()
    finally:
        holder.kill()
        holder.wait()


@linux
def test_trajectory_runner_dies_with_its_parent_and_leaves_resumable_chunks(tmp_path):
    """kill -9 of the runner's parent: the runner stops within seconds (PDEATHSIG), releases
    its lock, leaves no temporary file, and the chunks it recorded stay for the rerun."""
    job = textwrap.dedent(trajectory_job(tmp_path, epochs=1_000_000))
    parent = python(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {job!r}])
        print(child.pid, flush=True)
        time.sleep(120)
        """
    )
    child = int(parent.stdout.readline())
    chunks = tmp_path / "run" / "chunks"
    try:
        try:
            assert wait_until(lambda: len(list(chunks.glob("chunk_*.npz"))) >= 2, 60)
            assert alive(child) and (tmp_path / "run" / "chunks.lock").exists()
        finally:
            parent.kill()
            parent.wait()
        assert wait_until(lambda: not alive(child), 15), "the runner outlived its parent"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
    run = tmp_path / "run"
    assert not (run / "chunks.lock").exists()  # a clean exit, not a kill
    assert sorted(p.name for p in run.iterdir()) == ["chunks", "weights.partial.npy"]
    assert all(p.name.startswith("chunk_") for p in chunks.iterdir())  # no temporary file
    assert "the Snakemake job that started it is gone" in (tmp_path / "train.log").read_text()
