"""Run the repository's workflow in a test working directory and read what a dry run plans.

Used by tests/test_dryrun.py and tests/test_slurm.py. ``snakemake -n`` prints one block per
planned job::

    rule train:
        input: results/data/mnist28.npz
        output: results/lenet-mnist/metrics.parquet, results/lenet-mnist/trained
        ...
        threads: 4
        resources: tmpdir=/tmp, gpu=1

:func:`dry_run` parses those blocks into :class:`PlannedJob` records.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

_RULE_RE = re.compile(r"^( {4})?(local)?(rule|checkpoint) ([A-Za-z_][A-Za-z0-9_]*):\s*$")
_FIELD_RE = re.compile(r"^( {4})?    ([a-z_]+): ?(.*)$")
_GROUP_RE = re.compile(r"Group job ([A-Za-z0-9_-]+) \(jobs in")


@dataclass
class PlannedJob:
    rule: str
    local: bool
    fields: dict[str, str] = field(default_factory=dict)
    #: (group name, index of the group job in the output) for members of a group job
    group: tuple[str, int] | None = None

    @property
    def outputs(self) -> list[str]:
        return _split(self.fields.get("output", ""))

    @property
    def inputs(self) -> list[str]:
        return _split(self.fields.get("input", ""))

    @property
    def threads(self) -> int:
        return int(self.fields.get("threads", "1"))

    @property
    def resources(self) -> dict[str, str]:
        out = {}
        for item in _split(self.fields.get("resources", "")):
            key, _, value = item.partition("=")
            out[key.strip()] = value.strip()
        return out

    @property
    def gpu(self) -> int:
        value = self.resources.get("gpu", "0")
        return int(value) if value.isdigit() else 0


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(", ") if t.strip()]


def snakemake_args(workdir: Path, configfile: str | None, *args: str) -> list[str]:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if configfile:
        cmd += ["--configfile", configfile]
    return [*cmd, *args]


def run(
    workdir: Path,
    *args: str,
    configfile: str | None = "config/tiny.yaml",
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` (relative --configfile paths resolve there)."""
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        snakemake_args(workdir, configfile, *args),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def parse_dry_run(text: str) -> list[PlannedJob]:
    """The job blocks of ``snakemake -n`` output (or of a real run's log).

    Members of a group job ("Group job NAME (jobs in lexicogr. order):", then the members'
    blocks indented by four spaces) get ``group = (NAME, k)`` for the k-th group job.
    """
    jobs: list[PlannedJob] = []
    current: PlannedJob | None = None
    group: tuple[str, int] | None = None
    n_groups = 0
    for line in text.splitlines():
        g = _GROUP_RE.search(line)
        if g:
            group = (g.group(1), n_groups)
            n_groups += 1
            current = None
            continue
        m = _RULE_RE.match(line)
        if m:
            indented = bool(m.group(1))
            if not indented:
                group = None
            current = PlannedJob(rule=m.group(4), local=bool(m.group(2)), group=group)
            jobs.append(current)
            continue
        if current is None:
            continue
        f = _FIELD_RE.match(line)
        if f and bool(f.group(1)) == (current.group is not None):
            current.fields[f.group(2)] = f.group(3).strip()
        elif line.strip() and not line.startswith("    "):
            current = None
    return jobs


def dry_run(workdir: Path, *args: str, **kw) -> list[PlannedJob]:
    """Jobs that ``snakemake -n *args`` plans in ``workdir``."""
    proc = run(workdir, "--dry-run", "--cores", "8", *args, **kw)
    text = proc.stdout + "\n" + proc.stderr
    if "Nothing to be done" in text:
        return []
    jobs = parse_dry_run(text)
    assert jobs, f"could not read any job from the dry run:\n{text[-4000:]}"
    return jobs


def set_resources_args(profile: dict, gpu_rules: set[str]) -> list[str]:
    """The profile's set-resources as command-line items, with gpu=1 added for ``gpu_rules``.

    A --set-resources on the command line replaces the profile's whole list, so the profile's
    entries are repeated here.
    """
    per_rule = {rule: dict(res) for rule, res in (profile.get("set-resources") or {}).items()}
    for rule in gpu_rules:
        per_rule.setdefault(rule, {})["gpu"] = 1
    return [f"{rule}:{key}={value}" for rule, res in per_rule.items() for key, value in res.items()]
