"""Checks of the data against the run's settings before training, and the data fingerprint
that ties a checkpoint to its data."""

from __future__ import annotations

import hashlib

import torch

from sgdvi.data import Prepared
from sgdvi.models import MODEL_SPECS
from sgdvi.models_registry import build_network as build_model  # by name or import path
from sgdvi.models_registry import check_model_output, is_builtin
from sgdvi.training.settings import TrainSettings


def data_fingerprint(data: Prepared) -> str:
    """Hash of the training and test tensors: a checkpoint is only resumed on the same data."""
    h = hashlib.blake2b(digest_size=16)
    for t in data:
        arr = t.detach().cpu().contiguous().numpy()
        h.update(str((arr.dtype, arr.shape)).encode())
        h.update(arr)
    return h.hexdigest()


def check_data(settings: TrainSettings, data: Prepared) -> None:
    """Raise ``ValueError`` naming the experiment and the key to fix if ``data`` does not fit
    the network (input shape, one forward pass of a user's network), the batch size or the
    number of classes."""
    shape = tuple(data.x_train.shape[1:])
    if not is_builtin(settings.model):  # a user's network: one forward pass on this shape
        top = int(max(data.y_train.max(), data.y_test.max()))
        with torch.random.fork_rng(devices=[]):
            net = build_model(settings.model, settings.num_classes, settings.dropout)
            check_model_output(net, shape, top, f"experiments.{settings.experiment}.model")
    spec = MODEL_SPECS.get(settings.model) if is_builtin(settings.model) else None
    if spec is not None and shape != spec.input_shape:
        raise ValueError(
            f"experiment {settings.experiment}: model {settings.model} expects inputs of shape "
            f"{spec.input_shape}, dataset {settings.dataset} has {shape}; check its dataset: key"
        )
    n = len(data.y_train)
    if n < settings.batch_size:
        raise ValueError(
            f"experiment {settings.experiment}: {n} training examples are fewer than "
            f"batch_size {settings.batch_size}; lower batch_size or raise train_subset"
        )
    top = int(max(data.y_train.max(), data.y_test.max()))
    if top >= settings.num_classes:
        raise ValueError(
            f"experiment {settings.experiment}: label {top} in {settings.dataset} but the model "
            f"has {settings.num_classes} classes; the prepared dataset does not match its name"
        )
