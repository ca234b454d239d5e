"""The HTML report of the tiny workflow, opened in a real browser (headless Chromium).

``snakemake --report`` is built from the session's shared tiny run. A copy of the report gets
``tests/report_probe.js`` appended; Chromium runs it (``--dump-dom`` after a virtual-time
budget), and it records what a reader would see: the landing page (the comparison with the
paper first, the run configuration after it), and every result reached through the report's
own category -> subcategory navigation and shown as its "eye" button shows it. Figures must
decode in the browser and carry ink; tables must be non-empty. CI installs Debian's
``chromium`` (``.ci/install-chromium``); without it these tests are skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import run_snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = Path(__file__).with_name("report_probe.js")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)"),
]


def chromium(profile: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile (root in CI: no sandbox)."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report_html(tiny_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    run_snakemake(tiny_built, "--report", str(out))
    assert out.stat().st_size > 100_000
    return out


@pytest.fixture(scope="module")
def probe(report_html: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the probe saw in Chromium (JSON written into <pre id="probe-result">)."""
    tmp = tmp_path_factory.mktemp("probe")
    html = report_html.read_text(encoding="utf-8")
    at = html.rindex("</body>")
    page = tmp / "report-probe.html"
    script = f"<script>{PROBE.read_text()}</script>\n"
    page.write_text(html[:at] + script + html[at:], encoding="utf-8")
    proc = chromium(tmp / "profile", "--virtual-time-budget=60000", "--dump-dom", page.as_uri())
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe did not finish: {proc.stderr[-3000:]}"
    text = m.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


def figure_files(work: Path) -> list[Path]:
    """Every figure of the run: the PNG of each PDF under results/figures/."""
    pngs = sorted((work / "results" / "figures").glob("*.png"))
    assert pngs
    return pngs


def test_the_page_runs_without_javascript_errors(probe):
    assert probe["errors"] == []


def test_landing_page_shows_the_comparison_first(probe, tiny_built):
    landing = probe["landing"]
    assert 0 <= landing["found_at"] < landing["config_at"], landing
    assert landing["json_blocks"] == 0  # no long JSON dump of the config any more
    comparison = tiny_built / "results" / "tables" / "paper_comparison.parquet"
    if comparison.exists():
        assert landing["has_comparison_table"]
        assert landing["comparison_rows"] == len(pd.read_parquet(comparison))
    expected = sorted(p.stem for p in figure_files(tiny_built) if re.match(r"fig[13]", p.stem))
    assert expected, "the tiny run makes Figs. 1 and 3"
    thumbs = landing["thumbnails"]
    assert sorted(t["alt"] for t in thumbs) == expected
    for t in thumbs:
        assert t["width"] >= 200 and t["height"] >= 100, t
        assert t["link"].startswith("javascript:app.showResultInfo("), t


def test_every_figure_is_reachable_and_rendered(probe, tiny_built):
    seen = probe["results"]
    for png in figure_files(tiny_built):
        key = str(png.relative_to(tiny_built))
        assert key in seen, f"{key} is not in the report's navigation"
        rec = seen[key]
        assert rec["listed"], f"{key} is not listed under {rec['category']} / {rec['subcategory']}"
        assert rec["mime"] == "image/png" and rec["shown"], rec
        with Image.open(png) as im:
            assert (rec["width"], rec["height"]) == im.size  # the browser decoded all of it
        assert rec["shown_width"] == rec["width"]
        assert 0.01 < rec["ink"] < 0.9, (key, rec["ink"])  # not blank, not a solid block
        assert rec["caption_length"] > 200, f"{key} has no real caption"


def test_every_table_is_reachable(probe):
    tables = {k: v for k, v in probe["results"].items() if not v["mime"].startswith("image/")}
    assert any(k.endswith("benchmarks.tsv") for k in tables)
    for key, rec in tables.items():
        assert rec["listed"], key
        assert rec["bytes"] > 0 and rec["lines"] >= 2, (key, rec)


def test_landing_page_screenshot_is_not_blank(report_html, tmp_path):
    shot = tmp_path / "landing.png"
    proc = chromium(
        tmp_path / "profile",
        "--window-size=1400,1000",
        "--virtual-time-budget=20000",
        f"--screenshot={shot}",
        report_html.as_uri(),
    )
    assert shot.exists(), proc.stderr[-2000:]
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert rgb.shape[:2] == (1000, 1400)
    ink = (np.abs(rgb - 255).sum(axis=-1) > 30).mean()
    assert ink > 0.02, ink  # text, tables and thumbnails, not the loading screen only
