"""Matrix-free D(x) and the spectrum API against independent float64 references.

References: the per-example gradients of the existing module (per-layer formulas) or of a
naive one-example-at-a-time autograd loop, centred and multiplied out in float64 numpy, and
numpy's symmetric eigensolver with the footnote-1 threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from sgdvi.diffusion import SpectrumResult, spectrum
from sgdvi.diffusion.api import choose_path, rank_bounds
from sgdvi.diffusion.compute import diffusion_spectrum
from sgdvi.diffusion.eigen import rank_threshold
from sgdvi.diffusion.gradients import gradient_matrix, hooks_supported
from sgdvi.diffusion.matrix_free import (
    MatrixFreeOperator,
    chan_merge,
    chunk_ranges,
    gradient_moments,
    gram_tiles,
    hutchinson_trace_square,
    time_methods,
)
from sgdvi.models import build_model

N = 240
CHUNK = 80
BUDGET = 2000


def _trained(name: str, shape: tuple[int, ...], seed: int = 0) -> tuple[nn.Module, tuple]:
    """``name`` after 20 SGD steps (BatchNorm statistics updated) on synthetic data whose
    label depends on the input, in eval mode, and N examples."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(name)
    x = torch.randn(N, *shape, generator=gen)
    y = (x.flatten(1)[:, :10].argmax(dim=1) + torch.randint(0, 2, (N,), generator=gen)) % 10
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for step in range(20):
        idx = torch.arange(step * 12, step * 12 + 32) % N
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval(), (x, y)


@pytest.fixture(scope="module", params=[("small-fc", (1, 7, 7)), ("small-lenet", (1, 28, 28))])
def net(request):
    return _trained(*request.param)


class Reference:
    """Float64 D of float32 per-example gradients: its eigenvalues (those of the N x N
    Gram matrix ``Gc Gc^T / N`` padded with zeros when N < d), trace, tr(D^2), rank."""

    def __init__(self, g: np.ndarray) -> None:
        n, d = g.shape
        gc = g - g.mean(axis=0)
        small = gc @ gc.T / n if n < d else gc.T @ gc / n
        w = np.linalg.eigvalsh(small)[::-1]
        self.d = d
        self.w = np.concatenate([w, np.zeros(max(d - n, 0))])
        self.threshold = rank_threshold(self.w[0], d, "float32")
        self.rank = int(np.count_nonzero(self.w > self.threshold))
        self.trace = float(np.trace(small))
        self.trace_square = float(np.sum(small * small))


def _reference(model: nn.Module, data: tuple) -> Reference:
    g = gradient_matrix(model, *data, chunk_size=CHUNK).double().numpy()
    return Reference(g)


def _check_against(res: SpectrumResult, ref: Reference, top: int = 10) -> None:
    np.testing.assert_allclose(res.eigenvalues[:top], ref.w[:top], rtol=1e-6, atol=0)
    assert res.trace == pytest.approx(ref.trace, rel=1e-10)


# --------------------------------------------------------------------------- paper networks


def test_matrix_free_every_eigenvalue_above_threshold(net):
    """All eigenvalues above the threshold (k=None) to 1e-6, trace to 1e-10, the same
    certified rank as numpy and as the existing exact path; tr(D^2) exact by Gram tiles."""
    model, data = net
    ref = _reference(model, data)
    res = spectrum(
        model, data, path="matrix-free", method="chunks", chunk_size=CHUNK, memory_budget_mb=BUDGET
    )
    assert res.rank_check == "gram-ldl" and res.rank_check_count == res.rank == ref.rank
    assert res.rank == res.rank_upper
    np.testing.assert_allclose(res.eigenvalues, ref.w[: ref.rank], rtol=1e-6, atol=0)
    assert res.trace == pytest.approx(ref.trace, rel=1e-10)
    assert res.trace_square == pytest.approx(ref.trace_square, rel=1e-10)
    assert res.trace_square_method == "gram-tiles" and res.trace_square_stderr == 0.0
    assert res.effective_rank == pytest.approx(ref.trace**2 / ref.trace_square, rel=1e-9)
    clipped = np.maximum(ref.w, ref.threshold)
    assert res.mean == pytest.approx(clipped.mean(), rel=1e-6)
    assert res.std == pytest.approx(clipped.std(ddof=1), rel=1e-6)
    exact = diffusion_spectrum(model, *data, chunk_size=CHUNK)
    assert exact.spectrum.rank == res.rank
    # the stored-gradient paths square the centred gradients after rounding them to float32
    # (sgdvi.diffusion.moments.centre_and_square): ~1e-10 from the float64 value
    assert res.trace == pytest.approx(exact.trace, rel=1e-8)


