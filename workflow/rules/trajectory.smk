# Stage: trajectory (Section IV-B, Fig. 3). Per variant (TRAJ_VARIANTS: "stated" = the base
# `trajectory:` keys, others = `trajectory.variants`) and seed, tiny-fc trained for `epochs`
# epochs with the weights stored after every post-burn-in epoch in
# results/trajectory/{variant}/seed{seed}/; then per run the FFT of the increments,
# autocorrelation, null models and permutation tests; Figs. 3a-3c per variant (fig3a.pdf for
# "stated", fig3a-{variant}.pdf for the others) and results/tables/trajectory.parquet.


rule trajectory_train:
    input:
        data=traj_dataset,
    output:
        weights="results/trajectory/{variant}/seed{seed}/weights.npy",
        metrics="results/trajectory/{variant}/seed{seed}/metrics.parquet",
        run="results/trajectory/{variant}/seed{seed}/run.json",
    log:
        "logs/trajectory/{variant}/train_seed{seed}.log",
    benchmark:
        "results/benchmarks/trajectory/{variant}/train_seed{seed}.tsv"
    # the longest jobs of a run start first, so they do not finish it alone on one core
    priority: 2
    conda:
        "../../envs/sgdvi.yaml"
    threads: lambda wildcards: TRAJ_VARIANTS[wildcards.variant]["threads"]
    resources:
        gpu=traj_gpus,
    params:
        settings=traj_settings(TRAJ_TRAIN_KEYS),
        dataset=traj_setting("dataset"),
        device=device_name(),
    script:
        "../scripts/trajectory_train.py"


rule trajectory_analyse:
    input:
        weights="results/trajectory/{variant}/seed{seed}/weights.npy",
    output:
        "results/trajectory/{variant}/seed{seed}/analysis.npz",
    log:
        "logs/trajectory/{variant}/analyse_seed{seed}.log",
    benchmark:
        "results/benchmarks/trajectory/{variant}/analyse_seed{seed}.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: lambda wildcards: TRAJ_VARIANTS[wildcards.variant]["threads"]
    resources:
        mem_mb=trajectory_analyse_mem_mb,
    params:
        n_lags=traj_setting("n_lags"),
        max_lag_fraction=traj_setting("max_lag_fraction"),
        low_frequency_cutoff=traj_setting("low_frequency_cutoff"),
        n_permutations=traj_setting("n_permutations"),
    script:
        "../scripts/trajectory_analyse.py"


rule trajectory_table:
    input:
        analyses=traj_files("analysis.npz"),
        metrics=traj_files("metrics.parquet"),
        runs=traj_files("run.json"),
        currents=traj_files("current.parquet"),
    output:
        "results/tables/trajectory.parquet",
    log:
        "logs/trajectory/table.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        variants={v: traj_seeds(v) for v in TRAJ_VARIANTS},
    script:
        "../scripts/trajectory_table.py"


rule trajectory_fig3ab:
    input:
        analyses=traj_fig_files("analysis.npz"),
    output:
        pdf="results/figures/fig3{traj_fig}.pdf",
        png=report(
            "results/figures/fig3{traj_fig}.png",
            caption="../report/fig3ab.rst",
            category="Trajectory",
            subcategory="Fig. 3 (Section IV-B)",
        ),
    log:
        "logs/trajectory/fig3{traj_fig}.log",
    wildcard_constraints:
        traj_fig=r"[ab](-(" + "|".join(TRAJ_VARIANTS) + "))?",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        fig=traj_fig_params,
    script:
        "../scripts/trajectory_fig3ab.py"


rule trajectory_fig3c:
    input:
        metrics=traj_fig_files("metrics.parquet"),
    output:
        pdf="results/figures/fig3{traj_fig}.pdf",
        png=report(
            "results/figures/fig3{traj_fig}.png",
            caption="../report/fig3c.rst",
            category="Trajectory",
            subcategory="Fig. 3 (Section IV-B)",
        ),
    log:
        "logs/trajectory/fig3{traj_fig}.log",
    wildcard_constraints:
        traj_fig=r"c(-(" + "|".join(TRAJ_VARIANTS) + "))?",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        fig=traj_fig_params,
    script:
        "../scripts/trajectory_fig3c.py"
