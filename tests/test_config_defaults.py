"""Defaults live in one place: the schema's ``default:`` entries, filled in by the Snakefile's
``snakemake.utils.validate`` (``set_default=True``) before any rule reads the config."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from snakemake.utils import validate

from sgdvi.config_reference import NAME, schema_keys

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
PAPER = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

DEFAULTED = [k for k in schema_keys(SCHEMA) if k.has_default]


def test_the_schema_has_defaults():
    dotted = {k.dotted for k in DEFAULTED}
    assert {"diffusion.lanczos.block_size", "diffusion.plot.cmap", "diffusion.threads"} <= dotted


@pytest.mark.parametrize("key", DEFAULTED, ids=lambda k: k.dotted)
def test_every_default_is_valid_and_not_required(key):
    node = {k: v for k, v in key.schema.items() if k != "default"}
    # local $refs resolve against a root that holds the schema's $defs and properties
    root = {"$defs": SCHEMA["$defs"], "properties": SCHEMA["properties"], "allOf": [node]}
    jsonschema.Draft202012Validator(root).validate(key.default)
    assert not key.required, f"{key.dotted} has a default, so it cannot be required"


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


def defaults_of(config: dict, key) -> list:
    """The value(s) of ``key`` in ``config`` (one per entry of a ``<name>`` map on the path)."""
    nodes = [config]
    for part in key.path:
        nodes = [
            v
            for n in nodes
            if isinstance(n, dict)
            for v in (n.values() if part == NAME else ([n[part]] if part in n else []))
        ]
    return nodes


def test_validate_fills_every_default_at_every_depth():
    """Leave out every key that has a default (a nested section too): validation puts back the
    schema's value, inside maps such as ``experiments.<name>`` as well."""
    config = copy.deepcopy(PAPER)
    for key in sorted(DEFAULTED, key=lambda k: -len(k.path)):
        drop(config, key.path)
    assert "lanczos" not in config["diffusion"] and "plot" not in config["diffusion"]
    validate(config, str(SCHEMA_PATH))
    for key in DEFAULTED:
        found = defaults_of(config, key)
        assert found, f"{key.dotted} was not filled in"
        if not isinstance(key.default, dict):  # sections: their keys are checked
            assert all(v == key.default for v in found), (key.dotted, found)
    assert config["diffusion"]["lanczos"]["max_dim"] == 4096
    assert config["diffusion"]["plot"] == {"bins": 40, "cmap": "Blues"}


def test_a_given_value_wins_over_the_default():
    config = copy.deepcopy(PAPER)
    config["diffusion"]["lanczos"] = {"block_size": 8}
    validate(config, str(SCHEMA_PATH))
    assert config["diffusion"]["lanczos"]["block_size"] == 8
    assert config["diffusion"]["lanczos"]["seed"] == 0


def test_a_trajectory_variant_inherits_instead_of_taking_defaults():
    """Variants list the keys they override (``$ref`` to the base keys, no ``default:`` of
    their own): validation must not fill ``num_classes: null`` into one."""
    config = copy.deepcopy(PAPER)
    config["trajectory"]["variants"] = {"authors": {"lr": 0.1}}
    validate(config, str(SCHEMA_PATH))
    assert config["trajectory"]["variants"]["authors"] == {"lr": 0.1}


def test_the_trainer_default_is_the_schema_default():
    """train() keeps a default for direct use; it must be the schema's (the rule passes the
    config's value, filled from the schema)."""
    from sgdvi.training import DIVERGENCE_FACTOR

    node = SCHEMA["properties"]["training"]["properties"]["divergence_factor"]
    assert node["default"] == DIVERGENCE_FACTOR
    assert "divergence_factor" not in SCHEMA["properties"]["training"]["required"]
