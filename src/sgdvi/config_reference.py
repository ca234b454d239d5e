"""Configuration reference, generated from the JSON schema alone (plus the shipped values).

``python -m sgdvi.config_reference > docs/configuration.md`` writes a Markdown page with one
table per section of ``workflow/schemas/config.schema.yaml``: every key, what the schema allows,
its ``default:`` (filled in when the key is left out), its value in ``config/config.yaml``
(paper scale) and in ``config/quick.yaml`` (quick profile), and the schema's ``description:``.
The schema is the one source of what a key means and of its default; the YAML files only
contribute their values. Maps of named sections (``experiments``, ``datasets``, ...) get a
second table with the value of every shipped entry.

``tests/test_config_reference.py`` checks that the committed page is the one this module
generates now and that it names every key of the schema.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sgdvi.config.schema import deref

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAPER = REPO / "config" / "config.yaml"
QUICK = REPO / "config" / "quick.yaml"
COMMAND = "python -m sgdvi.config_reference > docs/configuration.md"

#: placeholder used in key paths for the free-form names of `experiments` and similar maps
NAME = "<name>"
#: suffix of a key path element whose value is a list of sections (``key[]``: each item)
ITEM = "[]"


@dataclass(frozen=True)
class Key:
    """One configuration key: path (map names as ``<name>``), resolved schema node, required?"""

    path: tuple[str, ...]
    schema: Mapping[str, Any]
    required: bool
    #: the node as written in its parent, before its own ``$ref`` is resolved: a ``default``
    #: counts only here (validation fills a default only where the property states it)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_default(self) -> bool:
        return "default" in self.raw

    @property
    def default(self) -> Any:
        return self.raw["default"]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def is_section(self) -> bool:
        """A fixed set of named keys (``properties``), documented key by key."""
        return "properties" in self.schema

    @property
    def is_map(self) -> bool:
        """Free-form names (``additionalProperties``) mapping to values of one schema."""
        return isinstance(self.schema.get("additionalProperties"), Mapping)


def resolve(node: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with local ``$ref`` inlined (sibling keys such as ``description`` win) and the
    ``properties``/``required`` of ``allOf``/``anyOf``/``oneOf`` branches merged in."""
    if not isinstance(node, Mapping):
        return {}
    node = deref(node, root)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(combinator, []):
            branch = resolve(branch, root)
            if "properties" in branch:
                node["properties"] = {**branch["properties"], **node.get("properties", {})}
            if combinator == "allOf":
                node["required"] = [*node.get("required", []), *branch.get("required", [])]
    return node


def schema_keys(schema: Mapping[str, Any]) -> Iterator[Key]:
    """Every key of the schema, depth first in the schema's order.

    Sections are entered through ``properties``, maps through ``additionalProperties``
    (path element ``<name>``), lists of sections through ``items`` (path element ``key[]``).
    """

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[Key]:
        required = set(node.get("required", []))
        for name, raw in node.get("properties", {}).items():
            child = resolve(raw, schema)
            yield Key((*path, name), child, name in required, raw)
            yield from walk(child, (*path, name))
            items = resolve(child.get("items"), schema)
            if "properties" in items:
                yield from walk(items, (*path, name + ITEM))
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            child = resolve(extra, schema)
            yield Key((*path, NAME), child, False, extra)
            yield from walk(child, (*path, NAME))

    yield from walk(resolve(schema, schema), ())


_BOUNDS = (
    ("minimum", ">="),
    ("exclusiveMinimum", ">"),
    ("maximum", "<="),
    ("exclusiveMaximum", "<"),
    ("minItems", "length >="),
    ("maxItems", "length <="),
)


