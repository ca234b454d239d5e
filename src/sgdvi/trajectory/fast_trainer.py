"""SGD on tiny-fc with a hand-derived, fused forward/backward pass compiled by numba.

One call of :func:`_train_epoch` runs a whole epoch (every mini-batch, the SGD updates and the
BN running-statistic updates) without returning to Python; :meth:`FastTrainer.full_pass`
evaluates the full-dataset loss, error and gradient at the current weights. Both compute
exactly what the plain PyTorch loop of :mod:`sgdvi.trajectory.reference_trainer` computes
(tested in float64 to 1e-10); only the order of floating-point operations differs.

Mathematics per mini-batch B (size m), for the network of :mod:`sgdvi.trajectory.layout`:

- ``z = x W1^T`` (the bias b1 cancels in BN), ``mu, var`` = batch mean and biased variance,
  ``zh = (z - mu) / sqrt(var + 1e-5)``, ``u = gamma zh + beta``, ``h = relu(u)``,
  ``o = h W2^T + b2``, loss = mean over B of ``logsumexp(o) - o[label]``.
- ``do = (softmax(o) - onehot) / m``; ``dW2 = do^T h``, ``db2 = sum do``;
  ``du = (do W2) * [u > 0]``; ``dgamma = sum du zh``, ``dbeta = sum du``;
  ``dz = gamma / sqrt(var + eps) / m * (m du - dbeta - zh dgamma)``; ``dW1 = dz^T x``;
  ``db1 = sum dz = 0`` exactly (BN removes any shift), so b1 never moves.
- SGD as ``torch.optim.SGD`` (dampening 0, no weight decay): ``buf = momentum buf + g``;
  step ``g + momentum buf`` (Nesterov) or ``buf`` (heavy ball); ``x -= lr step``.
- BN running statistics as torch: ``r_mean = 0.9 r_mean + 0.1 (mu + b1)``,
  ``r_var = 0.9 r_var + 0.1 var m / (m - 1)``.

Activations are kept feature-major ((16, m), (5, m)) so that every inner loop runs over the
examples of a batch (contiguous, vectorised by LLVM); the two products with the 49 inputs go
to BLAS (``np.dot``); the softmax uses a vectorisable exp (:func:`_exp_inplace`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from sgdvi.trajectory.layout import (
    BN_EPS,
    BN_MOMENTUM,
    N_HIDDEN,
    N_IN,
    N_OUT,
    D,
    TrainState,
    batch_bounds,
)


def exp_constants(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Constants of :func:`_exp_inplace` for ``dtype``: (consts, table of 2**-k).

    ``consts`` = [0, 1, lowest argument, log2(e), 1/2, ln2 split in a high part exact in
    ``dtype`` and a low correction (Cephes), then 1/k! for k = 12..0 (Horner order)].
    """
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        lo, c1, c2 = -600.0, 6.93145751953125e-1, 1.42860682030941723212e-6
    else:
        lo, c1, c2 = -60.0, 0.693359375, -2.12194440e-4
    coef = [1.0 / math.factorial(k) for k in range(12, -1, -1)]
    consts = np.array([0.0, 1.0, lo, 1.0 / math.log(2.0), 0.5, c1, c2, *coef], dtype=dtype)
    kmax = int(np.ceil(-lo / math.log(2.0))) + 2
    pow2 = np.array([2.0**-k for k in range(kmax)], dtype=dtype)
    return consts, pow2


@numba.njit(cache=True, fastmath=True, nogil=True)
def _exp_inplace(a, consts, pow2):  # pragma: no cover - compiled
    """``a = exp(a)`` for a 1-D array of non-positive values (vectorisable, no libm call).

    Range reduction ``a = n ln2 + r`` with |r| <= ln2/2 and a degree-12 Taylor polynomial:
    relative error ~1e-16 near 0 growing like |a| eps (< 1e-13 at -600) in float64, < 3e-7
    in float32. Arguments below ``consts[2]``
    (-600 / -60) are clamped there: their exponential (< 1e-260 / 1e-26) is negligible next to
    the largest term (1) of a softmax sum, and the clamp keeps every later product far from
    subnormal numbers, whose arithmetic is ~100 times slower on x86.
    """
    lo = consts[2]
    log2e = consts[3]
    half = consts[4]
    c1 = consts[5]
    c2 = consts[6]
    for b in range(a.shape[0]):
        t = a[b]
        if t < lo:
            t = lo
        nf = np.floor(t * log2e + half)
        r = (t - nf * c1) - nf * c2
        s = consts[7]
        for k in range(8, 20):
            s = s * r + consts[k]
        a[b] = s * pow2[int(-nf)]


