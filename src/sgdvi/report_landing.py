"""The landing page of ``snakemake --report``: what the run found, before how it was run.

``workflow/report/workflow.rst`` (the report's first page) includes the reStructuredText that
:func:`landing_rst` writes to ``results/report/landing.rst``: first the claims ledger (one
verdict per claim of the paper and setting, pooled over seeds: :mod:`sgdvi.claims.ledger`;
the per-seed rows are in ``results/tables/claims.csv``), then the comparison with the paper as a
compact table (the figure, the quantity, the paper's value, ours under the paper's stated
setting and under the authors' actual setting, and whether each claim holds; the full table with
ratios, sources and notes is ``results/tables/paper_comparison.csv`` in the report), followed by
thumbnails of the figures that carry it (Figs. 1 and 3 of the paper), each a link to the
figure in the report. The thumbnails are embedded as ``data:`` URIs so that the report stays
one self-contained HTML file.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

#: columns of the landing table: (column of the comparison table, heading)
COMPACT_COLUMNS = (
    ("figure", "figure"),
    ("quantity", "quantity"),
    ("paper", "paper"),
    ("stated", "ours: stated setting"),
    ("authors", "ours: authors' setting"),
    ("holds", "claim holds (stated / authors)"),
)

#: columns of the landing ledger: (key of :func:`compact_ledger`'s rows, heading)
LEDGER_COLUMNS = (
    ("paper", "paper"),
    ("statement", "claim"),
    ("setting", "setting"),
    ("seeds", "seeds"),
    ("estimate", "estimate [95 % interval]"),
    ("p", "pooled p"),
    ("verdict", "verdict"),
    ("why", "why"),
)

#: largest width of an embedded thumbnail, in pixels
THUMB_WIDTH = 640


def fmt(value: Any) -> str:
    """A cell: numbers with 3 significant digits, booleans as yes/no, missing as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def compact_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table (``sgdvi.comparison.COLUMNS``) cut to what a reader needs first.

    Where the paper prints no number (``paper`` empty), its claim stands in the paper column.
    """
    rows = []
    for r in table.to_dict("records"):
        paper = fmt(r.get("paper"))
        if not paper and fmt(r.get("claim")):
            paper = f"claim: {r['claim']}"
        holds = [fmt(r.get("holds_stated")), fmt(r.get("holds_authors"))]
        rows.append(
            {
                "figure": fmt(r.get("figure")),
                "quantity": fmt(r.get("quantity")),
                "paper": paper,
                "stated": fmt(r.get("stated")),
                "authors": fmt(r.get("authors")),
                "holds": " / ".join(h or "–" for h in holds) if any(holds) else "",
            }
        )
    return pd.DataFrame(rows, columns=[c for c, _ in COMPACT_COLUMNS])


def compact_ledger(ledger: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows of the claims ledger (``sgdvi.claims.ledger.COLUMNS``) as a reader
    needs them first: the claim, its setting, how many seeds, the estimate with its interval,
    the pooled p-value, the verdict and why (with the calibration warning where one applies).
    """
    rows = []
    for r in ledger[ledger["row"] == "pooled"].to_dict("records"):
        estimate = fmt(r.get("estimate"))
        if estimate and fmt(r.get("low")):
            estimate += f" [{fmt(r['low'])}, {fmt(r['high'])}]"
        why = fmt(r.get("reason"))
        if "miscalibrated" in fmt(r.get("calibration")):
            why += f" (calibration: {r['calibration']})"
        rows.append(
            {
                "paper": fmt(r.get("paper")),
                "statement": fmt(r.get("statement")),
                "setting": fmt(r.get("setting")),
                "seeds": fmt(r.get("n_seeds")) if r.get("n_seeds") else "",
                "estimate": estimate,
                "p": fmt(r.get("p_value")),
                "verdict": fmt(r.get("verdict")),
                "why": why,
            }
        )
    return pd.DataFrame(rows, columns=[c for c, _ in LEDGER_COLUMNS])


def _rst_cell(text: str) -> str:
    """One list-table cell (a single line; rst markup characters escaped)."""
    text = " ".join(str(text).split())
    for ch in ("\\", "*", "`", "|", "_"):
        text = text.replace(ch, "\\" + ch)
    return text or ".."


def list_table(
    frame: pd.DataFrame, headings: Sequence[str], title: str, css_class: str = "comparison"
) -> list[str]:
    """``frame`` as an rst ``list-table`` with ``headings`` (HTML class ``css_class``)."""
    lines = [f".. list-table:: {title}", "   :header-rows: 1", f"   :class: {css_class}", ""]
    for i, h in enumerate(headings):
        lines.append(("   * - " if i == 0 else "     - ") + _rst_cell(h))
    for row in frame.itertuples(index=False):
        for i, cell in enumerate(row):
            lines.append(("   * - " if i == 0 else "     - ") + _rst_cell(cell))
    return lines + [""]


def thumbnail_uri(png: Path, width: int = THUMB_WIDTH) -> str:
    """``png`` shrunk to at most ``width`` pixels wide, as a ``data:image/png;base64`` URI."""
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def result_link(path: str) -> str:
    """The report's link that opens result ``path`` (as Snakemake's own rst links do)."""
    return f"javascript:app.showResultInfo('{quote(path)}')"


def landing_rst(
    comparison: pd.DataFrame | None,
    figures: Sequence[tuple[str, Path, str]],
    ledger: pd.DataFrame | None = None,
) -> str:
    """The landing section: the claims ledger's pooled rows (when given), the compact
    comparison table, then one thumbnail per figure.

    ``figures``: (name, PNG file, path of the figure's result in the report) for each figure.
    """
    out: list[str] = []
    if ledger is not None and len(ledger):
        out += list_table(
            compact_ledger(ledger),
            [h for _, h in LEDGER_COLUMNS],
            "The paper's claims, pooled over seeds (per-seed rows, tests and calibration: "
            "claims.csv in *Comparison with the paper*)",
            css_class="ledger",
        )
    if comparison is not None and len(comparison):
        out += list_table(
            compact_comparison(comparison),
            [h for _, h in COMPACT_COLUMNS],
            "The paper's numbers and ours (full table with ratios, sources and notes: "
            "paper_comparison.csv in *Comparison with the paper*)",
        )
    if figures:
        out += ["The figures behind these numbers (click one to open it):", ""]
        for name, png, target in figures:
            uri = thumbnail_uri(png)
            # docutils drops lines over 10,000 characters; an image URI may span lines
            out += [".. figure::", *(f"   {uri[i : i + 76]}" for i in range(0, len(uri), 76))]
            out += [
                "   :width: 100%",
                f"   :alt: {name}",
                f"   :target: {result_link(target)}",
                "",
                f"   ``{name}``",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"
