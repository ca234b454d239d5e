"""How the workflow is run, read off dry runs: GPU resources, one-figure job lists, rerun triggers.

* `snakemake --cores 8 --resources gpu=1` on a GPU workstation: exactly the rules that train or
  compute gradients carry gpu=1 (only when they run on CUDA), with their declared threads.
* `snakemake results/figures/<fig>.pdf` plans only what that figure needs.
* Changing a plotting parameter reruns only the plot; changing a training setting reruns
  training and everything after it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import dag_tools
from conftest import deep_update, workflow_config

REPO = Path(__file__).resolve().parents[1]

#: rules that train a network or compute gradients: the only ones that may hold a GPU
GPU_RULES = {"train", "diffusion_spectrum"}


@pytest.fixture(scope="module")
def paper_workdir(tmp_path_factory) -> Path:
    """A working directory with the shipped configs only (paper scale, nothing computed)."""
    work = tmp_path_factory.mktemp("paper") / "work"
    shutil.copytree(REPO / "config", work / "config")
    return work


@pytest.fixture(scope="module")
def paper_cuda_jobs(paper_workdir) -> list[dag_tools.PlannedJob]:
    return dag_tools.dry_run(
        paper_workdir, "--resources", "gpu=1", "--config", "device=cuda", configfile=None
    )


def test_on_cuda_exactly_the_gradient_rules_hold_the_gpu(paper_cuda_jobs):
    paper = workflow_config("config/config.yaml")
    with_gpu = {j.rule for j in paper_cuda_jobs if j.gpu}
    assert with_gpu == GPU_RULES, f"rules with gpu=1: {sorted(with_gpu)}"
    for job in paper_cuda_jobs:
        if job.rule in GPU_RULES:
            assert job.gpu == 1, (job.rule, job.resources)
    # one training job per experiment in run:, each asking for one GPU
    trains = [j for j in paper_cuda_jobs if j.rule == "train"]
    assert len(trains) == len(paper["run"])
    # threads as declared in the config (capped by --cores 8)
    assert {j.threads for j in trains} == {min(8, paper["training"]["threads"])}
    spectra = [j for j in paper_cuda_jobs if j.rule == "diffusion_spectrum"]
    assert len(spectra) == sum(len(paper["experiments"][n]["snapshots"]) for n in paper["run"])
    assert {j.threads for j in spectra} == {min(8, paper["diffusion"]["threads"])}


def test_torch_trajectory_engine_also_holds_the_gpu(paper_workdir):
    """The numba engine is CPU-only; the torch engine trains the trajectory on `device`."""
    jobs = dag_tools.dry_run(
        paper_workdir,
        "--resources",
        "gpu=1",
        "--config",
        "device=cuda",
        "trajectory={engine: torch}",
        configfile=None,
    )
    with_gpu = {j.rule for j in jobs if j.gpu}
    assert with_gpu == GPU_RULES | {"trajectory_train"}


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_on_cpu_no_job_asks_for_a_gpu(paper_workdir, device):
    if device == "auto" and shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU: auto means cuda here")
    jobs = dag_tools.dry_run(
        paper_workdir, "--resources", "gpu=1", "--config", f"device={device}", configfile=None
    )
    assert jobs and not [j.rule for j in jobs if j.gpu]


def _experiments_of(jobs: list[dag_tools.PlannedJob]) -> set[str]:
    out = set()
    for job in jobs:
        for item in dag_tools._split(job.fields.get("wildcards", "")):
            key, _, value = item.partition("=")
            if key == "experiment":
                out.add(value)
    return out


@pytest.mark.parametrize(
    ("figure", "rules", "experiments"),
    [
        # Fig. 1a: MNIST, small-lenet only
        (
            "fig1a",
            {"download_mnist", "prepare_mnist", "train", "snapshot", "diffusion_spectrum",
             "diffusion_figure"},
            {"lenet-mnist"},
        ),
        # Fig. 2b: CIFAR-100 only
        (
            "fig2b",
            {"download_cifar", "prepare_cifar_zca", "train", "snapshot", "diffusion_spectrum",
             "diffusion_figure"},
            {"allcnn-cifar100"},
        ),
        # Fig. 4b: the double well at lambda = 0.5, no data
        ("fig4b", {"theory_double_well", "theory_fig4"}, set()),
    ],
)  # fmt: skip
def test_one_figure_plans_only_what_it_needs(paper_workdir, figure, rules, experiments):
    jobs = dag_tools.dry_run(paper_workdir, f"results/figures/{figure}.pdf", configfile=None)
    assert {j.rule for j in jobs} == rules
    assert _experiments_of(jobs) == experiments
    outputs = {o for j in jobs for o in j.outputs}
    figures = {o for o in outputs if o.startswith("results/figures/")}
    assert figures == {f"results/figures/{figure}.pdf", f"results/figures/{figure}.png"}
    if experiments:
        # one training job, one spectrum per snapshot of that experiment
        (name,) = experiments
        paper = workflow_config("config/config.yaml")
        assert [j.rule for j in jobs].count("train") == 1
        n_snapshots = len(paper["experiments"][name]["snapshots"])
        assert [j.rule for j in jobs].count("diffusion_spectrum") == n_snapshots


# --- rerun triggers on the tiny config (builds Fig. 1b and Fig. 4a for real once) -----------


def _write_config(workdir: Path, name: str, change: dict) -> str:
    cfg = yaml.safe_load((workdir / "config" / "tiny.yaml").read_text())
    merged = deep_update(cfg, change)
    (workdir / "config" / name).write_text(yaml.safe_dump(merged, sort_keys=False))
    return f"config/{name}"


TARGETS = ("results/figures/fig1b.pdf", "results/figures/fig4a.pdf")


@pytest.fixture(scope="module")
def built_tiny(tmp_path_factory) -> Path:
    """The tiny config, one snapshot for fc-mnist7, with Fig. 1b and Fig. 4a built."""
    from conftest import fake_mnist, tiny_config

    root = tmp_path_factory.mktemp("tiny")
    work = root / "work"
    shutil.copytree(REPO / "config", work / "config")
    cfg = tiny_config(root / "mnist_raw", fake_mnist(root / "mnist_raw"))
    cfg["experiments"]["fc-mnist7"]["snapshots"] = [1.0]
    (work / "config" / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    dag_tools.run(work, "--cores", "2", *TARGETS, timeout=600)
    assert dag_tools.dry_run(work, *TARGETS) == []
    return work


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected_rules"),
    [
        # plotting parameters: only the plots rerun
        (
            {"diffusion": {"plot": {"bins": 17, "cmap": "Greens"}},
             "theory": {"fig4": {"density": 0.7}}},
            {"diffusion_figure", "theory_fig4"},
        ),
        # a training setting: training and everything after it (not the data, not Fig. 4)
        (
            {"experiments": {"fc-mnist7": {"lr_schedule": [[0, 0.02]]}}},
            {"train", "snapshot", "diffusion_spectrum", "diffusion_figure"},
        ),
        # a setting that changes a spectrum: the spectrum and the figure, not training
        ({"diffusion": {"formula": "A2"}}, {"diffusion_spectrum", "diffusion_figure"}),
        ({"diffusion": {"eps": "float64"}}, {"diffusion_spectrum", "diffusion_figure"}),
        # settings that change no result (speed, memory, the table): no spectrum reruns
        # (a rerun must not redo hours of work for a knob that changes nothing)
        ({"diffusion": {"chunk_size": 37, "threads": 1, "remark13_top": 3}}, set()),
    ],
)  # fmt: skip
def test_changing_a_setting_reruns_only_what_depends_on_it(built_tiny, change, expected_rules):
    configfile = _write_config(built_tiny, "changed.yaml", change)
    jobs = dag_tools.dry_run(built_tiny, *TARGETS, configfile=configfile)
    assert {j.rule for j in jobs} == expected_rules
