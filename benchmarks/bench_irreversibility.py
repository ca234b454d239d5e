"""Speed and memory of the per-seed probability-current analysis (rule irreversibility_current;
Section IV-B of Chaudhari & Soatto 2018), old and new side by side.

Cases (each repeat in a fresh subprocess with one BLAS thread, as the rule runs, so its peak
memory is its own):

- ``old``: :func:`sgdvi.irreversibility.reference.analyse_current`, the implementation before
  the speed-up (float64 copies of the whole trajectory, gathered surrogate halves, lstsq per
  bootstrap resample).
- ``new``: :func:`sgdvi.irreversibility.sgd.analyse_current` (streaming detrend, sparse block
  sums, float32 implicit-position PCA, batched projections, bootstrap from block moments).
- ``grad``: the rule's other stage, :func:`sgdvi.irreversibility.sgd.per_example_gradients` on
  30,596 random 7x7 inputs (the paper-scale 5-class training set) and the D(x) eigenvectors
  (:func:`sgdvi.irreversibility.sgd.diffusion_directions`), timed separately.

Input: a seeded synthetic random walk of paper-scale shape (99,000 epochs x 917 tiny-fc
weights, float32, step 1e-3), written once to ``--data`` and memory-mapped like the rule's
``weights.npy``; 100 surrogates, m = 10, the config's other defaults. Prints min and median
wall time per case, the old/new ratio, peak RSS (``ru_maxrss``, which includes the touched
pages of the memory map and about 0.6 GB of imports), and how far the new statistics are from
the old ones.

    .venv/bin/python benchmarks/bench_irreversibility.py    # new, old, new, old, new; then grad
    .venv/bin/python benchmarks/bench_irreversibility.py --old-repeats 0  # new and grad only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N, D, M, N_TRAIN = 99_000, 917, 10, 30_596


def _build(path: Path, n: int, d: int) -> None:
    """Seeded random walk (float32), written in chunks so building it stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp.npy")
    w = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    last = np.zeros(d, np.float32)
    for a in range(0, n, 8192):
        step = rng.standard_normal((min(8192, n - a), d), dtype=np.float32) * np.float32(1e-3)
        w[a : a + len(step)] = last + np.cumsum(step, axis=0, dtype=np.float32)
        last = w[a + len(step) - 1].copy()
    w.flush()
    del w
    tmp.rename(path)


def _worker(case: str, data: Path, surrogates: int, out: Path) -> None:
    """One timed run in this (fresh) process; writes seconds, peak RSS and the statistics."""
    from sgdvi.irreversibility import reference, sgd

    if case == "grad":
        rng = np.random.default_rng(0)
        x = rng.random((N_TRAIN, 1, 7, 7), dtype=np.float32)
        y = rng.integers(0, 5, N_TRAIN)
        w = 0.1 * rng.standard_normal(D)
        t0 = time.perf_counter()
        g = sgd.per_example_gradients(w, x, y, 5, chunk=4096)
        t1 = time.perf_counter()
        sgd.diffusion_directions(g, M)
        t2 = time.perf_counter()
        res = {"seconds": t2 - t0, "gradients_s": t1 - t0, "directions_s": t2 - t1}
    else:
        weights = np.load(data, mmap_mode="r")
        V = np.linalg.qr(np.random.default_rng(0).standard_normal((weights.shape[1], M)))[0]
        s = sgd.Settings(n_surrogates=surrogates)
        fn = reference.analyse_current if case == "old" else sgd.analyse_current
        t0 = time.perf_counter()
        summary, projs = fn(weights, V, s)
        res = {"seconds": time.perf_counter() - t0}
        np.savez(
            out.with_suffix(".npz"),
            **{f"{p.name}_{k}": v for p in projs for k, v in _stats(p).items()},
        )
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(res))


def _stats(p) -> dict[str, np.ndarray]:
    return {"L": p.area.L, "z": p.area.z, "z_sur": p.z_sur, "q_over_d": np.array(p.fit.ratio)}


def _run(case: str, args, tmp: Path, k: int) -> dict:
    out = tmp / f"{case}{k}.json"
    env = os.environ | {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["MKL_NUM_THREADS"] = "1"
    cmd = [sys.executable, __file__, "--worker", case, "--data", str(args.data)]
    cmd += ["--surrogates", str(args.surrogates), "--out", str(out)]
    subprocess.run(cmd, check=True, env=env)
    res = json.loads(out.read_text())
    print(f"  {case} run {k + 1}: {json.dumps({a: round(b, 2) for a, b in res.items()})}")
    return res


def _agreement(tmp: Path) -> None:
    """Largest differences of the new statistics from the old ones (first runs of each)."""
    old, new = np.load(tmp / "old0.npz"), np.load(tmp / "new0.npz")
    for key in sorted(old.files):
        a, b = new[key], old[key]
        rel = np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
        print(f"  {key:24s} max |new - old| / max |old| = {rel:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "sgdvi-bench-irr")
    ap.add_argument("--surrogates", type=int, default=100)
    ap.add_argument("--old-repeats", type=int, default=2)
    ap.add_argument("--new-repeats", type=int, default=3)
    ap.add_argument("--grad-repeats", type=int, default=1)
    ap.add_argument("--worker", choices=("old", "new", "grad"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.data, args.surrogates, args.out)
        return
    if args.data.suffix != ".npy":
        args.data = args.data / f"walk_{N}x{D}.npy"
    if not args.data.exists():
        print(f"building {args.data} ({N} x {D} float32 random walk, seed 0)")
        _build(args.data, N, D)
    print(f"input {args.data}, {args.surrogates} surrogates, m = {M}, one BLAS thread")
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # interleaved (new, old, new, old, new, ...) so both see the same machine load
        order = [("new", k) for k in range(args.new_repeats)]
        for j in range(args.old_repeats):
            order.insert(min(2 * j + 1, len(order)), ("old", j))
        for case, k in order:
            times.setdefault(case, []).append(_run(case, args, tmp, k)["seconds"])
        if args.old_repeats and args.new_repeats:
            _agreement(tmp)
        for k in range(args.grad_repeats):
            _run("grad", args, tmp, k)
    for case, ts in times.items():
        if ts:
            print(
                f"analyse_current {case}: min {min(ts):.1f} s, median {statistics.median(ts):.1f} s"
            )
    if times.get("old") and times.get("new"):
        r_min = min(times["old"]) / min(times["new"])
        r_med = statistics.median(times["old"]) / statistics.median(times["new"])
        print(f"speed-up old/new: {r_min:.1f}x (min), {r_med:.1f}x (median)")


if __name__ == "__main__":
    main()
