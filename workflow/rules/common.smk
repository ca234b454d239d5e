# Config helpers and input functions shared by every stage.

import sgdvi.config as sgdvi_config

sgdvi_config.check_config(config)

RUN = list(config["run"])


wildcard_constraints:
    experiment="|".join(sorted(config["experiments"])) or "NO_EXPERIMENT",
    fraction=r"[01]\.[0-9]+",
    dataset=r"mnist28|mnist7|mnist7-5class|cifar10-zca|cifar100-zca",
    seed=r"[0-9]+",


def fraction_tag(fraction):
    """Canonical file name of a snapshot fraction: 0.2 -> '0.2', 1 -> '1.0'."""
    return sgdvi_config.fraction_tag(fraction)


def experiment(name):
    return config["experiments"][name]


def dataset_file(name):
    return f"results/data/{name}.npz"


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
    return ["results/tables/benchmarks.tsv"]


def all_targets():
    targets = []
    targets += train_targets()
    targets += diffusion_targets()
    targets += trajectory_targets()
    targets += theory_targets()
    return targets
