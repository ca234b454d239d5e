"""D(x) hardening (failures must be loud and cheap): certified ranks, memory of the dense fallback,
no debris on a full disk; the fast path against the dense one on a trained small-fc."""

from __future__ import annotations

import errno
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from sgdvi.diffusion import compute, memory
from sgdvi.diffusion.eigen import (
    GradientOperator,
    RankCheckFailed,
    Spectrum,
    certify_rank,
    choose_solver,
    dense_spectrum,
    fast_spectrum,
    inertia_above,
)
from sgdvi.diffusion.gradients import gradient_matrix
from sgdvi.diffusion.moments import centre_in_place, diffusion_from_centred, exact_mean
from sgdvi.models import build_model

REPO = Path(__file__).resolve().parents[1]


def test_inertia_counts_eigenvalues_above_a_shift_with_2x2_pivots():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 60):
        a = rng.normal(size=(n, n))
        a = a + a.T  # indefinite: Bunch-Kaufman takes 2x2 pivots
        a[0, 0] = 0.0
        w = np.linalg.eigvalsh(a)
        for tau in (-1.5, 0.0, 0.3, float(np.median(w))):
            assert inertia_above(a, tau) == int((w > tau).sum()), (n, tau)
    # zero diagonal everywhere forces 2x2 pivots; the matrix itself is left untouched
    b = np.array([[0.0, 2.0, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    copy = b.copy()
    assert inertia_above(b, 0.0) == int((np.linalg.eigvalsh(copy) > 0).sum()) == 1
    np.testing.assert_array_equal(b, copy)


def _trained_small_fc(n: int = 2000, epochs: int = 2):
    """small-fc (d = 3,978) after a couple of SGD epochs on class-patterned 7x7 images."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=gen)
    proto = torch.randn((10, 1, 7, 7), generator=gen) * 1.5
    x = proto[y] + torch.randn((n, 1, 7, 7), generator=gen)
    torch.manual_seed(0)
    model = build_model("small-fc")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval(), x, y


@pytest.mark.slow
def test_fast_equals_dense_and_the_rank_is_certified_on_a_trained_small_fc():
    """d = 3,978 (the fast path must give the dense rank): same rank, eigenvalues above the
    threshold to 1e-6, and the Gram matrix's inertia (N = 2,000 < d) certifies the count. About
    25 s on 2 idle cores (two d = 3,978 eigensolvers), longer under load: marked slow."""
    torch.set_num_threads(2)
    model, x, y = _trained_small_fc()
    g = gradient_matrix(model, x, y, 500)
    assert g.shape == (2000, 3978)
    centre_in_place(g, exact_mean(g))
    scale = 1.0 / len(x)
    fast = fast_spectrum(GradientOperator(g, scale), block_size=64)
    certify_rank(fast, g, scale, max_cost_ratio=None)
    dense = dense_spectrum(diffusion_from_centred(g))
    assert 10 < dense.rank < 1999
    assert fast.rank == dense.rank
    r = dense.rank
    np.testing.assert_allclose(fast.eigenvalues[:r], dense.eigenvalues[:r], rtol=1e-6)
    assert (fast.rank_check, fast.rank_check_count) == ("gram-ldl", dense.rank)
    assert (dense.rank_check, dense.rank_check_count) == ("dense", dense.rank)


def _low_rank_gradients(n=300, d=500, r=40, seed=1):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(n, r)))
    v, _ = np.linalg.qr(rng.normal(size=(d, r)))
    lam = np.logspace(0, -2.5, r)
    return torch.from_numpy(((u * np.sqrt(n * lam)) @ v.T).astype(np.float32))


def test_rank_check_catches_a_missed_eigenvalue():
    g = _low_rank_gradients()
    scale = 1 / g.shape[0]
    sp = fast_spectrum(GradientOperator(g, scale), block_size=16)
    certify_rank(sp, g, scale, max_cost_ratio=None)
    assert sp.rank_check == "gram-ldl" and sp.rank_check_count == sp.rank == 40
    # a solver that missed the 20th eigenvalue (a slowly converging one, say)
    missed = Spectrum(np.delete(sp.eigenvalues, 19), d=sp.d, eps=sp.eps, solver="fast",
                      complete=False)  # fmt: skip
    assert missed.rank == 39
    with pytest.raises(RankCheckFailed, match="says 40"):
        certify_rank(missed, g, scale, max_cost_ratio=None)
    # N >= d: the check would need D itself; it is skipped and says so
    tall = _low_rank_gradients(n=600, d=100, r=20)
    sp2 = fast_spectrum(GradientOperator(tall, 1 / 600), block_size=8)
    certify_rank(sp2, tall, 1 / 600)
    assert (sp2.rank_check, sp2.rank_check_count) == ("none", -1)


def test_dense_fallback_frees_the_gradients_before_forming_d(monkeypatch):
    """Peak memory of the fallback: when Lanczos gives up, the N x d gradients are released
    before the d x d D is allocated, so the peak is the larger of the two, not their sum; the
    recomputed gradients see the same augmentation draws."""
    refs: list[weakref.ref] = []
    alive_at_d: list[bool] = []
    real_gradient_matrix = compute.gradient_matrix

    def recording_gradient_matrix(*args, **kwargs):
        g = real_gradient_matrix(*args, **kwargs)
        refs.append(weakref.ref(g))
        return g

    class CheckedMoment(compute.CentredMoment):
        def __init__(self, *args, **kwargs):
            alive_at_d.append(any(r() is not None for r in refs))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(compute, "gradient_matrix", recording_gradient_matrix)
    monkeypatch.setattr(compute, "CentredMoment", CheckedMoment)

    def jitter(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return xb + 0.1 * torch.randn(xb.shape, generator=gen)

    torch.manual_seed(3)
    model = build_model("tiny-fc").eval()  # d = 917: the dense eigensolver takes no time
    x = torch.randn((1000, 1, 7, 7))  # N >= d: not the Gram path
    y = torch.randint(0, 5, (1000,))
    kw = {"transform": jitter, "chunk_size": 250}
    res = compute.diffusion_spectrum(
        model, x, y, solver="auto", dense_max_d=0, block_size=4, max_krylov_dim=8,
        generator=torch.Generator().manual_seed(5), **kw,
    )  # fmt: skip
    assert len(refs) == 1 and alive_at_d == [False]
    assert res.spectrum.solver == "dense" and res.spectrum.rank_check == "dense"
    ref = compute.diffusion_spectrum(
        model, x, y, solver="dense", generator=torch.Generator().manual_seed(5), **kw
    )
    np.testing.assert_allclose(res.spectrum.eigenvalues, ref.spectrum.eigenvalues, rtol=1e-12)


def test_memory_estimate_counts_gradients_or_d_not_both():
    n, d = 50_000, 28_000  # about small-allcnn on CIFAR-100
    g_mb, d_mb = 4 * n * d / 2**20, 8 * d * d / 2**20
    est = memory.peak_mb(n, d, "fast", input_size=3072)
    assert max(g_mb, d_mb) < est < g_mb + d_mb + memory.BASE_MB + 4 * n * 3072 / 2**20
    assert memory.peak_mb(60_000, 3978, "dense", input_size=49) < 2000  # small-fc: D only
    assert memory.planned_solver("auto", 3978, 4000) == choose_solver("auto", 3978, 4000)


def test_small_fc_takes_the_dense_path_by_default():
    """Speed: for d = 3,978 the dense path (float64 D by dsyrk + eigh) beats block
    Lanczos, whose float64 refinement of ~700 vectors costs more than forming D."""
    from conftest import workflow_config  # the config the rules see (schema defaults filled)

    cfg = workflow_config("config/config.yaml")["diffusion"]
    assert choose_solver(cfg["solver"], 3978, cfg["dense_max_d"], cfg["eps"]) == "dense"
    assert choose_solver(cfg["solver"], 13338, cfg["dense_max_d"], cfg["eps"]) == "fast"


def test_save_result_leaves_no_debris_on_a_full_disk(tmp_path, monkeypatch):
    """A full disk must not leave debris: ENOSPC while writing the npz leaves neither the
    target nor a temporary file."""
    sp = dense_spectrum(np.diag([3.0, 1.0, 0.0]).astype(np.float64))
    times = {"seconds": 1.0, "seconds_gradients": 0.5, "seconds_eigen": 0.5}
    result = compute.DiffusionResult(sp, n=10, d=3, formula="A1", trace=4.0, grad_norm=0.1, **times)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "diffusion" / "1.0.npz"
    monkeypatch.setattr(compute.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space"):
        compute.save_result(out, result, experiment="x")
    assert list(out.parent.iterdir()) == []
    monkeypatch.undo()
    compute.save_result(out, result, experiment="x")
    stored = compute.load_result(out)
    assert stored["rank_check"] == "dense" and stored["rank_check_count"] == 2
    assert [p.name for p in out.parent.iterdir()] == ["1.0.npz"]


def test_gram_path_equals_dense_for_few_examples():
    """N < d: the N x N Gram matrix gives all of D's eigenvalues (the rest are zero)."""
    from sgdvi.diffusion.eigen import gram_spectrum

    g = _low_rank_gradients(n=120, d=400, r=30)
    g += 0.03 * torch.randn(g.shape, generator=torch.Generator().manual_seed(0))
    centre_in_place(g, exact_mean(g))
    gram = gram_spectrum(g, 1 / 120)
    dense = dense_spectrum(diffusion_from_centred(g))
    assert gram.complete and len(gram.eigenvalues) == 400 and gram.rank == dense.rank > 30
    atol = 1e-12 * dense.lambda_max
    np.testing.assert_allclose(
        gram.eigenvalues[:119], dense.eigenvalues[:119], rtol=1e-9, atol=atol
    )
    np.testing.assert_allclose(gram.clipped(), dense.clipped(), rtol=1e-9)
    assert choose_solver("auto", 13338, 4000, "float32", n=2000) == "gram"
    assert choose_solver("auto", 13338, 4000, "float32", n=10000) == "fast"
    assert choose_solver("auto", 3978, 4000, "float32", n=60000) == "dense"