def test_matrix_free_jvp_top_k(net):
    """Forward-mode jvp + vjp products (float64 copy of the network for the float64 passes):
    the 10 largest eigenvalues to 1e-6 of the float32-gradient reference, trace to 1e-10."""
    model, data = net
    ref = _reference(model, data)
    res = spectrum(
        model, data, k=10, path="matrix-free", method="jvp", chunk_size=CHUNK,
        memory_budget_mb=BUDGET,
    )  # fmt: skip
    assert res.method == "jvp" and len(res.eigenvalues) == 10
    _check_against(res, ref)
    assert res.rank == res.rank_check_count == ref.rank  # the Gram tiles certify it
    assert res.fraction_in_top(10) == pytest.approx(ref.w[:10].sum() / ref.trace, rel=1e-6)


def test_every_path_agrees(net):
    """dense, stored-gradient Lanczos and matrix-free give the same top eigenvalues, trace,
    tr(D^2) and rank on one network."""
    model, data = net
    ref = _reference(model, data)
    paths = ["stored", "gram-tiles", "matrix-free"] + (["dense"] if ref.d <= 4000 else ["gram"])
    for path in paths:
        res = spectrum(model, data, path=path, chunk_size=CHUNK, memory_budget_mb=BUDGET)
        _check_against(res, ref)
        assert res.rank == ref.rank, path
        # stored and gram: from the centred gradients stored in float32 (~1e-9 relative)
        tol = 1e-8 if path in ("stored", "gram") else 1e-10
        assert res.trace_square == pytest.approx(ref.trace_square, rel=tol), path


def test_formula_a2_and_dataset_input():
    """(A2) scales D by N/(N-1); a torch Dataset gives the same numbers as the tensors."""
    model, (x, y) = _trained("small-fc", (1, 7, 7))
    mf = {
        "path": "matrix-free",
        "method": "chunks",
        "chunk_size": CHUNK,
        "memory_budget_mb": BUDGET,
    }
    a1 = spectrum(model, (x, y), k=5, **mf)
    a2 = spectrum(model, TensorDataset(x, y), k=5, formula="A2", **mf)
    assert a2.trace == pytest.approx(a1.trace * N / (N - 1), rel=1e-12)
    np.testing.assert_allclose(a2.eigenvalues, a1.eigenvalues * N / (N - 1), rtol=1e-9)


def test_hutchinson_within_its_error_bar():
    model, data = _trained("small-fc", (1, 7, 7))
    ref = _reference(model, data)
    mom = gradient_moments(model, data, chunk_size=CHUNK)
    op = MatrixFreeOperator(model, data, mom.mean, 1 / N, chunk_size=CHUNK, method="chunks")
    est = hutchinson_trace_square(op, op.d, probes=64, seed=3)
    assert 0 < est.stderr < 0.3 * est.value
    assert abs(est.value - ref.trace_square) <= 3.5 * est.stderr
    res = spectrum(
        model, data, k=5, trace_square="hutchinson", probes=48, chunk_size=CHUNK,
        path="matrix-free", memory_budget_mb=BUDGET,
    )  # fmt: skip
    assert res.trace_square_method == "hutchinson"
    assert abs(res.trace_square - ref.trace_square) <= 3.5 * res.trace_square_stderr
    assert res.effective_rank_stderr > 0


# --------------------------------------------------------------------------- building blocks


def test_operator_products_against_dense(net):
    """D v of both methods in both precisions against the float64 reference D."""
    model, data = net
    g = gradient_matrix(model, *data, chunk_size=CHUNK).double()
    gc = g - g.mean(dim=0)
    mom = gradient_moments(model, data, chunk_size=CHUNK)
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(g.shape[1], 3, dtype=torch.float64, generator=gen)
    want = (gc.T @ (gc @ v) / N).numpy()
    for method, prec, tol in [("chunks", "double", 1e-13), ("chunks", "single", 1e-5),
                              ("jvp", "double", 1e-5), ("jvp", "single", 1e-5)]:  # fmt: skip
        op = MatrixFreeOperator(model, data, mom.mean, 1 / N, chunk_size=CHUNK, method=method)
        got = op(v, prec).numpy()
        assert np.linalg.norm(got - want) <= tol * np.linalg.norm(want), (method, prec)


