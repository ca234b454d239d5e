"""What the paper prints or claims for MNIST, as data (no torch import: the Snakefile reads it).

- :data:`PAPER_VALUES`: the eigenspectrum statistics of the captions of Figs. 1 and 2, keyed by
  the experiment that reproduces each figure (``fc-mnist7-authors`` is Fig. 1b too, in the
  authors' setting: ``experimental-details.md``, "The authors' actual settings");
- :data:`PAPER_CLAIMS`: Remark 16 and the Fig. 3 / Remark 17-18 statements, for
  :mod:`sgdvi.comparison`.
"""

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
    "fc-mnist7-authors": {
        "figure": "fig1b-authors",
        "label": "MNIST: small-fc, authors' setting",
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

#: The paper's claims that :mod:`sgdvi.comparison` checks, with the text they come from.
#: ``value``: a number the paper prints (None: only a curve or a statement).
PAPER_CLAIMS: dict[str, dict[str, Any]] = {
    "remark16_rank_order": {
        "figure": "Remark 16",
        "value": 1.8 / 0.6,
        "claim": "> 1",
        "text": "small-lenet [...] also has a much larger rank (Figs. 1a, 1b: 1.8 % vs 0.6 %)",
    },
    "fig3a_low_freq_excess": {
        "figure": "Fig. 3a",
        "value": None,
        "claim": "> 1",
        "text": "the FFT would be flat [for Brownian motion]. Instead, we see low-frequency modes",
    },
    "fig3b_ac_beyond_band": {
        "figure": "Fig. 3b",
        "value": None,
        "claim": "> null",
        "text": "iterates are significantly correlated [...] even at very large lags; the AC of "
        "Brownian motion decays to zero very quickly and stays within the 99 % bands",
    },
    "fig3c_grad_norm_drop": {
        "figure": "Fig. 3c",
        "value": 3.0,
        "claim": "~ 3",
        "text": "Remark 18: this magnitude drops only by about a factor of 3 over the next "
        "10^5 epochs",
    },
    "fig3c_grad_norm_level": {
        "figure": "Fig. 3c",
        "value": None,
        "claim": "large",
        "text": "Remark 18: the magnitude of this gradient norm is quite large",
    },
}
CLAIMS_SOURCE = "Chaudhari & Soatto (2018), arXiv:1710.11029v2, Remarks 16-18 and Fig. 3"
