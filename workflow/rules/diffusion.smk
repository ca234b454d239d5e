# Stage: diffusion (Section IV-A, Figs. 1 and 2). For every experiment in `run:` and each of its
# snapshots: the diffusion matrix D(x) of eq. (2) from the per-example gradients, its
# eigenvalues above the rank threshold (results/{experiment}/diffusion/{fraction}.npz); then
# one table over all of them and one histogram figure per entry of diffusion.figures.


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
        paper=lambda wildcards: diffusion_paper.PAPER_VALUES.get(
            diffusion_figure_experiment(wildcards), {}
        ),
        bins=DIFFUSION.get("plot", {}).get("bins", 40),
        cmap=DIFFUSION.get("plot", {}).get("cmap", "Blues"),
    script:
        "../scripts/diffusion_figure.py"
