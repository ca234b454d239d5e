"""The plain PyTorch training loop for tiny-fc: autograd + ``torch.optim.SGD``.

This is the obvious implementation (data already in memory, one ``model(x[batch])``,
``loss.backward()``, ``optimizer.step()`` per mini-batch). It is the reference the fused
kernel of :mod:`sgdvi.trajectory.fast_trainer` is tested against, the baseline of
``benchmarks/bench_trajectory.py``, and the ``engine: torch`` fallback of the workflow.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sgdvi.models import build_model
from sgdvi.trajectory.batches import batch_bounds
from sgdvi.trajectory.network import N_HIDDEN, STATED_CLASSES
from sgdvi.trajectory.state import EpochStats, FullPass, TrainState


class ReferenceTrainer:
    """tiny-fc with ``num_classes`` outputs trained by the plain loop (the fast trainer's
    interface: ``train_epoch``, ``full_pass``, ``state``, ``set_state``, ``params``)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        state: TrainState,
        batch_size: int,
        momentum: float,
        nesterov: bool,
        dtype: str = "float64",
        device: str | torch.device = "cpu",
        num_classes: int = STATED_CLASSES,
    ) -> None:
        self.tdtype = {"float64": torch.float64, "float32": torch.float32}[str(np.dtype(dtype))]
        self.device = torch.device(device)
        self.x = torch.as_tensor(np.asarray(x).reshape(len(x), -1), dtype=self.tdtype).to(
            self.device
        )
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.int64).to(self.device)
        self.n = len(self.y)
        batch_bounds(self.n, batch_size)
        self.batch_size = batch_size
        self.model = build_model("tiny-fc", num_classes=num_classes).to(
            device=self.device, dtype=self.tdtype
        )
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov
        )
        self.set_state(state)

    @property
    def _bn(self) -> torch.nn.BatchNorm1d:
        return self.model[2]

    def set_state(self, state: TrainState) -> None:
        params = torch.as_tensor(state.params, dtype=self.tdtype)
        buf = torch.as_tensor(state.momentum_buffer, dtype=self.tdtype)
        offset = 0
        with torch.no_grad():
            for p in self.model.parameters():
                k = p.numel()
                p.copy_(params[offset : offset + k].view_as(p))
                self.optimizer.state[p]["momentum_buffer"] = (
                    buf[offset : offset + k].view_as(p).clone().to(self.device)
                )
                offset += k
            self._bn.running_mean.copy_(torch.as_tensor(state.running_mean))
            self._bn.running_var.copy_(torch.as_tensor(state.running_var))
            self._bn.num_batches_tracked.fill_(state.num_batches_tracked)
        self.epoch = state.epoch

    def state(self) -> TrainState:
        params = [p.detach().reshape(-1) for p in self.model.parameters()]
        bufs = [
            self.optimizer.state[p]["momentum_buffer"].reshape(-1) for p in self.model.parameters()
        ]
        return TrainState(
            params=torch.cat(params).double().cpu().numpy(),
            momentum_buffer=torch.cat(bufs).double().cpu().numpy(),
            running_mean=self._bn.running_mean.double().cpu().numpy(),
            running_var=self._bn.running_var.double().cpu().numpy(),
            num_batches_tracked=int(self._bn.num_batches_tracked),
            epoch=self.epoch,
        )

    def params(self) -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).cpu().numpy()

    def train_epoch(self, order: np.ndarray, lr: float) -> EpochStats:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        order_t = torch.as_tensor(order, dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), dtype=self.tdtype, device=self.device)
        err_sum = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, self.n, self.batch_size):
            idx = order_t[start : start + self.batch_size]
            xb, yb = self.x[idx], self.y[idx]
            out = self.model(xb)
            loss = F.cross_entropy(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(idx)
            err_sum += (out.detach().argmax(1) != yb).sum()
        self.epoch += 1
        return EpochStats(float(loss_sum) / self.n, float(err_sum) / self.n)

    def full_pass(self) -> FullPass:
        """Full-dataset loss, error, gradient with train-mode BN; running stats untouched."""
        saved = (self._bn.running_mean.clone(), self._bn.running_var.clone())
        tracked = self._bn.num_batches_tracked.clone()
        self.model.train()
        out = self.model(self.x)
        loss = F.cross_entropy(out, self.y)
        grads = torch.autograd.grad(loss, list(self.model.parameters()))
        with torch.no_grad():
            self._bn.running_mean.copy_(saved[0])
            self._bn.running_var.copy_(saved[1])
            self._bn.num_batches_tracked.copy_(tracked)
        assert self._bn.running_mean.shape == (N_HIDDEN,)
        return FullPass(
            loss=float(loss.detach()),
            error=float((out.argmax(1) != self.y).double().mean()),
            grad=torch.cat([g.reshape(-1) for g in grads]).double().cpu().numpy(),
        )