def describe_type(node: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> str:
    """What the schema allows, in a few words (enum, type, bounds, items, alternatives)."""
    root = root or {}
    node = resolve(node, root)
    if "const" in node:
        return f"`{_flow(node['const'])}`"
    if "enum" in node:
        return " | ".join(f"`{_flow(v)}`" for v in node["enum"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in node and "type" not in node:
            return " or ".join(describe_type(b, root) for b in node[combinator])
    types = node.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    words = [_describe_one(t, node, root) for t in types]
    text = " or ".join(words) if words else "any"
    bounds = [f"{sym} {node[key]}" for key, sym in _BOUNDS if key in node]
    if node.get("uniqueItems"):
        bounds.append("distinct")
    if "pattern" in node:
        bounds.append(f"matches `{node['pattern']}`")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _describe_one(t: str, node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    if t == "array":
        items = resolve(node.get("items"), root)
        if "prefixItems" in items:
            return "list of pairs"
        if "properties" in items:
            return "list of sections"
        return f"list of {describe_type(items, root)}" if items else "list of values"
    if t == "object":
        return "map" if isinstance(node.get("additionalProperties"), Mapping) else "section"
    if t == "null":
        return "`null`"
    return t


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


def _lookup(config: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    node = config
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _row(key: Key, paper: Any, quick: Any, root: Mapping[str, Any]) -> str:
    optional = not key.required and not key.has_default and key.path[-1] != NAME
    name = f"`{key.dotted}`" + (" (optional)" if optional else "")
    allowed = "section" if key.is_section else describe_type(key.schema, root)
    default = _cell(key.default) if key.has_default else ""
    if key.is_section or key.is_map or NAME in key.path or any(ITEM in p for p in key.path):
        paper_cell = quick_cell = ""  # values are per entry: in the table of shipped entries
    else:
        has_paper, v_paper = _lookup(paper, key.path)
        has_quick, v_quick = _lookup(quick, key.path)
        paper_cell = _cell(v_paper, missing=not has_paper)
        quick_cell = _cell(v_quick, missing=not has_quick)
    described = key.schema.get("description", "")
    return (
        f"| {name} | {_escape(allowed)} | {default} | {paper_cell} | {quick_cell} | "
        f"{_escape(described)} |"
    )


HEADER = f"""\
# Configuration reference

<!-- Generated by `{COMMAND}` from
workflow/schemas/config.schema.yaml (keys, types, defaults, descriptions) and the values in
config/config.yaml and config/quick.yaml; tests/test_config_reference.py fails when this page
is out of date. Do not edit by hand: edit the schema's `description:`/`default:` instead. -->

The workflow reads `config/config.yaml` (paper scale); `--configfile config/quick.yaml` merges
the quick profile on top of it, and `--config key=value` overrides single keys. Before any job
runs, the Snakefile calls `sgdvi.config.load(config)`, the one entry point of the
configuration: every key left out gets its schema `default:` (at every depth, in every entry of
`experiments:` and `datasets:`; never inside a trajectory variant, which inherits the base
`trajectory:` keys), the whole configuration is validated against
`workflow/schemas/config.schema.yaml` (unknown keys are errors) and cross-checked. Only `run`
and, per entry, an experiment's `dataset`, `model`, `lr_schedule` and a dataset's `size` are
required: a config of these alone runs at the paper's settings.

Columns: **allowed** is what the schema accepts; **default** the value a key gets when it is
left out; **paper** the value in `config/config.yaml`; **quick** the value `config/quick.yaml`
sets (empty: the paper value is kept). `<name>` stands for a name you choose (an experiment, a
dataset, a figure); `key[]` for each item of a list. Keys marked *optional* may be left out and
have no default.
"""

TABLE_HEAD = [
    "| key | allowed | default | paper | quick | description |",
    "|---|---|---|---|---|---|",
]


def generate(
    schema: Mapping[str, Any] | None = None,
    paper_text: str | None = None,
    quick_text: str | None = None,
) -> str:
    """The Markdown configuration reference."""
    schema = schema if schema is not None else yaml.safe_load(SCHEMA.read_text())
    paper = yaml.safe_load(paper_text if paper_text is not None else PAPER.read_text())
    quick = yaml.safe_load(quick_text if quick_text is not None else QUICK.read_text()) or {}

    keys = list(schema_keys(schema))
    out = [HEADER]
    for top in resolve(schema, schema).get("properties", {}):
        section = [k for k in keys if k.path[0] == top]
        head, rest = section[0], section[1:]
        out += [f"## `{top}`", ""]
        if rest and head.schema.get("description"):
            out += [_escape(head.schema["description"]), ""]
        out += TABLE_HEAD
        out += [_row(k, paper, quick, schema) for k in (rest or [head])]
        out.append("")
        for key in section:
            if key.is_map and "properties" in resolve(key.schema["additionalProperties"], schema):
                out += _entries_table(key, schema, paper, quick)
    return "\n".join(out).rstrip() + "\n"


def _entries_table(key: Key, schema: Mapping[str, Any], paper: Any, quick: Any) -> list[str]:
    """Values of every shipped entry of a map of sections (paper; `→` the quick value)."""
    if NAME in key.path:
        return []
    _, entries = _lookup(paper, key.path)
    names = list(entries or {})
    if not names:
        return []
    fields = list(resolve(key.schema["additionalProperties"], schema)["properties"])
    lines = [
        f"Shipped `{key.dotted}` (paper value; `→` the quick profile's value where it differs;"
        " empty: the default):",
        "",
        "| key | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key_name in fields:
        cells = []
        for n in names:
            has, value = _lookup(paper, (*key.path, n, key_name))
            has_q, value_q = _lookup(quick, (*key.path, n, key_name))
            cell = _cell(value, missing=not has, limit=40)
            if has_q and (not has or value_q != value):
                cell += f" → {_cell(value_q, limit=40)}"
            cells.append(cell)
        lines.append(f"| `{key_name}` | " + " | ".join(_escape(c) for c in cells) + " |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print(f"usage: {COMMAND}", file=sys.stderr)
        return 2
    sys.stdout.write(generate())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
