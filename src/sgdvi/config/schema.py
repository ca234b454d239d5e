"""The JSON schema of the configuration: its defaults filled in, its errors in a few lines.

``workflow/schemas/config.schema.yaml`` is the one place a key's default is written.
:func:`fill_defaults` puts every ``default:`` into a configuration at every depth: inside
sections (``properties``), inside maps of named entries (``additionalProperties``, e.g. each
``experiments.<name>``), through ``$ref``. Two rules keep it predictable:

- a default counts only where the property states it (``key: {$ref: ..., default: ...}``), not
  in the node a ``$ref`` points to. Trajectory variants (``$defs/trajectory_overrides``)
  ``$ref`` the base trajectory keys without a ``default:`` of their own, so a variant keeps
  only the keys its user wrote and inherits the rest from the base keys
  (:func:`sgdvi.trajectory.variants.resolve_variants`): a default filled into it would
  silently override the base value;
- alternatives (``anyOf``/``oneOf``) are not entered (which branch applies is not known);
- a map of named entries (``additionalProperties``) whose ``default:`` names entries treats
  them as built in: an entry the config does not name is added (``datasets:`` keeps
  ``mnist28``, ``mnist7`` and ``mnist7-5class`` when a config defines datasets of its own, as
  Snakemake's merge of config files would), an entry the config names is the config's.

:func:`first_error` validates (JSON Schema draft 2020-12) and :func:`format_schema_error`
prints one error as key path, what is wrong, the closest valid key or value, and the
``1.0e+6`` hint for a number YAML 1.1 reads as text.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sgdvi.config.base import SCHEMA_PATH


@functools.lru_cache(maxsize=4)
def _read_schema(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def read_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """The schema at ``path`` (a fresh copy: callers may change it)."""
    return copy.deepcopy(_read_schema(str(Path(path).resolve())))


def deref(node: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its local ``$ref`` chain inlined (the node's own keys win)."""
    if not isinstance(node, Mapping):
        return {}
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


def _is_map(raw: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    """A map of named entries with built-in ones: ``additionalProperties`` a schema, no fixed
    ``properties``, a non-empty mapping as ``default``."""
    node = deref(raw, root)
    return (
        isinstance(node.get("additionalProperties"), Mapping)
        and not node.get("properties")
        and isinstance(raw.get("default"), Mapping)
    )


def _fill(node: Mapping[str, Any], value: Any, root: Mapping[str, Any]) -> None:
    """Fill the defaults below ``node`` into ``value`` in place (dicts only; lists of
    sections item by item). Missing keys are appended in the schema's order."""
    node = deref(node, root)
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for name, raw in properties.items():
            if not isinstance(raw, Mapping) or "default" not in raw:
                pass
            elif name not in value:
                value[name] = copy.deepcopy(raw["default"])
            elif _is_map(raw, root) and isinstance(value[name], dict):
                for entry, item in raw["default"].items():
                    value[name].setdefault(entry, copy.deepcopy(item))
            if name in value:
                _fill(raw, value[name], root)
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name, item in value.items():
                if name not in properties:
                    _fill(extra, item, root)
    elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
        for item in value:
            _fill(node["items"], item, root)


def fill_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every schema default filled in where the key is left out."""
    out = copy.deepcopy(dict(config))
    _fill(schema, out, schema)
    return out


def schema_default(schema: Mapping[str, Any], dotted: str) -> Any:
    """The ``default:`` of the key ``dotted`` (e.g. ``diffusion.lanczos.max_dim``;
    ``experiments.<name>.seed`` for an entry of a map). Raises KeyError when it has none."""
    node: Mapping[str, Any] = schema
    raw: Mapping[str, Any] = schema
    for part in dotted.split("."):
        node = deref(node, schema)
        props = node.get("properties", {})
        raw = props[part] if part in props else node["additionalProperties"]
        node = raw
    if "default" not in raw:
        raise KeyError(f"{dotted} has no default in the schema")
    return copy.deepcopy(raw["default"])


#: a number PyYAML (YAML 1.1) reads as a string: an exponent without a dot or without a sign
_EXPONENT_STRING = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))[eE]([+-]?\d+)\s*$")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key_path(parts: Sequence[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def number_hint(value: Any) -> str | None:
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


def _unknown_key(error: Any, path: list[Any]) -> tuple[str, str, str]:
    """Where, what and the hint of an ``additionalProperties`` error (a misspelt key)."""
    known = list(error.schema.get("properties", {}))
    unknown = [k for k in error.instance if k not in known]
    key = unknown[0] if unknown else "?"
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {_key_path([*path, close[0]])}?"
    else:
        hint = f"valid keys here: {', '.join(known[:15])}{' ...' if len(known) > 15 else ''}"
    return _key_path([*path, key]), "unknown key", hint


def format_schema_error(error: Any, others: int = 0) -> str:
    """At most ~3 lines for one :class:`jsonschema.ValidationError`: key path, what is wrong,
    the closest valid key or value for a misspelling, the ``1.0e+6`` hint for ``1e6``."""
    path = list(error.absolute_path)
    hint = None
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        where, what, hint = _unknown_key(error, path)
    else:
        where = _key_path(path)
        what = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        if error.validator == "type":
            what = f"{_short(error.instance)} is not of type {error.validator_value!r}"
            hint = number_hint(error.instance)
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


def first_error(config: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """Validate ``config`` against ``schema``; the first error in a few lines, or None.

    Snakemake's own ``validate`` printed the whole schema and config on an error (865 lines
    for a misspelt key); this names the key and the fix instead.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    first = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
    return format_schema_error(first, others=len(errors) - 1)
