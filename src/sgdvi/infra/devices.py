"""Device resolution for the ``device: auto|cpu|cuda`` config key."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for a config value.

    ``auto`` picks CUDA when available, else CPU. ``cuda`` on a machine without a GPU
    raises with the fix.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "config says device: cuda but torch sees no CUDA device on this machine; "
            "set device: auto or device: cpu in the config"
        )
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of auto, cpu, cuda, got {name!r}")
    return torch.device(name)
