"""The fused numba trainer of tiny-fc against the plain PyTorch loop (speed must not change
the numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdvi.models import build_model, count_weights
from sgdvi.trajectory import network
from sgdvi.trajectory.batches import batch_bounds, epoch_permutation
from sgdvi.trajectory.fast_trainer import (
    FastTrainer,
    _exp_inplace,
    _softmax_xent,
    exp_constants,
)
from sgdvi.trajectory.network import STATED, TinyFC
from sgdvi.trajectory.reference_trainer import ReferenceTrainer
from sgdvi.trajectory.state import initial_state

N_OUT = STATED.num_classes
D = STATED.d


def _data(n: int, seed: int = 0, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Raw 0..255 pixels with a learnable class signal (so the run leaves the initial regime)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 120, size=(n, 1, 7, 7)).astype(np.float32)
    for c in range(classes):
        x[y == c, 0, c, :] += 120
    return x, y


@pytest.mark.parametrize("classes, d", [(5, 917), (4, 900), (2, 866)])
def test_layout_matches_torch_model(classes, d):
    net = TinyFC(classes)
    model = build_model("tiny-fc", num_classes=classes)
    assert net.d == count_weights(model) == d
    sizes = [p.numel() for p in model.parameters()]
    assert [b - a for a, b in net.offsets.values()] == sizes
    names = net.weight_names()
    assert len(names) == d and names[784] == "b1[0]" and names[-1] == f"b2[{classes - 1}]"


@pytest.mark.parametrize("classes", [5, 4])
def test_functional_forward_matches_torch_model(classes):
    """``network.logits`` with the batch's own statistics is ``models.tiny_fc`` in train mode,
    row by row, on the weights ``TinyFC.unflatten`` reads from the flat vector."""
    torch.manual_seed(3)
    model = build_model("tiny-fc", num_classes=classes).double().train()
    x = torch.as_tensor(np.random.default_rng(3).standard_normal((20, 49)) * 30)
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    p = TinyFC(classes).unflatten(w)
    assert all(torch.equal(p[n], t) for n, t in zip(p, model.parameters(), strict=True))
    h = x @ p["w1"].T + p["b1"]
    mean, var = h.mean(0), h.var(0, unbiased=False)
    out = torch.stack([network.logits(p, xi, mean, var) for xi in x])
    assert torch.allclose(out, model(x).detach(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="has 900 weights, got 917"):
        TinyFC(4).unflatten(torch.zeros(917))


@pytest.mark.parametrize("nesterov, classes", [(False, 5), (True, 5), (False, 4)])
def test_fast_trainer_equals_plain_loop_float64(nesterov, classes):
    """Same initial weights and batch order: weights agree to 1e-10 after ~300 SGD steps
    (5 classes: the stated setting; 4: the authors' run, padded inside the fast trainer)."""
    x, y = _data(600, classes=classes)
    n, batch = len(y), 32  # 19 mini-batches per epoch, the last one of 24
    state = initial_state(7, classes)
    assert len(state.params) == TinyFC(classes).d
    kw = {"dtype": "float64", "num_classes": classes}
    fast = FastTrainer(x, y, state, batch, 0.9, nesterov, **kw)
    ref = ReferenceTrainer(x, y, state, batch, 0.9, nesterov, **kw)
    steps = 0
    for epoch in range(16):
        order = epoch_permutation(7, epoch, n)
        lr = 0.1 if epoch < 8 else 0.01  # burn-in learning rate, then the post-burn-in one
        sf, sr = fast.train_epoch(order, lr), ref.train_epoch(order, lr)
        steps += len(batch_bounds(n, batch))
        assert sf.batch_loss == pytest.approx(sr.batch_loss, rel=1e-12)
        assert sf.batch_error == sr.batch_error
        ff, fr = fast.full_pass(), ref.full_pass()
        assert ff.loss == pytest.approx(fr.loss, rel=1e-12)
        assert ff.error == fr.error
        np.testing.assert_allclose(ff.grad, fr.grad, rtol=0, atol=1e-12)
        assert ff.grad_norm == pytest.approx(fr.grad_norm, rel=1e-10)
    assert steps == 304
    a, b = fast.state(), ref.state()
    assert np.abs(a.params - b.params).max() < 1e-10
    assert np.abs(a.momentum_buffer - b.momentum_buffer).max() < 1e-10
    np.testing.assert_allclose(a.running_mean, b.running_mean, rtol=1e-10)
    np.testing.assert_allclose(a.running_var, b.running_var, rtol=1e-10)
    assert a.num_batches_tracked == b.num_batches_tracked == steps
    # the training actually moved the weights (the comparison is not trivially satisfied)
    assert np.abs(a.params - state.params).max() > 0.05
    assert ff.loss < 1.0


def test_first_layer_bias_never_moves_and_its_gradient_vanishes():
    x, y = _data(300)
    state = initial_state(3)
    fast = FastTrainer(x, y, state, 64, 0.9, False, dtype="float64")
    ref = ReferenceTrainer(x, y, state, 64, 0.9, False, dtype="float64")
    for e in range(3):
        fast.train_epoch(epoch_permutation(3, e, 300), 0.1)
    b1 = STATED.slice("b1")
    np.testing.assert_array_equal(fast.params()[b1], state.params[b1])
    assert np.abs(ref.full_pass().grad[b1]).max() < 1e-12  # autograd: zero up to rounding


def test_full_pass_at_given_params_and_float32_close_to_float64():
    x, y = _data(400)
    state = initial_state(5)
    f64 = FastTrainer(x, y, state, 50, 0.9, False, dtype="float64")
    f32 = FastTrainer(x, y, state, 50, 0.9, False, dtype="float32")
    for e in range(3):
        f64.train_epoch(epoch_permutation(5, e, 400), 0.05)
        f32.train_epoch(epoch_permutation(5, e, 400), 0.05)
    snapshot = f64.params()
    here = f64.full_pass()
    f64.train_epoch(epoch_permutation(5, 3, 400), 0.05)
    there = f64.full_pass(snapshot)
    np.testing.assert_array_equal(here.grad, there.grad)
    assert abs(f32.full_pass().loss - here.loss) < 1e-3
    assert np.abs(f32.params() - snapshot).max() < 1e-3


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 3e-7)])
def test_vectorised_exp_against_numpy(dtype, rtol):
    """Relative error ~1e-16 near 0, growing like |x| eps (the rounding of x itself) to ~1e-13."""
    consts = exp_constants(dtype)
    lo = float(consts[2])
    a = np.concatenate([-np.geomspace(1e-12, -lo, 5000), [0.0, -0.5 * np.log(2)]]).astype(dtype)
    out = a.copy()
    _exp_inplace(out, consts)
    np.testing.assert_allclose(out, np.exp(a.astype(np.float64)), rtol=rtol)
    below = np.array([lo - 5.0, lo - 1000.0], dtype=dtype)
    _exp_inplace(below, consts)
    np.testing.assert_allclose(below, np.exp(lo), rtol=rtol)  # clamped, far from subnormal


