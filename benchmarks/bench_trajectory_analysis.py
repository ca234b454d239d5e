"""Trajectory analysis (Fig. 3 statistics): the brute-force analysis vs the fast one, same array.

A synthetic random walk of the paper's shape (99,000 stored epochs x 917 weights, float32,
363 MB) is written to a temporary folder; the fast analysis (``sgdvi.trajectory.analysis``)
runs on it ``--repeats`` times and the brute-force reference (``tests/
trajectory_analysis_reference.py``, the slow original) on the same array, or,
with ``--old-weights k``, on its first k weights with the time extrapolated linearly to d (its
cost is a loop over weight blocks; the output says so). Both with ``--workers`` FFT threads.

    .venv/bin/python benchmarks/bench_trajectory_analysis.py                # paper scale
    .venv/bin/python benchmarks/bench_trajectory_analysis.py --n 20000 --d 200 --old-weights 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from trajectory_analysis_reference import analyse_trajectory as reference  # noqa: E402

from sgdvi.trajectory.analysis import analyse_trajectory  # noqa: E402


def _walk(path: Path, n: int, d: int, seed: int) -> None:
    """A random walk with per-weight step sizes, written in chunks (float32 .npy)."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    scale = rng.uniform(0.5, 2.0, d).astype(np.float32) * 1e-3
    last = rng.standard_normal(d).astype(np.float32)
    for start in range(0, n, 8192):
        steps = rng.standard_normal((min(8192, n - start), d), dtype=np.float32) * scale
        block = last + np.cumsum(steps, axis=0)
        out[start : start + len(block)] = block
        last = block[-1]
    out.flush()
    del out


def _time(fn, repeats: int) -> tuple[list[float], dict]:
    times, result = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=99_000, help="stored epochs")
    ap.add_argument("--d", type=int, default=917, help="weights")
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the fast analysis")
    ap.add_argument("--old-weights", type=int, default=64, help="0: old on all d weights")
    ap.add_argument("--old-repeats", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    kw = {"n_permutations": args.permutations, "seed": 42, "workers": args.workers}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "weights.npy"
        _walk(path, args.n, args.d, 0)
        new_t, new = _time(lambda: analyse_trajectory(path, **kw), args.repeats)
        k_old = args.d if args.old_weights <= 0 else min(args.old_weights, args.d)
        old_path = path
        if k_old < args.d:
            old_path = Path(tmp) / "weights_old.npy"
            np.save(old_path, np.load(path, mmap_mode="r")[:, :k_old])
        old_t, old = _time(lambda: reference(old_path, **kw), args.old_repeats)
    scale = args.d / k_old
    print(f"synthetic random walk {args.n} x {args.d} float32, {args.permutations} permutations,")
    print(f"workers={args.workers}; fast: {args.repeats} runs, brute force: {args.old_repeats}")
    extra = "" if k_old == args.d else f" (run on {k_old} weights, x{scale:.2f} linear in d)"
    print(f"{'':<28}{'min [s]':>10}{'median [s]':>12}")
    old_min, old_med = min(old_t) * scale, statistics.median(old_t) * scale
    print(f"{'brute force (before)':<28}{old_min:>10.1f}{old_med:>12.1f}{extra}")
    print(f"{'fast (now)':<28}{min(new_t):>10.1f}{statistics.median(new_t):>12.1f}")
    print(f"speed-up (median): {old_med / statistics.median(new_t):.1f}x")
    evaluated = new["perm_ac_weights_evaluated"]
    print(f"AC null: {evaluated.mean():.0f} of {new['d_active']} weights evaluated per surrogate")
    for key in ("low_freq_ratio", "low_freq_p_value", "ac_frac_outside", "ac_p_value"):
        note = "" if k_old == args.d else f" (brute force on {k_old} weights)"
        print(f"{key}: fast {new[key]:.4g}, brute force {old[key]:.4g}{note}")


if __name__ == "__main__":
    main()
