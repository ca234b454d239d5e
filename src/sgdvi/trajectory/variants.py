"""Trajectory variants: named settings of the Fig. 3 run (Section IV-B).

``trajectory:`` in the config holds the settings the paper states (variant ``stated``);
``trajectory.variants`` names other runs by the keys they override, e.g. the authors' run
(``experimental-details.md``, "The authors' actual settings"): 512 images of each of digits
0-3 with the 2017 uint8 wrap, a 4-way head and lr 0.1 throughout::

    trajectory:
      variants:
        authors: {dataset: mnist7-4class-512-wrap, num_classes: 4, lr: 0.1}

Pure Python (no torch): the Snakefile resolves the variants when it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: the variant made of the base ``trajectory:`` keys
STATED = "stated"
#: base keys that are not settings of a run
_NOT_SETTINGS = ("enabled", "variants")


def resolve_variants(
    traj: Mapping[str, Any], dataset_classes: Callable[[str], int]
) -> dict[str, dict[str, Any]]:
    """``name -> merged settings``: ``stated`` first, then each variant's overrides on top of
    the base keys. ``num_classes`` left out or null becomes ``dataset_classes(dataset)``. A
    variant set to null in a config file (``variants: {authors: null}``) is switched off:
    config files merge, so a profile cannot delete a key, only null it."""
    base = {k: v for k, v in traj.items() if k not in _NOT_SETTINGS}
    named = {k: v for k, v in (traj.get("variants") or {}).items() if v is not None}
    if STATED in named:
        raise ValueError(f"trajectory.variants.{STATED}: the name means the base settings")
    out = {}
    for name, over in {STATED: {}, **named}.items():
        merged = base | dict(over)
        if merged.get("num_classes") is None:
            merged["num_classes"] = int(dataset_classes(merged["dataset"]))
        out[name] = merged
    return out


def figure_name(panel: str, variant: str) -> str:
    """``fig3a`` for the stated variant, ``fig3a-authors`` for another."""
    return f"fig3{panel}" if variant == STATED else f"fig3{panel}-{variant}"


def parse_figure_tag(tag: str) -> tuple[str, str]:
    """``'a'`` -> ``('a', 'stated')``; ``'b-authors'`` -> ``('b', 'authors')``."""
    panel, _, variant = tag.partition("-")
    return panel, variant or STATED