@numba.njit(cache=True, fastmath=True, nogil=True)
def _forward_backward(xb, yb, p, g, zbuf, zhbuf, ubuf, obuf, vbuf, stats, consts, pow2):
    """Loss sum and error count of one batch; its mean gradient into ``g``.

    ``xb`` (m, 49) the batch's inputs (contiguous), ``yb`` (m,) labels, ``p``/``g`` flat
    weights/gradient in ``model.parameters()`` order. Activations are kept feature-major
    ((16, m), (5, m)) so that every inner loop runs over the examples of the batch; scratch
    ``zbuf``/``zhbuf``/``ubuf`` (>= 16 m), ``obuf`` (>= 5 m), ``vbuf`` (3, >= m). ``stats``
    (8, 16) receives the batch mean and biased variance of ``x W1^T`` (rows 0, 1).
    """
    m = xb.shape[0]
    w1 = p[0:784].reshape((16, 49))
    gamma = p[800:816]
    beta = p[816:832]
    w2 = p[832:912].reshape((5, 16))
    b2 = p[912:917]
    gw1 = g[0:784].reshape((16, 49))
    ggamma = g[800:816]
    gbeta = g[816:832]
    gw2 = g[832:912].reshape((5, 16))
    gb2 = g[912:917]
    z = zbuf[: 16 * m].reshape((16, m))
    zh = zhbuf[: 16 * m].reshape((16, m))
    u = ubuf[: 16 * m].reshape((16, m))
    o = obuf[: 5 * m].reshape((5, m))
    omax = vbuf[0, :m]
    tot = vbuf[1, :m]
    wgt = vbuf[2, :m]
    mu = stats[0]
    var = stats[1]
    inv = stats[2]
    sa = stats[3]
    sc = stats[4]
    sd = stats[5]
    zero = consts[0]
    # first layer (BLAS): z = W1 x^T; the bias b1 cancels in BN
    np.dot(w1, xb.T, z)
    # batch statistics (two-pass, biased variance), BN and ReLU
    for j in range(16):
        zj = z[j]
        acc = zero
        for b in range(m):
            acc += zj[b]
        mu[j] = acc / m
        mj = mu[j]
        acc = zero
        for b in range(m):
            t = zj[b] - mj
            acc += t * t
        var[j] = acc / m
        inv[j] = 1.0 / np.sqrt(var[j] + BN_EPS)
        ij = inv[j]
        gj = gamma[j]
        bj = beta[j]
        zhj = zh[j]
        uj = u[j]
        for b in range(m):
            t = (zj[b] - mj) * ij
            zhj[b] = t
            uj[b] = gj * t + bj
    # output layer o = W2 relu(u) + b2 (u > 0 is the ReLU mask, z now holds relu(u))
    for j in range(16):
        zj = z[j]
        uj = u[j]
        for b in range(m):
            zj[b] = uj[b] if uj[b] > zero else zero
    for c in range(5):
        oc = o[c]
        bc = b2[c]
        for b in range(m):
            oc[b] = bc
        for j in range(16):
            wcj = w2[c, j]
            hj = z[j]
            for b in range(m):
                oc[b] += wcj * hj[b]
    # softmax cross-entropy: loss, errors, and d loss / d o into o
    loss = zero
    n_err = 0
    for b in range(m):
        omax[b] = o[0, b]
    for c in range(1, 5):
        oc = o[c]
        for b in range(m):
            omax[b] = oc[b] if oc[b] > omax[b] else omax[b]
    for b in range(m):
        label = yb[b]
        o_label = o[label, b]
        loss += omax[b] - o_label
        if o_label < omax[b]:
            n_err += 1
        else:  # ties: the first maximal class is the prediction (as argmax)
            for c in range(label):
                if o[c, b] == omax[b]:
                    n_err += 1
                    break
    for b in range(m):
        tot[b] = zero
    for c in range(5):
        oc = o[c]
        for b in range(m):
            oc[b] = oc[b] - omax[b]
        _exp_inplace(oc, consts, pow2)
        for b in range(m):
            tot[b] += oc[b]
    for b in range(m):
        loss += np.log(tot[b])
        wgt[b] = 1.0 / (tot[b] * m)
    stats[6, 0] = 1.0 / m
    inv_m = stats[6, 0]
    for c in range(5):
        oc = o[c]
        for b in range(m):
            oc[b] = oc[b] * wgt[b]
    for b in range(m):
        o[yb[b], b] -= inv_m
    # output layer backward: dW2 = do relu(u)^T, db2 = sum do, du = (W2^T do) [u > 0]
    for c in range(5):
        oc = o[c]
        acc = zero
        for b in range(m):
            acc += oc[b]
        gb2[c] = acc
        for j in range(16):
            hj = z[j]
            acc = zero
            for b in range(m):
                acc += oc[b] * hj[b]
            gw2[c, j] = acc
    for j in range(16):
        uj = u[j]
        zj = z[j]
        for b in range(m):
            zj[b] = zero
        for c in range(5):
            wcj = w2[c, j]
            oc = o[c]
            for b in range(m):
                zj[b] += wcj * oc[b]
        for b in range(m):
            uj[b] = zj[b] if uj[b] > zero else zero
    # BN backward: dgamma = sum du zh, dbeta = sum du,
    # dz = gamma inv (du - dbeta/m - zh dgamma/m), into z
    for j in range(16):
        uj = u[j]
        zhj = zh[j]
        acc = zero
        acc2 = zero
        for b in range(m):
            acc += uj[b] * zhj[b]
            acc2 += uj[b]
        ggamma[j] = acc
        gbeta[j] = acc2
        sa[j] = gamma[j] * inv[j]
        sc[j] = sa[j] * gbeta[j] / m
        sd[j] = sa[j] * ggamma[j] / m
        a = sa[j]
        cc = sc[j]
        dd = sd[j]
        zj = z[j]
        for b in range(m):
            zj[b] = a * uj[b] - cc - dd * zhj[b]
    # first layer backward (BLAS): dW1 = dz x; d b1 = sum dz = 0 exactly
    np.dot(z, xb, gw1)
    g[784:800] = zero
    return loss, n_err


