"""Defaults live in one place: the schema's ``default:`` entries, filled in by the one entry
point ``sgdvi.config.load`` (which the Snakefile calls) before any rule reads the config."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import jsonschema
import pytest
import yaml

from sgdvi.config import fill_defaults, load, read_schema, schema_default
from sgdvi.config_reference import NAME, schema_keys
from sgdvi.trajectory.variants import resolve_variants

REPO = Path(__file__).resolve().parents[1]
SCHEMA = read_schema()
PAPER = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

DEFAULTED = [k for k in schema_keys(SCHEMA) if k.has_default]
VARIANT_KEYS = ("trajectory", "variants", NAME)


#: keys a config must write (none of them has a value that would fit every config)
REQUIRED = {
    "run": "what to train is the config's choice",
    "datasets.<name>.size": "an MNIST dataset's image side picks the networks it fits",
    "experiments.<name>.dataset": "the data of a new experiment",
    "experiments.<name>.model": "the network of a new experiment",
    "experiments.<name>.lr_schedule": "the paper gives no schedule ('appropriate annealing')",
}
#: optional keys without a default, and why
NO_DEFAULT = {
    "datasets.<name>.size": "required for the MNIST kinds only (the schema's if/then)",
}


def _in_alternative(key, by_path) -> bool:
    """Below an ``anyOf``/``oneOf`` (load fills no default there: the branch is unknown)."""
    return any(
        "anyOf" in by_path[key.path[:i]].schema or "oneOf" in by_path[key.path[:i]].schema
        for i in range(1, len(key.path))
        if key.path[:i] in by_path
    )


def test_every_optional_key_has_a_default():
    """Only the keys in REQUIRED may be required; every other key (map entries, trajectory
    variant overrides and alternatives aside) has a default, or a reason in NO_DEFAULT."""
    keys = list(schema_keys(SCHEMA))
    by_path = {k.path: k for k in keys}
    missing = [
        k.dotted
        for k in keys
        if not k.has_default
        and not k.required
        and k.path[-1] != NAME
        and k.path[:3] != VARIANT_KEYS
        and not _in_alternative(k, by_path)
    ]
    assert set(missing) <= set(NO_DEFAULT), sorted(set(missing) - set(NO_DEFAULT))
    required = {k.dotted for k in keys if k.required}
    assert required <= set(REQUIRED), sorted(required - set(REQUIRED))
    assert "run" in required


@pytest.mark.parametrize("key", DEFAULTED, ids=lambda k: k.dotted)
def test_every_default_is_valid_and_not_required(key):
    node = {k: v for k, v in key.schema.items() if k != "default"}
    # local $refs resolve against a root that holds the schema's $defs and properties
    root = {"$defs": SCHEMA["$defs"], "properties": SCHEMA["properties"], "allOf": [node]}
    jsonschema.Draft202012Validator(root).validate(key.default)
    assert not key.required, f"{key.dotted} has a default, so it cannot be required"


def test_variant_overrides_have_no_default_of_their_own():
    """A variant's keys ``$ref`` the base keys; a ``default:`` on them would be filled into
    every variant and override the base value the variant should inherit."""
    variant_keys = [k for k in schema_keys(SCHEMA) if k.path[:3] == VARIANT_KEYS]
    assert len(variant_keys) > 10
    assert not [k.dotted for k in variant_keys if k.has_default]


def drop(config: dict, path: tuple[str, ...]) -> None:
    """Remove ``path`` from ``config`` (every entry of a ``<name>`` map), if present."""
    head, *rest = path
    targets = list(config.values()) if head == NAME else [config]
    for node in targets:
        if not isinstance(node, dict):
            continue
        if not rest:
            if head != NAME:
                node.pop(head, None)
        elif (head == NAME or head in node) and isinstance(node.get(head, node), dict):
            drop(node if head == NAME else node[head], tuple(rest))


def values_of(config: dict, path: tuple[str, ...]) -> list:
    """The value(s) at ``path`` in ``config`` (one per entry of a ``<name>`` map on it)."""
    nodes = [config]
    for part in path:
        nodes = [
            v
            for n in nodes
            if isinstance(n, dict)
            for v in (n.values() if part == NAME else ([n[part]] if part in n else []))
        ]
    return nodes


def test_load_fills_every_default_at_every_depth():
    """Leave out every key that has a default, sections too, except the ones the paper's
    experiments and figures need: load puts back the schema's value at every depth, inside
    maps such as ``experiments.<name>`` and ``datasets.<name>`` as well."""
    config = copy.deepcopy(PAPER)
    # a dataset's size defaults to null (the kinds without one); MNIST datasets name theirs
    keep = {"datasets", "experiments", "diffusion", "diffusion.figures", "datasets.<name>.size"}
    for key in sorted(DEFAULTED, key=lambda k: -len(k.path)):
        if key.dotted not in keep and key.path[:3] != VARIANT_KEYS:
            drop(config, key.path)
    assert set(config) == {"run", "datasets", "experiments", "diffusion"}
    assert set(config["diffusion"]) == {"figures"}
    assert "seed" not in config["experiments"]["lenet-mnist"]
    load(config)
    for key in DEFAULTED:
        if None in values_of(config, key.path[:-1]):
            continue  # below a section that is null by default (switched off)
        found = values_of(config, key.path)
        assert found, f"{key.dotted} was not filled in"
        if not isinstance(key.default, dict) and key.dotted not in keep:  # kept: own values
            assert all(v == key.default for v in found), (key.dotted, found)
    assert config["diffusion"]["lanczos"]["max_dim"] == 4096
    assert config["diffusion"]["plot"] == {"bins": 40, "cmap": "Blues"}
    assert config["datasets"]["mnist7-01"]["sample_seed"] == 42
    # the defaults of the sections are the paper-scale values config/config.yaml states
    paper = load(copy.deepcopy(PAPER))
    for section in ("device", "data", "training", "diffusion", "theory", "irreversibility"):
        assert config[section] == paper[section], section
    paper["trajectory"]["variants"] = config["trajectory"]["variants"] = {}
    assert config["trajectory"] == paper["trajectory"]


def test_a_given_value_wins_over_the_default():
    config = copy.deepcopy(PAPER)
    config["diffusion"]["lanczos"] = {"block_size": 8}
    config["experiments"]["fc-mnist7"]["seed"] = 7
    load(config)
    assert config["diffusion"]["lanczos"]["block_size"] == 8
    assert config["diffusion"]["lanczos"]["seed"] == 0
    assert config["experiments"]["fc-mnist7"]["seed"] == 7


def test_load_updates_in_place_and_is_idempotent():
    config = {"run": []}
    same = load(config)
    assert same is config and config["trajectory"]["epochs"] == 100000
    again = copy.deepcopy(config)
    assert load(again) == config


def test_a_trajectory_variant_inherits_instead_of_taking_defaults():
    """Variants list only the keys they override (``$ref`` to the base keys): load must not fill
    defaults into one, else the variant would silently take e.g. ``epochs: 100000`` and
    ``full_pass_every: 10`` instead of the base values it should inherit."""
    config = {
        "run": [],
        "trajectory": {
            "epochs": 500,
            "burn_in": 50,
            "full_pass_every": 3,
            "variants": {"fast": {"lr": 0.1}, "off": None},
        },
    }
    load(config)
    assert config["trajectory"]["variants"] == {"fast": {"lr": 0.1}, "off": None}
    merged = resolve_variants(config["trajectory"], lambda name: 5)
    assert merged["fast"]["epochs"] == 500 and merged["fast"]["full_pass_every"] == 3
    assert merged["fast"]["lr"] == 0.1 and merged["stated"]["lr"] == 0.001
    assert set(merged) == {"stated", "fast"}


def test_defaults_behind_a_ref_are_not_filled():
    """The rule in isolation: a property that only ``$ref``s a node with a default gets none."""
    schema = {
        "$defs": {"lr": {"type": "number", "default": 0.5}},
        "type": "object",
        "properties": {
            "base": {"type": "object", "properties": {"lr": {"$ref": "#/$defs/lr"}}},
            "own": {
                "type": "object",
                "default": {},
                "properties": {"lr": {"$ref": "#/$defs/lr", "default": 0.25}},
            },
        },
    }
    assert fill_defaults({"base": {}}, schema) == {"base": {}, "own": {"lr": 0.25}}


def test_schema_default_lookup():
    assert schema_default(SCHEMA, "diffusion.dense_max_d") == 4000
    assert schema_default(SCHEMA, "experiments.<name>.seed") == 42
    with pytest.raises(KeyError):
        schema_default(SCHEMA, "run")


def test_the_trainer_default_is_the_schema_default():
    """train() keeps a default for direct use; it must be the schema's (the rule passes the
    config's value, filled from the schema)."""
    from sgdvi.training import DIVERGENCE_FACTOR

    assert schema_default(SCHEMA, "training.divergence_factor") == DIVERGENCE_FACTOR


