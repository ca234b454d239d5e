"""Report plumbing: the run-configuration page renders for every shipped config, captions exist,
and the benchmark table reads Snakemake benchmark files correctly."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment

from sgdvi.benchmark_table import benchmark_table, find_benchmarks, read_benchmark

from conftest import deep_update

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "workflow" / "report"


def merged(*files: Path) -> dict:
    config: dict = {}
    for f in files:
        config = deep_update(config, yaml.safe_load(f.read_text()) or {})
    return config


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


@pytest.mark.parametrize("name", CONFIGS)
def test_workflow_description_renders_the_run_configuration(name):
    config = merged(*CONFIGS[name])

    class Snakemake:
        pass

    Snakemake.config = config
    _, html = render_rst((REPORT / "workflow.rst").read_text(), snakemake=Snakemake)
    assert "system-message" not in html, re.findall(r"system-message.*?</div>", html, re.S)[:3]
    assert "Run configuration" in html
    for experiment in config["run"]:
        assert f"<code>{experiment}</code>" in html or experiment in html
        epochs = config["experiments"][experiment]["epochs"]
        assert re.search(rf"<td>(<p>)?{epochs}(</p>)?</td>", html), (experiment, epochs)
    # the whole config is there as JSON, e.g. the number of SDE particles
    assert str(config["theory"]["sde"]["particles"]) in html


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
