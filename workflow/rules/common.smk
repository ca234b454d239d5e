# Config helpers and input functions shared by every stage.

import os
import re

import sgdvi.config as sgdvi_config

# Jobs run in the conda environment envs/sgdvi.yaml (`--sdm conda`), which holds the
# dependencies but not this package: they import the same sgdvi as this Snakemake process,
# from its source folder when it is one (a clone or an editable install; also when this
# workflow is used as a module, where workflow.basedir is the user's directory). A
# site-packages install is left out of PYTHONPATH: it serves jobs without --sdm conda only
# (with conda, install sgdvi editable: `pip install -e <clone>`).
_SGDVI_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(sgdvi_config.__file__)))
_SGDVI_PARENT = os.path.dirname(_SGDVI_PARENT)  # sgdvi/config/__init__.py -> src
SGDVI_SRC = _SGDVI_PARENT if os.path.basename(_SGDVI_PARENT) == "src" else None
_pythonpath = os.environ.get("PYTHONPATH", "")
if SGDVI_SRC and SGDVI_SRC not in _pythonpath.split(os.pathsep):
    # set, not required from the user: hence no `envvars:` directive
    os.environ.update(
        PYTHONPATH=os.pathsep.join(p for p in (SGDVI_SRC, _pythonpath) if p)
    )

RUN = list(config["run"])


wildcard_constraints:
    experiment="|".join(sorted(config["experiments"])) or "NO_EXPERIMENT",
    fraction=r"[01]\.[0-9]+",
    dataset="|".join(re.escape(n) for n in sgdvi_config.dataset_names(config)),
    seed=r"[0-9]+",


def fraction_tag(fraction):
    """Canonical file name of a snapshot fraction: 0.2 -> '0.2', 1 -> '1.0'."""
    return sgdvi_config.fraction_tag(fraction)


def experiment(name):
    """Settings of experiment `name` with its head size `num_classes` resolved."""
    return {
        **config["experiments"][name],
        "num_classes": sgdvi_config.experiment_num_classes(config, name),
    }


def dataset_file(name):
    return f"results/data/{name}.npz"


# ---- data stage (workflow/rules/data.smk) ----------------------------------------

# the MNIST datasets of `datasets:` (rule prepare_mnist; CIFAR has its own rule)
MNIST_DATASET_PATTERN = (
    "|".join(
        re.escape(n) for n, e in config["datasets"].items() if e["kind"] == "mnist"
    )
    or "NO_DATASET"
)


def mnist_dataset_options(wildcards):
    """Resolved options of datasets.<dataset> (sgdvi.data.mnist.MnistOptions)."""
    return sgdvi_config.dataset_options(config, wildcards.dataset)


def experiment_dataset(wildcards):
    return dataset_file(experiment(wildcards.experiment)["dataset"])


def snapshot_files(name):
    return [
        f"results/{name}/snapshots/{fraction_tag(f)}.pt"
        for f in experiment(name)["snapshots"]
    ]


def gpu_count():
    """1 when the rules that train or compute gradients will run on CUDA, else 0."""
    return 1 if sgdvi_config.uses_cuda(config["device"]) else 0


def device_name():
    return sgdvi_config.concrete_device(config["device"])


def report_targets():
    """Outputs that summarise the run for the report (they depend on all_targets())."""
    return ["results/tables/benchmarks.tsv", "results/report/landing.rst"]


# The landing page of the report (made by report_landing in report.smk): the comparison
# with the paper and thumbnails of the figures that carry it (every Fig. 1 and Fig. 3 panel).
LANDING_FIGURE = re.compile(r"results/figures/fig[13][a-z](-[A-Za-z0-9_-]+)?\.png")


def landing_figures():
    """PNGs of every Fig. 1 and Fig. 3 panel this run makes (the report's figure entries)."""
    return [t for t in all_targets() if LANDING_FIGURE.fullmatch(t)]


