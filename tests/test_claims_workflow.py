"""The claims ledger through the workflow (the session's shared tiny build, ``tiny_built``):
one calibration per trajectory variant whose rows reach theory.parquet, the ledger's tables
with a pooled row per claim and setting and the per-seed rows, and the report's first page
leading with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sgdvi.claims.ledger import pooled
from sgdvi.infra.parquet import read_table


@pytest.mark.slow
def test_calibration_ledger_and_landing(tiny_built: Path):
    res = tiny_built / "results"
    cfg = yaml.safe_load((tiny_built / "config" / "tiny.yaml").read_text())
    seeds = cfg["trajectory"]["seeds"]
    details = read_table(res / "claims" / "calibration_stated.parquet")
    n = cfg["claims"]["calibration"]["n_surrogates"]
    current = details[details.procedure == "current"]
    assert set(current.surrogate) == {"walk", "ar1"} and (current.n_surrogates == n).all()
    theory = read_table(res / "tables" / "theory.parquet")
    rates = theory[(theory.check == "calibration") & theory.passed.notna()]
    assert len(rates) == 4 and (rates.tolerance == 2 * rates.reference).all()
    ledger = read_table(res / "tables" / "claims.parquet")
    p = pooled(ledger).set_index(["claim", "setting"])
    # the tiny config runs the stated trajectory only (authors' variant off) and one
    # training seed per experiment
    assert p.loc[("current", "stated"), "n_seeds"] == len(seeds)
    assert p.loc[("current", "authors"), "verdict"] == "not tested"
    assert p.loc[("fig1b_low_rank", "stated"), "n_seeds"] == 1
    seed_rows = ledger[(ledger.row == "seed") & (ledger.claim == "fig3a_low_frequency")]
    assert list(seed_rows.run) == [f"seed {s}" for s in seeds]
    csv = (res / "tables" / "claims.csv").read_text()
    assert csv.splitlines()[0].startswith("claim,paper,statement,setting,row")
    landing = (res / "report" / "landing.rst").read_text()
    assert 0 <= landing.index(":class: ledger") < landing.index(":class: comparison")
