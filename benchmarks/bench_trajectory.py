"""Fused numba trainer vs the plain PyTorch loop for tiny-fc (Section IV-B, Fig. 3 run).

Everything is measured side by side in one process, in interleaved rounds, so that load from
other processes hits every side alike; each figure is the min and the median over the rounds.

1. Per epoch, the same work on both sides (same initial weights, same batch order): one SGD
   epoch (batch 128) and the full-dataset loss/error/gradient pass the trajectory records.
   Speed-ups (plain / fast): (1) training epoch alone, (2) epoch + full pass on both sides,
   (3) the plain loop's training epoch alone vs the fast epoch INCLUDING its full pass (the
   issue's >= 20x target), (4) the same with the fast full pass overlapped in a second thread
   (the workflow's ``threads: 2``; wall time per epoch), (5) the same against the workflow's
   schedule after burn-in on one thread: a full pass after every ``--fast-per-round``-th
   epoch (``trajectory.full_pass_every``, default 10).
2. ``--alternatives``: the fast kernels compiled without ``fastmath``, with libm's ``exp``
   instead of the polynomial, and with ``math.ldexp`` instead of the bit-cast ``2**n``
   intrinsic; each against the shipped kernels (epoch + full pass). With ``--previous``
   instead: the kernels before the speed-up (no prefetch of the next batch's rows, the gradient
   product transposed around BLAS), each change alone and both; ``--train-only`` times the
   training epoch without the full pass.
3. ``--seeds k``: k seeds trained as one batched job (one 2-thread pool running every seed's
   epoch and full pass) against k solo overlapped runs one after the other, and whether each
   seed's weights are bit-identical between the two.

    .venv/bin/python benchmarks/bench_trajectory.py [--data results/data/mnist7-5class.npz]
        [--dtype float32] [--rounds 10] [--fast-per-round 10] [--alternatives [--previous]
        [--train-only]] [--seeds 3]

Without --data (or if the file is missing) it uses random data of the real shape
(30,596 x 49, raw 0..255 pixel values, 5 classes).
"""

from __future__ import annotations

