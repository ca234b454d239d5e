"""Random flip + reflect-pad + crop (Fig. 2c) against a naive per-image loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdvi.data.augment import draw_flip_crop, flip_crop, random_flip_crop


def naive(x: torch.Tensor, flip, top, left, pad: int) -> torch.Tensor:
    """Per image: flip, numpy reflect pad, slice the crop."""
    out = []
    for i in range(len(x)):
        img = x[i].numpy()
        if flip[i]:
            img = img[:, :, ::-1]
        padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
        t, l = int(top[i]), int(left[i])
        out.append(padded[:, t : t + x.shape[2], l : l + x.shape[3]])
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("shape,pad", [((64, 3, 32, 32), 4), ((17, 2, 6, 9), 3), ((5, 1, 5, 5), 0)])
def test_matches_naive_loop(shape, pad):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    flip, top, left = draw_flip_crop(shape[0], torch.Generator().manual_seed(7), pad)
    y = random_flip_crop(x, torch.Generator().manual_seed(7), pad=pad)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, naive(x, flip, top, left, pad), rtol=0, atol=0)


def test_every_corner_and_flip():
    """All (flip, top, left) combinations, each checked against the naive loop."""
    pad = 2
    combos = [(f, t, l) for f in (False, True) for t in range(5) for l in range(5)]
    x = torch.arange(len(combos) * 2 * 4 * 5, dtype=torch.float64).reshape(len(combos), 2, 4, 5)
    flip = torch.tensor([c[0] for c in combos])
    top = torch.tensor([c[1] for c in combos])
    left = torch.tensor([c[2] for c in combos])
    torch.testing.assert_close(flip_crop(x, flip, top, left, pad), naive(x, flip, top, left, pad))


def test_centre_crop_without_flip_is_identity_and_flip_mirrors():
    x = torch.randn(3, 3, 8, 8)
    n = len(x)
    centre = torch.full((n,), 4)
    same = flip_crop(x, torch.zeros(n, dtype=torch.bool), centre, centre)
    torch.testing.assert_close(same, x, rtol=0, atol=0)
    mirrored = flip_crop(x, torch.ones(n, dtype=torch.bool), centre, centre)
    torch.testing.assert_close(mirrored, x.flip(-1), rtol=0, atol=0)


def test_reproducible_and_seed_dependent():
    x = torch.randn(32, 3, 32, 32)
    a = random_flip_crop(x, torch.Generator().manual_seed(3))
    b = random_flip_crop(x, torch.Generator().manual_seed(3))
    c = random_flip_crop(x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)  # input untouched, output new
    g = torch.Generator().manual_seed(3)
    first, second = random_flip_crop(x, g), random_flip_crop(x, g)
    assert not torch.equal(first, second)  # the generator advances


def test_draw_distribution():
    flip, top, left = draw_flip_crop(20000, torch.Generator().manual_seed(0), pad=4)
    assert abs(flip.float().mean().item() - 0.5) < 0.02
    for v in (top, left):
        assert v.min().item() == 0 and v.max().item() == 8
        counts = torch.bincount(v, minlength=9).float() / len(v)
        assert torch.all((counts - 1 / 9).abs() < 0.015)


def test_bad_inputs():
    with pytest.raises(ValueError, match="NCHW"):
        random_flip_crop(torch.zeros(3, 32, 32), torch.Generator())
    with pytest.raises(ValueError, match="pad"):
        random_flip_crop(torch.zeros(1, 1, 4, 4), torch.Generator(), pad=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_result_on_cuda():
    x = torch.randn(16, 3, 32, 32)
    cpu = random_flip_crop(x, torch.Generator().manual_seed(5))
    gpu = random_flip_crop(x.cuda(), torch.Generator().manual_seed(5))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)
