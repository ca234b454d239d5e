"""envs/*.yaml (the conda environments the rules name with `conda:`) pin what pyproject pins.

The jobs' software must be the same whether they run in the project's venv (`pip install -e .`)
or in a conda environment created by `snakemake --use-conda`: every dependency of
pyproject.toml's [project.dependencies] appears in every env file with the same version range,
and nothing else is installed there; the Python version agrees with requires-python.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def pyproject_requirements(pyproject: dict) -> dict[str, SpecifierSet]:
    reqs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def env_requirements(env: dict) -> tuple[dict[str, SpecifierSet], SpecifierSet | None]:
    """(pip requirements by canonical name, the conda python spec) of a conda env file."""
    pip: dict[str, SpecifierSet] = {}
    python = None
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                req = Requirement(line)
                pip[canonicalize_name(req.name)] = req.specifier
        elif isinstance(dep, str):
            name, _, spec = dep.partition(" ")
            name = re.split(r"[<>=!]", name, maxsplit=1)[0]
            if name == "python":
                python = SpecifierSet(dep[len("python") :].replace(" ", ""))
    return pip, python


def mismatches(pyproject: dict, env: dict) -> list[str]:
    """Every difference between pyproject's dependencies and an env file, in words."""
    want = pyproject_requirements(pyproject)
    have, python = env_requirements(env)
    problems = []
    for name, spec in want.items():
        if name not in have:
            problems.append(f"{name}{spec} is in pyproject.toml but missing from the env file")
        elif have[name] != spec:
            problems.append(f"{name}: pyproject.toml says {spec}, the env file says {have[name]}")
    for name in sorted(set(have) - set(want)):
        problems.append(f"{name} is in the env file but not in [project.dependencies]")
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    if python is None:
        problems.append("the env file does not pin python")
    else:
        lowest = next((v for v in ("3.9", "3.10", "3.11", "3.12", "3.13") if v in python), None)
        if lowest is None or lowest not in requires:
            problems.append(f"python {python} does not start inside requires-python {requires}")
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_there_is_an_env_file():
    assert ENV_FILES, "envs/ holds no conda environment file"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_file_pins_the_same_versions_as_pyproject(pyproject, env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env.get("channels"), f"{env_file.name}: name the conda channels"
    assert "defaults" not in env["channels"], f"{env_file.name}: use conda-forge, not defaults"
    assert mismatches(pyproject, env) == []


def test_comparison_notices_a_changed_pin(pyproject):
    env = yaml.safe_load((REPO / "envs" / "sgdvi.yaml").read_text())
    changed = yaml.safe_load(yaml.safe_dump(pyproject))
    deps = changed["project"]["dependencies"]
    deps[[d.startswith("torch>") for d in deps].index(True)] = "torch>=2.9,<2.16"
    deps.append("rich>=13")
    found = mismatches(changed, env)
    assert any(p.startswith("torch:") and "<2.16" in p for p in found), found
    assert any(p.startswith("rich") and "missing" in p for p in found), found
    changed = yaml.safe_load(yaml.safe_dump(pyproject))
    changed["project"]["requires-python"] = ">=3.12"
    assert any("requires-python" in p for p in mismatches(changed, env))


def conda_directives() -> list[tuple[Path, str, Path]]:
    """(rule file, the path written after `conda:`, the file it resolves to) for every rule."""
    found = []
    for smk in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        text = smk.read_text()
        for m in re.finditer(r"^\s+conda:\s*\n?\s*[\"']([^\"']+)[\"']", text, flags=re.M):
            found.append((smk, m.group(1), (smk.parent / m.group(1)).resolve()))
    return found


def test_conda_directives_name_env_files_in_envs():
    for smk, written, path in conda_directives():
        where = f"{smk.relative_to(REPO)}: conda: {written!r}"
        assert path.exists(), f"{where} resolves to {path}, which does not exist"
        assert path.parent == REPO / "envs", f"{where} must point into envs/"
