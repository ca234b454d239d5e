"""The probability-current test for any experiment: record the weights' path during training.

Section IV-B of Chaudhari & Soatto (2018) stores every weight of tiny-fc after every epoch
and finds limit cycles; Lemma 7 and Remark 17 say SGD's steady state carries a current
(``j != 0`` in eq. (8)). For a large network the workflow cannot store the whole path, so an
experiment with a ``current:`` key records ``k`` seeded random projections of its weights
after every optimiser step (or epoch) with :class:`sgdvi.trajectory.recorder.TrajectoryRecorder`
while rule ``train`` runs, and rule ``user_current`` tests them
(:func:`sgdvi.trajectory.recorder.analyse_recording`, the test of the tiny-fc trajectories).

The rows analysed start at ``from_epoch`` (default: the start of the last learning-rate
phase, where the learning rate is constant and a steady state can exist). The recording
lives next to the training checkpoint (``results/{experiment}/recording``) while training
runs, so a killed job resumes it: the rows recorded after the last checkpoint are the rows
the resumed run reproduces (training resumes bit-identically on the CPU), so they are kept
and not recorded twice. At the end it moves into the job's output folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

#: where a finished recording lands, inside the train rule's output folder
RECORDING_NAME = "recording"

#: the experiment's settings the recording was made with (inside the recording)
SETTINGS_NAME = "settings.json"


@dataclass(frozen=True)
class CurrentSettings:
    """An experiment's ``current:`` key: directions, cadence, and where the analysis starts."""

    k: int
    seed: int
    every: str
    from_epoch: int

    @classmethod
    def from_config(
        cls, entry: Mapping[str, Any], lr_schedule: Sequence[Sequence[float]], epochs: int
    ) -> CurrentSettings:
        """Defaults: k 10, seed 0, every step, from the last learning-rate phase's start."""
        start = entry.get("from_epoch")
        if start is None:
            start = int(lr_schedule[-1][0])
        if not 0 <= int(start) < epochs:
            raise ValueError(
                f"current.from_epoch {start} must be in 0..{epochs - 1} (epochs: {epochs})"
            )
        every = str(entry.get("every") or "step")
        if every not in ("step", "epoch"):
            raise ValueError(f"current.every: {every!r} is not step or epoch")
        return cls(int(entry.get("k") or 10), int(entry.get("seed") or 0), every, int(start))


class RecordingHook:
    """``hook(model, epoch, step, steps)`` after every optimiser step of :func:`train`
    (``epoch`` finished epochs, ``step`` 1-based within the epoch of ``steps``)."""

    def __init__(self, settings: CurrentSettings, path: str | Path, steps_per_epoch: int):
        self.settings = settings
        self.path = Path(path)
        self.steps = steps_per_epoch
        self.recorder: Any = None
        per_epoch = steps_per_epoch if settings.every == "step" else 1
        self.burn_in = settings.from_epoch * per_epoch

    def row(self, epoch: int, step: int) -> int | None:
        """1-based row this step records (None: not recorded)."""
        if self.settings.every == "step":
            return epoch * self.steps + step
        return epoch + 1 if step == self.steps else None

    def _open(self, model: nn.Module) -> None:
        from sgdvi.trajectory.recorder import TrajectoryRecorder

        s = self.settings
        self.recorder = TrajectoryRecorder(
            model, self.path, k=s.k, seed=s.seed, every=s.every, burn_in=self.burn_in
        )

    def __call__(self, model: nn.Module, epoch: int, step: int, steps: int) -> None:
        row = self.row(epoch, step)
        if row is None:
            return
        if self.recorder is None:
            self._open(model)
        have = self.recorder.n_rows
        if row <= have:  # recorded before a kill; the resumed run reproduces it
            return
        if row > have + 1:
            raise RuntimeError(
                f"{self.path} holds {have} rows but training resumed at row {row}: rows are "
                f"missing. Delete {self.path} and the experiment's checkpoint.pt and rerun"
            )
        self.recorder.record(model)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def __enter__(self) -> RecordingHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finish(self, folder: str | Path) -> Path:
        """Close, move the recording into ``folder`` (the rule's output); returns its path."""
        self.close()
        dest = Path(folder) / RECORDING_NAME
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.path, dest, ignore=shutil.ignore_patterns("*.lock"))
        shutil.rmtree(self.path)
        return dest


def hook_for_experiment(
    exp: Mapping[str, Any], checkpoint: str | Path, n_train: int
) -> RecordingHook | None:
    """The hook of an experiment with a ``current:`` key (None without one). Its recording
    lives next to the training ``checkpoint`` while training runs; one left by an earlier run
    is deleted unless the checkpoint it goes with is there and the settings are the same
    (``settings.json``), so a fresh run never continues a stale recording."""
    entry = exp.get("current")
    if not entry or not entry.get("enabled"):
        return None
    settings = CurrentSettings.from_config(entry, exp["lr_schedule"], int(exp["epochs"]))
    path = Path(checkpoint).parent / RECORDING_NAME
    stamp = json.dumps(dict(exp), sort_keys=True, default=str)
    same = (path / SETTINGS_NAME).is_file() and (path / SETTINGS_NAME).read_text() == stamp
    if path.exists() and not (Path(checkpoint).exists() and same):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / SETTINGS_NAME).write_text(stamp)
    return RecordingHook(settings, path, n_train // int(exp["batch_size"]))


def analyse_user_recording(
    path: str | Path, irreversibility: Mapping[str, Any], experiment: str
) -> pd.DataFrame:
    """The current test of a recording with the config's ``irreversibility:`` settings:
    :func:`sgdvi.irreversibility.sgd.current_table` rows (one per projection and pair, with
    the verdict), plus the experiment, the cadence and k."""
    from sgdvi.irreversibility import sgd
    from sgdvi.trajectory.recorder import analyse_recording

    keys = (
        "m",
        "n_blocks",
        "n_surrogates",
        "n_boot",
        "alpha",
        "max_pca_rows",
        "growth_max",
        "seed",
    )
    settings = sgd.Settings(**{k: irreversibility[k] for k in keys if k in irreversibility})
    summary, projections = analyse_recording(path, settings)
    table = sgd.current_table(projections, summary)
    table["variant"], table["seed"] = experiment, settings.seed
    table["every"], table["k"] = summary["every"], summary["k"]
    return table
