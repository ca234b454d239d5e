# Stage: diffusion (Section IV-A, Figs. 1 and 2). For every experiment in `run:` and each of its
# snapshots: the diffusion matrix D(x) of eq. (2) from the per-example gradients, its
# eigenvalues above the rank threshold (results/{experiment}/diffusion/{fraction}.npz); then
# one table over all of them and one histogram figure per entry of diffusion.figures.

# Settings that change a spectrum (sgdvi.diffusion.memory.RESULT_KEYS): only these are params
# of diffusion_spectrum, so that changing threads, chunk_size, processes, remark13_top or the
# plot settings reruns no spectrum (the script reads the others from the config). With
# diffusion.processes > 1 a job runs on that many processes (torchrun here; under SLURM one
# job of that many tasks, started by srun in the job: diffusion_task_resources).


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
    threads: DIFFUSION["threads"] * DIFFUSION["processes"]
    resources:
        **diffusion_task_resources(),
        gpu=gpu_count() * DIFFUSION["processes"],
        mem_mb=diffusion_mem_mb,
    params:
        settings=lambda wildcards: experiment(wildcards.experiment),
        diffusion={k: DIFFUSION[k] for k in diffusion_memory.RESULT_KEYS},
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
        remark13_top=DIFFUSION["remark13_top"],
    script:
        "../scripts/diffusion_table.py"


rule diffusion_figure:
    input:
        lambda wildcards: diffusion_files(diffusion_figure_experiment(wildcards)),
    output:
        pdf="results/figures/{fig}.pdf",
        png=report(
            "results/figures/{fig}.png",
            caption="../report/diffusion_figure.rst",
            category="Diffusion matrix D(x)",
            subcategory="Figs. 1 and 2",
        ),
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
        bins=DIFFUSION["plot"]["bins"],
        cmap=DIFFUSION["plot"]["cmap"],
    script:
        "../scripts/diffusion_figure.py"
