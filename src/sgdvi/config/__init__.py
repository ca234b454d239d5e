"""Configuration checks beyond the JSON schema, and small naming helpers.

The JSON schema (``workflow/schemas/config.schema.yaml``) rejects unknown keys, wrong types
and out-of-range values. :func:`check_config` adds the checks a schema cannot express
(cross-references between keys). Every error names the offending key and the fix.
"""

from __future__ import annotations

import difflib
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: CIFAR datasets (prepared by rule prepare_cifar_zca) -> their number of classes
CIFAR_DATASETS: dict[str, int] = {"cifar10-zca": 10, "cifar100-zca": 100}

#: model -> the input it takes: an MNIST image size (28 or 7) or "cifar" (32x32x3)
MODEL_INPUT: dict[str, int | str] = {
    "small-lenet": 28,
    "small-fc": 7,
    "tiny-fc": 7,
    "small-allcnn": "cifar",
}

#: head size of the built-in dataset names, for callers without a config (the workflow uses
#: :func:`experiment_num_classes`, which reads the config's ``datasets:``)
DATASET_CLASSES: dict[str, int] = {
    "mnist28": 10,
    "mnist7": 10,
    "mnist7-5class": 5,
    **CIFAR_DATASETS,
}

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key and the fix."""


def fraction_tag(fraction: float) -> str:
    """Canonical text of a snapshot fraction used in file names: 0.2 -> '0.2', 1 -> '1.0'."""
    return repr(float(fraction))


def snapshot_epoch(fraction: float, epochs: int) -> int:
    """Epoch (1-based count of finished epochs) after which the snapshot ``fraction`` is kept.

    ``max(1, round(fraction * epochs))``: 0.2, 0.4, 1.0 of 50 epochs give 10, 20, 50
    (the authors' code kept epochs 11, 21, 50).
    """
    return max(1, min(epochs, round(fraction * epochs)))


def weight_count(model: str, num_classes: int) -> int:
    """Number of weights d of a network, in closed form (no torch import; the Snakefile uses it).

    Every conv/linear layer has a bias and BN has two affine weights per channel
    (``experimental-details.md``); tests/test_models.py checks it against the built networks.
    """

    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_out * (c_in * k * k + 1)

    if model == "small-lenet":
        return (
            conv(1, 8, 5)
            + 16
            + conv(8, 16, 5)
            + 32
            + conv(64, 128, 1)
            + 256
            + conv(128, num_classes, 1)
        )
    if model in ("small-fc", "tiny-fc"):
        hidden = 64 if model == "small-fc" else 16
        return conv(49, hidden, 1) + 2 * hidden + conv(hidden, num_classes, 1)
    if model == "small-allcnn":
        convs = [(3, 12), (12, 12), (12, 12), (12, 24), (24, 24), (24, 24), (24, 24), (24, 24)]
        d = sum(conv(a, b, 3) + 2 * b for a, b in convs)
        return d + conv(24, num_classes, 1) + 2 * num_classes
    raise ConfigError(f"unknown model {model!r}")


# --------------------------------------------------------------------------- datasets


def dataset_names(config: Mapping[str, Any]) -> list[str]:
    """Every dataset an experiment may name: the keys of ``datasets:`` and the CIFAR ones."""
    return [*config.get("datasets", {}), *CIFAR_DATASETS]


def dataset_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The resolved options of MNIST dataset ``name`` (``sgdvi.data.mnist.MnistOptions``).

    Defaults: ``classes`` None (all ten digits), ``per_class`` None, ``sample_seed`` 42,
    ``authors_wrap`` false, ``normalisation`` ``data.mnist.normalisation``.
    """
    datasets = config.get("datasets", {})
    if name not in datasets:
        raise ConfigError(f"dataset {name!r} is not a key of datasets: (known: {sorted(datasets)})")
    entry = datasets[name]
    classes = entry.get("classes")
    per_class = entry.get("per_class")
    seed = entry.get("sample_seed")
    return {
        "size": int(entry["size"]),
        "classes": None if classes is None else [int(c) for c in classes],
        "per_class": None if per_class is None else int(per_class),
        "sample_seed": 42 if seed is None else int(seed),
        "authors_wrap": bool(entry.get("authors_wrap") or False),
        "normalisation": entry.get("normalisation") or config["data"]["mnist"]["normalisation"],
    }


def dataset_num_classes(config: Mapping[str, Any], name: str) -> int:
    """Default head size for dataset ``name``: ``len(classes)``, else 10 (MNIST) / 10 or 100."""
    if name in CIFAR_DATASETS:
        return CIFAR_DATASETS[name]
    classes = dataset_options(config, name)["classes"]
    return 10 if classes is None else len(classes)


def dataset_max_label(config: Mapping[str, Any], name: str) -> int:
    """Largest label dataset ``name`` keeps (labels stay the digits of a class subset)."""
    if name in CIFAR_DATASETS:
        return CIFAR_DATASETS[name] - 1
    classes = dataset_options(config, name)["classes"]
    return 9 if classes is None else max(classes)


def experiment_num_classes(config: Mapping[str, Any], name: str) -> int:
    """Head size of experiment ``name``: its ``num_classes``, else its dataset's default.

    The authors' small-fc kept a 10-way output on digits 0 and 1 (``experimental-details.md``),
    so the head size is a key of its own; d = :func:`weight_count` (model, this).
    """
    exp = config["experiments"][name]
    if exp.get("num_classes") is not None:
        return int(exp["num_classes"])
    return dataset_num_classes(config, exp["dataset"])


def check_dataset_use(
    config: Mapping[str, Any], key: str, model: str, dataset: str, num_classes: int | None
) -> None:
    """``dataset`` exists, fits ``model``'s input, and ``num_classes`` covers its labels.

    ``key``: the config key of the user (e.g. ``experiments.fc-mnist7``), named in errors.
    """
    names = dataset_names(config)
    if dataset not in names:
        raise ConfigError(
            f"{key}.dataset: {dataset!r} is not a key of datasets: nor a CIFAR dataset; "
            f"use one of {names} or define it under datasets:"
        )
    wanted = MODEL_INPUT[model]
    have: int | str = (
        "cifar" if dataset in CIFAR_DATASETS else dataset_options(config, dataset)["size"]
    )
    if have != wanted:
        fits = [
            n
            for n in names
            if ("cifar" if n in CIFAR_DATASETS else dataset_options(config, n)["size"]) == wanted
        ]
        what = "CIFAR images" if wanted == "cifar" else f"{wanted}x{wanted} MNIST images"
        raise ConfigError(
            f"{key}.dataset: model {model!r} takes {what}, but dataset {dataset!r} "
            f"{'is CIFAR' if have == 'cifar' else f'has size {have}'}; use one of {fits}"
        )
    n_cls = dataset_num_classes(config, dataset) if num_classes is None else int(num_classes)
    top = dataset_max_label(config, dataset)
    if n_cls <= top:
        raise ConfigError(
            f"{key}.num_classes: {n_cls} outputs cannot hold label {top} of dataset "
            f"{dataset!r} (labels stay the digits); set num_classes to at least {top + 1}"
        )


def _check_names(config: Mapping[str, Any]) -> None:
    """Dataset names do not shadow CIFAR's; ``run:`` lists defined experiments only."""
    experiments = config.get("experiments", {})
    clash = sorted(set(config.get("datasets", {})) & set(CIFAR_DATASETS))
    if clash:
        raise ConfigError(
            f"datasets.{clash[0]}: the name is taken by the CIFAR dataset of rule "
            "prepare_cifar_zca; choose another name"
        )
    for name in config.get("run", []):
        if name not in experiments:
            raise ConfigError(
                f"config key run: lists {name!r}, which is not a key of experiments: "
                f"(known: {sorted(experiments)}); add it under experiments: or remove it from run:"
            )


def _check_experiment(config: Mapping[str, Any], name: str, exp: Mapping[str, Any]) -> None:
    """One experiment: its dataset, learning-rate schedule, augmentation and snapshots."""
    key = f"experiments.{name}"
    model, dataset = exp["model"], exp["dataset"]
    check_dataset_use(config, key, model, dataset, exp.get("num_classes"))
    schedule = exp["lr_schedule"]
    if schedule[0][0] != 0:
        raise ConfigError(f"{key}.lr_schedule: the first entry must start at epoch 0")
    starts = [int(s[0]) for s in schedule]
    if starts != sorted(set(starts)):
        raise ConfigError(f"{key}.lr_schedule: epochs must be strictly increasing, got {starts}")
    if exp["augment"] and not dataset.startswith("cifar"):
        raise ConfigError(f"{key}.augment: augmentation is defined for CIFAR only")
    tags = [fraction_tag(f) for f in exp["snapshots"]]
    if len(set(tags)) != len(tags):
        raise ConfigError(f"{key}.snapshots: fractions must be distinct, got {tags}")
    epochs_at = [snapshot_epoch(f, exp["epochs"]) for f in exp["snapshots"]]
    if len(set(epochs_at)) != len(epochs_at):
        raise ConfigError(
            f"{key}.snapshots: fractions {tags} fall on the same epochs {epochs_at} "
            f"with epochs: {exp['epochs']}; raise epochs or space the fractions"
        )


def _check_trajectory(config: Mapping[str, Any]) -> None:
    """The trajectory's dataset (and each variant's) fits tiny-fc; burn-in < epochs."""
    traj = config.get("trajectory")
    if not traj:
        return
    check_dataset_use(config, "trajectory", "tiny-fc", traj["dataset"], traj.get("num_classes"))
    for variant, over in (traj.get("variants") or {}).items():
        if over is None:  # a variant switched off
            continue
        check_dataset_use(
            config,
            f"trajectory.variants.{variant}",
            "tiny-fc",
            over.get("dataset", traj["dataset"]),
            over.get("num_classes", traj.get("num_classes")),
        )
    if traj["burn_in"] >= traj["epochs"]:
        raise ConfigError(
            f"trajectory.burn_in ({traj['burn_in']}) must be smaller than trajectory.epochs "
            f"({traj['epochs']})"
        )


def _check_figures(config: Mapping[str, Any]) -> None:
    """Every experiment named by ``diffusion.figures`` is defined."""
    experiments = config.get("experiments", {})
    diff = config.get("diffusion")
    if diff:
        for fig, exp_name in diff.get("figures", {}).items():
            if exp_name not in experiments:
                raise ConfigError(
                    f"diffusion.figures.{fig}: experiment {exp_name!r} is not defined under "
                    "experiments:"
                )


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks; raises :class:`ConfigError` naming the key."""
    _check_names(config)
    for name, exp in config.get("experiments", {}).items():
        _check_experiment(config, name, exp)
    _check_trajectory(config)
    _check_figures(config)


#: a number PyYAML (YAML 1.1) reads as a string: an exponent without a dot or without a sign
_EXPONENT_STRING = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))[eE]([+-]?\d+)\s*$")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key_path(parts: Sequence[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _number_hint(value: Any) -> str | None:
    """``1e6`` read as a string -> the hint to write ``1.0e+6``."""
    if not isinstance(value, str):
        return None
    match = _EXPONENT_STRING.match(value)
    if not match:
        return None
    mantissa, exponent = match.groups()
    if "." not in mantissa:
        mantissa += ".0"
    fixed = f"{mantissa}e{int(exponent):+d}"
    return f"YAML reads {value.strip()} as text, not a number; write it as {fixed}"


def format_schema_error(error: Any, others: int = 0) -> str:
    """At most ~3 lines for one :class:`jsonschema.ValidationError`: key path, what is wrong,
    the closest valid key or value for a misspelling, the ``1.0e+6`` hint for ``1e6``."""
    path = list(error.absolute_path)
    hint = None
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        key = unknown[0] if unknown else "?"
        where = _key_path([*path, key])
        what = "unknown key"
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {_key_path([*path, close[0]])}?"
        else:
            hint = f"valid keys here: {', '.join(known[:15])}{' ...' if len(known) > 15 else ''}"
    else:
        where = _key_path(path)
        what = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        if error.validator == "type":
            what = f"{_short(error.instance)} is not of type {error.validator_value!r}"
            hint = _number_hint(error.instance)
        elif error.validator == "enum":
            what = f"{_short(error.instance)} is not one of {error.validator_value}"
            close = difflib.get_close_matches(
                str(error.instance), [str(v) for v in error.validator_value], n=1, cutoff=0.6
            )
            hint = f"did you mean {close[0]}?" if close else None
    lines = [f"config key {where}: {what}"]
    if hint:
        lines.append(f"  hint: {hint}")
    if others:
        lines.append(f"  ({others} more problem{'s' if others > 1 else ''} after this one)")
    return "\n".join(lines)


def schema_error(config: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> str | None:
    """Validate ``config`` against the JSON schema; the first error in a few lines, or None.

    The Snakefile raises :class:`ConfigError` with it (issue 10, case 4: Snakemake's own
    ``validate`` printed the whole schema and config, 865 lines for a misspelt key).
    """
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    first = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
    return format_schema_error(first, others=len(errors) - 1)


def validate_config(config: Mapping[str, Any]) -> None:
    """Schema validation plus :func:`check_config`, as the Snakefile does (for tests and tools)."""
    message = schema_error(config)
    if message:
        raise ConfigError(message)
    check_config(config)


def uses_cuda(device: str) -> bool:
    """Whether rules that train or compute gradients run on CUDA for this ``device`` value.

    ``auto`` asks the machine that builds the DAG: ``nvidia-smi`` on PATH and torch seeing a GPU.
    """
    if device == "cuda":
        return True
    if device == "cpu":
        return False
    if shutil.which("nvidia-smi") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def concrete_device(device: str) -> str:
    """``cpu`` or ``cuda``: what the jobs get, decided once when the DAG is built."""
    return "cuda" if uses_cuda(device) else "cpu"