def landing_comparison():
    table = "results/tables/paper_comparison.parquet"
    return [table] if table in all_targets() else []


def landing_claims():
    """The claims ledger, which the landing page shows first (when this run makes it)."""
    table = "results/tables/claims.parquet"
    return [table] if table in all_targets() else []


def all_targets():
    targets = []
    targets += train_targets()
    targets += diffusion_targets()
    targets += trajectory_targets()
    targets += theory_targets()
    targets += compare_targets()
    targets += claims_targets()
    return targets


# ---- train stage (workflow/rules/train.smk) ----------------------------------------


def train_targets():
    """Metrics and snapshots of every experiment listed in `run:`."""
    targets = [f"results/{name}/metrics.parquet" for name in RUN]
    for name in RUN:
        targets += snapshot_files(name)
    return targets


def trained_snapshot(wildcards):
    tags = [fraction_tag(f) for f in experiment(wildcards.experiment)["snapshots"]]
    if wildcards.fraction not in tags:
        raise ValueError(
            f"results/{wildcards.experiment}/snapshots/{wildcards.fraction}.pt is not a "
            f"snapshot of experiment {wildcards.experiment}: it keeps {tags}; add "
            f"{wildcards.fraction} to experiments.{wildcards.experiment}.snapshots"
        )
    return f"results/{wildcards.experiment}/trained"


# ---- diffusion stage (workflow/rules/diffusion.smk) ----------------------------------------

import sgdvi.diffusion.memory as diffusion_memory
import sgdvi.diffusion.paper as diffusion_paper

DIFFUSION = config["diffusion"]
DIFFUSION_FIGURES = dict(DIFFUSION["figures"])


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
    """Peak memory of one job (sgdvi.diffusion.memory.spectrum_job_mb): the solver's working
    set for the examples the job really uses (the prepared dataset's size, capped by the
    subsets) plus the inputs."""
    if sgdvi_user.is_user_experiment(config, wildcards.experiment):
        return user_spectrum_mb(wildcards.experiment)  # d from the built network
    return diffusion_memory.spectrum_job_mb(config, wildcards.experiment)


def diffusion_task_resources():
    """SLURM layout of a D(x) job on diffusion.processes > 1 processes: one job of that many
    tasks (`--ntasks`, `--cpus-per-task` = diffusion.threads; on GPUs one task per GPU),
    which the job starts with srun (the executor plugin's `mpi` resource). One process:
    nothing (the plugin's usual single-task job)."""
    processes = DIFFUSION["processes"]
    if processes == 1:
        return {}
    layout = {"mpi": "srun", "tasks": processes, "cpus_per_task": DIFFUSION["threads"]}
    if gpu_count():
        layout["tasks_per_gpu"] = 1
    return layout


def diffusion_figure_experiment(wildcards):
    return DIFFUSION_FIGURES[wildcards.fig]


def diffusion_figure_title(wildcards):
    name = DIFFUSION_FIGURES[wildcards.fig]
    paper = diffusion_paper.PAPER_VALUES.get(name)
    label = paper["label"] if paper else name
    panel = re.match(r"fig[0-9]([a-z])", wildcards.fig)
    return f"({panel.group(1)}) {label}" if panel else label


# ---- trajectory stage (workflow/rules/trajectory.smk) ----------------------------------------

import sgdvi.trajectory.memory as traj_memory
import sgdvi.trajectory.variants as traj_variants

TRAJ = config["trajectory"]
#: variant name -> merged settings ("stated": the base keys; others: trajectory.variants)
TRAJ_VARIANTS = traj_variants.resolve_variants(
    TRAJ, lambda name: sgdvi_config.dataset_num_classes(config, name)
)
#: the settings of one run that change its trajectory (rule trajectory_train's params)
TRAJ_TRAIN_KEYS = (
    "epochs",
    "burn_in",
    "batch_size",
    "lr_burn_in",
    "lr",
    "momentum",
    "nesterov",
    "chunk_epochs",
    "train_subset",
    "engine",
    "dtype",
    "num_classes",
    "full_pass_every",
)


