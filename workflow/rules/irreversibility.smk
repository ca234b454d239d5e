# Stage: probability current (beyond the paper; Section III, eq. (8), Lemma 7, Remark 17, Lemma 20).
# The area-enclosing rate L = (1/2) <x dx^T - dx x^T> / dt is zero for every process in
# detailed balance. Validation rows (OU, Example 19's double well, a permuted-increment random
# walk, the same-sample PCA artefact) go to results/theory/irreversibility.parquet (an input of
# theory_table); per trajectory run, L of the tiny-fc weights in D(x) eigendirections and
# held-out principal components go to results/trajectory/{variant}/seed{seed}/current.*
# (rows of results/tables/trajectory.parquet). Constants and targets: common.smk.


rule irreversibility_validation:
    output:
        table="results/theory/irreversibility.parquet",
        npz="results/theory/irreversibility.npz",
    log:
        "logs/irreversibility/validation.log",
    benchmark:
        "results/benchmarks/irreversibility/validation.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    params:
        irr=IRR,
        lambdas=THEORY_LAMBDAS,
    script:
        "../scripts/irreversibility_validation.py"


rule irreversibility_current:
    input:
        weights="results/trajectory/{variant}/seed{seed}/weights.npy",
        run="results/trajectory/{variant}/seed{seed}/run.json",
        data=traj_dataset,
    output:
        npz="results/trajectory/{variant}/seed{seed}/current.npz",
        table="results/trajectory/{variant}/seed{seed}/current.parquet",
    log:
        "logs/irreversibility/current_{variant}_seed{seed}.log",
    benchmark:
        "results/benchmarks/irreversibility/current_{variant}_seed{seed}.tsv"
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    resources:
        # paper scale (99,000 x 917 weights, 100 surrogates): ~4 GB peak, ~2 min on 2 busy cores
        mem_mb=6000,
        runtime=30,
    params:
        irr=IRR,
        run=traj_settings(("dataset", "num_classes", "train_subset")),
    script:
        "../scripts/irreversibility_current.py"


rule irreversibility_figure:
    input:
        validation="results/theory/irreversibility.parquet",
        npz="results/theory/irreversibility.npz",
        current=IRR_CURRENT,
    output:
        pdf="results/figures/irreversibility.pdf",
        png=report(
            "results/figures/irreversibility.png",
            caption="../report/irreversibility.rst",
            category="Probability current",
            subcategory="Area-enclosing rate",
        ),
    log:
        "logs/irreversibility/figure.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        labels=IRR_LABELS,
    script:
        "../scripts/irreversibility_figure.py"
