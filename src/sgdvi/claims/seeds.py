"""Seeds as a scale knob: a number of seeds in the config becomes the runs that realise it.

Two keys take a count (what the claims ledger pools over):

- ``trajectory.seeds`` (and a variant's ``trajectory.variants.<v>.seeds``): a list of seeds as
  before, or a count ``n``, which means the seeds ``42, 43, ..., 42 + n - 1``
  (:data:`FIRST_SEED` upwards, so that ``3`` is the paper profile's ``[42, 43, 44]``);
- ``experiments.<name>.seeds`` (default 1): ``k`` training runs of the experiment. The
  experiment itself is the first (its paths and results are unchanged, byte for byte); the
  others are *replicas* ``<name>-seed2``, ..., ``<name>-seed<k>``: copies of the experiment
  with the training seed ``seed + i - 1``, added to ``experiments:`` and, when ``<name>`` is in
  ``run:``, to ``run:`` right after it. They get their own results directories like any
  experiment (``results/<name>-seed2/...``) and rows in ``diffusion.parquet``, which the
  ledger groups back by name (:func:`sgdvi.claims.rows.replicas`).

:func:`expand` does both on a validated config, in place, and is idempotent.
"""

from __future__ import annotations

import copy
import re
from collections.abc import MutableMapping
from typing import Any

#: the first seed of a count: ``trajectory.seeds: 3`` is ``[42, 43, 44]``
FIRST_SEED = 42
_REPLICA = re.compile(r"(?P<name>.+)-seed(?P<k>[0-9]+)")


def seed_list(value: Any, key: str) -> list[int]:
    """``value`` as a list of seeds: a count ``n >= 1`` gives ``42 .. 42 + n - 1``."""
    if isinstance(value, bool):
        raise ValueError(f"{key}: a count of seeds or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{key}: a count of seeds must be at least 1, got {value}")
        return list(range(FIRST_SEED, FIRST_SEED + value))
    return [int(s) for s in value]


def replica_name(name: str, k: int) -> str:
    """Name of training run ``k`` (1-based) of experiment ``name``: ``name`` itself for 1."""
    return name if k == 1 else f"{name}-seed{k}"


def replica_of(name: str, experiments: MutableMapping[str, Any]) -> str | None:
    """The experiment ``name`` replicates (``fc-mnist7`` for ``fc-mnist7-seed2``), or None."""
    m = _REPLICA.fullmatch(name)
    if m and m["name"] in experiments and int(m["k"]) >= 2:
        return m["name"]
    return None


def _expand_trajectory(config: MutableMapping[str, Any]) -> None:
    traj = config.get("trajectory")
    if not isinstance(traj, MutableMapping):
        return
    if "seeds" in traj:
        traj["seeds"] = seed_list(traj["seeds"], "trajectory.seeds")
    for name, variant in (traj.get("variants") or {}).items():
        if isinstance(variant, MutableMapping) and "seeds" in variant:
            variant["seeds"] = seed_list(variant["seeds"], f"trajectory.variants.{name}.seeds")


def _expand_experiments(config: MutableMapping[str, Any]) -> None:
    experiments = config.get("experiments") or {}
    run = config.get("run")
    for name in [n for n in experiments if replica_of(n, experiments) is None]:
        exp = experiments[name]
        count = int(exp.get("seeds", 1))
        for k in range(2, count + 1):
            replica = copy.deepcopy(exp)
            replica["seeds"] = 1
            replica["seed"] = int(exp.get("seed", FIRST_SEED)) + k - 1
            experiments[replica_name(name, k)] = replica
        if run is not None and name in run:
            have = set(run)
            at = run.index(name) + 1
            new = [replica_name(name, k) for k in range(2, count + 1)]
            for r in [r for r in new if r not in have][::-1]:
                run.insert(at, r)


def expand(config: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Seed counts in ``config`` (validated, defaults filled) as lists and replicas, in place
    (module docstring). Returns ``config``; running it again changes nothing."""
    _expand_trajectory(config)
    _expand_experiments(config)
    return config
