"""Long SGD trajectories of tiny-fc and their frequency analysis (Section IV-B, Fig. 3).

Modules:

- :mod:`~sgdvi.trajectory.network`: the weights of tiny-fc (917 for 5 classes, 900 for 4).
- :mod:`~sgdvi.trajectory.batches`: the mini-batches of every epoch.
- :mod:`~sgdvi.trajectory.state`: the training state, the initial weights, epoch results.
- :mod:`~sgdvi.trajectory.fast_trainer`: a fused forward/backward SGD epoch compiled with numba.
- :mod:`~sgdvi.trajectory.reference_trainer`: the plain PyTorch loop it must agree with.
- :mod:`~sgdvi.trajectory.runner`: one seed's run, chunk by chunk, checked for divergence.
- :mod:`~sgdvi.trajectory.storage`: chunked, resumable storage of a trajectory.
- :mod:`~sgdvi.trajectory.spectra`: FFT of increments and autocorrelation (Figs. 3a, 3b).
- :mod:`~sgdvi.trajectory.nulls`: null models and permutation tests (beyond the paper).
- :mod:`~sgdvi.trajectory.analysis`: per-seed summaries read block-wise from disk.
- :mod:`~sgdvi.trajectory.plot`: Figs. 3a, 3b, 3c.
"""
