"""Networks by name or by import path: an experiment's ``model`` key.

``model: small-lenet`` names one of the paper's networks (:mod:`sgdvi.models`);
``model: {import: "mypkg.nets:make_net", kwargs: {width: 32}}`` names any function (or
class) that returns a :class:`torch.nn.Module` mapping a batch ``(B, C, H, W)`` to logits
``(B, num_classes)``. The experiment's ``num_classes`` and ``dropout`` are passed to it when
it takes parameters of those names and ``kwargs`` does not set them. The module must be
importable by Snakemake and by its jobs: installed, or in a directory listed under the
config's ``python_path:`` (or ``PYTHONPATH``).

Snapshots store the spec (``model_spec``) next to a printable label (``model``), so that
:func:`build_network` rebuilds the same network for the D(x) spectrum of Section IV-A.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sgdvi.models import MODEL_SPECS, build_model

ModelSpecLike = str | Mapping[str, Any]


class ModelSpecError(ValueError):
    """A model spec that cannot be used; the message names the config key and the fix."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed model spec: a built-in name, or an import target ``module:attr`` + kwargs."""

    builtin: str | None = None
    target: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Printable name: the built-in name or the import target."""
        return self.builtin if self.builtin is not None else str(self.target)

    def as_spec(self) -> ModelSpecLike:
        """The spec as the config writes it (a string, or a plain dict)."""
        if self.builtin is not None:
            return self.builtin
        return {"import": self.target, "kwargs": dict(self.kwargs)}


def parse_model_spec(spec: Any, key: str = "model") -> ModelRef:
    """Parse ``spec`` (a built-in name or ``{import: "module:attr", kwargs: {...}}``)."""
    if isinstance(spec, str):
        if spec not in MODEL_SPECS:
            raise ModelSpecError(
                f"{key}: unknown model {spec!r}; use one of {sorted(MODEL_SPECS)} or "
                "{import: 'module:function', kwargs: {...}} for your own network"
            )
        return ModelRef(builtin=spec)
    if not isinstance(spec, Mapping) or "import" not in spec:
        raise ModelSpecError(
            f"{key}: expected a built-in name ({sorted(MODEL_SPECS)}) or a mapping "
            f"{{import: 'module:function', kwargs: {{...}}}}, got {spec!r}"
        )
    extra = sorted(set(spec) - {"import", "kwargs"})
    if extra:
        raise ModelSpecError(
            f"{key}: unknown keys {extra}; a model by import path has import: and kwargs: only"
        )
    target = spec["import"]
    module, sep, attr = str(target).partition(":")
    if not sep or not module or not attr:
        raise ModelSpecError(
            f"{key}.import: {target!r} is not of the form 'module:function' "
            "(e.g. 'mypkg.nets:make_net')"
        )
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ModelSpecError(f"{key}.kwargs: expected a mapping of keyword arguments")
    return ModelRef(target=str(target), kwargs=dict(kwargs))


def model_label(spec: Any) -> str:
    """Printable name of a spec (for logs, tables and snapshot metadata)."""
    if isinstance(spec, Mapping) and "import" in spec:
        return str(spec["import"])
    return str(spec)


def is_builtin(spec: Any) -> bool:
    """Whether ``spec`` names one of the paper's networks."""
    return isinstance(spec, str)


