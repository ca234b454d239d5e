"""The HTML report of the tiny workflow, opened in a real browser (headless Chromium).

``snakemake --report`` is built from the session's shared tiny run, opened, screenshotted, and
``tests/report_probe.js`` evaluated in it (headless Chromium driven over the DevTools protocol),
and the probe records what a reader would see: the landing page (the comparison with the
paper first, the run configuration after it), and every result reached through the report's
own category -> subcategory navigation and shown as its "eye" button shows it. Figures must
decode in the browser and carry ink; tables must be non-empty. CI installs Debian's
``chromium`` (``.ci/install-chromium``); without it these tests are skipped.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sgdvi.infra.parquet import read_table

from conftest import run_snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = Path(__file__).with_name("report_probe.js")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)"),
]


def _onto_3_and_4(read_end: int, write_end: int) -> None:
    """In the child: the DevTools pipe's ends on fds 3 (commands in) and 4 (answers out)."""
    high_r = fcntl.fcntl(read_end, fcntl.F_DUPFD, 100)
    high_w = fcntl.fcntl(write_end, fcntl.F_DUPFD, 100)
    os.dup2(high_r, 3)
    os.dup2(high_w, 4)


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages ending in NUL on file descriptors 3 and 4), standard library only."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000) -> None:
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads fd 3
        self._out_r, out_w = os.pipe()  # Chromium writes fd 4, we read
        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
            ],
            close_fds=False,  # fds 3 and 4 are made in the child, below
            preexec_fn=lambda: _onto_3_and_4(cmd_r, out_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(out_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: bool = False, timeout: float = 120, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(timeout)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, event: str, timeout: float = 120) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == event:
                return self.events.pop(i)
        while True:
            e = self._read(timeout)
            if e.get("method") == event:
                return e
            self.events.append(e)

    def open(self, url: str) -> None:
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str, timeout: float = 300):
        result = self.send(
            "Runtime.evaluate",
            session=True,
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"]["value"]

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", session=True)["data"])

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions the page threw so far."""
        return [
            json.dumps(e["params"]["exceptionDetails"])[:500]
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._out_r)


@pytest.fixture(scope="module")
def report_html(tiny_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    run_snakemake(tiny_built, "--report", str(out))
    assert out.stat().st_size > 100_000
    return out


@pytest.fixture(scope="module")
def browser(report_html: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """The report opened in headless Chromium (1400 x 1000 window)."""
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        b.open(report_html.as_uri())
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def landing_png(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A screenshot of the landing page as it first appears (before the probe navigates)."""
    time.sleep(1.0)  # let React draw the page
    shot = tmp_path_factory.mktemp("screenshot") / "landing.png"
    shot.write_bytes(browser.screenshot())
    return shot


@pytest.fixture(scope="module")
def probe(browser: Browser, landing_png: Path) -> dict:
    """What tests/report_probe.js saw, reading the report as a reader would."""
    seen = json.loads(browser.evaluate(PROBE.read_text()))
    seen["exceptions"] = browser.exceptions()
    return seen


def figure_files(work: Path) -> list[Path]:
    """Every figure of the run: the PNG of each PDF under results/figures/."""
    pngs = sorted((work / "results" / "figures").glob("*.png"))
    assert pngs
    return pngs


def test_the_page_runs_without_javascript_errors(probe):
    assert probe["errors"] == [] and probe["exceptions"] == []


def test_landing_page_shows_the_comparison_first(probe, tiny_built):
    landing = probe["landing"]
    assert 0 <= landing["found_at"] < landing["config_at"], landing
    assert landing["json_blocks"] == 0  # no long JSON dump of the config any more
    comparison = tiny_built / "results" / "tables" / "paper_comparison.parquet"
    if comparison.exists():
        assert landing["has_comparison_table"]
        assert landing["comparison_rows"] == len(read_table(comparison))
    expected = sorted(p.stem for p in figure_files(tiny_built) if re.match(r"fig[13]", p.stem))
    assert expected, "the tiny run makes Figs. 1 and 3"
    thumbs = landing["thumbnails"]
    assert sorted(t["alt"] for t in thumbs) == expected
    for t in thumbs:
        assert t["width"] >= 200 and t["height"] >= 100, t
        assert t["link"].startswith("javascript:app.showResultInfo("), t
        assert t["opens"] == f"results/figures/{t['alt']}.png", t  # clicking opens the figure


def test_every_figure_is_reachable_and_rendered(probe, tiny_built):
    seen = probe["results"]
    for png in figure_files(tiny_built):
        key = str(png.relative_to(tiny_built))
        assert key in seen, f"{key} is not in the report's navigation"
        rec = seen[key]
        assert rec["reached"], f"{rec['category']} / {rec['subcategory']} cannot be opened"
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
        assert rec["reached"] and rec["listed"] and rec["shown"], (key, rec)
        assert rec["bytes"] > 0 and rec["lines"] >= 2, (key, rec)


def test_landing_page_screenshot_is_not_blank(landing_png):
    """The first screen shows text, the comparison table and the top of the page (Snakemake
    centres its content vertically; workflow.rst's style block keeps the top visible)."""
    rgb = np.asarray(Image.open(landing_png).convert("RGB"), dtype=np.int16)
    assert rgb.shape[:2] == (1000, 1400)
    ink = (np.abs(rgb - 255).sum(axis=-1) > 30).mean()
    assert ink > 0.05, ink  # menu, text and tables, not the loading screen
