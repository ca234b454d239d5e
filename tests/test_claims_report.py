"""The report's first page leads with the claims ledger: its pooled rows (not the per-seed
ones) as a table before the comparison with the paper, rendered by docutils as Snakemake's
report does."""

from __future__ import annotations

import pandas as pd
import pytest
from docutils.core import publish_parts
from test_claims_ledger import FIGURES, RANKS, calibration, diffusion, trajectory

from sgdvi.claims.ledger import claims_table, pooled
from sgdvi.report_landing import compact_ledger, landing_rst

pytestmark = pytest.mark.filterwarnings("ignore:Argument .writer_name.:PendingDeprecationWarning")


def html_of(rst: str) -> str:
    return publish_parts(
        rst,
        writer_name="html",
        settings_overrides={"report_level": 1, "halt_level": 5, "warning_stream": False},
    )["html_body"]


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    return claims_table(diffusion(RANKS), FIGURES, trajectory(), calibration())


def test_compact_ledger_has_one_row_per_pooled_claim(ledger):
    compact = compact_ledger(ledger)
    assert len(compact) == len(pooled(ledger)) < len(ledger)
    fc = compact[(compact.paper == "Fig. 1b") & (compact.setting == "stated")].iloc[0]
    assert fc.verdict == "fails" and fc.seeds == "3" and fc.estimate.startswith("16.3 [15.2, 17.5")
    band = compact[compact.statement.str.contains("shuffled")].iloc[0]
    assert "miscalibrated" in band.why and band.verdict == "undecided"


def test_landing_leads_with_the_ledger(ledger):
    comparison = pd.DataFrame([{"figure": "Fig. 1a", "quantity": "rank %", "paper": 1.8,
                                "stated": 2.26, "authors": 2.26}])  # fmt: skip
    html = html_of(landing_rst(comparison, [], ledger))
    assert "system-message" not in html
    assert 0 <= html.index('class="ledger') < html.index('class="comparison')
    table = html[html.index('class="ledger') : html.index('class="comparison')]
    assert table.count("<tr>") == 1 + len(pooled(ledger))  # header + pooled rows
    for word in ("holds", "fails", "undecided", "not tested"):
        assert f"<p>{word}</p>" in table or f"<td>{word}</td>" in table
    # without a ledger the page is as before
    assert 'class="ledger' not in html_of(landing_rst(comparison, []))
