"""Table statistics (Figs. 1, 2; Remarks 13, 15, 16) against numpy, and the figure drawing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgdvi.diffusion.eigen import rank_threshold
from sgdvi.diffusion.plot import SnapshotSpectrum, format_mean_std, histogram_bins, plot_spectra
from sgdvi.diffusion.stats import (
    PAPER_VALUES,
    diffusion_table,
    remark13_change,
    remark15,
    remark16,
    spectrum_statistics,
)

KNOWN = np.array([4.0, 2.0, 1.0, 1e-4, 1e-9, -1e-12, 0.0, 3e-8])


def test_statistics_against_numpy_on_a_known_vector():
    d = len(KNOWN)
    thr = rank_threshold(KNOWN.max(), d, "float32")  # 4 * 8 * 1.19e-7 = 3.8e-6
    st = spectrum_statistics(KNOWN, d, thr)
    clipped = np.where(KNOWN > thr, KNOWN, thr)
    assert st["rank"] == 4
    assert st["rank_pct"] == pytest.approx(50.0)
    assert st["mean"] == pytest.approx(clipped.mean(), rel=1e-15)
    assert st["std"] == pytest.approx(np.std(clipped, ddof=1), rel=1e-15)
    assert st["var"] == pytest.approx(np.var(clipped, ddof=1), rel=1e-15)
    # by hand: (4 + 2 + 1 + 1e-4 + 4 thr) / 8
    assert st["mean"] == pytest.approx((7.0001 + 4 * thr) / 8, rel=1e-15)


def test_statistics_of_a_partial_spectrum_equal_those_of_the_full_one():
    """The fast path stores only the leading eigenvalues: missing ones count as the threshold."""
    d = len(KNOWN)
    thr = rank_threshold(KNOWN.max(), d, "float32")
    full = spectrum_statistics(KNOWN, d, thr)
    part = spectrum_statistics(np.sort(KNOWN)[::-1][:5], d, thr)
    for key in ("mean", "std", "rank"):
        assert part[key] == pytest.approx(full[key], rel=1e-15)


def test_remarks_closed_form():
    assert remark15(0.3e-3, lr=0.1, batch_size=128) == pytest.approx(0.1 / 128 * 0.3e-3)
    assert remark15(2.0, lr=0.1, batch_size=100, temperature=0.5) == pytest.approx(1e-3)
    assert remark16(rank=240, d=13338, variance=4.4e-6) == pytest.approx(240 / 13338 + 4.4e-6)
    spectra = {0.2: np.array([2.2, 1.0, 0.1]), 0.4: np.array([2.0, 1.1]), 1.0: np.array([2.0, 1.0])}
    ch = remark13_change(spectra, top=10)
    assert ch[1.0]["r13_max_rel_change"] == 0.0
    assert ch[0.2]["r13_top"] == 2
    assert ch[0.2]["r13_max_rel_change"] == pytest.approx(0.1)
    assert ch[0.4]["r13_max_rel_change"] == pytest.approx(0.1)
    assert ch[0.4]["r13_median_rel_change"] == pytest.approx(0.05)


def record(exp: str, fraction: float, scale: float) -> dict:
    eig = scale * KNOWN[:4]
    d = len(KNOWN)
    return {
        "experiment": exp,
        "fraction": fraction,
        "eigenvalues": eig,
        "d": d,
        "n": 100,
        "threshold": rank_threshold(eig.max(), d, "float32"),
        "lambda_max": eig.max(),
        "eps": float(np.finfo(np.float32).eps),
        "trace": float(eig.sum()),
        "grad_norm": 0.1,
        "solver": "fast",
        "formula": "A1",
        "lr": 0.1,
        "batch_size": 128,
        "seconds": 1.0,
        "epoch": 3,
    }


def test_table_rows_and_paper_columns():
    recs = [record("lenet-mnist", f, s) for f, s in ((1.0, 1.0), (0.2, 1.5), (0.4, 1.2))]
    recs.append(record("mine", 1.0, 1.0))
    t = diffusion_table(recs)
    assert list(t.experiment) == ["lenet-mnist"] * 3 + ["mine"]
    assert list(t.fraction) == [0.2, 0.4, 1.0, 1.0]
    row = t.iloc[2]
    assert row["rank"] == 4 and row.rank_pct == pytest.approx(50.0)
    assert row.paper_mean == 0.3e-3 and row.paper_std == 2.11e-3 and row.paper_rank_pct == 1.8
    assert math.isnan(t.iloc[3].paper_mean)
    assert t.iloc[0].r13_max_rel_change == pytest.approx(0.5)
    assert row.remark15 == pytest.approx(0.1 / 128 * row.trace / 8)
    assert row.remark16 == pytest.approx(0.5 + row["std"] ** 2)


def test_paper_values_are_the_captions():
    got = {k: (v["mean"], v["std"], v["rank_pct"]) for k, v in PAPER_VALUES.items()}
    assert got == {
        "lenet-mnist": (0.3e-3, 2.11e-3, 1.8),
        "fc-mnist7": (0.9e-3, 18.5e-3, 0.6),
        "fc-mnist7-authors": (0.9e-3, 18.5e-3, 0.6),  # Fig. 1b in the authors' setting
        "allcnn-cifar10": (0.27, 0.84, 0.34),
        "allcnn-cifar100": (0.98, 2.16, 0.47),
        "allcnn-cifar10-aug": (0.43, 1.32, 0.32),
    }


@pytest.mark.parametrize(
    "mean, std, text",
    [
        (0.3e-3, 2.11e-3, r"(0.3 $\pm$ 2.11) $\times 10^{-3}$"),
        (0.9e-3, 18.5e-3, r"(0.9 $\pm$ 18.5) $\times 10^{-3}$"),
        (0.27, 0.84, r"0.27 $\pm$ 0.84"),
        (0.98, 2.16, r"0.98 $\pm$ 2.16"),
    ],
)
def test_format_as_the_paper(mean, std, text):
    assert format_mean_std(mean, std) == text


def test_figure_on_a_synthetic_spectrum(tmp_path):
    rng = np.random.default_rng(0)
    d = 5000
    spectra = []
    for f in (0.2, 0.4, 1.0):
        eig = np.sort(10 ** rng.uniform(-5, 0, size=80))[::-1]
        spectra.append(SnapshotSpectrum(f, eig, d, rank_threshold(eig[0], d)))
    out = [tmp_path / "f.pdf", tmp_path / "f.png"]
    st = plot_spectra(spectra, out, title="(a) test", paper=PAPER_VALUES["lenet-mnist"])
    assert all(p.stat().st_size > 5000 for p in out)
    assert out[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        st["rank"] == spectrum_statistics(spectra[-1].eigenvalues, d, spectra[-1].threshold)["rank"]
    )
    edges = histogram_bins(spectra, 40)
    assert edges[0] < min(s.threshold for s in spectra) and edges[-1] > 1.0 - 1e-12
    with pytest.raises(ValueError, match="positive"):
        histogram_bins([SnapshotSpectrum(1.0, np.array([0.0]), 3, 0.0)], 10)
