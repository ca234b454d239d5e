"""The `train` and `snapshot` rules through Snakemake, on a small prepared dataset."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sgdvi.data import save_prepared
from sgdvi.infra.parquet import read_table
from sgdvi.snapshots import load_snapshot

from conftest import deep_update, run_snakemake, snakemake_cmd


def test_train_rule_writes_snapshots_metrics_log_and_benchmark(tiny_workdir):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 1, 7, 7)).astype(np.float32)
    y = (x.reshape(400, -1) @ rng.normal(size=(49, 10))).argmax(1)
    save_prepared(
        tiny_workdir / "results/data/mnist7.npz",
        x_train=x[:300],
        y_train=y[:300],
        x_test=x[300:],
        y_test=y[300:],
    )
    targets = [f"results/fc-mnist7/snapshots/{f}.pt" for f in ("0.2", "0.4", "1.0")]
    # the prepared dataset is given: forbid the data rules from remaking it
    args = ["--cores", "1", "--allowed-rules", "train", "snapshot", "--", *targets]
    run_snakemake(tiny_workdir, *args)

    metrics = read_table(tiny_workdir / "results/fc-mnist7/metrics.parquet")
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5]  # tiny.yaml: 5 epochs
    assert metrics["test_error"].iloc[-1] < metrics["test_error"].iloc[0]  # it learns
    epochs = []
    for target in targets:
        model, meta = load_snapshot(tiny_workdir / target)
        assert meta["experiment"] == "fc-mnist7" and meta["train_subset"] == 300  # tiny.yaml
        epochs.append(meta["epoch"])
        out = model(torch.as_tensor(x[300:]))
        assert out.shape == (100, 10)
    assert epochs == [1, 2, 5]
    log = (tiny_workdir / "logs/train/fc-mnist7.log").read_text()
    assert "fc-mnist7 epoch 5/5" in log and "ETA" in log
    assert (tiny_workdir / "results/benchmarks/train/fc-mnist7.tsv").exists()
    assert not (tiny_workdir / "results/fc-mnist7/checkpoint.pt").exists()

    proc = run_snakemake(tiny_workdir, "--dry-run", *args)
    assert "Nothing to be done" in proc.stdout + proc.stderr

    # a damaged input must say how to fix it: a truncated snapshot names the fix, and the fix
    # reruns only its rule
    snap = tiny_workdir / targets[2]
    snap.write_bytes(snap.read_bytes()[:100])
    with pytest.raises(RuntimeError) as exc:
        load_snapshot(snap)
    message = str(exc.value)
    assert f"rm {snap}" in message and f"snakemake {snap}" in message
    assert "only the snapshot's own rule runs again" in message
    snap.unlink()
    proc = run_snakemake(tiny_workdir, "--dry-run", *args)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    assert jobs == {"snapshot": "1", "total": "1"}, proc.stdout


def prepared_mnist7(workdir: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 1, 7, 7)).astype(np.float32)
    y = (x.reshape(400, -1) @ rng.normal(size=(49, 10))).argmax(1)
    save_prepared(
        workdir / "results/data/mnist7.npz",
        x_train=x[:300],
        y_train=y[:300],
        x_test=x[300:],
        y_test=y[300:],
    )


def long_config(workdir: Path, epochs: int) -> str:
    """config/long.yaml: tiny.yaml with fc-mnist7 trained for ``epochs`` epochs."""
    cfg = yaml.safe_load((workdir / "config/tiny.yaml").read_text())
    cfg = deep_update(cfg, {"experiments": {"fc-mnist7": {"epochs": epochs}}})
    (workdir / "config/long.yaml").write_text(yaml.safe_dump(cfg))
    return "config/long.yaml"


TRAIN_ONLY = ["--cores", "1", "--allowed-rules", "train", "--", "results/fc-mnist7/metrics.parquet"]


def test_second_trainer_refuses_naming_the_pid(tiny_workdir):
    """No two writers of one checkpoint: a trainer still holding the checkpoint (here: a
    process holding its lock) makes a new train job fail at once, naming the holder's PID."""
    prepared_mnist7(tiny_workdir)
    ckpt = tiny_workdir / "results/fc-mnist7/checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from sgdvi.infra.jobguard import checkpoint_lock\n"
            f"with checkpoint_lock({str(ckpt)!r}):\n print('locked', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = subprocess.run(
            snakemake_cmd(tiny_workdir, *TRAIN_ONLY), capture_output=True, text=True, timeout=300
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode != 0
    log = (tiny_workdir / "logs/train/fc-mnist7.log").read_text()
    assert (
        "trainer of fc-mnist7: checkpoint results/fc-mnist7/checkpoint.pt is in use by "
        f"PID {holder.pid}" in log
    )
    assert "epoch 1/" not in log  # it refused before training


@pytest.mark.slow
def test_killing_snakemake_stops_the_trainer_and_the_rerun_resumes(tiny_workdir):
    """No orphaned trainer, and the record survives: kill -9 of Snakemake mid-training. The
    trainer notices (its grandparent is gone), saves a checkpoint and exits, releasing its
    lock; after `--unlock` the rerun resumes, and the log keeps both attempts with headers."""
    prepared_mnist7(tiny_workdir)
    configfile = long_config(tiny_workdir, epochs=150)
    log = tiny_workdir / "logs/train/fc-mnist7.log"
    lock = tiny_workdir / "results/fc-mnist7/checkpoint.pt.lock"
    smk = subprocess.Popen(
        snakemake_cmd(tiny_workdir, *TRAIN_ONLY, configfile=configfile),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    trainer = None
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and not (log.exists() and "epoch 3/150" in log.read_text()):
            assert smk.poll() is None, "snakemake ended before it could be killed"
            time.sleep(0.05)
        trainer = int(lock.read_text().split()[0])
        os.kill(smk.pid, signal.SIGKILL)
        smk.wait()
        end = time.monotonic() + 15
        while time.monotonic() < end and Path(f"/proc/{trainer}").exists():
            if Path(f"/proc/{trainer}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        alive = (
            Path(f"/proc/{trainer}").exists()
            and "Z" not in (Path(f"/proc/{trainer}/stat").read_text().rsplit(")", 1)[1].split()[:1])
        )
        assert not alive, "the trainer outlived its Snakemake"
    finally:
        if trainer is not None and Path(f"/proc/{trainer}").exists():
            os.kill(trainer, signal.SIGKILL)
        if smk.poll() is None:
            smk.kill()
    first = log.read_text()
    # PDEATHSIG (SIGUSR1) or the ancestor watch, whichever comes first: a clean stop
    assert "is gone; stopping" in first and "state saved to" in first, first
    assert "Traceback" not in first
    assert (tiny_workdir / "results/fc-mnist7/checkpoint.pt").exists()
    assert not lock.exists()  # released and removed on the way out

    run_snakemake(tiny_workdir, "--unlock", configfile=configfile)
    run_snakemake(tiny_workdir, *TRAIN_ONLY, configfile=configfile)
    text = log.read_text()
    assert text.startswith(first)  # the first attempt's record is kept
    headers = [line for line in text.splitlines() if line.startswith("==== attempt")]
    assert len(headers) == 2 and headers[1].startswith("==== attempt 2 | train fc-mnist7 | ")
    assert "resumed from checkpoint results/fc-mnist7/checkpoint.pt: epoch" in headers[1]
    assert "fc-mnist7: resuming from" in text and "fc-mnist7 epoch 150/150" in text
    metrics = read_table(tiny_workdir / "results/fc-mnist7/metrics.parquet")
    assert list(metrics["epoch"]) == list(range(1, 151))
