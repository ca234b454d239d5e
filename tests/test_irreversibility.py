"""The probability-current test: the area-enclosing rate estimator, its null models, Lemma 20
on data, and the SGD pipeline (sgdvi.irreversibility)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as tF

from sgdvi.irreversibility import estimator as es
from sgdvi.irreversibility import lemma20 as l20
from sgdvi.irreversibility import processes as pr
from sgdvi.irreversibility import reference as ref
from sgdvi.irreversibility import sgd
from sgdvi.models import build_model, flat_parameters

F_IRR, D_IRR, F_REV = pr.F_IRREVERSIBLE, pr.D_IRREVERSIBLE, pr.F_REVERSIBLE


def test_closed_forms():
    """The issue's numbers: L_12 = -0.7333 for its F, D; L = 0 for F = D U; pi lambda / Z."""
    assert pr.ou_area_rate(F_IRR, D_IRR)[0, 1] == pytest.approx(-0.73333333, abs=1e-7)
    assert np.abs(pr.ou_area_rate(F_REV, D_IRR)).max() < 1e-12
    assert pr.double_well_area_rate(1.5) == pytest.approx(0.6181, abs=1e-4)
    assert pr.double_well_area_rate(0.0) == 0.0
    # for OU, L = Q of Lemma 20 (beta = 1), since F S = D + Q
    assert np.allclose(pr.ou_area_rate(F_IRR, D_IRR), l20.ou_q(F_IRR, D_IRR), atol=1e-10)
    assert pr.ou_area_rate_sampled(F_IRR, D_IRR, 1.0, 1e-5)[0, 1] == pytest.approx(-0.7333, 1e-3)


def test_lissajous_area():
    assert es.lissajous_area() == pytest.approx(-10.0 / 3.0, abs=1e-6)


