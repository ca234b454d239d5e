"""The claims ledger (sgdvi.claims.ledger) on handmade tables: each claim's pooled verdict per
setting from numbers written here, the per-seed supporting rows, training-seed replicas for
Fig. 1, and the calibration turning a "holds" resting on a miscalibrated test into
"undecided"."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sgdvi.claims import pooling as pl
from sgdvi.claims.ledger import COLUMNS, claims_table, pooled, verdicts

FIGURES = {"fig1a": "lenet-mnist", "fig1b": "fc-mnist7", "fig1b-authors": "fc-mnist7-authors"}


def diffusion(ranks: dict[str, list[float]]) -> pd.DataFrame:
    """Last-snapshot rows (and an earlier snapshot that must be ignored) per replica."""
    rows = []
    for base, values in ranks.items():
        for k, v in enumerate(values, start=1):
            name = base if k == 1 else f"{base}-seed{k}"
            rows += [
                {"experiment": name, "fraction": 0.2, "rank_pct": 99.0},
                {"experiment": name, "fraction": 1.0, "rank_pct": v},
            ]
    return pd.DataFrame(rows)


def trajectory(n: int = 10) -> pd.DataFrame:
    """``n`` seeds per setting. Stated: a low-frequency deficit, a drop of ~1.5-3, the current
    in half the seeds; authors': an excess, a drop of ~240, no seed with a stationary pair."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        common = {"seed": 42 + k, "ac_frac_outside": 0.98, "ac_frac_outside_shuffle": 0.005,
                  "ac_p_value": 0.005, "grad_norm_normalised_last10pct_mean": 1e-4}  # fmt: skip
        rows.append(
            common
            | {
                "variant": "stated",
                "low_freq_ratio": 0.6 + 0.02 * rng.standard_normal(),
                "low_freq_p_value": 1.0,
                "ac_frac_outside_walk": 0.98 + 0.003 * rng.standard_normal(),
                "grad_norm_normalised_after_burn_in": 1e-4 * (2.5 + 0.3 * rng.standard_normal()),
                "current_level": 1e-5 if k % 2 == 0 else math.nan,
                "current_verdict": "detected" if k % 2 == 0 else "no stationary state to test",
                "current_diffusion_q_over_d": 0.5 + 0.05 * rng.standard_normal(),
            }
        )
        rows.append(
            common
            | {
                "variant": "authors",
                "low_freq_ratio": 1.5 + 0.05 * rng.standard_normal(),
                "low_freq_p_value": 0.005,
                "ac_frac_outside_walk": 0.90,
                "grad_norm_normalised_after_burn_in": 1e-4 * 240 * (1 + 0.1 * rng.random()),
                "current_level": math.nan,
                "current_verdict": "no stationary state to test",
                "current_diffusion_q_over_d": 0.05 + 0.01 * rng.standard_normal(),
            }
        )
    return pd.DataFrame(rows)


def calibration(fig3b_rate: float = 1.0) -> pd.DataFrame:
    rows = []
    for variant in ("stated", "authors"):
        for proc, kind, value, level in (
            ("current", "walk", 0.0, 0.01),
            ("current", "ar1", 0.004, 0.01),
            ("fig3a", "walk", 0.011, 0.01),
            ("fig3b", "walk", fig3b_rate, 0.01),
            ("lemma20", "ar1", 0.2, math.nan),
        ):
            rows.append({"variant": variant, "procedure": proc, "surrogate": kind,
                         "n_surrogates": 1000, "value": value, "level": level,
                         "miscalibrated": bool(value > 2 * level)})  # fmt: skip
    return pd.DataFrame(rows)


RANKS = {
    "lenet-mnist": [2.3, 2.1, 2.4],
    "fc-mnist7": [16.3, 15.9, 16.8],
    "fc-mnist7-authors": [0.83, 0.9, 0.78],
}


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    return claims_table(diffusion(RANKS), FIGURES, trajectory(), calibration())


def test_columns_and_one_pooled_row_per_claim_and_setting(ledger):
    assert list(ledger.columns) == list(COLUMNS)
    p = pooled(ledger)
    keys = list(zip(p.claim, p.setting, strict=True))
    assert len(keys) == len(set(keys)) == 2 * 9 + 1  # 9 claims x 2 settings + the temperature
    assert set(p.verdict) <= {pl.HOLDS, pl.FAILS, pl.UNDECIDED, pl.NOT_TESTED}


def test_verdicts(ledger):
    v = verdicts(ledger)
    expected = {
        ("fig1a_low_rank", "stated"): pl.HOLDS,  # 2.1-2.4 % < 5 %
        ("fig1b_low_rank", "stated"): pl.FAILS,  # 16 %
        ("fig1b_low_rank", "authors"): pl.HOLDS,
        ("remark16_rank_order", "stated"): pl.FAILS,  # lenet 2.3 % < fc 16 %
        ("remark16_rank_order", "authors"): pl.HOLDS,
        ("fig3a_low_frequency", "stated"): pl.FAILS,  # ratio 0.6: a deficit
        ("fig3a_low_frequency", "authors"): pl.HOLDS,
        ("fig3b_band_vs_walk", "stated"): pl.UNDECIDED,  # as many lags as a random walk
        ("fig3b_band_vs_walk", "authors"): pl.HOLDS,  # 0.98 against 0.90 in every seed
        ("fig3c_plateau", "stated"): pl.HOLDS,  # about 2.5
        ("fig3c_plateau", "authors"): pl.FAILS,  # about 250
        ("current", "stated"): pl.HOLDS,  # 5 of 10 seeds at 1e-5
        ("current", "authors"): pl.UNDECIDED,  # no stationary pair anywhere: no evidence
        ("lemma20_q", "stated"): pl.HOLDS,  # 0.5 against the reversible 0.2
        ("lemma20_q", "authors"): pl.UNDECIDED,  # 0.05, below reversible paths: not detected
        ("temperature", "both"): pl.NOT_TESTED,
    }
    for key, verdict in expected.items():
        assert v[key] == verdict, (key, pooled(ledger).set_index(["claim", "setting"]).loc[key])


