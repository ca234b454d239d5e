"""Configuration reference, generated from the JSON schema and the shipped configs.

``python -m sgdvi.config_reference > docs/configuration.md`` writes a Markdown page with one
table per section of ``workflow/schemas/config.schema.yaml``: every key, what the schema allows,
its value in ``config/config.yaml`` (paper scale) and in ``config/quick.yaml`` (quick profile),
and its description (the schema's ``description``, else the comment beside the key in
config.yaml). ``tests/test_config_reference.py`` checks that the committed page is the one this
module generates now and that it names every key of the schema.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAPER = REPO / "config" / "config.yaml"
QUICK = REPO / "config" / "quick.yaml"

#: placeholder used in key paths for the free-form names of `experiments` and similar maps
NAME = "<name>"


@dataclass(frozen=True)
class Key:
    """One configuration key: dotted path (maps as ``<name>``), its schema node, required?"""

    path: tuple[str, ...]
    schema: Mapping[str, Any]
    required: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """Inline a ``$ref`` (local ``#/$defs/...`` only), keeping sibling keys such as description."""
    node = dict(node)
    while "$ref" in node:
        ref = node.pop("$ref")
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **node}
    return node


def schema_keys(schema: Mapping[str, Any]) -> Iterator[Key]:
    """Every key of the schema, depth first in the schema's order."""

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[Key]:
        node = _resolve(node, schema)
        required = set(node.get("required", []))
        for name, child in node.get("properties", {}).items():
            child = _resolve(child, schema)
            yield Key((*path, name), child, name in required)
            yield from walk(child, (*path, name))
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            child = _resolve(extra, schema)
            if child.get("type") == "object" or "properties" in child:
                yield Key((*path, NAME), child, False)
                yield from walk(child, (*path, NAME))
            else:
                yield Key((*path, NAME), child, False)

    yield from walk(schema, ())


