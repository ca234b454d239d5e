"""docs/configuration.md is generated from the schema alone and names every configuration key.

Regenerate after changing the schema or the shipped configs:
    .venv/bin/python -m sgdvi.config_reference > docs/configuration.md
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from sgdvi import config_reference

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
REGENERATE = "run `.venv/bin/python -m sgdvi.config_reference > docs/configuration.md`"


def schema_paths(node: dict, path: tuple[str, ...] = ()) -> set[str]:
    """Dotted paths of every property in the schema (free-form map keys as <name>).

    Written independently of sgdvi.config_reference so that a key the generator skips is found.
    """
    if "$ref" in node:
        target = SCHEMA
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out = set()
    for branch in node.get("anyOf", []) + node.get("oneOf", []) + node.get("allOf", []):
        out |= schema_paths(branch, path)
    for name, child in node.get("properties", {}).items():
        out.add(".".join((*path, name)))
        out |= schema_paths(child, (*path, name))
        items = child.get("items")
        if isinstance(items, dict) and "properties" in items:
            out |= schema_paths(items, (*path, name + "[]"))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out.add(".".join((*path, "<name>")))
        out |= schema_paths(extra, (*path, "<name>"))
    return out


def doc_keys(text: str) -> set[str]:
    """Backticked key names in the first column of the doc's tables."""
    return set(re.findall(r"^\| `([^`]+)`", text, flags=re.M))


def test_doc_is_up_to_date():
    assert DOC.exists(), f"docs/configuration.md is missing: {REGENERATE}"
    assert DOC.read_text() == config_reference.generate(), (
        f"docs/configuration.md is out of date with the schema or configs: {REGENERATE}"
    )


def test_doc_names_every_schema_key():
    keys = doc_keys(DOC.read_text())
    # the sections themselves are headings (## `data`), not rows
    headings = set(re.findall(r"^## `([^`]+)`", DOC.read_text(), flags=re.M))
    missing = sorted(p for p in schema_paths(SCHEMA) if p not in keys and p not in headings)
    assert not missing, f"keys of the schema missing from docs/configuration.md: {missing}"
    # experiment fields also appear in the table of shipped experiments
    for field in SCHEMA["$defs"]["experiment"]["properties"]:
        assert field in keys


def test_doc_names_no_key_the_schema_lacks():
    allowed = schema_paths(SCHEMA)
    extra = sorted(k for k in doc_keys(DOC.read_text()) if "." in k and k not in allowed)
    assert not extra, f"docs/configuration.md names keys the schema does not have: {extra}"


def test_a_new_schema_key_appears_with_its_type_default_and_paper_value():
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["theory"]["properties"]["sde"]["properties"]["substeps"] = {
        "type": "integer",
        "minimum": 3,
        "default": 5,
        "description": "Euler steps per output step",
    }
    paper = (REPO / "config" / "config.yaml").read_text()
    paper = paper.replace("    particles: 20000", "    particles: 20000\n    substeps: 7")
    assert "substeps: 7" in paper
    text = config_reference.generate(schema=schema, paper_text=paper)
    row = next(line for line in text.splitlines() if "`theory.sde.substeps`" in line)
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells == [
        "`theory.sde.substeps`",
        "integer (>= 3)",
        "`5`",
        "`7`",
        "",
        "Euler steps per output step",
    ]


def test_nested_maps_lists_and_refs():
    """Sections in maps in sections, lists of sections and $refs all reach the page, with the
    descriptions of the schema only (YAML comments are not a source)."""
    schema = {
        "$defs": {
            "variant": {
                "type": "object",
                "description": "one variant",
                "properties": {"lr": {"type": "number", "description": "step size"}},
            },
            "pos": {"type": "integer", "minimum": 1},
        },
        "type": "object",
        "properties": {
            "traj": {
                "type": "object",
                "description": "the trajectory",
                "properties": {
                    "variants": {
                        "type": "object",
                        "description": "named overrides",
                        "additionalProperties": {"$ref": "#/$defs/variant"},
                    },
                    "blocks": {
                        "type": "array",
                        "description": "blocks",
                        "items": {
                            "type": "object",
                            "properties": {"m": {"$ref": "#/$defs/pos", "description": "dirs"}},
                        },
                    },
                    "mode": {"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]},
                },
            }
        },
    }
    paper = "traj:  # a comment that must not be used\n  variants:\n    fast: {lr: 0.5}\n"
    text = config_reference.generate(schema=schema, paper_text=paper, quick_text="")
    rows = {
        line.split(" | ")[0].strip("| `").split("`")[0]: line
        for line in text.splitlines()
        if line.startswith("| `")
    }
    assert "step size" in rows["traj.variants.<name>.lr"]
    assert "map" in rows["traj.variants"] and "named overrides" in rows["traj.variants"]
    assert "integer (>= 1)" in rows["traj.blocks[].m"] and "dirs" in rows["traj.blocks[].m"]
    assert "list of sections" in rows["traj.blocks"]
    assert "`a` \\| `b` or `null`" in rows["traj.mode"]
    assert "a comment" not in text
    # the shipped entries of a map of sections get their own table
    assert "Shipped `traj.variants`" in text and "| `lr` | `0.5` |" in text


def test_every_schema_key_has_a_description():
    missing = [
        k.dotted for k in config_reference.schema_keys(SCHEMA) if not k.schema.get("description")
    ]
    assert not missing, f"schema keys without a description (the doc's only source): {missing}"


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"enum": ["A1", "A2"]}, "`A1` | `A2`"),
        ({"type": ["integer", "null"], "minimum": 1}, "integer or `null` (>= 1)"),
        ({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "number (> 0, <= 1)"),
        (
            {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "uniqueItems": True},
            "list of `x` | `y` (length >= 1, distinct)",
        ),
    ],
)
def test_describe_type(node, expected):
    assert config_reference.describe_type(node) == expected