def test_bad_inputs_are_refused():
    x, y = _data(129)
    with pytest.raises(ValueError, match="last mini-batch of one example"):
        FastTrainer(x, y, initial_state(0), 128, 0.9, False)
    with pytest.raises(ValueError, match="labels"):
        FastTrainer(x[:100], np.full(100, 7), initial_state(0), 32, 0.9, False)
    with pytest.raises(ValueError, match="labels must lie in 0..3"):
        FastTrainer(x[:100], np.full(100, 4), initial_state(0, 4), 32, 0.9, False, num_classes=4)
    with pytest.raises(ValueError, match="state has 917 weights"):
        FastTrainer(x[:100], y[:100] % 4, initial_state(0), 32, 0.9, False, num_classes=4)
    with pytest.raises(ValueError, match="49 inputs"):
        FastTrainer(np.zeros((100, 50)), y[:100], initial_state(0), 32, 0.9, False)


def test_initial_state_is_torch_default_init():
    torch.manual_seed(11)
    model = build_model("tiny-fc")
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().numpy()
    np.testing.assert_array_equal(initial_state(11).params, flat)
    assert not np.array_equal(initial_state(12).params, flat)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_cross_entropy_block_against_numpy(dtype):
    """Loss sum, argmax errors (first maximal class wins ties) and scaled d loss / d logits."""
    rng = np.random.default_rng(4)
    m = 150
    o = rng.normal(0, 3, size=(N_OUT, m)).astype(dtype)
    o[:, :10] = 1.5  # five-way ties: the prediction is class 0
    o[2, 10:20] = o[4, 10:20] = o[:, 10:20].max(0) + 1  # two-way ties: class 2 predicted
    y = rng.integers(0, N_OUT, m)
    y[:5] = 0
    y[10:15] = 4
    o64 = o.astype(np.float64)
    lse = np.log(np.exp(o64 - o64.max(0)).sum(0)) + o64.max(0)
    loss_ref = (lse - o64[y, np.arange(m)]).sum()
    err_ref = int((o64.argmax(0) != y).sum())
    grad_ref = (np.exp(o64 - lse) - np.eye(N_OUT)[:, y]) * 0.25
    tot = np.zeros(m, dtype)
    margins, dens = np.zeros(m, dtype), np.zeros(m, dtype)
    n_err = _softmax_xent(o, y, dtype(0.25), exp_constants(dtype), tot, margins, dens)
    loss = margins.sum(dtype=np.float64) + np.log(dens, dtype=np.float64).sum()
    rtol = 1e-13 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(loss_ref, rel=rtol)
    assert n_err == err_ref and err_ref > 0
    np.testing.assert_allclose(o, grad_ref, rtol=0, atol=100 * np.finfo(dtype).eps)