def describe_type(node: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> str:
    """What the schema allows, in a few words (enum, type, bounds, items)."""
    node = _resolve(node, root or {})
    if "enum" in node:
        return " | ".join(f"`{_flow(v)}`" for v in node["enum"])
    types = node.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    words = []
    for t in types:
        if t == "array":
            items = node.get("items")
            inner = describe_type(_as_mapping(items), root) if items else "values"
            if "prefixItems" in node.get("items", {}):
                inner = "pairs"
            words.append(f"list of {inner}")
        elif t == "object":
            words.append("map" if "additionalProperties" in node else "section")
        elif t == "null":
            words.append("`null`")
        else:
            words.append(t)
    text = " or ".join(words) if words else "any"
    bounds = []
    for key, sym in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
        ("minItems", "length >="),
    ):
        if key in node:
            bounds.append(f"{sym} {node[key]}")
    if node.get("uniqueItems"):
        bounds.append("distinct")
    if "pattern" in node:
        bounds.append(f"matches `{node['pattern']}`")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _as_mapping(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _flow(value: Any) -> str:
    """A value as compact YAML flow text (what a user would type)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": ")).replace('"', "")


def _cell(value: Any, missing: bool = False, limit: int = 48) -> str:
    if missing:
        return ""
    text = _flow(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`"


def yaml_comments(text: str) -> dict[tuple[str, ...], str]:
    """Comments of a block-style YAML file, keyed by the path of the key they belong to.

    A key gets the comment on its own line and the comment lines right above it (a blank line
    breaks the attachment). Flow values and list items are not descended into.
    """
    comments: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    key_re = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(.*)$")
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        m = key_re.match(line)
        if not m:
            pending = []
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        path = tuple(k for _, k in stack)
        inline = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        text_parts = [p for p in (" ".join(pending), inline) if p]
        if text_parts:
            comments[path] = " ".join(text_parts)
        pending = []
    return comments


def _lookup(config: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    node = config
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(
    key: Key,
    paper: Any,
    quick: Any,
    comments: Mapping[tuple[str, ...], str],
    root: Mapping[str, Any],
) -> str:
    has_paper, v_paper = _lookup(paper, key.path)
    has_quick, v_quick = _lookup(quick, key.path)
    is_map = key.schema.get("type") == "object" and (
        "properties" in key.schema or "additionalProperties" in key.schema
    )
    described = key.schema.get("description") or comments.get(key.path, "")
    name = f"`{key.dotted}`" + ("" if key.required else " (optional)")
    allowed = (
        "section" if is_map and "properties" in key.schema else describe_type(key.schema, root)
    )
    if is_map:
        paper_cell = quick_cell = ""
    else:
        paper_cell = _cell(v_paper, missing=not has_paper)
        quick_cell = _cell(v_quick, missing=not has_quick)
    return (
        f"| {name} | {_escape(allowed)} | {paper_cell} | {quick_cell} | "
        f"{_escape(' '.join(described.split()))} |"
    )


HEADER = """\
# Configuration reference

<!-- Generated by `python -m sgdvi.config_reference > docs/configuration.md` from
workflow/schemas/config.schema.yaml, config/config.yaml and config/quick.yaml;
tests/test_config_reference.py fails when this page is out of date. Do not edit by hand. -->

The workflow reads `config/config.yaml` (paper scale); `--configfile config/quick.yaml` merges
the quick profile on top of it, and `--config key=value` overrides single keys. Before any job
runs, the whole configuration is validated against `workflow/schemas/config.schema.yaml`
(unknown keys are errors) and cross-checked by `sgdvi.config.check_config`.

Columns: **allowed** is what the schema accepts; **paper** the value in `config/config.yaml`;
**quick** the value `config/quick.yaml` sets (empty: the paper value is kept). `<name>` stands for
a name you choose (an experiment, a figure). Keys marked *optional* may be left out.
"""


def generate(
    schema: Mapping[str, Any] | None = None,
    paper_text: str | None = None,
    quick_text: str | None = None,
) -> str:
    """The Markdown configuration reference."""
    schema = schema if schema is not None else yaml.safe_load(SCHEMA.read_text())
    paper_text = paper_text if paper_text is not None else PAPER.read_text()
    quick_text = quick_text if quick_text is not None else QUICK.read_text()
    paper = yaml.safe_load(paper_text)
    quick = yaml.safe_load(quick_text) or {}
    comments = yaml_comments(paper_text)

    keys = list(schema_keys(schema))
    out = [HEADER]
    for top in schema.get("properties", {}):
        top_key = next(k for k in keys if k.path == (top,))
        section = [k for k in keys if k.path[0] == top]
        title = f"## `{top}`"
        out.append(title)
        out.append("")
        top_text = top_key.schema.get("description") or comments.get((top,), "")
        nested = len(section) > 1
        if top_text and nested:
            out.append(" ".join(top_text.split()))
            out.append("")
        out.append("| key | allowed | paper | quick | description |")
        out.append("|---|---|---|---|---|")
        for key in section:
            if nested and key.path == (top,):
                continue  # the heading and the paragraph above describe the section
            if top == "experiments":
                # values differ per experiment: they are in the table below
                out.append(_row(key, {}, {}, comments, schema))
            else:
                out.append(_row(key, paper, quick, comments, schema))
        out.append("")
        if top == "experiments":
            out.extend(_experiments_table(schema, paper, quick))
    return "\n".join(out).rstrip() + "\n"


def _experiments_table(schema: Mapping[str, Any], paper: Any, quick: Any) -> list[str]:
    """Values of every shipped experiment (paper scale; quick overrides after an arrow)."""
    exp_schema = _resolve(schema["$defs"]["experiment"], schema)
    fields = list(exp_schema["properties"])
    names = list(paper.get("experiments", {}))
    lines = [
        "Shipped experiments (paper value; `→` the quick profile's value where it differs):",
        "",
        "| key | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for field in fields:
        cells = []
        for n in names:
            has, value = _lookup(paper, ("experiments", n, field))
            has_q, value_q = _lookup(quick, ("experiments", n, field))
            cell = _cell(value, missing=not has, limit=40)
            if has_q and value_q != value:
                cell += f" → {_cell(value_q, limit=40)}"
            cells.append(cell)
        lines.append(f"| `{field}` | " + " | ".join(_escape(c) for c in cells) + " |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([],):
        print("usage: python -m sgdvi.config_reference > docs/configuration.md", file=sys.stderr)
        return 2
    sys.stdout.write(generate())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
