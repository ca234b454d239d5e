"""Sections III and V of Chaudhari & Soatto (2018) made numerical: the double well of
Example 19 (Fig. 4), its SDE and Fokker-Planck equation (Theorem 5), the linearization of
Lemma 20 and the temperatures of Remarks 11 and 12. Nothing here needs data."""

import logging


def script_logger(path: str, name: str) -> logging.Logger:
    """Logger of a workflow script writing to its rule's ``log:`` file."""
    logging.basicConfig(
        filename=path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )
    return logging.getLogger(name)