def test_a_holds_resting_on_a_miscalibrated_test_is_undecided(ledger):
    p = pooled(ledger).set_index(["claim", "setting"])
    r = p.loc[("fig3b_band_vs_shuffled", "stated")]
    assert r.verdict == pl.UNDECIDED and "too often" in r.reason
    assert "miscalibrated" in r.calibration and "100.0% of 1000 walk" in r.calibration
    calibrated = claims_table(diffusion(RANKS), FIGURES, trajectory(), calibration(0.01))
    assert verdicts(calibrated)[("fig3b_band_vs_shuffled", "stated")] == pl.HOLDS
    assert p.loc[("fig1b_low_rank", "stated")].calibration == ""  # no per-seed test


def test_pooled_numbers_by_hand(ledger):
    p = pooled(ledger).set_index(["claim", "setting"])
    fc = p.loc[("fig1b_low_rank", "stated")]
    v = np.array(RANKS["fc-mnist7"])
    half = 4.302652729911275 * v.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert (fc.n_seeds, fc.estimate, fc.low, fc.high) == pytest.approx(
        (3, v.mean(), v.mean() - half, v.mean() + half)
    )
    cur = p.loc[("current", "stated")]
    assert (cur.n_seeds, cur.estimate) == (10, 0.5)
    # Fisher over 5 seeds at 1e-5 and 5 without a stationary pair (p = 1)
    x = -2 * 5 * math.log(1e-5)
    from scipy import stats

    assert cur.p_value == pytest.approx(stats.chi2.sf(x, 20))
    assert p.loc[("lemma20_q", "stated")].null == 0.2
    assert "not detected" in p.loc[("lemma20_q", "authors")].reason  # never "fails"


def test_seed_rows_support_each_pooled_row(ledger):
    seeds = ledger[(ledger.row == "seed") & (ledger.claim == "current")]
    stated = seeds[seeds.setting == "stated"]
    assert list(stated.run) == [f"seed {42 + k}" for k in range(10)]
    assert list(stated.verdict[:2]) == ["detected", "no stationary state to test"]
    fig1 = ledger[(ledger.row == "seed") & (ledger.claim == "fig1b_low_rank")]
    # the replicas of fc-mnist7, not fc-mnist7-authors, in the stated setting
    assert list(fig1[fig1.setting == "stated"].run) == ["fc-mnist7", "fc-mnist7-seed2",
                                                         "fc-mnist7-seed3"]  # fmt: skip
    assert list(fig1[fig1.setting == "stated"].estimate) == RANKS["fc-mnist7"]
    fig3a = ledger[(ledger.row == "seed") & (ledger.claim == "fig3a_low_frequency")]
    assert set(fig3a[fig3a.setting == "authors"].verdict) == {"significant at 0.01"}


def test_one_training_seed_and_a_missing_variant():
    table = claims_table(
        diffusion({k: v[:1] for k, v in RANKS.items()}),
        FIGURES,
        trajectory(3)[lambda t: t.variant == "stated"],
    )
    p = pooled(table).set_index(["claim", "setting"])
    r = p.loc[("fig1b_low_rank", "stated")]
    assert r.verdict == pl.UNDECIDED and r.run == "1 seed" and "above 5" in r.reason
    assert p.loc[("fig3a_low_frequency", "authors")].verdict == pl.NOT_TESTED
    assert p.loc[("lemma20_q", "stated")].reason == "no null value measured"
    assert p.loc[("fig3a_low_frequency", "stated")].calibration == "not measured"


def test_rows_are_grouped_by_claim_then_setting(ledger):
    p = pooled(ledger)
    claims = list(dict.fromkeys(p.claim))
    for claim in claims:
        at = [i for i, c in enumerate(p.claim) if c == claim]
        assert at == list(range(at[0], at[0] + len(at))), claim  # contiguous
    assert claims.index("fig3b_band_vs_shuffled") + 1 == claims.index("fig3b_band_vs_walk")


def test_command_line_prints_the_pooled_rows_and_the_rates(ledger, tmp_path):
    from sgdvi.claims.__main__ import report

    (tmp_path / "tables").mkdir()
    (tmp_path / "claims").mkdir()
    ledger.to_parquet(tmp_path / "tables" / "claims.parquet", index=False)
    rates = calibration().assign(low=0.0, high=1.0)
    rates.to_parquet(tmp_path / "claims" / "calibration_stated.parquet", index=False)
    rates.to_parquet(tmp_path / "claims" / "calibration_stated_rows.parquet", index=False)
    text = report(tmp_path)
    lines = text.split("\n\n")[0].splitlines()
    assert len(lines) == 1 + len(pooled(ledger))  # header and one line per pooled row
    assert "fig1b_low_rank" in lines[3] and lines[3].rstrip().endswith("fails")
    assert text.split("\n\n")[1].count("fig3b") == 2  # the _rows file is not read twice
