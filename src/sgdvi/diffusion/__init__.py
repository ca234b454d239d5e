"""The diffusion matrix D(x) of eq. (2) and its eigenspectrum (Section IV-A, Figs. 1 and 2).

- :mod:`~sgdvi.diffusion.gradients`  per-example gradients (batched backward + per-layer formulas)
- :mod:`~sgdvi.diffusion.moments`    centred second moment in float64, formulas (A1)/(A2)
- :mod:`~sgdvi.diffusion.eigen`      rank threshold, dense reference solver, fast block Lanczos
- :mod:`~sgdvi.diffusion.compute`    one snapshot end to end, and its stored result
- :mod:`~sgdvi.diffusion.stats`      table statistics, Remarks 13/15/16, the paper's values
- :mod:`~sgdvi.diffusion.plot`       the histograms of Figs. 1 and 2
"""