def test_trace_survives_a_large_mean():
    """Chan's merge keeps sum |g_i - g|^2 exact when the mean dwarfs the spread, where
    E|g|^2 - |g|^2 loses every digit."""
    rng = np.random.default_rng(0)
    g = 1e8 + rng.normal(size=(1000, 20))
    want = float(np.sum((g - g.mean(axis=0)) ** 2))
    acc = (0, torch.zeros(20, dtype=torch.float64), torch.zeros((), dtype=torch.float64))
    for i in range(0, 1000, 64):
        c = torch.from_numpy(g[i : i + 64])
        acc = chan_merge(acc, (len(c), c.mean(dim=0), (c - c.mean(dim=0)).square().sum()))
    assert float(acc[2]) == pytest.approx(want, rel=1e-9)
    naive = float(np.sum(g**2) - len(g) * np.sum(g.mean(axis=0) ** 2))
    assert abs(naive - want) > 0.1 * want


def test_auto_method_is_timed_on_the_data():
    """``method="auto"`` times both products on one chunk and keeps the faster."""
    model, data = _trained("small-lenet", (1, 28, 28))
    times = time_methods(model, data, chunk_size=CHUNK, block=16)
    assert set(times) == {"chunks", "jvp"} and min(times.values()) > 0
    res = spectrum(
        model, data, k=3, path="matrix-free", chunk_size=CHUNK, memory_budget_mb=BUDGET,
        trace_square="none",
    )  # fmt: skip
    assert res.method in ("chunks", "jvp") and "timed faster" in res.plan.reason
    assert math.isnan(res.trace_square) and math.isnan(res.effective_rank)


def test_chunk_ranges_cover_the_data_with_fixed_boundaries():
    one = chunk_ranges(1003, 100)
    for world in (1, 2, 3, 7, 20):
        parts = [chunk_ranges(1003, 100, r, world) for r in range(world)]
        flat = [c for p in parts for c in p]
        assert flat == one  # contiguous runs of the same chunks, in rank order
    assert one[-1] == (1000, 1003)


def test_gram_tiles_keep_the_gram_matrix():
    model, data = _trained("small-fc", (1, 7, 7))
    g = gradient_matrix(model, *data, chunk_size=CHUNK).double()
    gc = g - g.mean(dim=0)
    mom = gradient_moments(model, data, chunk_size=CHUNK)
    tiles = gram_tiles(model, data, mom.mean, 1 / N, chunk_size=CHUNK, keep_gram=True)
    np.testing.assert_allclose(tiles.gram.numpy(), (gc @ gc.T / N).numpy(), rtol=0, atol=1e-12)


def test_rank_bounds_contain_the_rank():
    """k largest only: k <= rank <= k + (trace - top-k sum) / threshold and N - 1."""
    model, data = _trained("small-fc", (1, 7, 7))
    ref = _reference(model, data)
    res = spectrum(
        model, data, k=20, path="stored", chunk_size=CHUNK, memory_budget_mb=BUDGET,
        trace_square="hutchinson",
    )  # fmt: skip
    assert res.rank == 20 < ref.rank <= res.rank_upper <= N - 1
    assert math.isnan(res.mean)
    lo, hi = rank_bounds(res.spectrum, 20, ref.trace, N)
    extra = math.floor((ref.trace - ref.w[:20].sum()) / res.threshold)
    assert (lo, hi) == (20, min(N - 1, 20 + extra))


