"""The paper's CIFAR training augmentation, on the device, per batch (paper-notes §3.1).

The official code composes torchvision's ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()`` and
``RandomRotation(15)`` on each PIL image before ``Normalize``. ``crop_flip_rotate`` does the same to a whole
batch of normalised images already on the device, with no per-image host work, drawing every random number
from the trainer's augmentation generator (so a seed gives the same augmentations):

1. crop: pad each side with ``padding`` black pixels and take the image-sized window at an offset drawn
   uniformly from {0, ..., 2 padding} in each direction (an index gather);
2. flip: mirror left-right with probability 1/2 (reversing the gather's column indices);
3. rotate: by an angle drawn uniformly from [-degrees, degrees] about the image centre, nearest-neighbour
   sampling (torchvision's default for ``RandomRotation``), black outside the image
   (``affine_grid`` + ``grid_sample``).

"Black" is a pixel value of 0 before normalisation, i.e. ``-mean / std`` per channel after it; the images
are shifted by that value before padding and sampling (both fill with zeros) and back after, so the result
equals augmenting the raw image and normalising it. Used by the CIFAR tasks and ``image-folder`` with
``augment: true`` (``Task.augment``); the trainer decides where it applies (``faithful`` gradient-norm mode
also augments the measurement pass, ``clean`` never does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from schedules.tasks.runtime import Augment

PAPER_PADDING = 4  # pixels, for 32x32 CIFAR images
PAPER_DEGREES = 15.0


def black(mean: Sequence[float], std: Sequence[float]) -> list[float]:
    """The normalised value of a black pixel, per channel: (0 - mean) / std."""
    return [-m / s for m, s in zip(mean, std, strict=True)]


def crop_flip(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Pad ``x`` (B, C, H, W) with ``padding`` zeros per side, take the H x W window whose corner in the
    padded image is (``top``, ``left``) (shape (B,), integers in [0, 2 padding]), mirrored left-right where
    ``flip`` (shape (B,), bool) is set."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding)).permute(0, 2, 3, 1)  # (B, H+2p, W+2p, C)
    rows = top[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = left[:, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def rotate(x: torch.Tensor, radians: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` (B, C, H, W) counter-clockwise by ``radians`` (shape (B,)) about its
    centre, nearest-neighbour, zeros outside (as PIL's ``Image.rotate`` with ``NEAREST``)."""
    b, c, h, w = x.shape
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # affine_grid maps output to input positions in coordinates scaled to [-1, 1] per axis; with y pointing
    # down, a counter-clockwise turn of the content samples the input at R(-angle) of each output point, and
    # the aspect factors keep the turn rigid on non-square images.
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1
    ).to(x.dtype)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def crop_flip_rotate(
    fill: Sequence[float], *, padding: int = PAPER_PADDING, degrees: float = PAPER_DEGREES
) -> Augment:
    """The augmentation (module docstring) for normalised images whose black pixel is ``fill`` per channel
    (``black(mean, std)``): ``augment(x, generator) -> x'``, shapes (B, C, H, W) on the generator's device."""
    if padding < 0 or degrees < 0:
        raise ValueError(f"crop_flip_rotate needs padding >= 0 and degrees >= 0, got {padding=} {degrees=}")
    fill_values = tuple(float(v) for v in fill)
    shifts: dict[
        tuple[torch.device, torch.dtype], torch.Tensor
    ] = {}  # made once: no copy to the device per batch

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, dev = int(x.shape[0]), x.device
        shift = shifts.get((dev, x.dtype))
        if shift is None:
            shift = torch.tensor(fill_values, device=dev, dtype=x.dtype).view(1, -1, 1, 1)
            shifts[(dev, x.dtype)] = shift
        top = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
        left = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
        flip = torch.rand(b, generator=generator, device=dev) < 0.5
        angle = (torch.rand(b, generator=generator, device=dev) * 2 - 1) * math.radians(degrees)
        out = crop_flip(x - shift, top, left, flip, padding)
        return rotate(out, angle) + shift

    return augment