def test_estimator_matches_direct_formula():
    """(C1 - C1^T)/(2 dt) equals the mean of (x dx^T - dx x^T)/(2 dt), block sums included."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((101, 3)).cumsum(0)
    a = es.area_rate(x, 0.5, n_blocks=5, center=False)
    c1 = x[:-1].T @ x[1:] / 100
    assert np.allclose(a.L, (c1 - c1.T) / (2 * 0.5))
    assert np.allclose(a.L, -a.L.T) and np.all(np.diag(a.se) == 0)


def test_reversible_ou_zero_within_3se():
    x = pr.ou_path(F_REV, D_IRR, 1.0, 0.01, 1_000_000, seed=1)
    a = es.area_rate(x, 0.01, 20)
    assert abs(a.z[0, 1]) < 3.0
    bc = es.block_check(x, 0.01, 20)
    assert bc.ratio > 10  # blocks much longer than the correlation time
    se = list(bc.se_by_blocks.values())
    assert max(se) / min(se) < 1.5  # s.e. flat in the number of blocks


def test_irreversible_ou_within_5_percent():
    x = pr.ou_path(F_IRR, D_IRR, 1.0, 0.01, 6_000_000, seed=2)
    a = es.area_rate(x, 0.01, 20)
    ref = pr.ou_area_rate(F_IRR, D_IRR)[0, 1]
    assert abs(a.L[0, 1] - ref) < 0.05 * abs(ref)
    assert abs(a.L[0, 1] - ref) < 4 * a.se[0, 1] + 0.01  # s.e. is honest (dt bias ~0.75 %)
    assert np.cov(x.T) == pytest.approx(pr.lz.stationary_covariance(F_IRR, D_IRR), rel=0.05)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.5])
def test_double_well(lam):
    """Example 19: L_12 = pi lambda / Z; lambda = 0 within 3 s.e. of zero, else within 5 %."""
    sums, counts, _ = pr.double_well_block_sums(lam, 4000, 0.01, 4.0, 100.0, 10, seed=3)
    a = es.area_rate_from_sums(sums, counts, 0.01)
    ref = pr.double_well_area_rate(lam)
    if lam == 0:
        assert abs(a.z[0, 1]) < 3.0
    else:
        assert abs(a.L[0, 1] - ref) < 0.05 * ref


def _held_out_z(x: np.ndarray, m: int, n_blocks: int) -> np.ndarray:
    h = len(x) // 2
    V, _ = es.pca_directions(x[:h], m)
    z = es.area_rate(es.project(x[h:], V), 1.0, n_blocks).z
    return z[np.triu_indices(m, 1)]


def test_random_walk_projections_calibrated():
    """Random walks on fixed or held-out directions: |z| < 3 in at least 95 % of draws."""
    rng = np.random.default_rng(4)
    fixed, held = [], []
    for _ in range(100):
        x = np.cumsum(rng.standard_normal((1000, 20)) * rng.uniform(0.2, 2, 20), axis=0)
        V, _ = np.linalg.qr(rng.standard_normal((20, 3)))
        fixed.append(es.area_rate(x @ V, 1.0, 20).z[0, 1])
        held.append(_held_out_z(x, 2, 20)[0])
    assert np.mean(np.abs(fixed) < 3) >= 0.95
    assert np.mean(np.abs(held) < 3) >= 0.95
    # and of the permuted increments of an irreversible path
    x = pr.ou_path(F_IRR, D_IRR, 1.0, 0.05, 20_000, seed=5)
    inc = np.diff(x, axis=0)
    zs = [es.area_rate(es.permuted_walk(inc, rng), 0.05, 20).z[0, 1] for _ in range(60)]
    assert np.mean(np.abs(zs) < 3) >= 0.95


def test_same_sample_pca_shows_spurious_current():
    """The artefact the held-out projection avoids: same-sample PCs of a random walk enclose
    the Lissajous area 10/3 (in units of the amplitudes) with a large |z|."""
    rng = np.random.default_rng(6)
    areas, zs = [], []
    for _ in range(10):
        x = np.cumsum(rng.standard_normal((600, 300)), axis=0)
        V, var = es.pca_directions(x, 2, max_rows=600)
        a = es.area_rate(es.project(x, V), 1.0, 20)
        areas.append(abs(2 * a.L[0, 1] * 599) / (2 * np.sqrt(var[0] * var[1])))
        zs.append(abs(a.z[0, 1]))
    assert np.median(areas) == pytest.approx(10 / 3, rel=0.1)
    assert np.mean(np.array(zs) > 3) >= 0.9


def test_stationarity_and_drift():
    rng = np.random.default_rng(7)
    walk = np.cumsum(rng.standard_normal((20000, 2)), axis=0)
    ou = pr.ou_path(F_IRR, D_IRR, 1.0, 0.1, 20000, seed=7)
    assert not es.stationarity(walk).stationary.any()
    assert es.stationarity(ou).stationary.all()
    drifting = ou + 0.01 * np.arange(20000)[:, None]
    dr = es.remove_drift(drifting)
    assert np.allclose(dr.drift, 0.01, atol=1e-3) and dr.relative > 10
    assert es.area_rate(dr.x, 0.1, 20).L[0, 1] == pytest.approx(
        es.area_rate(ou, 0.1, 20).L[0, 1], abs=0.02
    )


def test_lemma20_on_data_recovers_q():
    """Lemma 20 on an OU path: F_hat, D_hat, then Q_hat from the theory stage's solver."""
    x = pr.ou_path(F_IRR, D_IRR, 1.0, 0.1, 200_000, seed=8)
    fit = l20.fit_linear_sde(x, 0.1)
    assert fit.F == pytest.approx(F_IRR, abs=0.05)
    assert fit.D == pytest.approx(D_IRR, abs=0.03)
    assert fit.Q == pytest.approx(l20.ou_q(F_IRR, D_IRR), abs=0.03)
    b = l20.bootstrap_ratio(x, 0.1, 20, 20, seed=0)
    true = np.linalg.norm(l20.ou_q(F_IRR, D_IRR)) / np.linalg.norm(D_IRR)
    assert b.ratio == pytest.approx(true, abs=0.04) and b.n_valid == 20
    assert b.low < b.ratio < b.high < b.low + 0.15
    rev = l20.bootstrap_ratio(pr.ou_path(F_REV, D_IRR, 1.0, 0.1, 200_000, seed=9), 0.1, 20, 20, 0)
    assert rev.high < 0.05  # no rotation where detailed balance holds


