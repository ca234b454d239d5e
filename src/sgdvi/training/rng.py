"""The random state of a run: torch's global generator (initial weights, dropout), the shuffling
and augmentation generators, and CUDA's; saved in and restored from a checkpoint."""

from __future__ import annotations

import torch


def generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """The shuffling generator (``seed``) and the augmentation generator (``seed + 1``, so the
    shuffling order does not depend on ``augment``), both on the CPU."""
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)


def rng_state(device: torch.device, shuffle: torch.Generator, aug: torch.Generator) -> dict:
    """Every generator a run draws from, for its checkpoint (CUDA's only on a CUDA device)."""
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "augment": aug.get_state(),
        "cuda": None,
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(
    state: dict, device: torch.device, shuffle: torch.Generator, aug: torch.Generator
) -> None:
    """Restore what :func:`rng_state` saved (the inverse, in place)."""
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    aug.set_state(state["augment"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
