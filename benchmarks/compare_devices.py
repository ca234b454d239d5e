"""Compare a CPU run and a GPU run of the heavy rules (benchmarks/gpu_check.sh runs them).

    python benchmarks/compare_devices.py CPU_DIR GPU_DIR [--train-dir GPU_TRAIN_DIR]

CPU_DIR and GPU_DIR are Snakemake working directories of the same config: GPU_DIR holds the
diffusion spectra recomputed on the GPU from CPU_DIR's snapshots (same weights, so the spectra
must agree) and the trajectories of the torch engine trained on the GPU; GPU_TRAIN_DIR holds the
training rerun on the GPU (timed only: different hardware gives different weights).

Prints, side by side, the wall time of every benchmarked job on each device and the ratio, then
checks (exit status 1 when a check fails):

* eigenvalues: the same rank, lambda_max and trace to REL_SCALAR, and every eigenvalue above the
  rank threshold within EIG_TOL * lambda_max of its CPU value (float32 gradients, float64
  accumulation: differences of order 1e-6 relative are expected);
* trajectory statistics (results/tables/trajectory.parquet, one row per seed): the statistics of
  Fig. 3 within TRAJ_RTOL relative of the CPU run. The GPU sums in another order, so the two
  trajectories part slowly; their statistics must not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sgdvi.benchmark_table import benchmark_table, find_benchmarks
from sgdvi.diffusion.compute import load_result
from sgdvi.infra.parquet import read_table

EIG_TOL = 1e-4  # |lambda_gpu - lambda_cpu| <= EIG_TOL * lambda_max, above the threshold
REL_SCALAR = 1e-4  # lambda_max and trace, relative
RANK_TOL = 0.002  # |rank_gpu - rank_cpu| <= max(1, RANK_TOL * d)
TRAJ_RTOL = 0.05  # trajectory statistics, relative
TRAJ_COLUMNS = [
    "low_freq_ratio",
    "ac_frac_outside",
    "ou_coefficient",
    "grad_norm_normalised_last10pct_mean",
    "loss_last10pct_mean",
]


def times(workdir: Path) -> pd.DataFrame:
    root = workdir / "results" / "benchmarks"
    table = benchmark_table(find_benchmarks(root), root)
    return table.assign(key=table["stage"] + "/" + table["job"]).set_index("key")["seconds"]


def print_times(cpu: Path, gpu: Path, train_dir: Path | None) -> None:
    t_cpu = times(cpu)
    t_gpu = times(gpu)
    if train_dir is not None:
        t_train = times(train_dir)
        t_gpu = pd.concat(
            [t_gpu[~t_gpu.index.str.startswith("train/")], t_train.filter(like="train/")]
        )
    rows = []
    for key in t_cpu.index:
        if key.startswith("data/"):
            continue  # not rerun on the GPU
        g = t_gpu.get(key, np.nan)
        rows.append((key, t_cpu[key], g, t_cpu[key] / g if g == g and g > 0 else np.nan))
    print(f"{'job':45s} {'CPU s':>9s} {'GPU s':>9s} {'CPU/GPU':>8s}")
    for key, c, g, r in sorted(rows):
        print(f"{key:45s} {c:9.2f} {g:9.2f} {r:8.2f}")


def check_spectra(cpu: Path, gpu: Path) -> list[str]:
    problems = []
    files = sorted((cpu / "results").glob("*/diffusion/*.npz"))
    if not files:
        return [f"no diffusion spectra under {cpu}/results"]
    print(f"\n{'spectrum':32s} {'d':>6s} {'rank':>11s} {'max|dl|/lmax':>13s} {'lmax rel':>9s}")
    for f in files:
        rel = f.relative_to(cpu)
        other = gpu / rel
        if not other.exists():
            problems.append(f"{rel}: missing in {gpu}")
            continue
        a, b = load_result(f), load_result(other)
        d = int(a["d"])
        lam_a = np.asarray(a["eigenvalues"], dtype=np.float64)
        lam_b = np.asarray(b["eigenvalues"], dtype=np.float64)
        k = min(int(a["rank"]), int(b["rank"]), len(lam_a), len(lam_b))
        lmax = float(a["lambda_max"])
        worst = float(np.max(np.abs(lam_a[:k] - lam_b[:k]))) / lmax if k else 0.0
        lmax_rel = abs(float(b["lambda_max"]) - lmax) / lmax
        trace_rel = abs(float(b["trace"]) - float(a["trace"])) / abs(float(a["trace"]))
        name = str(rel.parent.parent.name) + "/" + rel.stem
        print(f"{name:32s} {d:6d} {a['rank']:5d}/{b['rank']:<5d} {worst:13.2e} {lmax_rel:9.2e}")
        if abs(int(a["rank"]) - int(b["rank"])) > max(1, RANK_TOL * d):
            problems.append(f"{name}: rank CPU {a['rank']} vs GPU {b['rank']}")
        if worst > EIG_TOL:
            problems.append(f"{name}: eigenvalues differ by {worst:.2e} lambda_max > {EIG_TOL}")
        if lmax_rel > REL_SCALAR or trace_rel > REL_SCALAR:
            problems.append(
                f"{name}: lambda_max rel diff {lmax_rel:.2e}, trace rel diff {trace_rel:.2e} "
                f"> {REL_SCALAR}"
            )
    return problems


def check_trajectory(cpu: Path, gpu: Path) -> list[str]:
    path = Path("results") / "tables" / "trajectory.parquet"
    if not (cpu / path).exists():
        print("\n(no trajectory table: trajectory.enabled is false)")
        return []
    a = read_table(cpu / path)
    b = read_table(gpu / path)
    problems = []
    cols = [c for c in TRAJ_COLUMNS if c in a.columns]
    print(f"\n{'trajectory statistic':40s} {'CPU':>12s} {'GPU':>12s} {'rel diff':>9s}")
    for col in cols:
        for i in range(len(a)):
            x, y = float(a[col].iloc[i]), float(b[col].iloc[i])
            rel = abs(x - y) / max(abs(x), 1e-12)
            print(f"{col + f' [{i}]':40s} {x:12.5g} {y:12.5g} {rel:9.2e}")
            if rel > TRAJ_RTOL:
                problems.append(f"trajectory {col}[{i}]: CPU {x:.5g} vs GPU {y:.5g}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cpu", type=Path)
    parser.add_argument("gpu", type=Path)
    parser.add_argument("--train-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    print_times(args.cpu, args.gpu, args.train_dir)
    problems = check_spectra(args.cpu, args.gpu) + check_trajectory(args.cpu, args.gpu)
    print()
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(
        f"OK: eigenvalues agree within {EIG_TOL:g} lambda_max, trajectory statistics within "
        f"{TRAJ_RTOL:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
