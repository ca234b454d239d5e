"""The one entry point of the configuration: defaults, schema validation, cross-key checks.

The Snakefile calls ``sgdvi.config.load(config)`` once, right after Snakemake read the config
files; every test and tool that needs a configuration calls it too, so all of them see the same
filled, checked dictionary.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TypeVar

from sgdvi.claims.seeds import expand as expand_seeds
from sgdvi.config.base import SCHEMA_PATH, ConfigError
from sgdvi.config.checks import cross_check
from sgdvi.config.schema import fill_defaults, first_error, read_schema

Config = TypeVar("Config", bound=MutableMapping[str, Any])


def load(config: Config, schema_path: str | Path = SCHEMA_PATH) -> Config:
    """Fill in every schema default, validate, cross-check; update ``config`` in place.

    1. every key left out gets its ``default:`` from ``workflow/schemas/config.schema.yaml``
       (:func:`sgdvi.config.schema.fill_defaults`: at every depth, in every entry of
       ``experiments:``/``datasets:``, never into a trajectory variant's overrides);
    2. the result is validated against the schema; the first error is raised as
       :class:`ConfigError` in at most three lines (key path, what is wrong, closest key);
    3. seed counts become seed lists and training-seed replicas
       (:func:`sgdvi.claims.seeds.expand`), then the checks between keys
       (:func:`sgdvi.config.checks.cross_check`) run;
    4. ``config`` is replaced by the filled dictionary, in place, so that Snakemake's global
       ``config`` (and anything holding it) sees the defaults.

    Returns ``config`` itself. Running it again on its own result changes nothing.
    """
    schema = read_schema(schema_path)
    filled = fill_defaults(config, schema)
    message = first_error(filled, schema)
    if message:
        raise ConfigError(message)
    expand_seeds(filled)  # seed counts -> seed lists, experiments.<name>.seeds -> replicas
    cross_check(filled)
    config.clear()
    config.update(filled)
    return config
