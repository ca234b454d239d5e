"""The workflow as the Snakemake workflow catalog presents it.

* ``.snakemake-workflow-catalog.yml`` carries the keys the catalog reads, and its mandatory
  flags are flags Snakemake accepts;
* ``config/README.md`` (the catalog's configuration page) names every config file, and its
  "Adding an experiment" recipe, put together, is a config that plans the figure it promises;
* ``.test/`` (the catalog's test data): ``snakemake --cores 2 --directory .test`` runs every
  stage offline on a 1,000-image subset of the real MNIST, and its outputs hold values checked
  here against independent computations; ``--report`` then works on it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from sgdvi.data import load_prepared
from sgdvi.data.idx import read_idx
from sgdvi.infra.parquet import read_table
from sgdvi.snapshots import load_snapshot

import dag_tools
from conftest import deep_update

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CATALOG = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
CONFIG_README = (REPO / "config" / "README.md").read_text()
TEST_CONFIG = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())


# ---------------------------------------------------------------- catalog settings


def test_catalog_finds_the_workflow_as_a_standardized_one():
    """The catalog's generator takes workflow/ as the workflow folder when it exists and skips
    the repository unless workflow/Snakefile exists; rules must end in .smk; "standardized
    usage" needs config/README.md and the settings file; it reports snakefmt's verdict on
    workflow/Snakefile and the rules."""
    workflow = REPO / "workflow" if (REPO / "workflow").is_dir() else REPO
    snakefiles = [workflow / "Snakefile", *sorted((workflow / "rules").glob("*.smk"))]
    assert snakefiles[0].is_file() and len(snakefiles) > 1
    assert (REPO / "config" / "README.md").is_file() and isinstance(CATALOG, dict)
    readme = (REPO / "README.md").read_text().lower()
    assert "snakemake" in readme and "workflow" in readme
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    proc = subprocess.run([snakefmt, "--check", *map(str, snakefiles)], capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_catalog_settings_have_the_keys_the_catalog_reads():
    """The catalog reads usage.mandatory-flags, usage.software-stack-deployment, usage.report."""
    usage = CATALOG["usage"]
    flags = usage["mandatory-flags"]
    assert flags["desc"].strip() and flags["flags"]
    deployment = usage["software-stack-deployment"]
    assert deployment["conda"] is True
    assert set(deployment) <= {"conda", "apptainer", "apptainer+conda"}
    assert usage["report"] is True


def test_mandatory_flags_are_accepted_by_snakemake():
    from snakemake.cli import get_argument_parser

    flags = CATALOG["usage"]["mandatory-flags"]["flags"]
    argv = flags if isinstance(flags, list) else shlex.split(flags)
    args = get_argument_parser().parse_args(argv)
    assert args.cores is not None


def test_conda_deployment_has_its_environment():
    """conda: true means `--sdm conda` can build every rule's environment: the rules name
    envs/sgdvi.yaml (tests/test_envs.py checks every directive), and that file exists."""
    rules = (REPO / "workflow" / "rules").glob("*.smk")
    named = {m for f in rules for m in re.findall(r'"(\.\./\.\./envs/[^"]+)"', f.read_text())}
    assert named == {"../../envs/sgdvi.yaml"}
    assert (REPO / "envs" / "sgdvi.yaml").is_file()


# ---------------------------------------------------------------- config/README.md


def test_config_readme_names_every_config_file_and_links_that_exist():
    shipped = [str(p.relative_to(REPO)) for p in sorted((REPO / "config").rglob("*.yaml"))]
    for name in [*shipped, ".test/config/config.yaml"]:
        assert f"`{name}`" in CONFIG_README, f"config/README.md does not describe {name}"
    for link in re.findall(r"\]\(([^)#]+)\)", CONFIG_README):
        if not link.startswith("http"):
            assert (REPO / "config" / link).resolve().exists(), link
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for section in schema["properties"]:
        assert f"| `{section}` |" in CONFIG_README, f"section {section} missing from the table"


def readme_recipe() -> dict:
    """The YAML blocks of config/README.md's "Adding an experiment", merged in order."""
    section = CONFIG_README.split("## Adding an experiment", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 3, section
    merged: dict = {}
    for block in blocks:
        merged = deep_update(merged, yaml.safe_load(textwrap.dedent(block)))
    return merged


def test_config_readme_recipe_plans_the_promised_figure(tmp_path):
    recipe = readme_recipe()
    (name,) = recipe["run"]
    (figure,) = recipe["diffusion"]["figures"]
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "config" / "mine.yaml").write_text(yaml.safe_dump(recipe))
    jobs = dag_tools.dry_run(
        tmp_path,
        "--config",
        "device=cpu",
        "--configfile",
        "config/mine.yaml",
        "--",
        f"results/figures/{figure}.pdf",
        configfile=None,
    )
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.rule] = counts.get(job.rule, 0) + 1
    n_snapshots = len(recipe["experiments"][name]["snapshots"])
    assert counts == {
        "download_mnist": 1,
        "prepare_mnist": 1,
        "train": 1,
        "snapshot": n_snapshots,
        "diffusion_spectrum": n_snapshots,
        "diffusion_figure": 1,
    }
    (prepare,) = [j for j in jobs if j.rule == "prepare_mnist"]
    assert prepare.outputs == [f"results/data/{recipe['experiments'][name]['dataset']}.npz"]


# ---------------------------------------------------------------- .test


