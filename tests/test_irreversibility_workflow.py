"""The probability-current test through the workflow: the tiny profile builds the validation
rows, one current.{npz,parquet} per trajectory seed and the figure (read from the session's
shared tiny build, ``tiny_built``: the default targets include the irreversibility figure and
trajectory.parquet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sgdvi.infra.parquet import read_table
from sgdvi.irreversibility.sgd import trajectory_rows


@pytest.mark.slow
def test_irreversibility_rules(tiny_built: Path):
    res = tiny_built / "results"
    assert (res / "figures" / "irreversibility.pdf").stat().st_size > 0
    val = read_table(res / "theory" / "irreversibility.parquet")
    lambdas = yaml.safe_load((tiny_built / "config" / "config.yaml").read_text())["theory"][
        "lambdas"
    ]
    dw = val[(val.quantity == "L_12") & val.lam.notna()]
    assert sorted(dw.lam) == sorted(lambdas)
    assert dw.set_index("lam").reference[1.5] == pytest.approx(np.pi * 1.5 / 7.6235, rel=1e-4)
    assert val[val.quantity == "L_12"].passed.all(), val
    currents = sorted(res.rglob("seed*/current.parquet"))
    assert currents, "no current.parquet"
    tables = [read_table(p) for p in currents]
    for t in tables:
        assert set(t.projection) == {"diffusion", "pca-heldout"}
        assert t.verdict.nunique() == 1 and isinstance(t.verdict.iloc[0], str)
        assert (t.drift_per_epoch > 0).all()
    rows = trajectory_rows(tables)
    assert len(rows) == len(currents) and "current_verdict" in rows
    assert (res / "figures" / "irreversibility.png").stat().st_size > 10_000
    traj = read_table(res / "tables" / "trajectory.parquet")
    assert traj.current_verdict.notna().all() and len(traj) == len(currents)
