"""SGD on tiny-fc with a hand-derived, fused forward/backward pass compiled by numba.

The long trajectory of Section IV-B (Fig. 3) is 100,000 epochs of SGD on tiny-fc, and after
every epoch the full-dataset gradient norm, loss and error. One call of :func:`_train_epoch`
runs a whole epoch (every mini-batch, the SGD updates and the BN running-statistic updates)
without returning to Python; one call of :func:`_full_pass` evaluates the full-dataset loss,
error and gradient at the current weights. Both compute exactly what the plain PyTorch loop of
:mod:`sgdvi.trajectory.reference_trainer` computes (tested in float64 to 1e-10); only the
order of floating-point operations differs.

Mathematics per batch B of m examples, for the network of :mod:`sgdvi.trajectory.network`:

- ``z = x W1^T`` (the bias b1 cancels in BN), ``mu, var`` = batch mean and biased variance,
  ``zh = (z - mu) inv`` with ``inv = 1 / sqrt(var + 1e-5)``, ``u = gamma zh + beta``,
  ``h = relu(u)``, ``o = h W2^T + b2``, loss = mean over B of ``logsumexp(o) - o[label]``.
- ``do = (softmax(o) - onehot) / m``; ``dW2 = do^T h``, ``db2 = sum do``;
  ``du = (do W2) [u > 0]``; ``dgamma = sum du zh``, ``dbeta = sum du``;
  ``dz = a (du - dbeta / m - zh dgamma / m)`` with ``a = gamma inv``; ``dW1 = dz^T x``;
  ``db1 = sum dz = 0`` exactly (BN removes any shift), so b1 never moves.
- SGD as ``torch.optim.SGD`` (dampening 0, no weight decay): ``buf = momentum buf + g``;
  step ``g + momentum buf`` (Nesterov) or ``buf`` (heavy ball); ``x -= lr step``.
- BN running statistics as torch: ``r_mean = 0.9 r_mean + 0.1 (mu + b1)``,
  ``r_var = 0.9 r_var + 0.1 var m / (m - 1)``.

The full-dataset pass (B = all N training examples, one BN batch) needs no pass over the data
for its BN statistics and no ``dz``: with the data's mean ``xbar`` and biased covariance
``C = mean (x - xbar)(x - xbar)^T`` (49 x 49, computed once per run since the data is fixed),

- ``mu_j = w_j . xbar`` and ``var_j = w_j^T C w_j`` (``w_j`` row j of W1), and
- ``dW1_j = sum_b dz_jb x_b = a_j (sum_b du_jb x_b - dbeta_j xbar - dgamma_j inv_j C w_j)``,
  because ``sum_b zh_jb x_b = inv_j sum_b (w_j . (x_b - xbar)) x_b = N inv_j C w_j``.

So the pass is a single sweep over contiguous blocks of the data (no gather), each block's
activations staying in cache: forward, softmax, head backward, and ``du^T x`` (BLAS).

Activations are kept feature-major ((16, m), (5, m)) so that every inner loop runs over the
examples of a block (contiguous, vectorised by LLVM); the two products with the 49 inputs go
to BLAS (``np.dot``) in example-major form (:func:`_first_layer`); the softmax's exponential
is a polynomial with the power of two built from its exponent bits (:func:`_exp_nonpos`), so
the softmax loops vectorise too. All kernels use ``error_model="numpy"`` (no zero-division
checks, which would keep divisions out of vectorised loops). The gradient product ``dz xb``
takes both operands as they are (:func:`_first_layer_grad`), and each batch prefetches the
next batch's rows of x into L2 (:func:`_prefetch_rows`; the gather reads random rows of a
6 MB array). Measured per epoch on 30,596 examples, float32, one thread (2-core AMD EPYC
Zen 4 shared with other jobs, load ~3; ``benchmarks/bench_trajectory.py --alternatives
--previous --train-only``): a training epoch 2.2-2.4 ms (min-median; 2.55-2.9 ms before the
two changes), of which the two BLAS products ~0.9 ms (0.43 + 0.48 ms, ~52 G multiply-adds/s,
the rate of a 512^3 sgemm: compute-bound), the gather 0.2-0.6 ms (rising with the load
of the other jobs), the transposes around the forward product ~0.2 ms; the full pass ~2 ms.
Under load a mean over many epochs reads ~4 ms per training epoch.

Each device below was kept because ``benchmarks/bench_trajectory.py --alternatives`` (the same
kernels recompiled without it, side by side in one run, 2 loaded cores) showed it matters:
without ``fastmath`` an epoch + full pass takes 1.6-1.8x as long, with ``math.ldexp`` instead
of the bit-cast ``2**n`` (:func:`_pow2`) 1.7-2.1x, with libm's ``exp`` instead of the
polynomial 1.1-1.45x (two runs). ``fastmath`` lets LLVM assume that no value is NaN or infinite, so
nothing here tests for them: :mod:`sgdvi.trajectory.runner` checks every chunk in numpy.
The former log-of-products (one libm ``log`` per 64 examples) is gone: the kernels return each
example's loss in two parts and numpy sums them (``_loss_sum``, ~50 us per pass), because the
in-kernel sums differed in the last bit between a fresh compile and numba's cache.

Classes: the kernels are unrolled over :data:`MAX_CLASSES` = 5 outputs (the stated setting,
whose compiled arithmetic, and so its trajectories, are unchanged); a head with fewer classes
(the authors' run: 4) is padded inside :class:`FastTrainer`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from sgdvi.trajectory.batches import batch_bounds
from sgdvi.trajectory.network import BN_EPS, BN_MOMENTUM, N_HIDDEN, N_IN, TinyFC
from sgdvi.trajectory.state import EpochStats, FullPass, TrainState

#: examples per block of the full-dataset pass (activations of a block stay in L1/L2 cache)
FULL_BLOCK = 256
#: the kernels are unrolled over this many output classes; fewer classes are padded (below)
MAX_CLASSES = 5
#: the working layout of the kernels: tiny-fc with MAX_CLASSES outputs (d = 917); its offsets
#: are compile-time constants of the kernels
_PAD = TinyFC(MAX_CLASSES)
N_OUT = MAX_CLASSES
D = _PAD.d
W1_LO, W1_HI = _PAD.offsets["w1"]
B1_LO, B1_HI = _PAD.offsets["b1"]
GAMMA_LO, GAMMA_HI = _PAD.offsets["gamma"]
BETA_LO, BETA_HI = _PAD.offsets["beta"]
W2_LO, W2_HI = _PAD.offsets["w2"]
B2_LO, B2_HI = _PAD.offsets["b2"]
#: bias of a padded (absent) class: its logit lies far below every real one, so its softmax
#: weight is exp(lowest clamp) < 1e-26, which vanishes exactly when added to a sum >= 1
PAD_BIAS = -1e30


def exp_constants(dtype: np.dtype) -> np.ndarray:
    """Constants of :func:`_exp_nonpos` for ``dtype``.

    [0, 1, lowest argument, log2(e), 1/2, ln2 split in a high part exact in ``dtype`` and a
    low correction (Cephes), then 1/k! for k = 12..0 (Horner order)].
    """
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        lo, c1, c2 = -600.0, 6.93145751953125e-1, 1.42860682030941723212e-6
    else:
        lo, c1, c2 = -60.0, 0.693359375, -2.12194440e-4
    coef = [1.0 / math.factorial(k) for k in range(12, -1, -1)]
    return np.array([0.0, 1.0, lo, 1.0 / math.log(2.0), 0.5, c1, c2, *coef], dtype=dtype)


@intrinsic
def _pow2(typingctx, nf):
    """``2**nf`` for an integer-valued float ``nf`` in the normal range, from the exponent bits.

    ``(nf + bias) << mantissa_bits`` reinterpreted as a float (IEEE 754); a bit cast instead
    of a table lookup or ``ldexp`` call, so loops using it vectorise.
    """
    if nf not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        if signature.return_type == types.float32:
            ity, bias, shift, fty = ir.IntType(32), 127, 23, ir.FloatType()
        else:
            ity, bias, shift, fty = ir.IntType(64), 1023, 52, ir.DoubleType()
        n = builder.fptosi(args[0], ity)
        bits = builder.shl(builder.add(n, ir.Constant(ity, bias)), ir.Constant(ity, shift))
        return builder.bitcast(bits, fty)

    return nf(nf), codegen


@intrinsic
def _prefetch(typingctx, addr):
    """Hint the CPU to load the cache line at integer address ``addr`` into L2 (no fault).

    ``llvm.prefetch`` (read, locality 2, data): ``prefetcht1`` on x86.
    """
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [ptr.type], fnty)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(addr), codegen


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _prefetch_rows(x, rows):  # pragma: no cover - compiled
    """Prefetch every cache line of the rows ``x[rows]`` of a C-contiguous 2-D array."""
    base = x.ctypes.data
    row_bytes = x.shape[1] * x.itemsize
    for b in range(rows.shape[0]):
        a = base + rows[b] * row_bytes
        for off in range(0, row_bytes, 64):
            _prefetch(a + off)
        _prefetch(a + row_bytes - 1)


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _exp_coeffs(consts):  # pragma: no cover - compiled
    """The constants of :func:`exp_constants` from index 2 on, as a tuple of scalars.

    Built once before a loop: a tuple lives in registers, whereas loads from an array inside
    the loop may alias the loop's stores, which stops LLVM from vectorising it.
    """
    c = consts
    return (
        c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10],
        c[11], c[12], c[13], c[14], c[15], c[16], c[17], c[18], c[19],
    )  # fmt: skip


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _exp_nonpos(t, k):  # pragma: no cover - compiled
    """``exp(t)`` for ``t <= 0`` without a libm call (vectorisable inside a loop).

    ``k = _exp_coeffs(exp_constants(dtype))``. Range reduction ``t = n ln2 + r`` with
    |r| <= ln2/2, a degree-12 Taylor polynomial in r, times ``2**n`` built from its bits:
    relative error ~1e-16 near 0 growing like |t| eps (< 1e-13 at -600) in float64, < 3e-7
    in float32. Arguments below ``k[0]`` (-600 / -60) are clamped there: their exponential
    (< 1e-260 / 1e-26) is negligible next to the largest term (1) of a softmax sum, and the
    clamp keeps every later product far from subnormal numbers (whose arithmetic is ~100
    times slower on x86) and ``2**n`` normal.
    """
    t = t if t > k[0] else k[0]
    nf = np.floor(t * k[1] + k[2])
    r = (t - nf * k[3]) - nf * k[4]
    s = k[5] * r + k[6]  # Horner, 1/12! ... 1/0!
    s = s * r + k[7]
    s = s * r + k[8]
    s = s * r + k[9]
    s = s * r + k[10]
    s = s * r + k[11]
    s = s * r + k[12]
    s = s * r + k[13]
    s = s * r + k[14]
    s = s * r + k[15]
    s = s * r + k[16]
    s = s * r + k[17]
    return s * _pow2(nf)


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _exp_inplace(a, consts):  # pragma: no cover - compiled
    """``a = exp(a)`` elementwise for a 1-D array of non-positive values (for tests)."""
    k = _exp_coeffs(consts)
    for b in range(a.shape[0]):
        a[b] = _exp_nonpos(a[b], k)


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _bn_relu(z, mu, inv, gamma, beta, h):  # pragma: no cover - compiled
    """BN with given statistics, then ReLU: ``z <- zh = (z - mu) inv``, ``h = relu(u)``.

    ``u = gamma zh + beta``; feature-major (16, m) arrays.
    """
    m = z.shape[1]
    zero = z.dtype.type(0)
    for j in range(N_HIDDEN):
        zj = z[j]
        hj = h[j]
        mj = mu[j]
        ij = inv[j]
        gj = gamma[j]
        bj = beta[j]
        for b in range(m):
            t = (zj[b] - mj) * ij
            zj[b] = t
            u = gj * t + bj
            hj[b] = u if u > zero else zero


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _output_layer(h, w2, b2, o):  # pragma: no cover - compiled
    """``o = W2 h + b2`` for feature-major ``h`` (16, m), ``o`` (5, m)."""
    m = h.shape[1]
    np.dot(w2, h, o)
    for c in range(N_OUT):
        oc = o[c]
        bc = b2[c]
        for b in range(m):
            oc[b] += bc


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _softmax_xent(o, y, scale, consts, tot, margins, dens):  # pragma: no cover - compiled
    """Error count of a block; ``o <- scale (softmax(o) - onehot)``; the loss's parts.

    The cross-entropy of example b is ``margins[b] + log(dens[b])``, with ``margins[b] =
    max(o) - o[label]`` and ``dens[b]`` the softmax denominator (a sum of ``exp(o - max)``,
    in [1, C]). The caller sums them in numpy, in float64: a sum (or a sum of logarithms)
    inside the kernels came out different in the last bit between a freshly compiled kernel
    and the same kernel loaded from numba's cache (metrics must not depend on the cache), and it
    costs ~50 us per 30,000 examples in numpy, about 1 % of an epoch.

    Split into simple loops over the examples that each write one array, so that LLVM
    vectorises every one of them (a single fused loop writing six arrays is left scalar):
    (1) maximum logit into ``tot``, ``margins`` and the error count (the first maximal class
    is the prediction, as ``argmax``), (2) per class ``o = exp(o - max)`` by
    :func:`_exp_nonpos`, (3) the softmax denominators, (4) ``o <- scale (o / den - onehot)``.
    """
    m = o.shape[1]
    zero = o.dtype.type(0)
    k = _exp_coeffs(consts)
    n_err = 0
    o0, o1, o2, o3, o4 = o[0], o[1], o[2], o[3], o[4]
    for b in range(m):
        a0, a1, a2, a3, a4 = o0[b], o1[b], o2[b], o3[b], o4[b]
        mx = a0
        pred = 0
        if a1 > mx:
            mx, pred = a1, 1
        if a2 > mx:
            mx, pred = a2, 2
        if a3 > mx:
            mx, pred = a3, 3
        if a4 > mx:
            mx, pred = a4, 4
        lab = y[b]
        ol = a0 if lab == 0 else a1 if lab == 1 else a2 if lab == 2 else a3 if lab == 3 else a4
        margins[b] = mx - ol
        n_err += 1 if pred != lab else 0
        tot[b] = mx
    for c in range(N_OUT):
        oc = o[c]
        for b in range(m):
            oc[b] = _exp_nonpos(oc[b] - tot[b], k)
    for b in range(m):
        tot[b] = o0[b] + o1[b] + o2[b] + o3[b] + o4[b]
    for b in range(m):
        dens[b] = tot[b]
        tot[b] = scale / tot[b]
    for c in range(N_OUT):
        oc = o[c]
        for b in range(m):
            oc[b] = oc[b] * tot[b] - (scale if y[b] == c else zero)
    return n_err


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _head_backward(h, zh, do, w2, gw2, gb2, ggamma, gbeta, du):  # pragma: no cover - compiled
    """Backward through the output layer, ReLU and BN's affine part, one pass per unit j.

    ``gw2 = do h^T``, ``gb2 = sum do``, ``du = (W2^T do) [h > 0]`` (h > 0 iff u > 0),
    ``ggamma = sum du zh``, ``gbeta = sum du`` (all sums over the block's examples).
    """
    m = h.shape[1]
    zero = h.dtype.type(0)
    d0, d1, d2, d3, d4 = do[0], do[1], do[2], do[3], do[4]
    for c in range(N_OUT):
        acc = zero
        dc = do[c]
        for b in range(m):
            acc += dc[b]
        gb2[c] = acc
    for j in range(N_HIDDEN):
        hj = h[j]
        zhj = zh[j]
        duj = du[j]
        v0, v1, v2, v3, v4 = w2[0, j], w2[1, j], w2[2, j], w2[3, j], w2[4, j]
        a0 = a1 = a2 = a3 = a4 = sg = sb = zero
        for b in range(m):
            hb = hj[b]
            e0, e1, e2, e3, e4 = d0[b], d1[b], d2[b], d3[b], d4[b]
            a0 += e0 * hb
            a1 += e1 * hb
            a2 += e2 * hb
            a3 += e3 * hb
            a4 += e4 * hb
            g = v0 * e0 + v1 * e1 + v2 * e2 + v3 * e3 + v4 * e4
            g = g if hb > zero else zero
            duj[b] = g
            sg += g * zhj[b]
            sb += g
        gw2[0, j] = a0
        gw2[1, j] = a1
        gw2[2, j] = a2
        gw2[3, j] = a3
        gw2[4, j] = a4
        ggamma[j] = sg
        gbeta[j] = sb


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _first_layer(xb, w1, wt, zt, z):  # pragma: no cover - compiled
    """``z = W1 xb^T`` (16, m) for ``xb`` (m, 49), through BLAS as ``zt = xb W1^T`` (m, 16).

    OpenBLAS computes the example-major product about twice as fast as ``W1 xb^T`` (a
    transposed operand); transposing ``W1`` (into ``wt[0]``) and ``zt`` costs far less.
    """
    m = xb.shape[0]
    w1t = wt[0]
    for j in range(N_HIDDEN):
        for i in range(N_IN):
            w1t[i, j] = w1[j, i]
    np.dot(xb, w1t, zt)
    for j in range(N_HIDDEN):
        zj = z[j]
        for b in range(m):
            zj[b] = zt[b, j]


@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _first_layer_grad(dz, xb, wt, zt, gw1):  # pragma: no cover - compiled
    """``gw1 = dz xb`` (16, 49) for ``dz`` (16, m), ``xb`` (m, 49): one BLAS product, both
    operands and the result in the layout they already have (``wt``, ``zt`` unused).

    Formerly ``(xb^T dz^T)^T`` with ``dz`` and the result transposed around BLAS: the
    product itself is ~8 % slower this way, the two transposes cost ~40 % of it.
    """
    np.dot(dz, xb, gw1)


# long: one numba kernel, forward and backward of a mini-batch with BN; see _train_epoch
@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _forward_backward(
    xb, yb, p, g, z, h, o, du, zt, wt, tot, stats, consts, margins, dens, n_classes
):  # pragma: no cover - compiled
    """Error count of one mini-batch, the parts of its loss into ``margins``, ``dens``
    (:func:`_softmax_xent`); its mean gradient into ``g``, zero for padded classes.

    ``xb`` (m, 49) the batch's inputs (contiguous), ``yb`` (m,) labels, ``p``/``g`` flat
    weights/gradient in ``model.parameters()`` order; scratch ``z``, ``h``, ``du`` (16, m),
    ``o`` (5, m), ``zt`` (m, 16), ``wt`` (2, 49, 16), ``tot`` (m,). ``stats`` (4, 16)
    receives the batch mean and biased variance of ``x W1^T`` (rows 0, 1).
    """
    m = xb.shape[0]
    w1 = p[W1_LO:W1_HI].reshape((N_HIDDEN, N_IN))
    gamma = p[GAMMA_LO:GAMMA_HI]
    beta = p[BETA_LO:BETA_HI]
    w2 = p[W2_LO:W2_HI].reshape((N_OUT, N_HIDDEN))
    b2 = p[B2_LO:B2_HI]
    gw1 = g[W1_LO:W1_HI].reshape((N_HIDDEN, N_IN))
    ggamma = g[GAMMA_LO:GAMMA_HI]
    gbeta = g[BETA_LO:BETA_HI]
    gw2 = g[W2_LO:W2_HI].reshape((N_OUT, N_HIDDEN))
    gb2 = g[B2_LO:B2_HI]
    mu = stats[0]
    var = stats[1]
    inv = stats[2]
    zero = z.dtype.type(0)
    inv_m = z.dtype.type(1.0 / m)
    # first layer (BLAS): z = W1 x^T; the bias b1 cancels in BN
    _first_layer(xb, w1, wt, zt, z)
    # batch statistics (two-pass, biased variance)
    for j in range(N_HIDDEN):
        zj = z[j]
        acc = zero
        for b in range(m):
            acc += zj[b]
        mj = acc * inv_m
        acc = zero
        for b in range(m):
            t = zj[b] - mj
            acc += t * t
        mu[j] = mj
        var[j] = acc * inv_m
        inv[j] = 1.0 / np.sqrt(var[j] + BN_EPS)
    _bn_relu(z, mu, inv, gamma, beta, h)  # z now holds zh
    _output_layer(h, w2, b2, o)
    n_err = _softmax_xent(o, yb, inv_m, consts, tot, margins, dens)  # o: d loss / d o
    _head_backward(h, z, o, w2, gw2, gb2, ggamma, gbeta, du)
    for c in range(n_classes, N_OUT):  # padded classes never move
        gb2[c] = zero
        for j in range(N_HIDDEN):
            gw2[c, j] = zero
    # BN backward: dz = a (du - dbeta / m - zh dgamma / m), a = gamma inv, into du
    for j in range(N_HIDDEN):
        a = gamma[j] * inv[j]
        cc = a * gbeta[j] * inv_m
        dd = a * ggamma[j] * inv_m
        duj = du[j]
        zj = z[j]
        for b in range(m):
            duj[b] = a * duj[b] - cc - dd * zj[b]
    # first layer backward (BLAS): dW1 = dz x; d b1 = sum dz = 0 exactly
    _first_layer_grad(du, xb, wt, zt, gw1)
    g[B1_LO:B1_HI] = zero
    return n_err


# _forward_backward, _train_epoch and _full_pass are longer than ~60 lines by their argument
# lists (numba kernels take every buffer explicitly) and because each loop nest is kept as
# one simple loop that LLVM vectorises; the mathematics is in the module docstring.
@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
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
    scratch,
    wt,
    tot,
    stats,
    consts,
    margins,
    dens,
    n_classes,
):  # pragma: no cover - compiled
    """One epoch of SGD over ``order``; returns (error count, number of batches).

    ``scratch`` (5, 16 * batch_size) holds the activations ``z``, ``h``, ``du``, ``o``, ``zt``;
    ``margins``, ``dens`` (n,) receive the parts of each example's loss in epoch order.
    """
    n = order.shape[0]
    d = p.shape[0]
    w = x.shape[1]
    err_sum = 0
    n_batches = 0
    start = 0
    while start < n:
        stop = min(start + batch_size, n)
        m = stop - start
        for b in range(m):
            r = order[start + b]
            for i in range(w):  # runtime bound: ~3x faster than a slice or a literal 49
                xb[b, i] = x[r, i]
            yb[b] = y[r]
        # the next batch's rows (random rows of x) move towards the cache while this one runs
        _prefetch_rows(x, order[stop : min(stop + batch_size, n)])
        z = scratch[0, : N_HIDDEN * m].reshape((N_HIDDEN, m))
        h = scratch[1, : N_HIDDEN * m].reshape((N_HIDDEN, m))
        du = scratch[2, : N_HIDDEN * m].reshape((N_HIDDEN, m))
        o = scratch[3, : N_OUT * m].reshape((N_OUT, m))
        zt = scratch[4, : N_HIDDEN * m].reshape((m, N_HIDDEN))
        n_err = _forward_backward(
            xb[:m], yb[:m], p, g, z, h, o, du, zt, wt, tot[:m], stats, consts,
            margins[start:stop], dens[start:stop], n_classes,
        )  # fmt: skip
        # running statistics: batch mean of x W1^T + b1 (b1 never moves), unbiased variance
        for j in range(N_HIDDEN):
            rmean[j] = (1.0 - BN_MOMENTUM) * rmean[j] + BN_MOMENTUM * (stats[0, j] + p[B1_LO + j])
            rvar[j] = (1.0 - BN_MOMENTUM) * rvar[j] + BN_MOMENTUM * stats[1, j] * m / (m - 1)
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
    return err_sum, n_batches


# long: one numba kernel, one sweep over all examples with full-batch BN; see _train_epoch
@numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def _full_pass(
    x, y, xbar, cov, p, g, scratch, wt, tot, gblk, consts, margins, dens
):  # pragma: no cover - compiled
    """Error count, the parts of each example's loss (into ``margins``, ``dens``, see
    :func:`_softmax_xent`) and mean gradient (into ``g``) over all N examples, one BN batch.

    BN statistics from the data's mean ``xbar`` (49,) and biased covariance ``cov`` (49, 49)
    (float64): ``mu = W1 xbar``, ``var_j = w_j^T C w_j``. Then one sweep over contiguous
    blocks of ``FULL_BLOCK`` examples: forward, softmax, head backward, ``acc += du^T x``;
    finally ``dW1_j = a_j (acc_j - dbeta_j xbar - dgamma_j inv_j C w_j)`` (module docstring).
    Sums over blocks accumulate in float64. ``scratch`` (5, 16 FULL_BLOCK), ``wt`` (2, 49, 16),
    ``gblk`` (d,).
    """
    n = x.shape[0]
    w1 = p[W1_LO:W1_HI].reshape((N_HIDDEN, N_IN))
    gamma = p[GAMMA_LO:GAMMA_HI]
    beta = p[BETA_LO:BETA_HI]
    w2 = p[W2_LO:W2_HI].reshape((N_OUT, N_HIDDEN))
    b2 = p[B2_LO:B2_HI]
    gw1 = gblk[W1_LO:W1_HI].reshape((N_HIDDEN, N_IN))
    ggamma = gblk[GAMMA_LO:GAMMA_HI]
    gbeta = gblk[BETA_LO:BETA_HI]
    gw2 = gblk[W2_LO:W2_HI].reshape((N_OUT, N_HIDDEN))
    gb2 = gblk[B2_LO:B2_HI]
    # BN statistics of the whole training set from its first two moments
    w64 = w1.astype(np.float64)
    mu64 = w64 @ xbar
    cw = w64 @ cov  # row j: C w_j (C symmetric)
    inv64 = np.empty(N_HIDDEN)
    for j in range(N_HIDDEN):
        var = 0.0
        for i in range(N_IN):
            var += cw[j, i] * w64[j, i]
        inv64[j] = 1.0 / np.sqrt(var + BN_EPS)
    mu = mu64.astype(p.dtype)
    inv = inv64.astype(p.dtype)
    scale = p.dtype.type(1.0 / n)
    acc = np.zeros(D)
    n_err = 0
    start = 0
    while start < n:
        stop = min(start + FULL_BLOCK, n)
        m = stop - start
        xblk = x[start:stop]
        z = scratch[0, : N_HIDDEN * m].reshape((N_HIDDEN, m))
        h = scratch[1, : N_HIDDEN * m].reshape((N_HIDDEN, m))
        du = scratch[2, : N_HIDDEN * m].reshape((N_HIDDEN, m))
        o = scratch[3, : N_OUT * m].reshape((N_OUT, m))
        zt = scratch[4, : N_HIDDEN * m].reshape((m, N_HIDDEN))
        _first_layer(xblk, w1, wt, zt, z)
        _bn_relu(z, mu, inv, gamma, beta, h)  # z now holds zh
        _output_layer(h, w2, b2, o)
        n_err += _softmax_xent(
            o, y[start:stop], scale, consts, tot[:m], margins[start:stop], dens[start:stop]
        )
        _head_backward(h, z, o, w2, gw2, gb2, ggamma, gbeta, du)
        _first_layer_grad(du, xblk, wt, zt, gw1)
        for k in range(D):
            acc[k] += gblk[k]
        start = stop
    # dW1_j = a_j (sum_b du_jb x_b - dbeta_j xbar - dgamma_j inv_j C w_j), a_j = gamma_j inv_j
    for j in range(N_HIDDEN):
        a = gamma[j] * inv64[j]
        gg = acc[GAMMA_LO + j]
        gb = acc[BETA_LO + j]
        for i in range(N_IN):
            acc[W1_LO + j * N_IN + i] = a * (
                acc[W1_LO + j * N_IN + i] - gb * xbar[i] - gg * inv64[j] * cw[j, i]
            )
    for k in range(D):
        g[k] = acc[k]
    g[B1_LO:B1_HI] = 0.0
    return n_err


def _loss_sum(parts: np.ndarray) -> float:
    """``sum(margins) + sum(log(dens))`` in float64 (numpy: the same bits in every process)."""
    return float(parts[0].sum(dtype=np.float64) + np.log(parts[1], dtype=np.float64).sum())


class FastTrainer:
    """SGD on tiny-fc for one dataset with the fused numba kernels.

    ``x`` (N, 49) or (N, 1, 7, 7) and ``y`` (N,) int labels ``0..num_classes-1`` (at most
    :data:`MAX_CLASSES`); ``dtype`` float64 (exact comparison with the reference) or float32
    (twice the SIMD width, half the memory traffic). ``state`` is in the layout of
    ``TinyFC(num_classes)``.

    The kernels are unrolled over five output classes (the stated setting). With fewer
    classes the working weights carry padded classes: their second-layer row is zero and
    their bias :data:`PAD_BIAS`, so their softmax weight is below 1e-26 and adds exactly
    nothing to a denominator >= 1, their contribution to the hidden layer's gradient is an
    exact zero (zero row), and their own gradient is set to zero, so they never move. The
    results are those of tiny-fc with ``num_classes`` outputs (tested against the plain
    PyTorch loop with 4 classes); the weights seen from outside have d of that network.

    ``kernels``: (epoch kernel, full-pass kernel) compiled with other options, for
    ``benchmarks/bench_trajectory.py``; default this module's.
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
        num_classes: int = MAX_CLASSES,
        kernels: tuple | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if not 2 <= num_classes <= MAX_CLASSES:
            raise ValueError(
                f"the fast trainer handles 2..{MAX_CLASSES} classes, got {num_classes}"
            )
        self.net = TinyFC(num_classes)
        #: (epoch kernel, full-pass kernel): this module's, or compiled alternatives of them
        #: (``benchmarks/bench_trajectory.py`` times other compiler options side by side)
        self._kernels = (_train_epoch, _full_pass) if kernels is None else kernels
        x = np.asarray(x).reshape(len(x), -1)
        if x.shape[1] != N_IN:
            raise ValueError(f"tiny-fc needs 7x7 = 49 inputs per example, got {x.shape[1]}")
        y = np.asarray(y, dtype=np.int64)
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(
                f"tiny-fc labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}"
            )
        self.x = np.ascontiguousarray(x, dtype=self.dtype)
        self.y = np.ascontiguousarray(y)
        self.n = len(y)
        batch_bounds(self.n, batch_size)  # validates the last batch size
        self.batch_size = int(batch_size)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        # live weights inside the padded working vector, and the padded classes' biases
        live = np.zeros(D, bool)
        for name, (lo, hi) in self.net.offsets.items():
            start = _PAD.offsets[name][0]
            live[start : start + hi - lo] = True
        self._live = np.flatnonzero(live)
        self._pad_bias = np.arange(B2_LO + num_classes, B2_HI)
        self.set_state(state)
        # first two moments of the (fixed) training data, in float64, for the full pass
        x64 = self.x.astype(np.float64)
        self._xbar = x64.mean(axis=0)
        xc = x64 - self._xbar
        self._cov = (xc.T @ xc) / self.n
        self._consts = exp_constants(self.dtype)
        self._allocate_buffers()

    def _allocate_buffers(self) -> None:
        """Scratch of the kernels, allocated once."""
        self._xb = np.zeros((self.batch_size, N_IN), self.dtype)
        self._yb = np.zeros(self.batch_size, np.int64)
        # separate gradients and scratch for mini-batches and for the full-dataset pass, so
        # that a full pass may run in another thread while the next epoch trains
        self._g = np.zeros(D, self.dtype)
        self._g_full = np.zeros(D, np.float64)
        self._g_blk = np.zeros(D, self.dtype)
        self._scratch = np.zeros((5, N_HIDDEN * self.batch_size), self.dtype)
        self._scratch_full = np.zeros((5, N_HIDDEN * FULL_BLOCK), self.dtype)
        self._wt = np.zeros((2, N_IN, N_HIDDEN), self.dtype)
        self._wt_full = np.zeros((2, N_IN, N_HIDDEN), self.dtype)
        self._tot = np.zeros(self.batch_size, self.dtype)
        self._tot_full = np.zeros(FULL_BLOCK, self.dtype)
        self._stats = np.zeros((4, N_HIDDEN), self.dtype)
        # per-example parts of the loss (see _softmax_xent), summed in numpy
        self._loss_parts = np.zeros((2, self.n), self.dtype)
        self._loss_parts_full = np.zeros((2, self.n), self.dtype)

    def _padded(self, flat: np.ndarray, fill: float = 0.0) -> np.ndarray:
        out = np.zeros(D, self.dtype)
        out[self._live] = flat
        out[self._pad_bias] = fill
        return out

    def set_state(self, state: TrainState) -> None:
        if len(state.params) != self.net.d:
            raise ValueError(f"state has {len(state.params)} weights, tiny-fc {self.net.d}")
        self._p = self._padded(np.asarray(state.params), PAD_BIAS)
        self._buf = self._padded(np.asarray(state.momentum_buffer))
        self._rmean = np.array(state.running_mean, dtype=self.dtype)
        self._rvar = np.array(state.running_var, dtype=self.dtype)
        self._tracked = int(state.num_batches_tracked)
        self.epoch = int(state.epoch)

    def state(self) -> TrainState:
        """A copy of the current state (float64)."""
        return TrainState(
            params=self._p[self._live].astype(np.float64),
            momentum_buffer=self._buf[self._live].astype(np.float64),
            running_mean=self._rmean.astype(np.float64),
            running_var=self._rvar.astype(np.float64),
            num_batches_tracked=self._tracked,
            epoch=self.epoch,
        )

    def params(self) -> np.ndarray:
        """A copy of the current weights in ``model.parameters()`` order (working dtype)."""
        return self._p[self._live]

    def train_epoch(self, order: np.ndarray, lr: float) -> EpochStats:
        """One epoch of SGD visiting the examples in ``order``."""
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (self.n,):
            raise ValueError(f"order must be a permutation of {self.n} indices")
        err_sum, n_batches = self._kernels[0](
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
            self._scratch,
            self._wt,
            self._tot,
            self._stats,
            self._consts,
            self._loss_parts[0],
            self._loss_parts[1],
            self.net.num_classes,
        )
        loss_sum = _loss_sum(self._loss_parts)
        self._tracked += int(n_batches)
        self.epoch += 1
        return EpochStats(loss_sum / self.n, float(err_sum) / self.n)

    def full_pass(self, params: np.ndarray | None = None) -> FullPass:
        """Full-dataset loss, error and gradient at the current weights (or at ``params``).

        BN in train mode over the whole training set as one batch (batch statistics of all N
        examples): the gradient of the objective SGD samples from. The running statistics
        are left untouched. Thread-safe against :meth:`train_epoch` when ``params`` is a
        copy (the kernels release the GIL), which lets a run overlap the two.
        """
        p = self._p if params is None else self._padded(params, PAD_BIAS)
        n_err = self._kernels[1](
            self.x,
            self.y,
            self._xbar,
            self._cov,
            p,
            self._g_full,
            self._scratch_full,
            self._wt_full,
            self._tot_full,
            self._g_blk,
            self._consts,
            self._loss_parts_full[0],
            self._loss_parts_full[1],
        )
        loss_sum = _loss_sum(self._loss_parts_full)
        return FullPass(
            loss=loss_sum / self.n,
            error=float(n_err) / self.n,
            grad=self._g_full[self._live],
        )


__all__ = ["MAX_CLASSES", "FastTrainer", "exp_constants"]
