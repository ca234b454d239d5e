"""Print the pooled rows of a claims ledger, and the measured false-positive rates:

python -m sgdvi.claims results              # results/tables/claims.parquet, results/claims/
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from sgdvi.claims.ledger import pooled
from sgdvi.infra.parquet import read_table

LEDGER = ["claim", "setting", "n_seeds", "estimate", "low", "high", "null", "p_value", "verdict"]
RATES = ["variant", "procedure", "surrogate", "n_surrogates", "value", "low", "high", "level"]


def report(results: Path) -> str:
    """The ledger's pooled rows and the calibration rows under ``results`` as text."""
    table = pooled(read_table(results / "tables" / "claims.parquet"))
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        out = [table[LEDGER].to_string(index=False, float_format="{:.4g}".format)]
        files = sorted((results / "claims").glob("calibration_*.parquet"))
        details = [read_table(f) for f in files if not f.stem.endswith("_rows")]
        if details:
            cal = pd.concat(details, ignore_index=True)[[*RATES, "miscalibrated"]]
            out.append(cal.to_string(index=False, float_format="{:.4g}".format))
    return "\n\n".join(out)


if __name__ == "__main__":
    print(report(Path(sys.argv[1] if len(sys.argv) > 1 else "results")))