def run_dot_test(work: Path, *args: str) -> subprocess.CompletedProcess:
    """``snakemake --directory <work>`` with the repository's Snakefile, as the catalog runs it."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        logs = "".join(
            f"\n--- {p.relative_to(work)}\n{p.read_text()[-2000:]}"
            for p in sorted((work / "logs").rglob("*.log"))
        )
        raise AssertionError(f"{cmd} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}{logs}")
    return proc


@pytest.fixture(scope="module")
def dot_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of .test/ after ``snakemake --cores 2`` (every default target) and ``--report``."""
    work = tmp_path_factory.mktemp("dot_test") / "test"
    shutil.copytree(REPO / ".test", work, ignore=shutil.ignore_patterns(*ignored_by_dot_test()))
    run_dot_test(work, "--cores", "2")
    run_dot_test(work, "--report", "report.zip")
    return work


def ignored_by_dot_test() -> list[str]:
    """What a run leaves in .test (its .gitignore): never copied from a developer's tree."""
    lines = (REPO / ".test" / ".gitignore").read_text().splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_test_data_are_the_first_images_of_the_official_mnist():
    """The committed subset is what .test/make_mnist_subset.py writes (its SHA-256 are the
    config's); with the official files present (CI fetches them) it is their first images."""
    mnist = TEST_CONFIG["data"]["mnist"]
    assert mnist["sources"] == ["local"]
    for name, digest in mnist["sha256"].items():
        packed = REPO / ".test" / mnist["local_dir"] / f"{name}.gz"
        assert hashlib.sha256(gzip.decompress(packed.read_bytes())).hexdigest() == digest, name
        data = read_idx(packed)
        assert len(data) == (1000 if name.startswith("train") else 200)
        official = REPO / "resources" / "mnist" / name
        if official.is_file():
            assert np.array_equal(data, read_idx(official)[: len(data)]), name


def independent_trace(snapshot: Path, data: Path) -> float:
    """trace D(x) (eq. (2), formula A1) from scratch: (1/N) sum_i |g_i - mean g|^2 with the
    per-example gradients of the cross-entropy taken one example at a time in float64."""
    model, _ = load_snapshot(snapshot)
    model = model.double().eval()
    prepared = load_prepared(data, dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(prepared.y_train)):
        loss = F.cross_entropy(model(prepared.x_train[i : i + 1]), prepared.y_train[i : i + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    g = torch.stack(rows).numpy()
    return float(((g - g.mean(axis=0)) ** 2).sum(axis=1).mean())


@pytest.mark.slow
def test_dot_test_runs_every_stage_on_real_mnist(dot_test):
    res = dot_test / "results"
    cfg = TEST_CONFIG
    # data: the download rule's local source verified and copied the subset
    for name, digest in cfg["data"]["mnist"]["sha256"].items():
        assert sha256(dot_test / "resources" / "mnist" / name) == digest
    # training: small-fc learns real digits (chance: 90 % test error)
    exp = cfg["experiments"]["fc-mnist7"]
    m = read_table(res / "fc-mnist7" / "metrics.parquet")
    assert list(m["epoch"]) == list(range(1, exp["epochs"] + 1))
    assert m["train_loss"].iloc[-1] < 0.5 * m["train_loss"].iloc[0]
    assert m["test_error"].iloc[-1] < 0.5
    # D(x): N = 1,000 examples, d = 3,978 weights of small-fc; trace against a float64 loop
    t = read_table(res / "tables" / "diffusion.parquet")
    assert sorted(t["fraction"]) == sorted(exp["snapshots"])
    row = t[t["fraction"] == 1.0].iloc[0]
    assert (int(row["N"]), int(row["d"]), row["solver"]) == (1000, 3978, "gram")
    assert 0 < int(row["rank"]) <= 999  # centred gradients of N examples: rank <= N - 1
    trace = independent_trace(res / "fc-mnist7" / "snapshots" / "1.0.pt", res / "data/mnist7.npz")
    assert float(row["trace"]) == pytest.approx(trace, rel=1e-5)
    # trajectory: every post-burn-in epoch of tiny-fc (d = 917 on 5 classes) stored
    traj = cfg["trajectory"]
    w = np.load(res / "trajectory" / "stated" / f"seed{traj['seeds'][0]}" / "weights.npy")
    assert w.shape == (traj["epochs"] - traj["burn_in"], 917) and np.isfinite(w).all()
    # theory: the deterministic checks pass; Z of Example 19 against a quadrature of our own
    th = read_table(res / "tables" / "theory.parquet")
    deterministic = th[th["check"].isin(["double_well", "fokker_planck", "lemma20"])]
    assert len(deterministic) > 0 and deterministic["passed"].all()
    z = th[(th["check"] == "double_well") & (th["quantity"] == "Z")].iloc[0]
    assert z["value"] == pytest.approx(double_well_z(), rel=1e-8)


def double_well_z() -> float:
    """Z = int e^{-Phi} over R^2 for Phi = (x1^2 - 1)^2/4 + x2^2/2 (Example 19): the x2
    integral is sqrt(2 pi), the x1 integral by adaptive quadrature."""
    from scipy.integrate import quad

    value, _ = quad(lambda x: np.exp(-((x**2 - 1) ** 2) / 4), -np.inf, np.inf, epsabs=1e-13)
    return float(np.sqrt(2 * np.pi) * value)


@pytest.mark.slow
def test_dot_test_report_holds_every_figure(dot_test):
    with zipfile.ZipFile(dot_test / "report.zip") as z:
        names = z.namelist()
    figures = sorted(p.name for p in (dot_test / "results" / "figures").glob("*.png"))
    assert {"fig1b.png", "fig3a.png", "fig4a.png"} <= set(figures)
    for png in figures:
        assert any(n.endswith("/" + png) for n in names), f"{png} is not in the report"
    with Image.open(dot_test / "results" / "figures" / "fig1b.png") as im:
        grey = np.asarray(im.convert("L"))
    assert grey.shape[1] >= 300 and len(np.unique(grey)) > 8  # drawn, not a blank canvas
