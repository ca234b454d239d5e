"""D(x) of eq. (2): per-example gradients and the centred moment against naive references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sgdvi.diffusion.compute import diffusion_spectrum
from sgdvi.diffusion.gradients import (
    gradient_matrix,
    hooks_supported,
    iter_gradient_chunks,
    per_example_grad_fn,
)
from sgdvi.diffusion.moments import (
    CentredMoment,
    centre_and_square,
    centre_in_place,
    diffusion_from_centred,
    exact_mean,
    formula_scale,
    squared_frobenius,
    temperature_factor,
)


def tiny_net() -> nn.Sequential:
    """Conv + BN + dropout + linear + BN1d: every layer kind of the paper's networks (d=230)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(12, 10),
        nn.BatchNorm1d(10),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(10, 4),
    ).double()
    # running statistics far from the batch statistics: train-mode BN would give other gradients
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


D_TINY = 30 + 6 + 130 + 20 + 44


def data(n: int = 37, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 1, 6, 6), generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (n,), generator=g)
    return x, y


def naive_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """One example at a time through plain autograd, float64."""
    rows = []
    for i in range(len(x)):
        net.zero_grad()
        loss = nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1])
        loss.backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy().copy())
    return np.stack(rows)


def naive_diffusion(grads: np.ndarray) -> np.ndarray:
    """Eq. (2) literally: (1/N) sum_k g_k g_k^T - g g^T."""
    n = len(grads)
    g = grads.mean(axis=0)
    return sum(np.outer(gk, gk) for gk in grads) / n - np.outer(g, g)


