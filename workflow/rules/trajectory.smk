# Stage: trajectory (Section IV-B, Fig. 3). tiny-fc trained for `epochs` epochs per seed with
# the weights stored after every post-burn-in epoch (results/tinyfc-trajectory/seed{seed}/),
# then per seed: FFT of the increments, autocorrelation, null models and permutation tests;
# Figs. 3a-3c over all seeds and results/tables/trajectory.parquet.


rule trajectory_train:
    input:
        data=dataset_file(TRAJ["dataset"]),
    output:
        weights=f"{TRAJ_DIR}/seed{{seed}}/weights.npy",
        metrics=f"{TRAJ_DIR}/seed{{seed}}/metrics.parquet",
        run=f"{TRAJ_DIR}/seed{{seed}}/run.json",
    log:
        "logs/trajectory/train_seed{seed}.log",
    benchmark:
        "results/benchmarks/trajectory/train_seed{seed}.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: TRAJ["threads"]
    resources:
        gpu=TRAJ_GPUS,
    params:
        epochs=TRAJ["epochs"],
        burn_in=TRAJ["burn_in"],
        batch_size=TRAJ["batch_size"],
        lr_burn_in=TRAJ["lr_burn_in"],
        lr=TRAJ["lr"],
        momentum=TRAJ["momentum"],
        nesterov=TRAJ["nesterov"],
        chunk_epochs=TRAJ["chunk_epochs"],
        train_subset=TRAJ["train_subset"],
        engine=TRAJ["engine"],
        dtype=TRAJ["dtype"],
        device=device_name(),
    script:
        "../scripts/trajectory_train.py"


rule trajectory_analyse:
    input:
        weights=f"{TRAJ_DIR}/seed{{seed}}/weights.npy",
    output:
        f"{TRAJ_DIR}/seed{{seed}}/analysis.npz",
    log:
        "logs/trajectory/analyse_seed{seed}.log",
    benchmark:
        "results/benchmarks/trajectory/analyse_seed{seed}.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    params:
        n_lags=TRAJ["n_lags"],
        max_lag_fraction=TRAJ["max_lag_fraction"],
        low_frequency_cutoff=TRAJ["low_frequency_cutoff"],
        n_permutations=TRAJ["n_permutations"],
    script:
        "../scripts/trajectory_analyse.py"


rule trajectory_table:
    input:
        analyses=TRAJ_ANALYSES,
        metrics=TRAJ_METRICS,
        runs=TRAJ_RUNS,
    output:
        "results/tables/trajectory.parquet",
    log:
        "logs/trajectory/table.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        seeds=TRAJ_SEEDS,
    script:
        "../scripts/trajectory_table.py"


rule trajectory_fig3ab:
    input:
        analyses=TRAJ_ANALYSES,
    output:
        pdf=report(
            "results/figures/fig3{panel}.pdf",
            caption="../report/fig3ab.rst",
            category="Trajectory",
            subcategory="Fig. 3 (Section IV-B)",
        ),
        png="results/figures/fig3{panel}.png",
    log:
        "logs/trajectory/fig3{panel}.log",
    wildcard_constraints:
        panel="[ab]",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        seeds=TRAJ_SEEDS,
        lr=TRAJ["lr"],
    script:
        "../scripts/trajectory_fig3ab.py"


rule trajectory_fig3c:
    input:
        metrics=TRAJ_METRICS,
    output:
        pdf=report(
            "results/figures/fig3c.pdf",
            caption="../report/fig3c.rst",
            category="Trajectory",
            subcategory="Fig. 3 (Section IV-B)",
        ),
        png="results/figures/fig3c.png",
    log:
        "logs/trajectory/fig3c.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        seeds=TRAJ_SEEDS,
        burn_in=TRAJ["burn_in"],
    script:
        "../scripts/trajectory_fig3c.py"
