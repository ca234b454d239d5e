"""sgdvi: reproduce Chaudhari & Soatto (2018), "Stochastic gradient descent performs
variational inference, converges to limit cycles for deep networks".

Sub-modules are named after what they compute:

- :mod:`sgdvi.models`      the four networks of Section IV
- :mod:`sgdvi.infra`       atomic writes, Parquet reads, job guards, rule logs, devices
- :mod:`sgdvi.data`        dataset download, checksums, preparation, augmentation
- :mod:`sgdvi.training`    SGD training with snapshots and resume
- :mod:`sgdvi.diffusion`   the diffusion matrix D(x) of eq. (2) and its eigenspectrum (Figs. 1, 2)
- :mod:`sgdvi.trajectory`  long SGD trajectories and their FFT / autocorrelation (Fig. 3)
- :mod:`sgdvi.theory`      double well, SDE, Fokker-Planck, Lemma 20 (Fig. 4, Sections III, V)
"""

__version__ = "0.1.0"