def test_per_example_gradients_match_autograd_loop():
    net = tiny_net()
    x, y = data()
    ours = gradient_matrix(net, x, y, chunk_size=10).numpy()
    ref = naive_gradients(net, x, y)
    assert ours.shape == ref.shape == (37, D_TINY)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def conv_variants_net() -> nn.Sequential:
    """Padding, stride, dilation (the F.unfold fallback), no-bias layers, BN1d on 3-D input."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.Conv2d(2, 3, 2, dilation=2, bias=False),
        nn.Flatten(2),
        nn.BatchNorm1d(3),
        nn.Linear(1, 2, bias=False),
        nn.Flatten(),
        nn.Linear(6, 4),
    ).double()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("make", [tiny_net, conv_variants_net])
@pytest.mark.parametrize("method", ["hooks", "vmap"])
def test_both_gradient_methods_match_autograd_loop(make, method):
    """The batched-backward (hooks) and vmap(grad) paths against one example at a time."""
    net = make()
    x, y = data()
    assert hooks_supported(net)
    ours = per_example_grad_fn(net, method)(x, y).numpy()
    ref = naive_gradients(net, x, y)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_hooks_are_not_used_where_unsupported():
    net = tiny_net()
    net[0].padding_mode = "reflect"
    assert not hooks_supported(net)
    with pytest.raises(ValueError, match="hooks"):
        per_example_grad_fn(net, "hooks")
    net = tiny_net()
    net[1].track_running_stats, net[1].running_mean = False, None  # batch statistics
    assert not hooks_supported(net)


def test_full_gradient_is_the_exact_mean():
    net = tiny_net()
    x, y = data()
    g = gradient_matrix(net, x, y, chunk_size=8)
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()  # mean loss over all N at once
    full = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(exact_mean(g, chunk_rows=5), full, rtol=0, atol=1e-14)


@pytest.mark.parametrize("chunk", [1, 7, 37])
def test_diffusion_matches_naive_loop(chunk):
    net = tiny_net()
    x, y = data()
    ref = naive_diffusion(naive_gradients(net, x, y))
    moment = CentredMoment(D_TINY)
    for _, c in iter_gradient_chunks(net, x, y, chunk):
        moment.update(c)
    D = moment.diffusion("A1").numpy()
    assert np.abs(D - ref).max() <= 1e-10 * np.abs(ref).max()
    # the stored-gradient path: exact mean, centre in place, float64 products
    g = gradient_matrix(net, x, y, chunk)
    centre_in_place(g, exact_mean(g))
    D2 = diffusion_from_centred(g, chunk_rows=chunk).numpy()
    assert np.abs(D2 - ref).max() <= 1e-10 * np.abs(ref).max()
    assert squared_frobenius(g) / len(x) == pytest.approx(np.trace(ref), rel=1e-12)


@pytest.mark.parametrize("chunk_rows", [1, 3, 128])
def test_fused_centring_equals_the_two_passes(chunk_rows):
    """centre_and_square gives bit for bit the centred g of centre_in_place and the float64
    sum of squares of squared_frobenius, and the trace of a numpy reference."""
    rng = np.random.default_rng(4)
    g0 = torch.from_numpy((rng.normal(size=(50, 23)) + 3.0).astype(np.float32))
    mean = exact_mean(g0)
    a, b = g0.clone(), g0.clone()
    centre_in_place(a, mean)
    ss = centre_and_square(b, mean, chunk_rows=chunk_rows)
    assert torch.equal(a, b)
    assert ss == squared_frobenius(a)
    ref = g0.double().numpy() - g0.double().numpy().mean(axis=0)
    assert ss == pytest.approx((ref**2).sum(), rel=1e-6)  # float32 rounding of the centred g


def test_reference_is_sensitive_to_eval_mode():
    """Dropout active or BN on other statistics would change D: the check above can fail."""
    net = tiny_net()
    x, y = data()
    ref = naive_diffusion(naive_gradients(net, x, y))
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    torch.manual_seed(0)
    dropout_on = naive_diffusion(naive_gradients(net, x, y))
    assert np.abs(dropout_on - ref).max() > 1e-3 * np.abs(ref).max()
    with pytest.raises(ValueError, match="eval"):
        gradient_matrix(net, x, y, 10)
    net = tiny_net()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    other_bn = naive_diffusion(naive_gradients(net, x, y))
    assert np.abs(other_bn - ref).max() > 1e-3 * np.abs(ref).max()


def test_a2_scales_by_n_over_n_minus_1():
    rng = np.random.default_rng(0)
    g = torch.from_numpy(rng.normal(size=(50, 6)))
    m = CentredMoment(6)
    m.update(g)
    a1 = m.diffusion("A1").clone()
    m2 = CentredMoment(6)
    m2.update(g)
    a2 = m2.diffusion("A2")
    torch.testing.assert_close(a2, a1 * 50 / 49, rtol=1e-14, atol=0)
    assert formula_scale("A2", 50) == 1 / 49
    assert temperature_factor("A2", 10, 50) == pytest.approx(0.8)
    assert temperature_factor("A1", 10, 50) == 1.0
    with pytest.raises(ValueError, match="A1 or A2"):
        formula_scale("A3", 5)


def test_chunk_merge_is_stable_with_a_large_mean():
    """Gradients with a mean 1e6 times their spread: the naive E[gg^T] - gg^T loses everything
    in float64 at this ratio squared (1e12 relative), the pairwise merge keeps ~1e-9."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(400, 5))
    g = base + 1e6
    ref = np.cov(base, rowvar=False, ddof=0)  # exact: the shift does not change D
    m = CentredMoment(5)
    for i in range(0, 400, 64):
        m.update(torch.from_numpy(g[i : i + 64]))
    D = m.diffusion().numpy()
    assert np.abs(D - ref).max() <= 1e-6 * np.abs(ref).max()
    naive = g.T @ g / 400 - np.outer(g.mean(0), g.mean(0))
    assert np.abs(naive - ref).max() > 1e-3 * np.abs(ref).max()


def test_pipeline_dense_and_fast_agree_on_a_real_network():
    """End to end on tiny-fc (d=917) with random weights: both solvers, same gradients, same
    rank and eigenvalues above the threshold to 1e-6."""
    from sgdvi.models import build_model

    torch.manual_seed(0)
    net = build_model("tiny-fc").eval()
    g = torch.Generator().manual_seed(0)
    # inputs in a 4-dimensional subspace: D has a low rank, as for the paper's trained networks
    z = torch.randn((1500, 4), generator=g)
    x = (z @ torch.randn((4, 49), generator=g)).reshape(1500, 1, 7, 7)
    y = torch.randint(0, 5, (1500,), generator=g)
    dense = diffusion_spectrum(net, x, y, solver="dense", chunk_size=500)
    fast = diffusion_spectrum(net, x, y, solver="fast", chunk_size=500, block_size=32)
    assert dense.spectrum.solver == "dense" and fast.spectrum.solver == "fast"
    assert dense.d == fast.d == 917
    assert fast.spectrum.rank == dense.spectrum.rank > 5
    r = dense.spectrum.rank
    rel = np.abs(fast.spectrum.eigenvalues[:r] / dense.spectrum.eigenvalues[:r] - 1)
    assert rel.max() < 1e-6
    assert fast.trace == pytest.approx(dense.trace, rel=1e-6)
    assert fast.grad_norm == pytest.approx(dense.grad_norm, rel=1e-12)
    assert fast.spectrum.max_rel_error_bound <= 1e-7
