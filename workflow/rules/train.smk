# Stage: train (Section IV). One job per experiment: SGD on its prepared dataset, snapshots after
# the fractions of training in experiments.<name>.snapshots (Figs. 1, 2), per-epoch metrics.
# Resumable: a killed job left results/{experiment}/checkpoint.pt; rerunning continues from it.
#
# Snakemake outputs cannot depend on a wildcard's value, so the job writes its snapshots into the
# directory results/{experiment}/trained/ and the local rule `snapshot` exposes each one as
# results/{experiment}/snapshots/{fraction}.pt (the files that snapshot_files() lists).


rule train:
    input:
        data=experiment_dataset,
    output:
        metrics="results/{experiment}/metrics.parquet",
        trained=directory("results/{experiment}/trained"),
    log:
        "logs/train/{experiment}.log",
    benchmark:
        "results/benchmarks/train/{experiment}.tsv"
    # after the trajectories, before the rest: the D(x) spectra wait for its snapshots
    priority: 1
    conda:
        "../../envs/sgdvi.yaml"
    threads: config["training"]["threads"]
    resources:
        gpu=gpu_count(),
    params:
        settings=lambda wildcards: experiment(wildcards.experiment),
        device=device_name(),
        checkpoint="results/{experiment}/checkpoint.pt",
    script:
        "../scripts/train.py"


rule snapshot:
    input:
        trained_snapshot,
    output:
        "results/{experiment}/snapshots/{fraction}.pt",
    log:
        "logs/train/{experiment}-snapshot-{fraction}.log",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    shell:
        "cp {input}/{wildcards.fraction}.pt {output} 2> {log}"
