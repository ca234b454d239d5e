# Stage: probability current (issue 13; Section III, eq. (8), Lemma 7, Remark 17, Lemma 20).
# The area-enclosing rate L = (1/2) <x dx^T - dx x^T> / dt is zero for every process in
# detailed balance. Validation rows (OU, Example 19's double well, a permuted-increment random
# walk, the same-sample PCA artefact) go to results/theory/irreversibility.parquet (an input of
# theory_table); per trajectory seed, L of the tiny-fc weights in D(x) eigendirections and
# held-out principal components go to {trajectory dir}/current.{npz,parquet}.

IRR = config["irreversibility"]


def irreversibility_runs():
    """(variant, seed, run directory) of every trajectory: the trajectory stage's variants when
    common.smk defines them (TRAJ_VARIANTS, trajectory_dir), else the single stated setting.
    """
    variants = globals().get("TRAJ_VARIANTS")
    if not TRAJ["enabled"]:
        return []
    if variants:
        return [
            (v, int(s), trajectory_dir(v, s))
            for v, settings in variants.items()
            for s in settings.get("seeds", TRAJ_SEEDS)
        ]
    return [("stated", s, f"{TRAJ_DIR}/seed{s}") for s in TRAJ_SEEDS]


IRR_RUNS = irreversibility_runs()
IRR_CURRENT = [f"{d}/current.npz" for _, _, d in IRR_RUNS]


def irreversibility_targets():
    return [f"results/figures/irreversibility.{ext}" for ext in ("pdf", "png")]


def irreversibility_run(wildcards):
    """(variant, seed) of the run directory `wildcards.rundir`."""
    for v, s, d in IRR_RUNS:
        if d == wildcards.rundir:
            return v, s
    raise ValueError(f"{wildcards.rundir} is not a trajectory of this configuration")


def irreversibility_dataset(wildcards):
    variants = globals().get("TRAJ_VARIANTS")
    if variants:
        return dataset_file(variants[irreversibility_run(wildcards)[0]]["dataset"])
    return dataset_file(TRAJ["dataset"])


def irreversibility_settings(wildcards):
    """Variant, seed, dataset settings (run.json overrides them when it records them)."""
    variant, seed = irreversibility_run(wildcards)
    base = globals().get("TRAJ_VARIANTS", {}).get(variant, TRAJ)
    return {
        "variant": variant,
        "seed": seed,
        "dataset": base.get("dataset", TRAJ["dataset"]),
        "num_classes": base.get("num_classes", 5),
        "train_subset": base.get("train_subset", TRAJ.get("train_subset")),
    }


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
        weights="{rundir}/weights.npy",
        run="{rundir}/run.json",
        data=irreversibility_dataset,
    output:
        npz="{rundir}/current.npz",
        table="{rundir}/current.parquet",
    log:
        "logs/irreversibility/{rundir}/current.log",
    benchmark:
        "results/benchmarks/irreversibility/{rundir}/current.tsv"
    wildcard_constraints:
        rundir=r"results/(tinyfc-trajectory|trajectory/[A-Za-z0-9_-]+)/seed[0-9]+",
    conda:
        "../../envs/sgdvi.yaml"
    threads: 1
    params:
        irr=IRR,
        run=irreversibility_settings,
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
            subcategory="Area-enclosing rate (issue 13)",
        ),
    log:
        "logs/irreversibility/figure.log",
    conda:
        "../../envs/sgdvi.yaml"
    params:
        labels=[f"{v} seed {s}" for v, s, _ in IRR_RUNS],
    script:
        "../scripts/irreversibility_figure.py"
