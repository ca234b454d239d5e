"""Config errors in a few lines: key path, what is wrong, the closest valid key, and the
``1.0e+6`` hint for a number YAML reads as a string (Snakemake's own ``validate`` printed the
whole schema and config, hundreds of lines, for one misspelt key). The errors come from the
one entry point ``sgdvi.config.load``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sgdvi.config import ConfigError, load
from sgdvi.config.schema import number_hint

from conftest import SNAKEMAKE, deep_update

REPO = Path(__file__).resolve().parents[1]

# (bad YAML merged over config/config.yaml, lines every message must contain)
CASES = {
    "misspelt top-level key": ("epochz: 3\n", ["config key epochz: unknown key", "valid keys"]),
    "misspelt section": (
        "trainig: {threads: 2}\n",
        ["config key trainig: unknown key", "did you mean training?"],
    ),
    "misspelt nested key": (
        "experiments:\n  lenet-mnist:\n    batchsize: 3\n",
        [
            "config key experiments.lenet-mnist.batchsize: unknown key",
            "did you mean experiments.lenet-mnist.batch_size?",
        ],
    ),
    "1e6 read as text": (
        "experiments:\n  lenet-mnist:\n    lr_schedule: [[0, 1e6]]\n",
        [
            "config key experiments.lenet-mnist.lr_schedule.0.1: '1e6' is not of type 'number'",
            "write it as 1.0e+6",
        ],
    ),
    "bad enum value": ("diffusion:\n  formula: A3\n", ["diffusion.formula: 'A3' is not one of"]),
}


@pytest.fixture(scope="module")
def paper() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def load_error(config: dict) -> str:
    """The message :func:`sgdvi.config.load` raises for ``config``."""
    with pytest.raises(ConfigError) as caught:
        load(config)
    return str(caught.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_schema_errors_are_short_and_helpful(paper, case):
    text, expected = CASES[case]
    message = load_error(deep_update(paper, yaml.safe_load(text)))
    assert len(message.splitlines()) <= 3, message
    for part in expected:
        assert part in message, message


def test_number_hints():
    assert number_hint("1e6").endswith("write it as 1.0e+6")
    assert number_hint("5e-4").endswith("write it as 5.0e-4")
    assert number_hint("2.5E3").endswith("write it as 2.5e+3")
    assert number_hint("mnist7") is None and number_hint(3) is None


def test_many_errors_are_counted_not_listed(paper):
    message = load_error(deep_update(paper, {"epochz": 1, "epochy": 2, "device": "tpu"}))
    assert len(message.splitlines()) <= 3
    assert "more problem" in message


def test_a_missing_required_key_is_named():
    """Only ``run`` is required at the top level (everything else has a default)."""
    message = load_error({"experiments": {}})
    assert "'run' is a required property" in message, message
    message = load_error({"run": ["x"], "experiments": {"x": {"model": "small-fc"}}})
    assert "experiments.x" in message and "required property" in message, message


@pytest.mark.parametrize(
    "case", ["misspelt top-level key", "misspelt nested key", "1e6 read as text"]
)
def test_snakemake_prints_at_most_five_lines(tmp_path, case):
    """`snakemake -n` on the bad config: stops before any job, at most 5 lines of output."""
    text, expected = CASES[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(REPO / "config" / "config.yaml"),
            str(bad),
            "--",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    out = (proc.stdout + proc.stderr).strip()
    assert len(out.splitlines()) <= 5, out
    for part in expected:
        assert part in out, out
