"""Speed and memory of the D(x) eigenspectrum (Section IV-A), measured side by side in one run.

Cases (each in a fresh subprocess, so its peak memory is its own):

- ``subset``: the authors' method against the pipeline on 2,000 examples of small-lenet.
  Reference = per-example loop with batch size one, rank-one float32 accumulation of
  sum_k g_k g_k^T and sum_k g_k, dense float32 symmetric eigensolver. Pipeline = vmap(grad)
  chunks + the solver ``auto`` picks (block Lanczos for d = 13,338). Prints the speed-up and
  both ranks (the issue asks >= 30x, same rank).
- ``fc-subset``: the same comparison for small-fc (d = 3,978) on 2,000 examples of 7x7 MNIST.
- ``lenet``: the pipeline on a full small-lenet snapshot (N = 60,000, d = 13,338); target
  <= 60 s on the 2-core development machine. Old (``--baseline``) vs new.
- ``fc``: a full small-fc snapshot (N = 60,000, the dense path: float64 D by dsyrk +
  eigensolver); target <= 20 s. Old (``--baseline``) vs new.
- ``fc-fast``: that snapshot with block Lanczos (``fast``, the path before the speed-up) vs
  ``auto`` (dense).

Every case runs ``--repeats`` times (fresh processes; old and new alternate) and prints min
and median of the total and of its parts: per-example gradients, moment (the full gradient
and D, or the centring), eigensolver (with the rank check), and the load average.
"Old" runs the same worker with ``src/sgdvi/diffusion`` taken from the git revision
``--baseline`` (the rest of the package as checked out), "new" the working tree.
- ``allcnn``: the pipeline on small-allcnn with random CIFAR-shaped data (N = 50,000,
  d = 26,982; CIFAR cannot be downloaded there); target < 10 minutes and < 10 GB peak.

Data: ``results/data/mnist28.npz`` and the snapshot ``results/lenet-mnist/snapshots/1.0.pt``
(or ``trained/1.0.pt``) when they exist, else random inputs and random weights (said in the
output). Peak memory: ``ru_maxrss`` of the case's process (CPU) or
``torch.cuda.max_memory_allocated`` (CUDA).

    .venv/bin/python benchmarks/bench_diffusion.py                 # all three cases
    .venv/bin/python benchmarks/bench_diffusion.py --cases subset lenet --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = ("subset", "fc-subset", "lenet", "fc", "fc-fast", "allcnn")
#: the diffusion package before the dense-path speed-up (residual-augmented refinement, fused
#: centring, MKL eigensolver): the "old" side of the lenet and fc cases
BASELINE = "a62a316"


def _lenet_model_and_data(n: int, device: str):
    return _model_and_data("lenet-mnist", "small-lenet", "mnist28", 28, n, device)


def _model_and_data(experiment: str, model_name: str, dataset: str, side: int, n, device):
    import torch

    from sgdvi.data import load_prepared
    from sgdvi.models import build_model
    from sgdvi.snapshots import load_snapshot

    notes = []
    snap = None
    for cand in ("snapshots/1.0.pt", "trained/1.0.pt"):
        p = REPO / "results" / experiment / cand
        if p.exists():
            snap = p
            break
    if snap is not None:
        model, _ = load_snapshot(snap, device)
        notes.append(f"snapshot {snap.relative_to(REPO)}")
    else:
        torch.manual_seed(0)
        model = build_model(model_name).to(device).eval()
        notes.append("random weights")
    data = REPO / "results" / "data" / f"{dataset}.npz"
    if data.exists():
        prep = load_prepared(data)
        x, y = prep.x_train[:n], prep.y_train[:n]
        if len(x) < n:
            raise SystemExit(f"{data} has only {len(x)} training examples, need {n}")
        notes.append(f"MNIST from {data.relative_to(REPO)}")
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.rand((n, 1, side, side), generator=g) * 255
        y = torch.randint(0, 10, (n,), generator=g)
        notes.append("random MNIST-shaped data")
    return model, x, y, ", ".join(notes)


def reference_authors(model, x, y) -> dict:
    """The authors' method: batch size one, rank-one float32 updates, dense float32 eigh."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from sgdvi.diffusion.eigen import rank_threshold

    params = [p for p in model.parameters() if p.requires_grad]
    d = sum(p.numel() for p in params)
    device = params[0].device
    second = torch.zeros((d, d), dtype=torch.float32, device=device)
    first = torch.zeros(d, dtype=torch.float32, device=device)
    t0 = time.perf_counter()
    for i in range(len(x)):
        model.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x[i : i + 1].to(device)), y[i : i + 1].to(device))
        loss.backward()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        second.addr_(g, g)
        first += g
    second /= len(x)
    first /= len(x)
    second.addr_(first, first, alpha=-1.0)
    t1 = time.perf_counter()
    w = torch.linalg.eigvalsh(second).cpu().numpy().astype(np.float64)
    t2 = time.perf_counter()
    thr = rank_threshold(w.max(), d, "float32")
    return {
        "seconds": t2 - t0,
        "seconds_gradients": t1 - t0,
        "seconds_eigen": t2 - t1,
        "seconds_moment": 0.0,
        "rank": int((w > thr).sum()),
        "lambda_max": float(w.max()),
        "top": np.sort(w)[::-1][:5].tolist(),
    }


