# Stage: diffusion (Section IV-A, Figs. 1 and 2). For every experiment in `run:` and each of its
# snapshots: the diffusion matrix D(x) of eq. (2) from the per-example gradients, its
# eigenvalues above the rank threshold (results/{experiment}/diffusion/{fraction}.npz); then
# one table over all of them and one histogram figure per entry of diffusion.figures.

import sgdvi.diffusion.stats as diffusion_stats
from sgdvi.models import build_model, count_weights

DIFFUSION = config["diffusion"]
DIFFUSION_FIGURES = dict(DIFFUSION["figures"])
DIFFUSION_FULL_N = {"mnist": 60000, "cifar": 50000}


def diffusion_files(name):
    """The stored spectra of experiment `name`, one per snapshot."""
    return [
        f"results/{name}/diffusion/{fraction_tag(f)}.npz"
        for f in experiment(name)["snapshots"]
    ]


def diffusion_targets():
    """Figures whose experiment is in `run:` (PDF + PNG) and the table over `run:`."""
    figs = [fig for fig, name in DIFFUSION_FIGURES.items() if name in RUN]
    targets = [f"results/figures/{fig}.{ext}" for fig in figs for ext in ("pdf", "png")]
    if RUN:
        targets += ["results/tables/diffusion.parquet", "results/tables/diffusion.csv"]
    return targets


def diffusion_mem_mb(wildcards):
    """Peak memory of one job: the N x d float32 gradients plus ~3 GB of working space."""
    exp = experiment(wildcards.experiment)
    classes = sgdvi_config.DATASET_CLASSES[exp["dataset"]]
    d = count_weights(build_model(exp["model"], num_classes=classes))
    n = DIFFUSION.get("subset") or exp.get("train_subset")
    n = (
        n
        or DIFFUSION_FULL_N["cifar" if exp["dataset"].startswith("cifar") else "mnist"]
    )
    return int(n * d * 4 / 2**20) + 3000


def diffusion_figure_experiment(wildcards):
    return DIFFUSION_FIGURES[wildcards.fig]


def diffusion_figure_title(wildcards):
    name = DIFFUSION_FIGURES[wildcards.fig]
    paper = diffusion_stats.PAPER_VALUES.get(name)
    label = paper["label"] if paper else name
    return f"({wildcards.fig[-1]}) {label}"


rule diffusion_spectrum:
    input:
        snapshot="results/{experiment}/snapshots/{fraction}.pt",
        data=experiment_dataset,
    output:
        "results/{experiment}/diffusion/{fraction}.npz",
    log:
        "logs/diffusion/{experiment}/{fraction}.log",
    benchmark:
        "results/benchmarks/diffusion/{experiment}/{fraction}.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: DIFFUSION.get("threads", 2)
    resources:
        gpu=gpu_count(),
        mem_mb=diffusion_mem_mb,
    params:
        settings=lambda wildcards: experiment(wildcards.experiment),
        diffusion={k: v for k, v in DIFFUSION.items() if k not in ("figures", "plot")},
        device=device_name(),
    script:
        "../scripts/diffusion_spectrum.py"


rule diffusion_table:
    input:
        [f for name in RUN for f in diffusion_files(name)],
    output:
        parquet="results/tables/diffusion.parquet",
        csv=report(
            "results/tables/diffusion.csv",
            caption="../report/diffusion_table.rst",
            category="Diffusion matrix D(x)",
            subcategory="Table",
        ),
    log:
        "logs/diffusion/table.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        remark13_top=DIFFUSION.get("remark13_top", 10),
    script:
        "../scripts/diffusion_table.py"


rule diffusion_figure:
    input:
        lambda wildcards: diffusion_files(diffusion_figure_experiment(wildcards)),
    output:
        pdf=report(
            "results/figures/{fig}.pdf",
            caption="../report/diffusion_figure.rst",
            category="Diffusion matrix D(x)",
            subcategory="Figs. 1 and 2",
        ),
        png="results/figures/{fig}.png",
    log:
        "logs/diffusion/{fig}.log",
    wildcard_constraints:
        fig="|".join(sorted(DIFFUSION_FIGURES)) or "NO_FIGURE",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        experiment=diffusion_figure_experiment,
        title=diffusion_figure_title,
        paper=lambda wildcards: diffusion_stats.PAPER_VALUES.get(
            diffusion_figure_experiment(wildcards), {}
        ),
        bins=DIFFUSION.get("plot", {}).get("bins", 40),
        cmap=DIFFUSION.get("plot", {}).get("cmap", "Blues"),
    script:
        "../scripts/diffusion_figure.py"
