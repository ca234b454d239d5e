"""The workflow end to end on the tiny config (generated MNIST), and its refusal of bad configs."""

from __future__ import annotations

import subprocess

import yaml

from conftest import snakemake_cmd


def test_bad_config_stops_before_any_job(tiny_workdir):
    cfg = yaml.safe_load((tiny_workdir / "config" / "tiny.yaml").read_text())
    cfg["experiments"]["lenet-mnist"]["epochs"] = -3
    (tiny_workdir / "config" / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        snakemake_cmd(tiny_workdir, "--cores", "1", configfile="config/bad.yaml"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "epochs" in out and "-3" in out
    assert not (tiny_workdir / "results").exists()
