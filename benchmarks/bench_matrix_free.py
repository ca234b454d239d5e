"""Matrix-free against stored-gradient D(x), side by side in one run: time and peak memory.

Each case runs :func:`sgdvi.diffusion.spectrum` in a fresh subprocess (so ``ru_maxrss`` is its
own peak) on a one-hidden-layer MLP ``784 -> h -> 10`` (ReLU; d = 795 h + 10) with random
weights, on N synthetic 28 x 28 inputs labelled by a random teacher network:

- ``stored``: the per-example gradients stored once (``4 N d`` bytes), block Lanczos on
  ``G^T G`` (``path="stored"``);
- ``matrix-free``: D v recomputed from the data at every Lanczos step, one chunk of
  per-example gradients at a time (``method="chunks"``);
- ``jvp`` (``--jvp``): matrix-free with forward-mode jvp + vjp products.

``--k K``: only the K largest eigenvalues (block Lanczos on both sides). ``--k 0``: every
eigenvalue (the paper's rank; N < d): the N x N Gram matrix of the stored gradients
(``path="gram"``) against the same Gram built by tiles of chunk pairs with the gradients
recomputed (``path="gram-tiles"``). tr(D^2) is left out (``trace_square="none"``) so the columns
compare the eigen paths alone. ``base`` is the peak of a process that builds the model and data
and computes nothing (interpreter, torch, inputs): the ``net MB`` columns subtract it.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_matrix_free.py
    .venv/bin/python benchmarks/bench_matrix_free.py --d 1e4 1e5 --n 2000 --k 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _mlp_and_data(d: float, n: int, seed: int = 0):
    import torch
    from torch import nn

    h = max(1, round((d - 10) / 795))
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, h), nn.ReLU(), nn.Linear(h, 10)).eval()
    teacher = nn.Linear(784, 10)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 1, 28, 28, generator=gen)
    with torch.no_grad():
        y = teacher(x.flatten(1)).argmax(dim=1)
    return model, (x, y)


def worker(args: argparse.Namespace) -> dict:
    """One case in this process; returns its numbers (printed as JSON)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    from sgdvi.diffusion import spectrum

    model, data = _mlp_and_data(args.d, args.n)
    out: dict = {"d": sum(p.numel() for p in model.parameters()), "n": args.n}
    if args.worker != "base":
        path, method = (
            ("stored", "auto") if args.worker == "stored" else ("matrix-free", args.worker)
        )
        method = "chunks" if method == "matrix-free" else method
        if not args.k:  # every eigenvalue: the N x N Gram of stored gradients or of tiles
            path = "gram" if path == "stored" else "gram-tiles"
        t0 = time.perf_counter()
        res = spectrum(
            model, data, k=args.k or None, path=path, method=method, chunk_size=args.chunk,
            memory_budget_mb=args.budget, trace_square="none",
        )  # fmt: skip
        out |= {
            "seconds": time.perf_counter() - t0,
            "rank": res.rank,
            "top": [float(v) for v in res.eigenvalues[:3]],
            "krylov": res.spectrum.krylov_dim,
            "passes": res.spectrum.operator_passes,
            "parts": res.seconds,
        }
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_case(case: str, d: float, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, "--d", str(d), "--n", str(args.n)]
    cmd += ["--k", str(args.k), "--chunk", str(args.chunk), "--budget", str(args.budget)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(d: float, cases: dict[str, dict], base: float) -> str:
    st, mf = cases["stored"], cases["matrix-free"]
    if "error" in st or "error" in mf:
        return f"{d:>9.0e}  error: {st.get('error') or mf.get('error')}"
    cells = [
        f"{st['d']:>9,}",
        f"{st['seconds']:>8.2f}",
        f"{mf['seconds']:>8.2f}",
        f"{mf['seconds'] / st['seconds']:>6.2f}",
        f"{st['peak_mb'] - base:>9.0f}",
        f"{mf['peak_mb'] - base:>9.0f}",
        f"{(st['peak_mb'] - base) / max(mf['peak_mb'] - base, 1):>6.1f}",
        f"{st['rank']:>5} {mf['rank']:>5}",
        f"{st['passes']:>3} {mf['passes']:>3}",
        f"{abs(mf['top'][0] / st['top'][0] - 1):.1e}",
    ]
    if "jvp" in cases:
        jv = cases["jvp"]
        ok = "seconds" in jv
        cells.append(f"{jv['seconds']:>8.2f} {jv['peak_mb'] - base:>7.0f}" if ok else "  error")
    return "  ".join(cells)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--d", type=float, nargs="+", default=[1e4, 3e4, 1e5, 3e5])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--k", type=int, default=0, help="0: every eigenvalue above the threshold")
    p.add_argument("--chunk", type=int, default=250)
    p.add_argument("--budget", type=float, default=12000, help="memory_budget_mb of each case")
    p.add_argument("--jvp", action="store_true", help="also the jvp method")
    args = p.parse_args()
    if args.worker:
        args.d = args.d[0]
        print(json.dumps(worker(args)))
        return
    load0 = os.getloadavg()
    print(f"N = {args.n}, k = {args.k or 'all above threshold'}, chunk {args.chunk}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average at start {load0[0]:.2f}")  # fmt: skip
    head = ("        d  stored s  m-free s  ratio  stored MB  m-free MB  ratio  ranks     "
            "passes  top rel diff")  # fmt: skip
    print(head + ("     jvp s  jvp MB" if args.jvp else ""))
    for d in args.d:
        base = run_case("base", d, args)["peak_mb"]
        cases = {c: run_case(c, d, args) for c in ("stored", "matrix-free")}
        if args.jvp:
            cases["jvp"] = run_case("jvp", d, args)
        print(_row(d, cases, base), flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f} (MB columns: peak RSS minus the "
          f"{base:.0f} MB of a process that only builds the model and data)")  # fmt: skip


if __name__ == "__main__":
    main()