def pipeline(model, x, y, solver: str = "auto", chunk_size: int = 1000) -> dict:
    from sgdvi.diffusion.compute import diffusion_spectrum

    r = diffusion_spectrum(model, x, y, solver=solver, chunk_size=chunk_size)
    sp = r.spectrum
    return {
        "seconds": r.seconds,
        "seconds_gradients": r.seconds_gradients,
        "seconds_eigen": r.seconds_eigen,
        "seconds_moment": r.seconds_moment,
        "rank": sp.rank,
        "rank_check": f"{sp.rank_check}:{sp.rank_check_count}",
        "lambda_max": sp.lambda_max,
        "top": sp.eigenvalues[:5].tolist(),
        "solver": sp.solver,
        "krylov_dim": sp.krylov_dim,
        "operator_passes": sp.operator_passes,
        "error_bound": sp.max_rel_error_bound,
    }


def _peak_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(case: str, device: str, threads: int, subset: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    if case == "subset-reference":
        model, x, y, notes = _lenet_model_and_data(subset, device)
        out = reference_authors(model, x, y)
    elif case == "subset-pipeline":
        model, x, y, notes = _lenet_model_and_data(subset, device)
        out = pipeline(model, x, y)
    elif case in ("fc-subset-reference", "fc-subset-pipeline", "fc-dense", "fc-fast", "fc"):
        n = subset if case.startswith("fc-subset") else 60000
        model, x, y, notes = _model_and_data("fc-mnist7", "small-fc", "mnist7", 7, n, device)
        if case == "fc-subset-reference":
            out = reference_authors(model, x, y)
        else:
            out = pipeline(model, x, y, solver="fast" if case == "fc-fast" else "auto")
    elif case == "lenet":
        model, x, y, notes = _lenet_model_and_data(60000, device)
        out = pipeline(model, x, y)
    elif case == "allcnn":
        from sgdvi.models import build_model

        torch.manual_seed(0)
        model = build_model("small-allcnn").to(device).eval()
        g = torch.Generator().manual_seed(0)
        x = torch.randn((50000, 3, 32, 32), generator=g)
        y = torch.randint(0, 10, (50000,), generator=g)
        notes = "random weights, random CIFAR-shaped data"
        out = pipeline(model, x, y, chunk_size=500)
    else:
        raise SystemExit(f"unknown case {case!r}")
    out.update(case=case, notes=notes, n=len(x), peak_mb=_peak_mb(device), device=device)
    return out


def baseline_tree(rev: str) -> Path:
    """A copy of ``src/sgdvi`` with its ``diffusion`` package from git revision ``rev``."""
    import shutil
    import tarfile
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="bench_diffusion_"))
    shutil.copytree(REPO / "src" / "sgdvi", root / "sgdvi")
    shutil.rmtree(root / "sgdvi" / "diffusion")
    tar = root / "old.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "-o", str(tar), rev, "src/sgdvi/diffusion"],
        check=True,
    )
    with tarfile.open(tar) as t:
        t.extractall(root / "x", filter="data")
    shutil.move(root / "x" / "src" / "sgdvi" / "diffusion", root / "sgdvi" / "diffusion")
    return root


def _run_once(case: str, device: str, threads: int, subset: int, path: Path | None) -> dict:
    import os

    cmd = [sys.executable, __file__, "--worker", case, "--device", device]
    cmd += ["--threads", str(threads), "--subset", str(subset)]
    env = dict(os.environ)
    if path is not None:  # the baseline package first on sys.path
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = (load, os.getloadavg()[0])
    return out