def test_the_spectrum_defaults_are_the_schema_defaults():
    """diffusion_spectrum keeps keyword defaults for library users: they are the schema's."""
    from sgdvi.diffusion.compute import diffusion_spectrum

    params = inspect.signature(diffusion_spectrum).parameters
    pairs = {
        "dense_max_d": "diffusion.dense_max_d",
        "block_size": "diffusion.lanczos.block_size",
        "krylov_tol": "diffusion.lanczos.krylov_tol",
        "eig_tol": "diffusion.lanczos.eig_tol",
        "max_krylov_dim": "diffusion.lanczos.max_dim",
        "seed": "diffusion.lanczos.seed",
    }
    for arg, key in pairs.items():
        assert params[arg].default == schema_default(SCHEMA, key), arg


def test_datasets_of_ones_own_keep_the_built_in_ones():
    """The default's entries of ``datasets:`` are built in: a config with datasets of its own
    keeps them (the trajectory's default dataset mnist7-5class among them); one that names an
    entry replaces it."""
    config = load(
        {"run": [], "datasets": {"mine": {"size": 7}, "mnist7": {"size": 7, "classes": [3]}}}
    )
    assert list(config["datasets"]) == ["mine", "mnist7", "mnist28", "mnist7-5class"]
    assert config["datasets"]["mnist7"]["classes"] == [3]
    assert config["datasets"]["mnist7-5class"]["classes"] == [0, 1, 2, 3, 4]
    assert config["datasets"]["mine"]["sample_seed"] == 42
