"""profiles/slurm and profiles/default: consistent with the workflow and with each other.

(The SLURM profile is run for real in tests/test_slurm.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import dag_tools

REPO = Path(__file__).resolve().parents[1]
SLURM = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
DEFAULT = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
#: rules that train or compute gradients: one SLURM job each, never grouped
HEAVY_RULES = {"train", "diffusion_spectrum", "trajectory_train"}


@pytest.fixture(scope="module")
def rules() -> set[str]:
    proc = dag_tools.run(REPO, "--list-rules", configfile=None, timeout=120)
    names = {line.strip() for line in proc.stdout.splitlines() if line.strip()}
    assert "train" in names and "all" in names, proc.stdout
    return names


def test_set_resources_args_keep_profile_values_and_add_gpu():
    profile = {"set-resources": {"train": {"runtime": 480, "mem_mb": 8000}, "prep": {"runtime": 5}}}
    args = dag_tools.set_resources_args(profile, {"train", "grads"})
    assert sorted(args) == sorted(
        ["train:runtime=480", "train:mem_mb=8000", "train:gpu=1", "prep:runtime=5", "grads:gpu=1"]
    )


def test_slurm_profile_leaves_gpus_memory_and_time_to_the_plugin():
    """slurm_extra must not carry what the plugin sets (--gpus, --gres, --mem, --time, CPUs)."""
    assert SLURM["executor"] == "slurm"
    forbidden = ("--gres", "--gpus", "--mem", "--time", "-t ", "--cpus", "-c ")
    sections = [SLURM["default-resources"], *(SLURM.get("set-resources") or {}).values()]
    for res in sections:
        extra = str(res.get("slurm_extra", ""))
        assert not any(flag in extra for flag in forbidden), extra
        for key in ("runtime", "mem_mb"):
            if key in res:
                assert isinstance(res[key], int) and res[key] > 0, (key, res)
        assert "gpu" not in res, "GPUs come from the rules (gpu=1 when device is cuda)"
    assert {"runtime", "mem_mb"} <= set(SLURM["default-resources"])


def test_slurm_profile_names_only_existing_rules(rules):
    named = set(SLURM.get("set-resources") or {}) | set(SLURM.get("groups") or {})
    assert named <= rules, f"the profile names rules that do not exist: {sorted(named - rules)}"


def test_heavy_rules_run_alone_and_groups_fit_their_limits(rules):
    groups = SLURM.get("groups") or {}
    assert HEAVY_RULES <= rules
    assert not HEAVY_RULES & set(groups), "train/gradient rules must be one SLURM job each"
    components = dict(item.split("=") for item in SLURM.get("group-components", []))
    assert set(components) <= set(groups.values())
    # a group job is bounded by `cores` and the mem_mb in `resources` (local scope)
    assert int(SLURM["cores"]) >= 1
    assert any(item.startswith("mem_mb=") for item in SLURM.get("resources", []))


def test_download_rules_stay_local():
    text = (REPO / "workflow" / "rules" / "data.smk").read_text()
    blocks = re.split(r"\n(?=rule )", text)
    downloads = [b for b in blocks if re.match(r"rule download_\w+:", b)]
    assert downloads, "no download rule found"
    for block in downloads:
        assert re.search(r"^\s+localrule: True", block, re.M), block.splitlines()[0]


def test_workflow_profile_does_not_override_the_slurm_profile():
    """Snakemake applies profiles/default on top of --profile (per key): shared keys must agree,
    and the workstation profile must not set cluster limits."""
    for key in set(DEFAULT) & set(SLURM):
        assert DEFAULT[key] == SLURM[key], f"profiles/default overrides {key} of profiles/slurm"
    for key in ("executor", "cores", "resources", "default-resources", "set-resources", "jobs"):
        assert key not in DEFAULT, f"profiles/default must not set {key} (it would apply on SLURM)"