def run_case(case: str, device: str, threads: int, subset: int, repeats: int = 1) -> dict:
    """Run ``case`` ``repeats`` times, each in a fresh process; the last run's fields plus
    ``runs`` (every run's times)."""
    runs = [_run_once(case, device, threads, subset, None) for _ in range(repeats)]
    out = dict(runs[-1])
    out["runs"] = runs
    return out


def run_pair(case: str, device: str, threads: int, repeats: int, old: Path) -> tuple[dict, dict]:
    """``case`` with the baseline package and with the working tree, alternating."""
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(repeats):
        for side, path in (("old", old), ("new", None)):
            r = _run_once(case, device, threads, 0, path)
            r["case"] = f"{case} ({side})"
            runs[side].append(r)
    return tuple({**runs[side][-1], "runs": runs[side]} for side in ("old", "new"))


_PARTS = ("seconds", "seconds_gradients", "seconds_moment", "seconds_eigen")


def _stats(r: dict, key: str) -> tuple[float, float]:
    values = [run[key] for run in r["runs"]]
    return min(values), statistics.median(values)


def _line(r: dict) -> str:
    extra = (
        f", solver {r['solver']}, Krylov dim {r['krylov_dim']}, passes {r['operator_passes']}"
        if "solver" in r
        else ""
    )
    if "rank_check" in r:
        extra += f", rank check {r['rank_check']}"
    parts = ", ".join(
        f"{name} {_stats(r, key)[0]:.1f}/{_stats(r, key)[1]:.1f}"
        for name, key in zip(("gradients", "moment", "eigen"), _PARTS[1:], strict=True)
    )
    lo, med = _stats(r, "seconds")
    loads = " ".join(f"{a:.1f}-{b:.1f}" for a, b in (run["load"] for run in r["runs"]))
    return (
        f"  {r['case']:<20} N={r['n']:>6}  min/median {lo:7.1f}/{med:7.1f} s ({parts} s)  "
        f"rank {r['rank']:>4}  peak {r['peak_mb'] / 1024:.2f} GB{extra}  load {loads}  "
        f"[{r['notes']}]"
    )


def _compare(ref: dict, new: dict, label: str) -> None:
    print(f"{label} ({len(ref['runs'])} runs each, min/median)")
    print(_line(ref))
    print(_line(new))
    (ref_min, ref_med), (new_min, new_med) = _stats(ref, "seconds"), _stats(new, "seconds")
    print(
        f"  speed-up {ref_min / new_min:.1f}x (min) / {ref_med / new_med:.1f}x (median); "
        f"rank {ref['rank']} vs {new['rank']} "
        f"({'same' if ref['rank'] == new['rank'] else 'DIFFERENT'}); lambda_max "
        f"{ref['lambda_max']:.6g} vs {new['lambda_max']:.6g}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side (min/median)")
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the old side")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        import logging

        # progress of the case on stderr (shown only if it fails)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        print(json.dumps(worker(args.worker, args.device, args.threads, args.subset)))
        return
    import torch

    print(f"torch {torch.__version__}, device {args.device}, {args.threads} threads")
    run = lambda case: run_case(case, args.device, args.threads, args.subset, args.repeats)  # noqa: E731
    if "subset" in args.cases:
        ref, new = run("subset-reference"), run("subset-pipeline")
        _compare(ref, new, f"small-lenet, {args.subset} examples: authors' method vs pipeline")
    if "fc-subset" in args.cases:
        ref, new = run("fc-subset-reference"), run("fc-subset-pipeline")
        _compare(ref, new, f"small-fc, {args.subset} examples: authors' method vs pipeline")
    if "lenet" in args.cases or "fc" in args.cases:
        base = baseline_tree(args.baseline)
        print(f"old = src/sgdvi/diffusion at {args.baseline}, new = the working tree")
    if "lenet" in args.cases:
        old, new = run_pair("lenet", args.device, args.threads, args.repeats, base)
        _compare(old, new, "full small-lenet snapshot (target <= 60 s on 2 CPU cores)")
    if "fc" in args.cases:
        old, new = run_pair("fc", args.device, args.threads, args.repeats, base)
        _compare(old, new, "full small-fc snapshot (target <= 20 s on 2 CPU cores)")
    if "fc-fast" in args.cases:
        old, new = run("fc-fast"), run("fc-dense")
        _compare(old, new, "full small-fc snapshot: block Lanczos vs auto (dense)")
    if "allcnn" in args.cases:
        r = run_case("allcnn", args.device, args.threads, args.subset, 1)
        print("full small-allcnn (target < 600 s and < 10 GB on 2 CPU cores)")
        print(_line(r))


if __name__ == "__main__":
    main()
