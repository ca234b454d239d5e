"""The paper's reported eigenspectrum statistics (no torch import: the Snakefile reads these)."""

from __future__ import annotations

from typing import Any

#: Values printed in the paper (Chaudhari & Soatto 2018, Figs. 1a, 1b, 2a, 2b, 2c captions):
#: mean and std of the clipped eigenvalues of D and rank(D) as a percentage of d.
PAPER_VALUES: dict[str, dict[str, Any]] = {
    "lenet-mnist": {
        "figure": "fig1a",
        "label": "MNIST: small-lenet",
        "mean": 0.3e-3,
        "std": 2.11e-3,
        "rank_pct": 1.8,
    },
    "fc-mnist7": {
        "figure": "fig1b",
        "label": "MNIST: small-fc",
        "mean": 0.9e-3,
        "std": 18.5e-3,
        "rank_pct": 0.6,
    },
    "allcnn-cifar10": {
        "figure": "fig2a",
        "label": "CIFAR-10: small-allcnn",
        "mean": 0.27,
        "std": 0.84,
        "rank_pct": 0.34,
    },
    "allcnn-cifar100": {
        "figure": "fig2b",
        "label": "CIFAR-100: small-allcnn",
        "mean": 0.98,
        "std": 2.16,
        "rank_pct": 0.47,
    },
    "allcnn-cifar10-aug": {
        "figure": "fig2c",
        "label": "CIFAR-10 (augmented): small-allcnn",
        "mean": 0.43,
        "std": 1.32,
        "rank_pct": 0.32,
    },
}
PAPER_SOURCE = (
    "Chaudhari & Soatto (2018), arXiv:1710.11029v2, captions of Fig. 1 (a, b) and Fig. 2 (a-c)"
)