@numba.njit(cache=True, fastmath=True, nogil=True)
def _train_epoch(
    x,
    y,
    order,
    batch_size,
    lr,
    momentum,
    nesterov,
    p,
    buf,
    rmean,
    rvar,
    g,
    xb,
    yb,
    zbuf,
    zhbuf,
    ubuf,
    obuf,
    vbuf,
    stats,
    consts,
    pow2,
):  # pragma: no cover - compiled
    """One epoch of SGD over ``order``; returns (loss sum, error count, number of batches)."""
    n = order.shape[0]
    d = p.shape[0]
    loss_sum = 0.0
    err_sum = 0
    n_batches = 0
    start = 0
    while start < n:
        stop = min(start + batch_size, n)
        m = stop - start
        for b in range(m):
            r = order[start + b]
            xb[b, :] = x[r, :]
            yb[b] = y[r]
        loss, n_err = _forward_backward(
            xb[:m], yb[:m], p, g, zbuf, zhbuf, ubuf, obuf, vbuf, stats, consts, pow2
        )
        # running statistics: batch mean of x W1^T + b1 (b1 never moves), unbiased variance
        for j in range(16):
            rmean[j] = (1.0 - BN_MOMENTUM) * rmean[j] + BN_MOMENTUM * (stats[0, j] + p[784 + j])
            rvar[j] = (1.0 - BN_MOMENTUM) * rvar[j] + BN_MOMENTUM * stats[1, j] * m / (m - 1)
        loss_sum += loss
        err_sum += n_err
        # SGD with momentum, as torch.optim.SGD (dampening 0, weight decay 0)
        if nesterov:
            for k in range(d):
                bk = momentum * buf[k] + g[k]
                buf[k] = bk
                p[k] -= lr * (g[k] + momentum * bk)
        else:
            for k in range(d):
                bk = momentum * buf[k] + g[k]
                buf[k] = bk
                p[k] -= lr * bk
        n_batches += 1
        start = stop
    return loss_sum, err_sum, n_batches


@dataclass(frozen=True)
class FullPass:
    """Loss, error and gradient over the whole training set (train-mode BN, one batch)."""

    loss: float
    error: float
    grad: np.ndarray  # (d,) in model.parameters() order

    @property
    def grad_norm(self) -> float:
        return float(np.linalg.norm(self.grad))


@dataclass(frozen=True)
class EpochStats:
    """Mean mini-batch loss and error seen while training one epoch."""

    batch_loss: float
    batch_error: float