def test_choose_path_follows_the_budget():
    n, d = 2000, 100_000  # stored gradients: 800 MB at N = 2000, 2 GB at N = 5000
    assert choose_path(n, d, budget_mb=8000, chunk_size=64).path == "gram"
    assert choose_path(5000, d, budget_mb=8000, chunk_size=64).path == "stored"
    mf = choose_path(5000, d, budget_mb=3000, chunk_size=64)
    assert mf.path == "matrix-free" and mf.method == "auto"  # timed on the data later
    assert 256 <= mf.max_krylov_dim and mf.max_krylov_dim * 48 * d <= 3000 * 2**20
    assert choose_path(5000, 3000, budget_mb=1000).path == "dense"
    assert choose_path(5000, d, budget_mb=8000, world=2).path == "matrix-free"
    assert choose_path(n, d, budget_mb=500, chunk_size=64).path == "gram-tiles"
    assert choose_path(n, d, budget_mb=8000, world=2).path == "gram-tiles"
    assert choose_path(n, d, budget_mb=500, k=10, chunk_size=64).path == "matrix-free"
    # a chunk of 100 gradients of 10^7 weights (16 GB) does not fit: forward-mode products
    assert choose_path(5000, 10**7, budget_mb=24000, k=5, chunk_size=100).method == "jvp"
    with pytest.raises(MemoryError, match="memory_budget_mb"):
        choose_path(5000, d, budget_mb=100, chunk_size=64)
    with pytest.raises(ValueError, match="one process"):
        choose_path(n, d, budget_mb=8000, path="stored", world=2)


# --------------------------------------------------------------------------- any layer


class ElementwiseScale(nn.Module):
    """A layer with no per-layer formula: ``x * w + b`` elementwise."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(1.0 + 0.3 * torch.randn(n))
        self.b = nn.Parameter(0.1 * torch.randn(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.w + self.b)


def _odd_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.LayerNorm(16), ElementwiseScale(16), nn.Linear(16, 4)
    ).eval()


def _naive_gradients(model: nn.Module, x, y, loss) -> np.ndarray:
    """One example at a time through autograd."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(x)):
        out = loss(model(x[i : i + 1]), y[i : i + 1])[0]
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
    return torch.stack(rows).double().numpy()


@pytest.mark.parametrize("custom_loss", [False, True])
def test_layers_without_formula_through_vmap_grad(custom_loss):
    """LayerNorm and an elementwise-parameter layer (vmap(grad) path), with cross-entropy or
    a per-example squared error, against a naive autograd loop."""
    model = _odd_net().double()  # float64 throughout: the two gradients agree to ~1e-15
    assert not hooks_supported(model)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(90, 3, 4, generator=gen, dtype=torch.float64)
    if custom_loss:
        y = torch.randn(90, 4, generator=gen, dtype=torch.float64)

        def loss(out, t):
            return ((out - t) ** 2).sum(dim=1)
    else:
        y = torch.randint(0, 4, (90,), generator=gen)

        def loss(out, t):
            return F.cross_entropy(out, t, reduction="none")

    ref = Reference(_naive_gradients(model, x, y, loss))
    for method in ("chunks", "jvp"):
        res = spectrum(
            model, (x, y), loss, path="matrix-free", method=method, chunk_size=32,
            memory_budget_mb=BUDGET,
        )  # fmt: skip
        assert res.rank == ref.rank
        np.testing.assert_allclose(res.eigenvalues[:10], ref.w[:10], rtol=1e-9, atol=0)
        assert res.trace == pytest.approx(ref.trace, rel=1e-12)
        assert res.trace_square == pytest.approx(ref.trace_square, rel=1e-12)


def test_training_mode_is_refused():
    model = build_model("small-fc")
    with pytest.raises(ValueError, match="eval"):
        spectrum(model, (torch.randn(10, 1, 7, 7), torch.zeros(10, dtype=torch.long)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    """Matrix-free on the GPU (both methods; TF32 off) gives the CPU's numbers."""
    model, data = _trained("small-lenet", (1, 28, 28))
    cpu = spectrum(
        model, data, k=10, path="matrix-free", method="chunks", chunk_size=CHUNK,
        memory_budget_mb=BUDGET,
    )  # fmt: skip
    for method in ("chunks", "jvp"):
        gpu = spectrum(
            model, data, k=10, path="matrix-free", method=method, chunk_size=CHUNK,
            memory_budget_mb=BUDGET, device="cuda",
        )  # fmt: skip
        np.testing.assert_allclose(gpu.eigenvalues, cpu.eigenvalues, rtol=1e-6, atol=0)
        assert gpu.trace == pytest.approx(cpu.trace, rel=1e-6)
        assert gpu.rank == cpu.rank and gpu.rank_check == "gram-ldl"
    assert next(model.parameters()).device.type == "cpu"  # the caller's model is not moved