def _import_module(module: str, key: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ModelSpecError(
                f"{key}.import: cannot import module {module!r} (no module named "
                f"{exc.name!r}); check the spelling, install it, or add its directory to "
                "the config's python_path:"
            ) from exc
        raise ModelSpecError(
            f"{key}.import: module {module!r} failed to import: {exc}; install what it needs"
        ) from exc
    except Exception as exc:
        raise ModelSpecError(
            f"{key}.import: module {module!r} raised {type(exc).__name__} on import: {exc}"
        ) from exc


def resolve_model(spec: Any, key: str = "model") -> Callable[..., nn.Module]:
    """The function a spec names: :func:`sgdvi.models.build_model`'s builder for a built-in
    name, else the imported ``module:attr`` (``attr`` may be dotted, e.g. ``Net.make``)."""
    ref = parse_model_spec(spec, key)
    if ref.builtin is not None:
        name = ref.builtin
        return lambda **kw: build_model(name, kw.get("num_classes"), kw.get("dropout"))
    module_name, _, attr = str(ref.target).partition(":")
    obj: Any = _import_module(module_name, key)
    for part in attr.split("."):
        if not hasattr(obj, part):
            where = getattr(_import_module(module_name, key), "__file__", module_name)
            raise ModelSpecError(
                f"{key}.import: module {module_name!r} ({where}) has no attribute "
                f"{attr!r}; check the name after the colon"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelSpecError(f"{key}.import: {ref.target} is not callable")
    return obj


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_network(
    spec: Any, num_classes: int | None = None, dropout: float | None = None, key: str = "model"
) -> nn.Module:
    """Build the network of ``spec`` (built-in or by import path; see the module docstring)."""
    ref = parse_model_spec(spec, key)
    if ref.builtin is not None:
        return build_model(ref.builtin, num_classes=num_classes, dropout=dropout)
    factory = resolve_model(spec, key)
    kwargs = dict(ref.kwargs)
    for name, value in (("num_classes", num_classes), ("dropout", dropout)):
        if value is not None and name not in kwargs and _accepts(factory, name):
            kwargs[name] = value
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ModelSpecError(
            f"{key}: {ref.target}(**{kwargs}) raised {type(exc).__name__}: {exc}; check "
            f"{key}.kwargs"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"{key}: {ref.target} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


@dataclass(frozen=True)
class OutputCheck:
    """What one forward pass on a dummy batch showed: the head size and the weight count."""

    num_outputs: int
    num_weights: int


def check_model_output(
    model: nn.Module, input_shape: Iterable[int], max_label: int, key: str, batch: int = 2
) -> OutputCheck:
    """Run ``model`` (eval mode, CPU, no gradient) on a batch of ``batch`` random inputs of
    ``input_shape``; the output must be finite logits ``(batch, C)`` with ``C > max_label``
    (cross-entropy needs a logit for every label)."""
    shape = (batch, *(int(s) for s in input_shape))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ModelSpecError(
            f"{key}: the network fails on a batch of inputs of shape {shape[1:]} (the "
            f"dataset's): {type(exc).__name__}: {exc}; make its input layer match the data"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != batch:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelSpecError(
            f"{key}: the network maps a batch {shape} to {got}; it must return logits of "
            f"shape ({batch}, num_classes)"
        )
    if out.shape[1] <= max_label:
        raise ModelSpecError(
            f"{key}: the network has {out.shape[1]} outputs but the dataset has label "
            f"{max_label}; it needs at least {max_label + 1} (set num_classes or its kwargs)"
        )
    if not bool(torch.isfinite(out).all()):
        raise ModelSpecError(f"{key}: the network's output on a random batch is not finite")
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return OutputCheck(int(out.shape[1]), int(d))


def python_path_entries(paths: Iterable[str] | None, base: str | Path = ".") -> list[str]:
    """Absolute directories of the config's ``python_path:`` (relative to ``base``, the
    working directory of the workflow)."""
    return [str((Path(base) / Path(p).expanduser()).resolve()) for p in (paths or [])]


def add_python_path(paths: Iterable[str] | None, base: str | Path = ".") -> list[str]:
    """Put ``python_path:`` directories first on ``sys.path`` (this process) and on
    ``PYTHONPATH`` (the jobs it starts); returns the absolute directories."""
    entries = python_path_entries(paths, base)
    for entry in reversed(entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    new = [e for e in entries if e not in current]
    if new:
        os.environ["PYTHONPATH"] = os.pathsep.join(new + current)
    return entries