wildcard_constraints:
    variant="|".join(TRAJ_VARIANTS),
    traj_fig=r"[abc](-(" + "|".join(TRAJ_VARIANTS) + "))?",


def trajectory_dir(variant, seed):
    """Directory of one run: weights.npy, metrics.parquet, run.json, analysis.npz."""
    return f"results/trajectory/{variant}/seed{seed}"


def traj_seeds(variant):
    return [int(s) for s in TRAJ_VARIANTS[variant]["seeds"]]


#: seeds of the stated variant
TRAJ_SEEDS = traj_seeds(traj_variants.STATED)


def traj_files(name, variant=None):
    """`name` (e.g. analysis.npz) of every seed of `variant` (None: of every variant)."""
    variants = list(TRAJ_VARIANTS) if variant is None else [variant]
    return [f"{trajectory_dir(v, s)}/{name}" for v in variants for s in traj_seeds(v)]


def traj_setting(key):
    """Input/param function: setting `key` of the job's variant."""
    return lambda wildcards: TRAJ_VARIANTS[wildcards.variant][key]


def traj_settings(keys):
    return lambda wildcards: {k: TRAJ_VARIANTS[wildcards.variant][k] for k in keys}


def trajectory_analyse_mem_mb(wildcards):
    """Peak memory of one analysis (sgdvi.trajectory.memory.analyse_mem_mb)."""
    return traj_memory.analyse_mem_mb(TRAJ_VARIANTS[wildcards.variant])


def traj_dataset(wildcards):
    return dataset_file(TRAJ_VARIANTS[wildcards.variant]["dataset"])


def traj_fig_variant(wildcards):
    return traj_variants.parse_figure_tag(wildcards.traj_fig)[1]


def traj_fig_files(name):
    """Input function of a Fig. 3 panel: `name` of every seed of the panel's variant."""
    return lambda wildcards: traj_files(name, traj_fig_variant(wildcards))


def traj_fig_params(wildcards):
    """Variant, seeds, learning rate and burn-in of a Fig. 3 panel."""
    variant = traj_fig_variant(wildcards)
    settings = TRAJ_VARIANTS[variant]
    return {
        "variant": variant,
        "panel": traj_variants.parse_figure_tag(wildcards.traj_fig)[0],
        "seeds": traj_seeds(variant),
        "lr": settings["lr"],
        "burn_in": settings["burn_in"],
        "num_classes": settings["num_classes"],
        "d": sgdvi_config.weight_count("tiny-fc", settings["num_classes"]),
        "dataset": settings["dataset"],
    }


def trajectory_targets():
    """Figs. 3a-3c of every variant (PDF + PNG) and the statistics table, when enabled."""
    if not TRAJ["enabled"]:
        return []
    figs = [
        f"results/figures/{traj_variants.figure_name(p, v)}.{ext}"
        for v in TRAJ_VARIANTS
        for p in "abc"
        for ext in ("pdf", "png")
    ]
    return figs + ["results/tables/trajectory.parquet"]


def traj_gpus(wildcards):
    """The numba engine runs on the CPU; only the torch engine can use a GPU."""
    return gpu_count() if TRAJ_VARIANTS[wildcards.variant]["engine"] == "torch" else 0


# ---- theory stage (workflow/rules/theory.smk) ----------------------------------------

THEORY = config["theory"]
THEORY_LAMBDAS = [float(v) for v in THEORY["lambdas"]]
FIG4_PANELS = {"abcdefghijklmnopqrstuvwxyz"[i]: v for i, v in enumerate(THEORY_LAMBDAS)}
THEORY_FIGURES = [
    "sde_marginals",
    "sde_circulation",
    "sde_paths",
    "free_energy",
    "fp_density",
    "lemma20",
    "temperature",
]


