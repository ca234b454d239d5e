"""Report plumbing: the landing page (findings first, then the run configuration as a compact
table) renders for every shipped config, captions exist, and the benchmark table reads
Snakemake benchmark files correctly. The report in a browser: tests/test_report_browser.py."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment

from sgdvi.benchmark_table import benchmark_table, find_benchmarks, read_benchmark
from sgdvi.config import load
from sgdvi.report_landing import landing_rst

from conftest import deep_update

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "workflow" / "report"


def merged(*files: Path) -> dict:
    """The config the jobs see: the files merged in order, validated, schema defaults filled."""
    config: dict = {}
    for f in files:
        config = deep_update(config, yaml.safe_load(f.read_text()) or {})
    return load(config)


pytestmark = pytest.mark.filterwarnings("ignore:Argument .writer_name.:PendingDeprecationWarning")


def render_rst(template: str, **context) -> tuple[str, str]:
    """Render like Snakemake's report does (Jinja2, then docutils); (rst, html body)."""
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    rst = env.from_string(template).render(**context)
    html = publish_parts(
        rst,
        writer_name="html",
        settings_overrides={"report_level": 1, "halt_level": 5, "warning_stream": False},
    )["html_body"]
    return rst, html


CONFIGS = {
    "paper": [REPO / "config" / "config.yaml"],
    "quick": [REPO / "config" / "config.yaml", REPO / "config" / "quick.yaml"],
    "tiny": [REPO / "config" / "config.yaml", REPO / "tests" / "tiny.yaml"],
}