def test_per_example_gradients_full_batch_bn():
    """Rows are the autograd gradients of each example's loss with train-mode BN over the whole
    set (through the batch statistics); their mean is the trajectory's full gradient."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 1, 7, 7)) * 50, rng.integers(0, 4, 100)
    model = build_model("tiny-fc", num_classes=4).double().train()
    w = flat_parameters(model).double().numpy()
    g = sgd.per_example_gradients(w, x, y, 4, chunk=32)
    assert g.shape == (100, 900)
    losses = tF.cross_entropy(
        model(torch.as_tensor(x.reshape(100, -1))), torch.as_tensor(y), reduction="none"
    )
    params = list(model.parameters())
    full = torch.cat(
        [t.reshape(-1) for t in torch.autograd.grad(losses.mean(), params, retain_graph=True)]
    )
    g5 = torch.cat([t.reshape(-1) for t in torch.autograd.grad(losses[5], params)])
    assert np.abs(g.mean(0) - full.numpy()).max() < 1e-12
    assert np.abs(g[5] - g5.numpy()).max() < 1e-12
    assert np.abs(g[:, 784:800]).max() < 1e-12  # first-layer bias: zero under train-mode BN
    V, lam = sgd.diffusion_directions(g, 5)
    assert np.allclose(V.T @ V, np.eye(5)) and np.all(np.diff(lam) <= 0)


def _synthetic_trajectory(rotate: bool, n: int = 3000, d: int = 40) -> np.ndarray:
    rng = np.random.default_rng(10)
    w = 0.1 * rng.standard_normal((n, d))
    F = F_IRR if rotate else F_REV
    w[:, :2] += 3 * pr.ou_path(F * 0.05, D_IRR * 0.05, 1.0, 1.0, n, seed=11)
    w += 1e-3 * np.arange(n)[:, None]  # a mean drift, removed by the pipeline
    return w.astype(np.float32)


@pytest.mark.parametrize("rotate", [True, False])
def test_sgd_pipeline_on_synthetic_trajectory(rotate):
    w = _synthetic_trajectory(rotate)
    s = sgd.Settings(m=3, n_blocks=20, n_surrogates=19, n_boot=10, alpha=0.01)
    summary, projs = sgd.analyse_current(w, np.eye(40)[:, :3], s)
    assert summary["drift_per_epoch"] == pytest.approx(1e-3 * np.sqrt(40), rel=0.2)
    table = sgd.current_table(projs, summary | {"variant": "stated", "seed": 1})
    assert set(table.projection) == {"diffusion", "pca-heldout"} and len(table) == 6
    if rotate:
        assert summary["verdict"].startswith("current detected")
        top = table[(table.projection == "diffusion") & (table.i == 0) & (table.j == 1)].iloc[0]
        assert top.L < 0 and top.p_surrogate == pytest.approx(1 / 20)
    else:
        assert summary["verdict"].startswith("not detected")
    rows = sgd.trajectory_rows([table])
    assert list(rows.seed) == [1] and rows.current_verdict.iloc[0] == summary["verdict"]


def test_sgd_pipeline_random_walk_is_not_stationary():
    rng = np.random.default_rng(12)
    w = np.cumsum(rng.standard_normal((3000, 30)), axis=0).astype(np.float32)
    s = sgd.Settings(m=3, n_blocks=20, n_surrogates=9, n_boot=5)
    summary, _ = sgd.analyse_current(w, np.linalg.qr(rng.standard_normal((30, 3)))[0], s)
    assert (
        summary["verdict"] in ("no stationary state to test",)
        or "not detected" in summary["verdict"]
    )
    assert isinstance(pd.DataFrame([summary]), pd.DataFrame)


# ------------------------------------------------------------- fast path vs the reference
def _drifting_walk(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = np.cumsum(rng.standard_normal((n, d)) * rng.uniform(0.1, 1.0, d), axis=0)
    return (w + np.linspace(0.0, 5.0, n)[:, None]).astype(np.float32)


def test_detrend_matches_remove_drift():
    """The streaming detrend forms the same float32 increments as remove_drift + diff, the
    same projection and drift sizes (chunks of 7 rows exercise the chunk seams)."""
    w = _drifting_walk(200, 9, 0)
    V = np.linalg.qr(np.random.default_rng(1).standard_normal((9, 3)))[0]
    dt = sgd._detrend(w, V, chunk=7)
    dr = es.remove_drift(w)
    assert np.array_equal(dt.inc, np.diff(dr.x, axis=0).astype(np.float32))
    assert np.allclose(dt.y, es.project(dr.x, V), rtol=1e-12, atol=1e-12)
    assert np.array_equal(dt.drift, dr.drift) and dt.displacement == dr.displacement
    assert dt.relative == pytest.approx(dr.relative, rel=1e-12)


@pytest.mark.parametrize("d", [60, 12])  # randomised range finder / full-SVD branch
def test_block_sums_and_thinned_pca(d):
    rng = np.random.default_rng(2)
    inc = rng.standard_normal((1500, d)).astype(np.float32)
    order = rng.permutation(1500)[:749]
    blocks = sgd._block_sums(inc, order, 300)
    starts = sgd._thinning_starts(749, 300)
    assert np.allclose(blocks, np.add.reduceat(inc[order], starts, axis=0), rtol=1e-6, atol=1e-6)
    pos = np.cumsum(blocks, axis=0, dtype=np.float64)
    V_ref, _ = es.pca_directions(pos, 4, max_rows=len(pos))
    assert np.abs(sgd._thinned_pca(blocks, 4) - V_ref).max() < 1e-6


def test_bootstrap_moments_match_lstsq():
    """Lemma 20's bootstrap from block moments = lstsq on the gathered pairs (up to rounding),
    also where a constant coordinate makes every resample singular (lstsq fallback)."""
    x = pr.ou_path(F_IRR, D_IRR, 1.0, 0.1, 20_000, seed=8)
    flat = np.column_stack([x, np.ones(len(x))])
    for path in (x, flat):
        new = l20.bootstrap_ratio(path, 0.1, 30, 10, seed=3)
        old = ref.bootstrap_ratio(path, 0.1, 30, 10, seed=3)
        assert new.n_valid == old.n_valid
        for a, b in [(new.ratio, old.ratio), (new.low, old.low), (new.high, old.high)]:
            assert a == pytest.approx(b, rel=1e-9, nan_ok=True)
        assert np.allclose(new.q_se, old.q_se, rtol=1e-7, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(("d", "max_rows"), [(60, 300), (12, 4000)])
def test_fast_analysis_matches_reference(d, max_rows):
    """analyse_current = the straightforward reference: observed L, z, fits and the summary to
    float rounding; surrogate z-scores of the held-out PCs to ~1e-6 (float32 PCA power
    iterations and projection); same permutations (the diffusion surrogates agree to 1e-10)."""
    w = _drifting_walk(1500, d, 4)
    D = np.linalg.qr(np.random.default_rng(5).standard_normal((d, 4)))[0]
    s = sgd.Settings(m=4, n_blocks=10, n_surrogates=7, n_boot=15, max_pca_rows=max_rows)
    summ, projs = sgd.analyse_current(w, D, s, batch=3)
    summ_ref, projs_ref = ref.analyse_current(w, D, s)
    assert summ.keys() == summ_ref.keys()
    for k, v in summ_ref.items():
        assert summ[k] == (v if isinstance(v, str) else pytest.approx(v, rel=1e-10, nan_ok=True))
    for p, q in zip(projs, projs_ref, strict=True):
        assert p.name == q.name
        assert np.allclose(p.y, q.y, rtol=1e-12, atol=1e-12)
        assert np.allclose(p.area.L, q.area.L, rtol=1e-10, atol=1e-14)
        assert np.allclose(p.area.z, q.area.z, rtol=1e-10, atol=1e-10)
        assert p.fit.ratio == pytest.approx(q.fit.ratio, rel=1e-10)
        assert (p.fit.low, p.fit.high) == pytest.approx((q.fit.low, q.fit.high), rel=1e-8)
        assert p.tau == pytest.approx(q.tau, rel=1e-10)
        assert np.array_equal(p.stat.stationary, q.stat.stationary)
        assert p.z_sur.shape == q.z_sur.shape == (7, 4, 4)
        np.testing.assert_allclose(p.z_sur, q.z_sur, rtol=1e-5, atol=1e-6)
    assert np.allclose(projs[0].z_sur, projs_ref[0].z_sur, rtol=1e-10, atol=1e-12)
    assert np.allclose(projs[1].extra["directions"], projs_ref[1].extra["directions"])
