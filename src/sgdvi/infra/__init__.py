"""Infrastructure the workflow's scripts share, none of it about the paper's mathematics.

- :mod:`sgdvi.infra.atomic`    atomic writes (temporary file, fsync, rename; removed on failure)
- :mod:`sgdvi.infra.parquet`   Parquet reads by path (pandas' file-object read can abort at exit)
- :mod:`sgdvi.infra.jobguard`  checkpoint locks and "die with the Snakemake job" guards
- :mod:`sgdvi.infra.rulelog`   logging of a rule script to its ``log:`` file, every attempt kept
- :mod:`sgdvi.infra.devices`   device resolution (``auto|cpu|cuda``)
- :mod:`sgdvi.infra.figures`   the one figure saver (PDF and PNG, atomic, then closed)
"""
