"""Training the networks of Section IV with SGD, keeping snapshots, resumable.

The paper trains every network "with SGD with appropriate learning rate annealing and
Nesterov's momentum set to 0.9" (Section IV) and studies the weights after 20%, 40% and 100%
of training (Figs. 1 and 2). This module implements that run:

- SGD as :class:`torch.optim.SGD` (momentum, ``nesterov`` true or false, L2 weight decay on
  every parameter), a piecewise-constant learning rate (:func:`sgdvi.schedule.lr_at`).
- Each epoch draws one permutation of the training set from a seeded :class:`torch.Generator`
  and walks through it in ``floor(N / b)`` mini-batches of exactly ``b`` examples (sampling
  without replacement); the ``N mod b`` examples left at the end of a permutation are not seen
  in that epoch (a different set each epoch). Every mini-batch thus has the size ``b`` of the
  paper's noise model, ``var(grad f_b) = D(x) / b`` (Definition 1).
- Data live on the training device as tensors; a mini-batch is one ``index_select``.
- Optional augmentation (Fig. 2c) with :func:`sgdvi.data.augment.random_flip_crop`, driven by
  its own generator (seed + 1) so the shuffling order does not depend on ``augment``.
- Per epoch: the running mean of the mini-batch losses and errors seen during the epoch
  (train mode: dropout on, BN batch statistics, weights changing during the epoch) and the test
  loss and error in eval mode.
- Snapshots after epoch :func:`sgdvi.config.snapshot_epoch` of each fraction.
- A checkpoint with the full training state (weights and BN buffers, optimizer state, the
  shuffling/augmentation generators, torch's global RNG used by dropout, position within the
  epoch, metrics and snapshots so far) every ``checkpoint_every`` epochs and when a stop is
  requested (SIGTERM/SIGINT via :func:`stop_on_signals`); :func:`train` resumes from it and
  ends with the same weights, bit for bit on CPU, as an uninterrupted run. The checkpoint is
  deleted once all outputs are written.
- Divergence (a non-finite loss, weight or BN statistic, or a loss above
  ``divergence_factor`` times the first mini-batch loss) stops the run with
  :class:`TrainingDiverged` naming experiment and epoch, and leaves no snapshot.

One module per concern, the public names re-exported here (``from sgdvi.training import train,
TrainSettings, ...``):

- :mod:`.settings`    :class:`TrainSettings`, :class:`TrainPaths`, the logger ``LOG``
- :mod:`.signals`     :class:`StopRequest`, :func:`stop_on_signals`, :func:`stop_orphaned`
- :mod:`.state`       the mutable state of a run, :func:`make_optimizer`
- :mod:`.rng`         the generators' state saved in a checkpoint
- :mod:`.inputs`      checks of the data, :func:`data_fingerprint`
- :mod:`.checkpoint`  save, load, resume, :func:`describe_checkpoint`
- :mod:`.divergence`  :class:`TrainingDiverged` and its checks
- :mod:`.outputs`     snapshots and the metrics table
- :mod:`.loop`        :func:`train`, :func:`evaluate`
"""

from sgdvi.schedule import lr_at  # the package's one lr_at (also imported from here)
from sgdvi.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    describe_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sgdvi.training.divergence import DIVERGENCE_FACTOR, FINITE_CHECK_EVERY, TrainingDiverged
from sgdvi.training.inputs import data_fingerprint
from sgdvi.training.loop import StepHook, evaluate, train
from sgdvi.training.outputs import METRIC_COLUMNS
from sgdvi.training.settings import LOG, TrainPaths, TrainSettings
from sgdvi.training.signals import (
    StopRequest,
    TrainingInterrupted,
    stop_on_signals,
    stop_orphaned,
)
from sgdvi.training.state import make_optimizer

__all__ = [
    "CHECKPOINT_FORMAT",
    "DIVERGENCE_FACTOR",
    "FINITE_CHECK_EVERY",
    "LOG",
    "METRIC_COLUMNS",
    "CheckpointError",
    "StepHook",
    "StopRequest",
    "TrainPaths",
    "TrainSettings",
    "TrainingDiverged",
    "TrainingInterrupted",
    "data_fingerprint",
    "describe_checkpoint",
    "evaluate",
    "load_checkpoint",
    "lr_at",
    "make_optimizer",
    "save_checkpoint",
    "stop_on_signals",
    "stop_orphaned",
    "train",
]
