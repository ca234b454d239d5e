"""The diffusion matrix D(x) of eq. (2) and its eigenspectrum (Section IV-A, Figs. 1 and 2).

- :mod:`~sgdvi.diffusion.gradients`  per-example gradients (batched backward + per-layer formulas)
- :mod:`~sgdvi.diffusion.moments`    centred second moment in float64, formulas (A1)/(A2)
- :mod:`~sgdvi.diffusion.eigen`      rank threshold, dense reference solver, fast block Lanczos
- :mod:`~sgdvi.diffusion.compute`    one snapshot end to end, and its stored result
- :mod:`~sgdvi.diffusion.stats`      table statistics, Remarks 13/15/16, the paper's values
- :mod:`~sgdvi.diffusion.plot`       the histograms of Figs. 1 and 2
- :mod:`~sgdvi.diffusion.api`        :func:`spectrum`: D(x) of any network at any size
- :mod:`~sgdvi.diffusion.matrix_free` D v, trace and tr(D^2) without storing the gradients
- :mod:`~sgdvi.diffusion.distributed` the data passes over several processes (torchrun, srun)

``sgdvi.diffusion.spectrum`` and ``SpectrumResult`` are imported on first use: the workflow
imports :mod:`~sgdvi.diffusion.memory` while parsing, without torch.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("spectrum", "SpectrumResult"):
        from sgdvi.diffusion import api

        return getattr(api, name)
    raise AttributeError(f"module 'sgdvi.diffusion' has no attribute {name!r}")
