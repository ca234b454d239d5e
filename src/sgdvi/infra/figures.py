"""The one way a figure reaches disk: every path written atomically, then the figure closed.

Every figure of the workflow (Figs. 1-4, the theory and irreversibility figures) is saved by
:func:`save_figure`; the plotting modules only choose their resolution and bounding box::

    save_figure(fig, "results/figures/fig3a.pdf", "results/figures/fig3a.png", dpi=150,
                pdf_dpi=200)

No matplotlib import at module level: :mod:`sgdvi.infra` is imported where no figure is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sgdvi.infra.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save_figure(
    fig: Figure,
    *paths: str | os.PathLike[str] | None,
    dpi: float | None = 150,
    pdf_dpi: float | None = None,
    bbox_inches: str | None = None,
) -> None:
    """Write ``fig`` to each of ``paths`` (``None`` entries skipped) through
    :func:`sgdvi.infra.atomic.atomic_write`, then close it, also when a write fails.

    The format follows each path's suffix. A ``.pdf`` is written at ``pdf_dpi`` (the resolution
    of its rasterised parts only; ``None``: matplotlib's ``savefig.dpi``), any other path at
    ``dpi``. ``bbox_inches="tight"`` crops to the drawn artists.
    """
    import matplotlib.pyplot as plt

    try:
        for path in paths:
            if path is None:
                continue
            kwargs: dict[str, Any] = {}
            res = pdf_dpi if Path(path).suffix.lower() == ".pdf" else dpi
            if res is not None:
                kwargs["dpi"] = res
            if bbox_inches is not None:
                kwargs["bbox_inches"] = bbox_inches
            atomic_write(path, fig.savefig, **kwargs)
    finally:
        plt.close(fig)