class FastTrainer:
    """SGD on tiny-fc for one dataset with the fused numba kernels.

    ``x`` (N, 49) or (N, 1, 7, 7) and ``y`` (N,) int labels 0..4; ``dtype`` float64 (exact
    comparison with the reference) or float32 (twice the SIMD width, half the memory traffic).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        state: TrainState,
        batch_size: int,
        momentum: float,
        nesterov: bool,
        dtype: str | np.dtype = "float64",
    ) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        x = np.asarray(x).reshape(len(x), -1)
        if x.shape[1] != N_IN:
            raise ValueError(f"tiny-fc needs 7x7 = 49 inputs per example, got {x.shape[1]}")
        y = np.asarray(y, dtype=np.int64)
        if y.min() < 0 or y.max() >= N_OUT:
            raise ValueError(f"tiny-fc labels must lie in 0..{N_OUT - 1}, got {y.min()}..{y.max()}")
        self.x = np.ascontiguousarray(x, dtype=self.dtype)
        self.y = np.ascontiguousarray(y)
        self.n = len(y)
        batch_bounds(self.n, batch_size)  # validates the last batch size
        self.batch_size = int(batch_size)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.set_state(state)
        self._consts, self._pow2 = exp_constants(self.dtype)
        self._xb = np.zeros((self.batch_size, N_IN), self.dtype)
        self._yb = np.zeros(self.batch_size, np.int64)
        # separate gradients and scratch for mini-batches and for the full-dataset pass, so
        # that a full pass may run in another thread while the next epoch trains
        self._g = np.zeros(D, self.dtype)
        self._g_full = np.zeros(D, self.dtype)
        self._scratch = self._make_scratch(self.batch_size)
        self._scratch_full = self._make_scratch(self.n)

    def _make_scratch(self, rows: int) -> tuple[np.ndarray, ...]:
        return tuple(np.zeros(N_HIDDEN * rows, self.dtype) for _ in range(3)) + (
            np.zeros(N_OUT * rows, self.dtype),
            np.zeros((3, rows), self.dtype),
            np.zeros((8, N_HIDDEN), self.dtype),
        )

    def set_state(self, state: TrainState) -> None:
        self._p = np.array(state.params, dtype=self.dtype)
        self._buf = np.array(state.momentum_buffer, dtype=self.dtype)
        self._rmean = np.array(state.running_mean, dtype=self.dtype)
        self._rvar = np.array(state.running_var, dtype=self.dtype)
        self._tracked = int(state.num_batches_tracked)
        self.epoch = int(state.epoch)

    def state(self) -> TrainState:
        """A copy of the current state (float64)."""
        return TrainState(
            params=self._p.astype(np.float64),
            momentum_buffer=self._buf.astype(np.float64),
            running_mean=self._rmean.astype(np.float64),
            running_var=self._rvar.astype(np.float64),
            num_batches_tracked=self._tracked,
            epoch=self.epoch,
        )

    def params(self) -> np.ndarray:
        """A copy of the current weights in ``model.parameters()`` order (working dtype)."""
        return self._p.copy()

    def train_epoch(self, order: np.ndarray, lr: float) -> EpochStats:
        """One epoch of SGD visiting the examples in ``order``."""
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (self.n,):
            raise ValueError(f"order must be a permutation of {self.n} indices")
        loss_sum, err_sum, n_batches = _train_epoch(
            self.x,
            self.y,
            order,
            self.batch_size,
            self.dtype.type(lr),
            self.dtype.type(self.momentum),
            self.nesterov,
            self._p,
            self._buf,
            self._rmean,
            self._rvar,
            self._g,
            self._xb,
            self._yb,
            *self._scratch,
            self._consts,
            self._pow2,
        )
        self._tracked += int(n_batches)
        self.epoch += 1
        return EpochStats(float(loss_sum) / self.n, float(err_sum) / self.n)

    def full_pass(self, params: np.ndarray | None = None) -> FullPass:
        """Full-dataset loss, error and gradient at the current weights (or at ``params``).

        BN in train mode over the whole training set as one batch (batch statistics of all N
        examples): the gradient of the objective SGD samples from. The running statistics
        are left untouched. Thread-safe against :meth:`train_epoch` when ``params`` is a
        copy (the kernels release the GIL), which lets a run overlap the two.
        """
        p = self._p if params is None else np.ascontiguousarray(params, dtype=self.dtype)
        loss_sum, n_err = _forward_backward(
            self.x, self.y, p, self._g_full, *self._scratch_full, self._consts, self._pow2
        )
        return FullPass(
            loss=float(loss_sum) / self.n,
            error=float(n_err) / self.n,
            grad=self._g_full.astype(np.float64),
        )


__all__ = ["EpochStats", "FastTrainer", "FullPass", "exp_constants"]