import argparse
import math
import os
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _load(path: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    if path and Path(path).exists():
        from sgdvi.data import load_prepared

        data = load_prepared(path)
        return data.x_train.numpy(), data.y_train.numpy(), path
    rng = np.random.default_rng(0)
    n = 30596
    x = rng.integers(0, 256, size=(n, 1, 7, 7)).astype(np.float32)
    return x, rng.integers(0, 5, size=n), "random data, 30596 x 49"


def _stats(values: list[float]) -> tuple[float, float]:
    return float(np.min(values)), float(np.median(values))


def _print_times(rows: dict[str, list[float]]) -> None:
    print(f"{'per epoch [ms]':44s} {'min':>9s} {'median':>9s}")
    for label, values in rows.items():
        lo, med = _stats(values)
        print(f"{label:44s} {1e3 * lo:9.3f} {1e3 * med:9.3f}")


def _print_ratio(label: str, num: list[float], den: list[float]) -> None:
    """plain/fast (or old/new) from the per-round times: min/min and median/median."""
    (n0, n1), (d0, d1) = _stats(num), _stats(den)
    print(f"{label:72s} {n0 / d0:6.2f}x {n1 / d1:6.2f}x")


class Overlapped:
    """A fast trainer whose full pass runs in a second thread while the next epoch trains."""

    def __init__(self, trainer, pool: ThreadPoolExecutor) -> None:
        self.trainer, self.pool, self.pending = trainer, pool, None

    def epoch(self, order: np.ndarray, lr: float) -> None:
        self.trainer.train_epoch(order, lr)
        params = self.trainer.params()
        if self.pending is not None:
            self.pending.result()
        self.pending = self.pool.submit(self.trainer.full_pass, params)

    def drain(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None


def bench_plain_vs_fast(args, x, y) -> None:
    import torch

    from sgdvi.trajectory.batches import epoch_permutation
    from sgdvi.trajectory.fast_trainer import FastTrainer
    from sgdvi.trajectory.reference_trainer import ReferenceTrainer
    from sgdvi.trajectory.state import initial_state

    torch.set_num_threads(1)
    n = len(y)
    state = initial_state(42)
    ref = ReferenceTrainer(x, y, state, 128, 0.9, False, dtype=args.ref_dtype)
    fast = FastTrainer(x, y, state, 128, 0.9, False, dtype=args.dtype)
    over = Overlapped(FastTrainer(x, y, state, 128, 0.9, False, dtype=args.dtype),
                      ThreadPoolExecutor(1))  # fmt: skip
    t0 = time.perf_counter()
    fast.train_epoch(epoch_permutation(42, 0, n), 0.1)  # compile (or load the numba cache)
    fast.full_pass()
    print(f"numba compile / cache load: {time.perf_counter() - t0:.1f} s (once per process)")
    ref.train_epoch(epoch_permutation(42, 0, n), 0.1)
    ref.full_pass()
    t = {k: [] for k in ("ref_train", "ref_full", "fast_train", "fast_full", "overlap", "thin")}
    epoch, k = 1, args.fast_per_round
    for _ in range(args.rounds):
        order = epoch_permutation(42, epoch, n)
        s = time.perf_counter()
        ref.train_epoch(order, 0.1)
        t["ref_train"].append(time.perf_counter() - s)
        s = time.perf_counter()
        ref.full_pass()
        t["ref_full"].append(time.perf_counter() - s)
        tr = fu = 0.0
        for i in range(k):
            order = epoch_permutation(42, epoch + i, n)
            s = time.perf_counter()
            fast.train_epoch(order, 0.1)
            tr += time.perf_counter() - s
            s = time.perf_counter()
            fast.full_pass()
            fu += time.perf_counter() - s
        t["fast_train"].append(tr / k)
        t["fast_full"].append(fu / k)
        s = time.perf_counter()
        for i in range(k):
            over.epoch(epoch_permutation(42, epoch + i, n), 0.1)
        over.drain()
        t["overlap"].append((time.perf_counter() - s) / k)
        s = time.perf_counter()  # the workflow after burn-in: a full pass every k-th epoch
        for i in range(k):
            fast.train_epoch(epoch_permutation(42, epoch + i, n), 0.1)
        fast.full_pass()
        t["thin"].append((time.perf_counter() - s) / k)
        epoch += k
    over.pool.shutdown()
    print(
        f"{args.rounds} interleaved rounds: 1 plain epoch + its full pass, {k} fast epochs + "
        f"full passes, {k} fast epochs with the full pass overlapped (2 threads), {k} fast "
        f"epochs + one full pass (trajectory.full_pass_every = {k})"
    )
    _print_times(
        {
            "plain training epoch": t["ref_train"],
            "plain full pass": t["ref_full"],
            "fast training epoch": t["fast_train"],
            "fast full pass": t["fast_full"],
            "fast epoch + full pass, overlapped (wall)": t["overlap"],
            f"fast epoch, full pass every {k}th": t["thin"],
        }
    )
    ref_both = [a + b for a, b in zip(t["ref_train"], t["ref_full"], strict=True)]
    fast_both = [a + b for a, b in zip(t["fast_train"], t["fast_full"], strict=True)]
    print(f"{'speed-up (plain / fast)':72s} {'min':>7s} {'median':>7s}")
    _print_ratio("(1) training epoch vs training epoch", t["ref_train"], t["fast_train"])
    _print_ratio("(2) epoch + full pass vs epoch + full pass", ref_both, fast_both)
    _print_ratio("(3) plain training epoch vs fast epoch + full pass (target: >= 20x)",
                 t["ref_train"], fast_both)  # fmt: skip
    _print_ratio("(4) plain training epoch vs fast epoch + full pass overlapped",
                 t["ref_train"], t["overlap"])  # fmt: skip
    _print_ratio(f"(5) plain training epoch vs fast epoch, full pass every {k}th (1 thread)",
                 t["ref_train"], t["thin"])  # fmt: skip
    med = _stats(fast_both)[1]
    print(
        f"projected {args.epochs:,} epochs (median): fast {med * args.epochs / 60:.1f} min, "
        f"overlapped {_stats(t['overlap'])[1] * args.epochs / 60:.1f} min, "
        f"plain loop {_stats(ref_both)[1] * args.epochs / 3600:.1f} h"
    )


# --------------------------------------------------------------------------- alternatives

_KERNELS = (
    "_prefetch_rows",
    "_exp_coeffs",
    "_exp_nonpos",
    "_exp_inplace",
    "_bn_relu",
    "_output_layer",
    "_softmax_xent",
    "_head_backward",
    "_first_layer",
    "_first_layer_grad",
    "_forward_backward",
    "_train_epoch",
    "_full_pass",
)


def _pow2_ldexp(nf):  # pragma: no cover - compiled
    """``2**nf`` by ``math.ldexp`` (a libm call) instead of the bit-cast intrinsic."""
    return math.ldexp(nf - nf + 1, int(nf))


def _exp_libm(t, k):  # pragma: no cover - compiled
    """libm's ``exp`` instead of the polynomial (no clamp needed)."""
    return np.exp(t)


def _no_prefetch_rows(x, rows):  # pragma: no cover - compiled
    """The kernels before the speed-up: no prefetch of the next batch's rows."""


def _first_layer_grad_transposed(dz, xb, wt, zt, gw1):  # pragma: no cover - compiled
    """The kernels before the speed-up: ``gw1 = (xb^T dz^T)^T``, transposing around BLAS."""
    m = xb.shape[0]
    for j in range(16):
        dj = dz[j]
        for b in range(m):
            zt[b, j] = dj[b]
    gt = wt[1]
    np.dot(xb.T, zt, gt)
    for j in range(16):
        for i in range(49):
            gw1[j, i] = gt[i, j]


def make_kernels(
    fastmath: bool = True,
    exp: str = "poly",
    pow2: str = "bits",
    prefetch: bool = True,
    grad: str = "direct",
) -> tuple:
    """(epoch kernel, full-pass kernel) recompiled from the shipped Python source with other
    options: ``fastmath``; ``exp`` "poly" (shipped) or "libm"; ``pow2`` "bits" (shipped, the
    LLVM intrinsic) or "ldexp"; ``prefetch`` of the next batch's rows (shipped) or none;
    ``grad`` "direct" (shipped: ``dz xb`` in one BLAS call) or "transposed" (before the speed-up).
    Not cached (compiled in this process)."""
    import numba

    import sgdvi.trajectory.fast_trainer as ft

    env = dict(vars(ft))
    opts = {"cache": False, "fastmath": fastmath, "nogil": True, "error_model": "numpy"}
    if pow2 == "ldexp":
        env["_pow2"] = numba.njit(**opts)(_pow2_ldexp)
    for name in _KERNELS:
        f = getattr(ft, name).py_func
        clone = types.FunctionType(f.__code__, env, name, f.__defaults__, f.__closure__)
        env[name] = numba.njit(**opts)(clone)
    if exp == "libm":
        env["_exp_nonpos"] = numba.njit(**opts)(_exp_libm)
    if not prefetch:
        env["_prefetch_rows"] = numba.njit(**opts)(_no_prefetch_rows)
    if grad == "transposed":
        env["_first_layer_grad"] = numba.njit(**opts)(_first_layer_grad_transposed)
    return env["_train_epoch"], env["_full_pass"]


def bench_alternatives(args, x, y) -> None:
    from sgdvi.trajectory.batches import epoch_permutation
    from sgdvi.trajectory.fast_trainer import FastTrainer
    from sgdvi.trajectory.state import initial_state

    n = len(y)
    if args.previous:  # the training epoch before and after the speed-up, side by side
        variants = {
            "shipped (prefetch, gradient product direct)": None,
            "no prefetch of the next batch": {"prefetch": False},
            "gradient product with transposes": {"grad": "transposed"},
            "previous kernels (neither)": {"prefetch": False, "grad": "transposed"},
        }
    else:
        variants = {
            "shipped (fastmath, polynomial exp, bit-cast 2**n)": None,
            "fastmath off": {"fastmath": False},
            "libm exp instead of the polynomial": {"exp": "libm"},
            "math.ldexp instead of the bit-cast 2**n": {"pow2": "ldexp"},
        }
    full = not args.train_only
    trainers = {}
    for label, opts in variants.items():
        s = time.perf_counter()
        kernels = None if opts is None else make_kernels(**opts)
        tr = FastTrainer(x, y, initial_state(42), 128, 0.9, False, dtype=args.dtype,
                         kernels=kernels)  # fmt: skip
        tr.train_epoch(epoch_permutation(42, 0, n), 0.1)
        tr.full_pass()
        trainers[label] = tr
        print(f"compiled {label}: {time.perf_counter() - s:.1f} s")
    times = {label: [] for label in variants}
    epoch, k = 1, args.fast_per_round
    for _ in range(args.rounds):
        orders = [epoch_permutation(42, epoch + i, n) for i in range(k)]
        for label, tr in trainers.items():
            s = time.perf_counter()
            for i in range(k):
                tr.train_epoch(orders[i], 0.1)
                if full:
                    tr.full_pass()
            times[label].append((time.perf_counter() - s) / k)
        epoch += k
    ref = next(iter(times.values()))
    what = "epoch + full pass" if full else "training epoch alone"
    print(f"\nkernel alternatives, {what}, {args.rounds} interleaved rounds of {k}; "
          f"load {os.getloadavg()}")  # fmt: skip
    _print_times({label: v for label, v in times.items()})
    print(
        f"{'slow-down of the alternative (alternative / shipped)':72s} {'min':>7s} {'median':>7s}"
    )
    for label, v in list(times.items())[1:]:
        _print_ratio(label, v, ref)
    # float32 rounding differences grow along a trajectory: only bit-exact options give 0
    p = {label: tr.params() for label, tr in trainers.items()}
    first = next(iter(p.values()))
    for label, v in list(p.items())[1:]:
        diff = np.abs(v - first).max()
        print(f"max |weights - shipped| after {epoch} epochs, {label}: {diff:.2e}")


# --------------------------------------------------------------------------- batched seeds


def bench_batched_seeds(args, x, y) -> None:
    from sgdvi.trajectory.batches import epoch_permutation
    from sgdvi.trajectory.fast_trainer import FastTrainer
    from sgdvi.trajectory.state import initial_state

    n, seeds, k = len(y), list(range(42, 42 + args.seeds)), args.fast_per_round

    def trainers():
        return [FastTrainer(x, y, initial_state(s), 128, 0.9, False, dtype=args.dtype)
                for s in seeds]  # fmt: skip

    solo, batched = trainers(), trainers()
    pool1, pool2 = ThreadPoolExecutor(1), ThreadPoolExecutor(2)
    solo_over = [Overlapped(tr, pool1) for tr in solo]
    t_solo, t_batched, epoch = [], [], 0
    for _ in range(args.rounds):
        s = time.perf_counter()
        for seed, run in zip(seeds, solo_over, strict=True):  # one job per seed, in turn
            for i in range(k):
                run.epoch(epoch_permutation(seed, epoch + i, n), 0.1)
            run.drain()
        t_solo.append((time.perf_counter() - s) / (k * len(seeds)))
        s = time.perf_counter()
        pending = []
        for i in range(k):  # every seed's epoch and the previous epoch's full passes, 2 threads
            orders = [epoch_permutation(seed, epoch + i, n) for seed in seeds]
            for f in pending:
                f.result()
            trains = [
                pool2.submit(tr.train_epoch, o, 0.1) for tr, o in zip(batched, orders, strict=True)
            ]
            for f in trains:
                f.result()
            pending = [pool2.submit(tr.full_pass, tr.params()) for tr in batched]
        for f in pending:
            f.result()
        t_batched.append((time.perf_counter() - s) / (k * len(seeds)))
        epoch += k
    pool1.shutdown()
    pool2.shutdown()
    same = all(np.array_equal(a.params(), b.params()) for a, b in zip(solo, batched, strict=True))
    print(
        f"\n{len(seeds)} seeds, {args.rounds} interleaved rounds of {k} epochs each, per seed-epoch"
    )
    _print_times({"one overlapped job per seed, in turn": t_solo,
                  f"{len(seeds)} seeds batched in one 2-thread job": t_batched})  # fmt: skip
    _print_ratio("speed-up of the batched job (solo / batched)", t_solo, t_batched)
    print(f"weights of every seed bit-identical between solo and batched: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="results/data/mnist7-5class.npz")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--ref-dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    ap.add_argument("--fast-per-round", type=int, default=10, help="fast epochs per round")
    ap.add_argument("--epochs", type=int, default=100_000, help="epochs of the projection")
    ap.add_argument("--alternatives", action="store_true", help="time the kernel options")
    ap.add_argument("--previous", action="store_true",
                    help="with --alternatives: the kernels before the speed-up")  # fmt: skip
    ap.add_argument("--train-only", action="store_true",
                    help="with --alternatives: time the training epoch alone")  # fmt: skip
    ap.add_argument("--seeds", type=int, default=0, help="time k seeds batched vs solo")
    ap.add_argument("--skip-plain", action="store_true", help="skip section 1")
    args = ap.parse_args()
    x, y, source = _load(args.data)
    print(f"data: {source}; N = {len(y)}; batch 128; fast {args.dtype}, plain {args.ref_dtype}; "
          f"BLAS threads 1; load {os.getloadavg()}")  # fmt: skip
    if not args.skip_plain:
        bench_plain_vs_fast(args, x, y)
    if args.alternatives:
        bench_alternatives(args, x, y)
    if args.seeds:
        bench_batched_seeds(args, x, y)


if __name__ == "__main__":
    main()
