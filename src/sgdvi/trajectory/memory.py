"""Peak memory of one trajectory analysis (the ``mem_mb`` of rule trajectory_analyse).

The analysis (:mod:`sgdvi.trajectory.analysis`: FFT of the increments and autocorrelation of
Figs. 3a, 3b, null models) reads the stored weights once, ``epochs - burn_in`` rows of d
float32 weights (d of tiny-fc: 917 for 5 classes, 900 for 4), and holds about four times
their size in working arrays (FFT blocks, surrogates), plus a fixed 1 GB for the interpreter
and libraries. No torch import: the Snakefile uses it when it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sgdvi.config import weight_count

BASE_MB = 1000  # interpreter, numpy, scipy, numba
#: the stored weights plus about four times their size in working arrays
WEIGHT_COPIES = 5


def analyse_mem_mb(settings: Mapping[str, Any]) -> int:
    """``mem_mb`` of the analysis of one run with the merged ``settings`` of its trajectory
    variant (``epochs``, ``burn_in``, ``num_classes`` resolved; see
    :func:`sgdvi.trajectory.variants.resolve_variants`)."""
    d = weight_count("tiny-fc", int(settings["num_classes"]))
    n_stored = int(settings["epochs"]) - int(settings["burn_in"])
    return int(WEIGHT_COPIES * n_stored * d * 4 / 2**20) + BASE_MB
