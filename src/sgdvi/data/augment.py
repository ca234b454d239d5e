"""Training-time augmentation of CIFAR (Fig. 2c of Chaudhari & Soatto 2018).

The augmented CIFAR-10 experiment applies, to each whitened 32x32 image independently,
a random horizontal flip with probability 1/2, a reflection padding of 4 pixels and a
random 32x32 crop of the padded image (see docs: experimental details, "Augmentation").
"""

from __future__ import annotations

import torch


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices of a reflect-padded axis (offset already removed) back into ``[0, size)``.

    Reflection without repeating the edge, as ``numpy.pad(mode="reflect")`` and
    ``torch.nn.functional.pad(mode="reflect")``: -1 -> 1, size -> size - 2. Valid for
    indices in ``[-(size - 1), 2 * size - 2]``.
    """
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def draw_flip_crop(
    n: int, generator: torch.Generator, pad: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random draws of :func:`random_flip_crop` for ``n`` images, on the CPU.

    Returns ``(flip, top, left)``: ``flip`` bool (n,), True with probability 1/2;
    ``top``/``left`` int64 (n,), uniform in ``[0, 2 * pad]``, the corner of the crop in the
    padded image. Drawn in this order: ``torch.rand(n)``, then ``torch.randint`` for ``top``,
    then for ``left``.
    """
    if generator.device.type != "cpu":
        raise ValueError(
            f"random_flip_crop draws its random numbers from a CPU generator so that results "
            f"do not depend on the device; got a generator on {generator.device}. "
            f"Pass torch.Generator() (CPU) seeded with torch.Generator().manual_seed(seed)."
        )
    flip = torch.rand(n, generator=generator) < 0.5
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    return flip, top, left


def flip_crop(
    x: torch.Tensor, flip: torch.Tensor, top: torch.Tensor, left: torch.Tensor, pad: int = 4
) -> torch.Tensor:
    """Apply given flips and crops to an NCHW batch, vectorised.

    Image ``i`` is flipped horizontally if ``flip[i]``, then reflect-padded by ``pad`` on every
    side, then cropped back to ``H x W`` with its top-left corner at ``(top[i], left[i])`` of
    the padded image. Implemented as two ``torch.gather`` calls with reflected source indices
    (no padded copy, no per-image loop); flipping before padding equals flipping the padded
    image, so a flipped crop reads columns ``W + 2 pad - 1 - left - j`` of the padded image.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an NCHW batch (4 dimensions), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if pad < 0 or (pad > 0 and (pad >= h or pad >= w)):
        raise ValueError(
            f"reflect padding needs 0 <= pad < image size; got pad={pad} for {h}x{w} images"
        )
    device = x.device
    flip = flip.to(device)
    top = top.to(device)
    left = left.to(device)
    ar_h = torch.arange(h, device=device)
    ar_w = torch.arange(w, device=device)
    rows = _reflect(top[:, None] + ar_h[None, :] - pad, h)  # (n, h)
    col_plain = left[:, None] + ar_w[None, :]
    col_flipped = (w + 2 * pad - 1 - left)[:, None] - ar_w[None, :]
    cols = _reflect(torch.where(flip[:, None], col_flipped, col_plain) - pad, w)  # (n, w)
    out = torch.gather(x, 2, rows[:, None, :, None].expand(n, c, h, w))
    return torch.gather(out, 3, cols[:, None, None, :].expand(n, c, h, w))


def random_flip_crop(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip (p = 1/2), reflect-pad ``pad``, random crop to the original size.

    Args:
        x: NCHW batch on any device (not modified).
        generator: CPU generator; the draws (:func:`draw_flip_crop`) do not depend on
            ``x.device``, so a seed gives the same augmentation on CPU and GPU.
        pad: reflection padding on each side (4 for CIFAR, Fig. 2c).

    Returns:
        A new tensor with the shape, dtype and device of ``x``.
    """
    flip, top, left = draw_flip_crop(x.shape[0], generator, pad)
    return flip_crop(x, flip, top, left, pad)
