"""Fused numba trainer vs the plain PyTorch loop for tiny-fc (issue 4, Fig. 3 run).

Both trainers run the same epochs (same initial weights, same batch order) side by side in
one process, interleaved so that load from other processes hits both alike. Per epoch they
do the same work: one SGD epoch (batch 128) plus the full-dataset loss/error/gradient pass
the trajectory run records (the plain loop's pass is one torch forward/backward over all N
examples). Prints per-epoch times (min and median over the measured epochs), three speed-ups
(min and median): (1) training epoch vs training epoch, (2) epoch + full pass vs epoch + full
pass, (3) fast epoch + full pass vs the plain loop's training epoch alone (the issue's 20x
target), and the projected time of 100,000 epochs.

    .venv/bin/python benchmarks/bench_trajectory.py [--data results/data/mnist7-5class.npz]
        [--dtype float32] [--rounds 12] [--fast-per-round 10] [--threads 1] [--overlap-epochs 40]

Without --data (or if the file is missing) it uses random data of the real shape
(30,596 x 49, raw 0..255 pixel values, 5 classes).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _load(path: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    if path and Path(path).exists():
        from sgdvi.data import load_prepared

        data = load_prepared(path)
        return data.x_train.numpy(), data.y_train.numpy(), path
    rng = np.random.default_rng(0)
    n = 30596
    x = rng.integers(0, 256, size=(n, 1, 7, 7)).astype(np.float32)
    return x, rng.integers(0, 5, size=n), "random data, 30596 x 49"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="results/data/mnist7-5class.npz")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--ref-dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--rounds", type=int, default=12, help="interleaved rounds")
    ap.add_argument("--fast-per-round", type=int, default=10, help="fast epochs per round")
    ap.add_argument("--threads", type=int, default=1, help="torch / BLAS threads")
    ap.add_argument("--epochs", type=int, default=100_000, help="epochs of the projection")
    ap.add_argument("--overlap-epochs", type=int, default=40, help="0: skip the overlap run")
    args = ap.parse_args()

    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import torch

    from sgdvi.trajectory.batches import epoch_permutation
    from sgdvi.trajectory.fast_trainer import FastTrainer
    from sgdvi.trajectory.reference_trainer import ReferenceTrainer
    from sgdvi.trajectory.state import initial_state

    torch.set_num_threads(args.threads)
    x, y, source = _load(args.data)
    n = len(y)
    state = initial_state(42)
    ref = ReferenceTrainer(x, y, state, 128, 0.9, False, dtype=args.ref_dtype)
    fast = FastTrainer(x, y, state, 128, 0.9, False, dtype=args.dtype)
    t0 = time.perf_counter()
    fast.train_epoch(epoch_permutation(42, 0, n), 0.1)  # compile (or load the numba cache)
    fast.full_pass()
    compile_s = time.perf_counter() - t0
    ref.train_epoch(epoch_permutation(42, 0, n), 0.1)
    ref.full_pass()

    times: dict[str, list[float]] = {
        k: [] for k in ("ref_train", "ref_full", "fast_train", "fast_full")
    }
    epoch = 1
    for _ in range(args.rounds):
        order = epoch_permutation(42, epoch, n)
        t = time.perf_counter()
        ref.train_epoch(order, 0.1)
        times["ref_train"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ref.full_pass()
        times["ref_full"].append(time.perf_counter() - t)
        for _ in range(args.fast_per_round):
            order = epoch_permutation(42, epoch, n)
            epoch += 1
            t = time.perf_counter()
            fast.train_epoch(order, 0.1)
            times["fast_train"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fast.full_pass()
            times["fast_full"].append(time.perf_counter() - t)

    # the workflow's threads >= 2 mode: each full-gradient pass runs in a second thread while
    # the next epoch trains (the kernels release the GIL); needs two free cores to pay off
    overlap = []
    if args.overlap_epochs:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pending = None
            for _ in range(args.overlap_epochs):
                t = time.perf_counter()
                fast.train_epoch(epoch_permutation(42, epoch, n), 0.1)
                epoch += 1
                snapshot = fast.params()
                if pending is not None:
                    pending.result()
                pending = pool.submit(fast.full_pass, snapshot)
                overlap.append(time.perf_counter() - t)
            pending.result()

    def stat(key: str, f) -> float:
        return float(f(times[key]))

    print(f"data: {source}; N = {n}; batch 128; threads {args.threads}; load {os.getloadavg()}")
    print(
        f"fast trainer: numba, {args.dtype}; "
        f"reference: autograd + torch.optim.SGD, {args.ref_dtype}"
    )
    print(f"numba compile / cache load: {compile_s:.1f} s (once per process)")
    print(
        f"{args.rounds} interleaved rounds: 1 plain epoch + its full pass, then "
        f"{args.fast_per_round} fast epochs + full passes"
    )
    print(f"{'per epoch [ms]':28s} {'min':>9s} {'median':>9s}")
    labels = {
        "ref_train": "plain training epoch",
        "ref_full": "plain full pass",
        "fast_train": "fast training epoch",
        "fast_full": "fast full pass",
    }
    for key in times:
        print(f"{labels[key]:28s} {1e3 * stat(key, np.min):9.2f} {1e3 * stat(key, np.median):9.2f}")
    print(f"{'speed-up (plain / fast)':60s} {'min':>7s} {'median':>7s}")
    ratios = {
        "(1) training epoch vs training epoch": (("ref_train",), ("fast_train",)),
        "(2) epoch + full pass vs epoch + full pass (plain torch)": (
            ("ref_train", "ref_full"),
            ("fast_train", "fast_full"),
        ),
        "(3) epoch + full pass vs plain training epoch (issue, >= 20x)": (
            ("ref_train",),
            ("fast_train", "fast_full"),
        ),
    }
    for label, (num, den) in ratios.items():
        r = [
            sum(stat(k, f) for k in num) / sum(stat(k, f) for k in den) for f in (np.min, np.median)
        ]
        print(f"{label:60s} {r[0]:6.1f}x {r[1]:6.1f}x")
    if overlap:
        print(
            f"fast, full pass overlapped in a 2nd thread: {1e3 * np.min(overlap):.2f} ms min, "
            f"{1e3 * np.median(overlap):.2f} ms median per epoch "
            f"(projected {np.median(overlap) * args.epochs / 60:.1f} min)"
        )
    med = stat("fast_train", np.median) + stat("fast_full", np.median)
    ref_med = stat("ref_train", np.median) + stat("ref_full", np.median)
    print(
        f"projected {args.epochs:,} epochs (median, with full-gradient pass): "
        f"fast {med * args.epochs / 60:.1f} min, plain loop {ref_med * args.epochs / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
