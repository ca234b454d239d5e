"""The workflow used as a Snakemake module from another directory, the way snakedeploy sets it up.

``snakedeploy deploy-workflow <repo> <dest> --tag <tag>`` copies ``config/`` to ``<dest>/config``
and writes a Snakefile that declares this repository's Snakefile as a module with the user's
``config`` and uses all its rules. Here the module is the local checkout (snakedeploy writes
``github("<owner>/<repo>", path="workflow/Snakefile", tag=...)``: it takes workflow/Snakefile,
which includes the top-level Snakefile, when it exists; both entry points are tested), the
user's directory a temporary one. Relative paths in the module (rule includes, scripts, conda
envs, report captions) must resolve against the module's files, outputs and logs against the
user's directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sgdvi.infra.parquet import read_table

import dag_tools

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: snakedeploy's generated Snakefile (templates/use_module.smk.jinja) with a local module path,
#: plus one rule of the user's own that records the environment the module gives its jobs
USER_SNAKEFILE = """\
import os

from snakemake.utils import min_version

min_version("9.17")


configfile: "config/config.yaml"


module sgdvi:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from sgdvi


rule job_environment:
    output:
        "job_environment.txt",
    localrule: True
    run:
        with open(output[0], "w") as fh:
            fh.write(os.environ.get("PYTHONPATH", ""))
"""


def deploy(dest: Path, entry: str) -> Path:
    """What snakedeploy leaves in ``dest``: config/ (the repository's, device set to cpu as a
    user would on a machine without GPU) and the Snakefile using ``entry`` as the module."""
    shutil.copytree(REPO / "config", dest / "config")
    cfg_path = dest / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["device"] = "cpu"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (dest / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=REPO / entry))
    return dest


def snakemake(dest: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run snakemake in ``dest`` on its own Snakefile (no --snakefile, no --directory)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [SNAKEMAKE, *args], cwd=dest, capture_output=True, text=True, timeout=timeout, env=env
    )
    if proc.returncode != 0:
        logs = "".join(
            f"\n--- {p.relative_to(dest)}\n{p.read_text()[-2000:]}"
            for p in sorted((dest / "logs").rglob("*.log"))
        )
        raise AssertionError(
            f"snakemake {' '.join(args)} failed in {dest}:\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}{logs}"
        )
    return proc


@pytest.fixture(scope="module", params=["workflow/Snakefile", "Snakefile"])
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployed directory after building Fig. 4a (Example 19, lambda = 0) through the module
    (its entry point: snakedeploy's choice, workflow/Snakefile, or the top-level Snakefile)."""
    dest = deploy(tmp_path_factory.mktemp("deployed"), request.param)
    snakemake(dest, "--cores", "1", "results/figures/fig4a.pdf")
    return dest


def drift(x1: float, x2: float, lam: float) -> np.ndarray:
    """b(x) = -grad Phi(x) + lam e^{Phi(x) - |x|^4/4} (-x2, x1) of Example 19, with
    Phi = (x1^2 - 1)^2/4 + x2^2/2, written out here independently of the package."""
    phi = (x1**2 - 1) ** 2 / 4 + x2**2 / 2
    r4 = (x1**2 + x2**2) ** 2 / 4
    grad_phi = np.array([x1 * (x1**2 - 1), x2])
    return -grad_phi + lam * np.exp(phi - r4) * np.array([-x2, x1])


def jacobian_real_parts(x1: float, x2: float, lam: float, h: float = 1e-6) -> np.ndarray:
    """Real parts of the eigenvalues of the drift's Jacobian (central differences), sorted."""
    jac = np.column_stack(
        [
            (drift(x1 + h, x2, lam) - drift(x1 - h, x2, lam)) / (2 * h),
            (drift(x1, x2 + h, lam) - drift(x1, x2 - h, lam)) / (2 * h),
        ]
    )
    return np.sort(np.linalg.eigvals(jac).real)


def test_figure_built_through_the_module_lands_in_the_users_directory(deployed):
    for out in ("results/figures/fig4a.pdf", "results/figures/fig4a.png", "logs/theory/fig4a.log"):
        assert (deployed / out).is_file(), out
    pdf = (deployed / "results/figures/fig4a.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and b"%%EOF" in pdf[-1024:]
    with Image.open(deployed / "results/figures/fig4a.png") as im:
        grey = np.asarray(im.convert("L"))
    assert grey.shape[1] >= 300 and len(np.unique(grey)) > 8  # contours and arrows drawn


def test_critical_points_computed_through_the_module_are_zeros_of_the_drift(deployed):
    cfg = yaml.safe_load((deployed / "config" / "config.yaml").read_text())
    table = read_table(deployed / "results" / "theory" / "critical_points.parquet")
    assert sorted(set(table["lam"])) == sorted(float(v) for v in cfg["theory"]["lambdas"])
    for row in table.itertuples():
        assert np.abs(drift(row.x1, row.x2, row.lam)).max() < 1e-8, row
        re_min, re_max = jacobian_real_parts(row.x1, row.x2, row.lam)
        assert re_min == pytest.approx(row.eig_re_min, abs=1e-5), row
        assert re_max == pytest.approx(row.eig_re_max, abs=1e-5), row
    # lambda = 0: the critical points of Phi, minima (+-1, 0) and the saddle (0, 0)
    at_zero = table[table["lam"] == 0.0].sort_values("x1")
    assert np.allclose(at_zero[["x1", "x2"]].to_numpy(), [[-1, 0], [0, 0], [1, 0]], atol=1e-10)
    assert list(at_zero["kind"]) == ["stable node", "saddle", "stable node"]


def test_module_default_target_is_the_whole_workflow(deployed):
    """`use rule * from sgdvi` brings the module's default target: rule `all` of the top-level
    Snakefile, or `default` of workflow/Snakefile (the same inputs)."""
    proc = snakemake(deployed, "--dry-run", "--cores", "2")
    jobs = dag_tools.parse_dry_run(proc.stdout + "\n" + proc.stderr)
    rules = {job.rule for job in jobs}
    assert {"theory_fig4", "train", "diffusion_spectrum", "trajectory_train"} <= rules
    (target,) = [j for j in jobs if j.rule in ("all", "default")]
    assert "results/figures/fig4a.pdf" in target.inputs
    assert "results/tables/paper_comparison.parquet" in target.inputs
    assert not any("results/figures/fig4a.pdf" in j.outputs for j in jobs)  # already built


def test_jobs_import_sgdvi_from_the_module_checkout(deployed):
    """Jobs run in envs/sgdvi.yaml (--sdm conda) import sgdvi from the module's src/."""
    snakemake(deployed, "--cores", "1", "job_environment.txt")
    entries = (deployed / "job_environment.txt").read_text().split(os.pathsep)
    assert str(REPO / "src") in entries
    assert str(deployed / "src") not in entries
