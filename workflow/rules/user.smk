# Stage: your own network and data. Datasets of the config's `datasets:` with a kind other
# than mnist (fashion-mnist, idx, npz, image-folder) are prepared by rule prepare_dataset;
# experiments whose model is given by import path train, snapshot and get their D(x) spectra
# through the same rules as the paper's (train.smk, diffusion.smk). Every user experiment was
# checked when the DAG was built (sgdvi.user_inputs: files, import path, one forward pass).
# Here: the probability-current test of the weights' path recorded during training
# (experiments.<name>.current) and one summary table per experiment; `snakemake user` makes
# them for every user experiment in `run:`.


rule prepare_dataset:
    output:
        "results/data/{dataset}.npz",
    log:
        "logs/data/prepare_{dataset}.log",
    benchmark:
        "results/benchmarks/data/prepare_{dataset}.tsv"
    wildcard_constraints:
        dataset=USER_DATASET_PATTERN,
    conda:
        "../../envs/sgdvi.yaml"
    params:
        entry=lambda wildcards: config["datasets"][wildcards.dataset],
        default_normalisation=config["data"]["mnist"]["normalisation"],
    script:
        "../scripts/prepare_dataset.py"


rule user_current:
    input:
        trained="results/{experiment}/trained",
    output:
        "results/{experiment}/current.parquet",
    log:
        "logs/user/{experiment}-current.log",
    benchmark:
        "results/benchmarks/user/{experiment}-current.tsv"
    wildcard_constraints:
        experiment=USER_CURRENT_PATTERN,
    conda:
        "../../envs/sgdvi.yaml"
    params:
        irreversibility=IRR,
    script:
        "../scripts/user_current.py"


rule user_summary:
    input:
        unpack(user_summary_input),
    output:
        parquet="results/{experiment}/summary.parquet",
        csv=report(
            "results/{experiment}/summary.csv",
            caption="../report/user_summary.rst",
            category="Your own network",
            labels={"experiment": "{experiment}"},
        ),
    log:
        "logs/user/{experiment}-summary.log",
    wildcard_constraints:
        experiment=USER_EXPERIMENT_PATTERN,
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    script:
        "../scripts/user_summary.py"


rule user_figure:
    input:
        lambda wildcards: diffusion_files(wildcards.fig.removeprefix("user-")),
    output:
        pdf="results/figures/{fig}.pdf",
        png=report(
            "results/figures/{fig}.png",
            caption="../report/diffusion_figure.rst",
            category="Your own network",
            labels={"figure": "{fig}"},
        ),
    log:
        "logs/user/{fig}.log",
    wildcard_constraints:
        fig=f"user-({USER_EXPERIMENT_PATTERN})",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        title=lambda wildcards: user_figure_title(wildcards.fig.removeprefix("user-")),
        paper={},
        bins=DIFFUSION["plot"]["bins"],
        cmap=DIFFUSION["plot"]["cmap"],
    script:
        "../scripts/diffusion_figure.py"


rule user:
    input:
        user_targets(),