def flat_leaves(node: dict, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every setting below ``node`` (lists and scalars are leaves)."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out |= flat_leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


class Snakemake:
    config: dict = {}


@pytest.mark.parametrize("name", CONFIGS)
def test_workflow_description_renders_the_run_configuration(name):
    config = merged(*CONFIGS[name])
    Snakemake.config = config
    _, html = render_rst((REPORT / "workflow.rst").read_text(), snakemake=Snakemake, files=[])
    assert "system-message" not in html, re.findall(r"system-message.*?</div>", html, re.S)[:3]
    # the findings first, the configuration after them
    assert 0 <= html.index("What this run found") < html.index("Run configuration")
    text = strip_tags(html)
    for experiment in config["run"]:
        assert experiment in text
        epochs = config["experiments"][experiment]["epochs"]
        assert re.search(rf"<td>(<p>)?{epochs}(</p>)?</td>", html), (experiment, epochs)
    # every setting outside experiments/datasets/run is in the table, once, with its value:
    # a flat two-column table, not a JSON block
    assert "json" not in html and "literal-block" not in html
    cells = [
        (strip_tags(k), strip_tags(v))
        for k, v in re.findall(
            r"<tr><td>(.*?)</td>\s*<td>(.*?)</td>\s*</tr>", html[html.index("All settings") :], re.S
        )
    ]
    rows = dict(cells)
    assert len(rows) == len(cells)
    settings = {k: v for k, v in config.items() if k not in ("experiments", "datasets", "run")}
    for key, value in flat_leaves(settings).items():
        owner = next((r for r in rows if key == r or key.startswith(r + ".")), None)
        assert owner is not None, f"{key} is not in the configuration table"
        shown = value if isinstance(value, str) else json.dumps(value)
        assert shown in rows[owner], (key, shown, rows[owner][:200])
    # a row per section or setting, not one per line of YAML
    assert len(rows) < 0.8 * len(flat_leaves(config))


def strip_tags(html: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", html))


class Record:
    """What the template reads of Snakemake's FileRecord: the output's file name."""

    def __init__(self, path: str) -> None:
        self.target = Path(path).name


WHOLE_RUN = [Record("results/figures/fig1a.png"), Record("results/tables/benchmarks.tsv")]


def test_landing_section_is_included_when_the_report_covers_the_whole_run(tmp_path, monkeypatch):
    """A report of the whole workflow includes results/report/landing.rst."""
    landing = tmp_path / "results" / "report" / "landing.rst"
    landing.parent.mkdir(parents=True)
    frame = pd.DataFrame(
        [
            {
                "figure": "fig1a",
                "quantity": "rank %",
                "paper": 1.8,
                "stated": 2.26,
                "authors": 2.26,
                "claim": None,
                "holds_stated": None,
                "holds_authors": None,
            }
        ]
    )
    landing.write_text(landing_rst(frame, []))
    monkeypatch.chdir(tmp_path)
    Snakemake.config = merged(*CONFIGS["tiny"])
    _, html = render_rst(
        (REPORT / "workflow.rst").read_text(), snakemake=Snakemake, files=WHOLE_RUN
    )
    assert "system-message" not in html
    table = html[html.index('class="comparison') :]
    assert "<td><p>fig1a</p></td>" in table or "<td>fig1a</td>" in table
    assert "2.26" in table and html.index("2.26") < html.index("Run configuration")
    assert "covers only the targets" not in html


@pytest.mark.parametrize("files", [[], [Record("results/figures/fig1a.png")]])
def test_a_report_of_some_targets_renders_without_the_landing_section(files, tmp_path, monkeypatch):
    """``snakemake results/figures/fig1a.pdf --report r.html``: the landing page is not part of
    that run and does not exist, so the description says so instead of including it."""
    monkeypatch.chdir(tmp_path)  # no results/report/landing.rst here
    Snakemake.config = merged(*CONFIGS["tiny"])
    # docutils raises on an include of a missing file, as in Snakemake's report
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    rst = env.from_string((REPORT / "workflow.rst").read_text()).render(
        snakemake=Snakemake, files=files
    )
    html = publish_parts(rst, writer_name="html")["html_body"]
    assert "include::" not in rst and "system-message" not in html
    assert "covers only the targets named on the command line" in strip_tags(html)
    assert 0 <= html.index("What this run found") < html.index("Run configuration")


def rules_text() -> str:
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    return "\n".join(f.read_text() for f in files)


def test_every_caption_named_by_a_rule_exists():
    captions = re.findall(r"caption=\"([^\"]+)\"", rules_text())
    assert captions, "no rule marks an output for the report"
    for caption in captions:
        path = (REPO / "workflow" / "rules" / caption).resolve()
        assert path.exists(), f"caption {caption} (relative to workflow/rules/) does not exist"
        assert path.parent == REPORT


def test_global_report_description_is_declared():
    assert re.search(r'^report:\s*"workflow/report/workflow.rst"', rules_text(), re.M)


def write_benchmark(path: Path, rows: list[dict]) -> None:
    """A benchmark TSV as Snakemake writes it (one row per repeat)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['s']}\t0:00:00\t{r['max_rss']}\t1.0\t1.0\t1.0\t0.00\t0.00\t"
            f"{r['mean_load']}\t{r['cpu_time']}"
        )
    path.write_text("\n".join(lines) + "\n")


def test_benchmark_table_one_row_per_job_slowest_first(tmp_path):
    root = tmp_path / "benchmarks"
    write_benchmark(
        root / "train" / "lenet-mnist.tsv",
        [{"s": 3725.4, "max_rss": 812.25, "mean_load": 97.0, "cpu_time": 3650.1}],
    )
    # two repeats: the last one counts
    write_benchmark(
        root / "diffusion" / "lenet-mnist" / "0.2.tsv",
        [
            {"s": 10.0, "max_rss": 100.0, "mean_load": 50.0, "cpu_time": 5.0},
            {"s": 12.5, "max_rss": 2048.0, "mean_load": 180.0, "cpu_time": 22.5},
        ],
    )
    write_benchmark(
        root / "data" / "prepare_mnist28.tsv",
        [{"s": 0.4, "max_rss": 300.0, "mean_load": 0.0, "cpu_time": 0.0}],
    )
    paths = find_benchmarks(root)
    assert len(paths) == 3
    table = benchmark_table(paths, root)
    assert list(table["job"]) == ["lenet-mnist", "lenet-mnist/0.2", "prepare_mnist28"]
    assert list(table["stage"]) == ["train", "diffusion", "data"]
    assert list(table["wall time"]) == ["1:02:05", "0:00:12", "0:00:00"]
    assert table.loc[1, "peak memory (MB)"] == 2048.0
    assert table.loc[1, "CPU seconds"] == 22.5
    assert table.loc[0, "seconds"] == 3725.4
    # round trip through the TSV the rule writes
    out = tmp_path / "benchmarks.tsv"
    table.to_csv(out, sep="\t", index=False)
    again = pd.read_csv(out, sep="\t")
    assert again.shape == (3, table.shape[1])


def test_benchmark_table_names_a_broken_file(tmp_path):
    bad = tmp_path / "b" / "x.tsv"
    bad.parent.mkdir()
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"x\.tsv.*not a Snakemake benchmark"):
        read_benchmark(bad)
    assert find_benchmarks(tmp_path / "missing") == []


def test_benchmark_caption_renders_the_table(tmp_path):
    root = tmp_path / "benchmarks"
    write_benchmark(
        root / "train" / "fc-mnist7.tsv",
        [{"s": 61.0, "max_rss": 512.0, "mean_load": 99.0, "cpu_time": 60.0}],
    )
    out = tmp_path / "benchmarks.tsv"
    benchmark_table(find_benchmarks(root), root).to_csv(out, sep="\t", index=False)

    class Snakemake:
        config = {"device": "cpu"}
        output = type("Out", (), {"table": str(out)})()

    _, html = render_rst((REPORT / "benchmarks.rst").read_text(), snakemake=Snakemake)
    assert "system-message" not in html
    assert "0:01:01" in html and "fc-mnist7" in html


def test_landing_rst_embeds_thumbnails_that_open_the_figure(tmp_path):
    import base64
    import io

    from PIL import Image, ImageDraw

    png = tmp_path / "fig1a.png"
    im = Image.new("RGB", (1500, 900), "white")
    ImageDraw.Draw(im).rectangle((100, 100, 1400, 800), outline="black", width=9)
    im.save(png)
    frame = pd.DataFrame(
        [
            {
                "figure": "fig1a",
                "quantity": "rank %",
                "paper": 1.8,
                "stated": 2.2634,
                "authors": None,
                "claim": None,
                "holds_stated": None,
                "holds_authors": None,
            },
            {
                "figure": "Remark 16",
                "quantity": "rank ratio",
                "paper": None,
                "stated": 3.1,
                "authors": 0.4,
                "claim": "lenet has the larger rank",
                "holds_stated": True,
                "holds_authors": False,
            },
        ]
    )
    rst = landing_rst(frame, [("fig1a", png, "results/figures/fig1a.png")])
    _, html = render_rst(rst)
    assert "system-message" not in html
    assert html.count("<tr>") == 3  # heading + two rows
    assert "2.26" in html and "2.2634" not in html  # 3 significant digits
    assert "claim: lenet has the larger rank" in html and "yes / no" in html
    link = "javascript:app.showResultInfo('results/figures/fig1a.png')"
    assert f'href="{link}"' in html
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    with Image.open(io.BytesIO(base64.b64decode(uri))) as thumb:
        assert thumb.size == (640, 384)  # shrunk to 640 px wide, aspect kept