# lambda as it appears in file names: 0.5 -> '0.5', 1 -> '1.0'
THEORY_LAMBDA_TAGS = [repr(v) for v in THEORY_LAMBDAS]
THEORY_SDE = [f"results/theory/sde/lambda_{t}" for t in THEORY_LAMBDA_TAGS]
THEORY_FP = [f"results/theory/fokker_planck/lambda_{t}" for t in THEORY_LAMBDA_TAGS]


def theory_targets():
    """Fig. 4 panels, the figures of the checks (PDF + PNG) and the table of numbers."""
    names = [f"fig4{p}" for p in FIG4_PANELS] + THEORY_FIGURES
    targets = [f"results/figures/{n}.{ext}" for n in names for ext in ("pdf", "png")]
    return targets + ["results/tables/theory.parquet"]


# ---- comparison with the paper (workflow/rules/compare.smk) ----------------------------------

import sgdvi.claims.seeds as claims_seeds

# small-fc experiments in `run:` (Fig. 1b's settings), the stated one (diffusion.figures.fig1b) first
COMPARE_STATED_FC = DIFFUSION_FIGURES.get("fig1b")
COMPARE_VARIANTS = sorted(
    (
        n
        for n in RUN
        if config["experiments"][n]["model"] == "small-fc"
        and claims_seeds.replica_of(n, config["experiments"]) is None
    ),
    key=lambda n: n != COMPARE_STATED_FC,
)


def compare_variant_settings(name):
    """Dataset, head size and resolved dataset options of experiment `name`."""
    exp = experiment(name)
    dataset = exp["dataset"]
    options = (
        sgdvi_config.dataset_options(config, dataset)
        if dataset in config["datasets"]
        else {}
    )
    return {"dataset": dataset, "num_classes": exp["num_classes"], "options": options}


def compare_trajectory_input():
    return ["results/tables/trajectory.parquet"] if TRAJ["enabled"] else []


def compare_targets():
    """The comparison tables, whenever some experiment runs (they need the diffusion table)."""
    if not RUN:
        return []
    return [
        f"results/tables/{t}.{ext}"
        for t in ("paper_comparison", "fig1b_variants")
        for ext in ("parquet", "csv")
    ]


# ---- probability current (workflow/rules/irreversibility.smk) ----------------------------------

IRR = config["irreversibility"]
#: current.npz of every trajectory run (every variant and seed) and its label in the figure
IRR_CURRENT = traj_files("current.npz") if TRAJ["enabled"] else []
IRR_LABELS = (
    [f"{v} seed {s}" for v in TRAJ_VARIANTS for s in traj_seeds(v)]
    if TRAJ["enabled"]
    else []
)


def irreversibility_targets():
    """The figure (PDF + PNG); the validation rows reach theory.parquet via theory_table."""
    return [f"results/figures/irreversibility.{ext}" for ext in ("pdf", "png")]


# ---- claims ledger (workflow/rules/claims.smk) ----------------------------------

CLAIMS = config["claims"]
CLAIMS_CALIBRATION = CLAIMS["calibration"]


def claims_calibration_currents(wildcards):
    """current.npz of the first `claims.calibration.max_seeds` seeds of the variant: their
    projected paths supply the calibration's surrogates."""
    seeds = traj_seeds(wildcards.variant)[: CLAIMS_CALIBRATION["max_seeds"]]
    return [f"{trajectory_dir(wildcards.variant, s)}/current.npz" for s in seeds]


def claims_calibration_settings(wildcards):
    """sgdvi.claims.calibration.Settings: claims.calibration and the per-seed tests' keys."""
    v = TRAJ_VARIANTS[wildcards.variant]
    c = CLAIMS_CALIBRATION
    return {
        "n_surrogates": c["n_surrogates"],
        "n_surrogates_band": c["n_surrogates_band"],
        "n_surrogates_lemma20": c["n_surrogates_lemma20"],
        "fpr_factor": c["fpr_factor"],
        "seed": c["seed"],
        "n_permutations": v["n_permutations"],
        "low_frequency_cutoff": v["low_frequency_cutoff"],
        "n_lags": v["n_lags"],
        "max_lag_fraction": v["max_lag_fraction"],
        "current_alpha": IRR["alpha"],
        "n_blocks": IRR["n_blocks"],
        "growth_max": IRR["growth_max"],
    }


def claims_calibration_files(kind):
    """Per variant: the calibration's `details` (for the ledger) or `rows` (for
    theory.parquet); none when the trajectory stage is off."""
    if not TRAJ["enabled"]:
        return []
    suffix = "" if kind == "details" else "_rows"
    return [f"results/claims/calibration_{v}{suffix}.parquet" for v in TRAJ_VARIANTS]


def claims_diffusion_input():
    return ["results/tables/diffusion.parquet"] if RUN else []


def claims_settings():
    """sgdvi.claims.rows.Settings from `claims:` and irreversibility.alpha."""
    keys = ("alpha", "level", "low_rank_max_pct", "about_factor")
    return {k: CLAIMS[k] for k in keys} | {"current_alpha": IRR["alpha"]}


def claims_targets():
    """The ledger, whenever the run has Fig. 1 experiments or trajectories to pool."""
    if not RUN and not TRAJ["enabled"]:
        return []
    return [f"results/tables/claims.{ext}" for ext in ("parquet", "csv")]


# ---- your own network and data (workflow/rules/user.smk) ----------------------------------

import sgdvi.config.user as sgdvi_user

#: datasets of a kind other than the paper's MNIST (rule prepare_dataset)
USER_DATASET_PATTERN = (
    "|".join(
        re.escape(n)
        for n in config["datasets"]
        if sgdvi_user.is_user_dataset(config, n)
    )
    or "NO_DATASET"
)
#: experiments of run: with a network by import path or a user dataset (rule user_summary)
USER_RUN = [n for n in RUN if sgdvi_user.is_user_experiment(config, n)]
USER_EXPERIMENT_PATTERN = "|".join(re.escape(n) for n in USER_RUN) or "NO_EXPERIMENT"
#: experiments that record their weights' path for the current test (rule user_current)
USER_CURRENT = [n for n, e in config["experiments"].items() if e["current"]["enabled"]]
USER_CURRENT_PATTERN = "|".join(re.escape(n) for n in USER_CURRENT) or "NO_EXPERIMENT"


def user_spectrum_mb(name):
    """mem_mb of a D(x) job of a user experiment (d and input size of the built network)."""
    import sgdvi.user_inputs

    return sgdvi.user_inputs.spectrum_job_mb(config, name)


def user_summary_input(wildcards):
    """Spectra and metrics of the experiment, and its current test when it records one."""
    name = wildcards.experiment
    inputs = {
        "spectra": diffusion_files(name),
        "metrics": f"results/{name}/metrics.parquet",
    }
    if name in USER_CURRENT:
        inputs["current"] = f"results/{name}/current.parquet"
    return inputs


def user_figure_title(name):
    """Title of the D(x) eigenvalue histogram of user experiment `name`."""
    exp = config["experiments"][name]
    model = exp["model"] if isinstance(exp["model"], str) else exp["model"]["import"]
    # the function's name only (module paths are long): fits the figure's width
    return f"{model.rsplit(':', 1)[-1]} on {exp['dataset']}"


def user_targets():
    """Summary table and D(x) histogram (PDF + PNG) of every user experiment in run:
    (`snakemake user`)."""
    return [f"results/{name}/summary.csv" for name in USER_RUN] + [
        f"results/figures/user-{name}.{ext}"
        for name in USER_RUN
        for ext in ("pdf", "png")
    ]
