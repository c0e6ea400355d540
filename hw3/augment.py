"""Digit augmentations for domain adaptation: tensor ops on float ``(B, 3, H, W)`` in [0, 1], on any device.

- the fixed source augmentation (:func:`augment_source`) and FixMatch's strong view (:func:`augment_strong`);
- the augmentation measured from unlabelled images (:class:`DigitLook`, :class:`MeasuredAugment`).

Their random draws come from torch's global generator, which checkpoints save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hw3.common import UserError, to_float


def _uniform(n: int, spread: float, device) -> torch.Tensor:
    return ((torch.rand(n) * 2 - 1) * spread).to(device)


def random_affine(x: torch.Tensor, degrees: float = 15.0, scale: float = 0.15, shift: float = 0.12,
                  shear: float = 0.0, zoom: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate, scale, shear and shift each image at random (one affine grid per image, border padding).

    The zoom is log-uniform in [1 / (1 + scale), 1 + scale], so shrinking and enlarging are equally
    likely, unless ``zoom`` gives each image's (> 1 enlarges).
    """
    b = len(x)
    angle = _uniform(b, degrees * math.pi / 180, x.device)
    if zoom is None:
        zoom = torch.exp(_uniform(b, math.log1p(scale), x.device))
    slant = _uniform(b, shear, x.device)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, slant - sin, _uniform(b, shift, x.device)], 1),
                         torch.stack([sin, cos, _uniform(b, shift, x.device)], 1)], 1)  # (B, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)


def random_colours(x: torch.Tensor, invert: float = 0.5) -> torch.Tensor:
    """Invert some images, then map each channel's [0, 1] to a random sub-range: grayscale digits get colours."""
    b = len(x)
    flip = (torch.rand(b, 1, 1, 1) < invert).to(x.device, x.dtype)
    x = flip * (1 - x) + (1 - flip) * x
    low = (torch.rand(b, 3, 1, 1) * 0.6).to(x.device)
    high = (0.4 + torch.rand(b, 3, 1, 1) * 0.6).to(x.device)
    return low + (high - low) * x


def random_erase(x: torch.Tensor, size: int = 10) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): a grey ``size`` x ``size`` square at a random place in each image."""
    b, _, h, w = x.shape
    cy, cx = torch.randint(0, h, (b, 1, 1)), torch.randint(0, w, (b, 1, 1))
    inside = ((torch.arange(h).view(1, h, 1) - cy).abs() <= size // 2) & \
             ((torch.arange(w).view(1, 1, w) - cx).abs() <= size // 2)  # (B, H, W)
    inside = inside.unsqueeze(1).to(x.device)
    return torch.where(inside, torch.full_like(x, 0.5), x)


def augment_source(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Labelled source images: shape and colour changes that a digit's label survives.

    ``scale`` sets the zoom range (see :func:`random_affine`): a wide one covers domains
    whose digits fill the frame (USPS) and domains whose digits sit in a smaller box (MNIST).
    """
    x = random_colours(random_affine(x, scale=scale))
    return x + 0.05 * torch.randn_like(x)


def augment_strong(x: torch.Tensor) -> torch.Tensor:
    """FixMatch's strong view of a target image: a larger affine change, contrast and colour jitter, cutout."""
    x = random_affine(x, degrees=20.0, scale=0.2, shift=0.15, shear=0.2)
    b = len(x)
    contrast = (0.6 + 0.8 * torch.rand(b, 1, 1, 1)).to(x.device)
    offset = (0.2 * (torch.rand(b, 3, 1, 1) - 0.5)).to(x.device)
    x = (x - 0.5) * contrast + 0.5 + offset
    return random_erase(x + 0.05 * torch.randn_like(x))


# ---------------------------------------------------------------------------
# Augmentation measured from the images: the source is changed to cover what the
# unlabelled target images show (digit height, polarity, colour), not one fixed range.
# ---------------------------------------------------------------------------


def _ink(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Background colour ``(B, C, 1, 1)`` and digit mask ``(B, H, W)`` of float images ``(B, C, H, W)``.

    The background is the median colour of the 2-pixel frame; the digit is where the colour
    distance to it passes half of the image's 98th percentile.
    """
    b, c, h, w = x.shape
    frame = torch.cat([x[..., :2, :].flatten(2), x[..., -2:, :].flatten(2),
                       x[..., 2:-2, :2].flatten(2), x[..., 2:-2, -2:].flatten(2)], 2)
    background = frame.median(2).values.view(b, c, 1, 1)
    distance = (x - background).square().sum(1).sqrt()  # (B, H, W); 80x faster than .norm(dim=1) on a CPU
    top = distance.flatten(1).quantile(0.98, dim=1).view(b, 1, 1)
    return background, distance > 0.5 * top


def digit_bright(x: torch.Tensor) -> torch.Tensor:
    """Per image of float ``(B, 3, H, W)``: is the digit brighter than its background? ``(B,)`` bool."""
    background, ink = _ink(x)
    ink = ink.float()
    ink_grey = (x.mean(1) * ink).sum((1, 2)) / ink.sum((1, 2)).clamp_min(1)
    return ink_grey > background.mean(1).view(len(x))


def digit_measures(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image of float ``(B, 3, H, W)``: digit height / H, digit brighter than background, colourfulness.

    The digit is :func:`_ink`'s mask; its height spans the rows holding the central 90 % of
    its pixels, so a stray blob in the frame moves it little. Colourfulness is the mean
    spread of the channels around their mean.
    """
    h = x.shape[2]
    ink = _ink(x)[1].float()
    rows = ink.sum(2).cumsum(1) / ink.sum((1, 2)).clamp_min(1).unsqueeze(1)  # (B, H) cumulative share
    height = ((rows < 0.95).sum(1) - (rows < 0.05).sum(1) + 1).float() / h
    spread = ((x - x.mean(1, keepdim=True)).square().sum(1) / (x.shape[1] - 1)).sqrt()
    return height, digit_bright(x), spread.mean((1, 2))


@dataclass(frozen=True)
class DigitLook:
    """What a domain's digits look like, measured on unlabelled images by :func:`digit_measures`."""

    height: tuple[float, float, float]  # 10th, 50th and 90th percentiles of digit height / image height
    bright: float  # share of images whose digit is brighter than its background
    colour: bool  # median colourfulness (channel spread) above COLOURFUL

    COLOURFUL = 0.02

    @classmethod
    def measure(cls, images: torch.Tensor, limit: int = 2000, batch: int = 500) -> "DigitLook":
        """Measure uint8 ``(N, 3, H, W)`` images: ``limit`` of them, evenly spaced (deterministic)."""
        if len(images) == 0:
            raise UserError("no images to measure")
        chosen = images[::max(1, len(images) // limit)][:limit]
        parts = [digit_measures(to_float(chosen[i:i + batch]).cpu()) for i in range(0, len(chosen), batch)]
        height, bright, colourful = (torch.cat(p) for p in zip(*parts))
        spread = height.quantile(torch.tensor([0.1, 0.5, 0.9])).tolist()
        return cls(tuple(round(q, 4) for q in spread), round(bright.float().mean().item(), 4),
                   bool(colourful.median().item() > cls.COLOURFUL))


@dataclass(frozen=True)
class MeasuredAugment:
    """Source images changed at random to cover what a target's unlabelled images show:

    - zoom log-uniform over the target's 10-90 % height range divided by the source's median
      height, widened by ``margin``: a pair without a size gap gets little;
    - polarity: each image is inverted with the probability that gives the target's share of bright
      digits, whatever its own polarity (a bright digit with 1 - share, a dark one with share);
    - colour: random channel ranges for a colourful target, one shared grey range for a grey one;
    - the rotations, shifts and pixel noise of :func:`augment_source`, which nothing measures.
    """

    zoom: tuple[float, float]
    invert_bright: float
    invert_dark: float
    colour: bool

    @classmethod
    def between(cls, source: DigitLook, target: DigitLook, margin: float = 0.1) -> "MeasuredAugment":
        mid = source.height[1]
        zoom = (target.height[0] / mid / (1 + margin), target.height[2] / mid * (1 + margin))
        zoom = (max(0.5, min(zoom[0], 2.0)), max(0.5, min(zoom[1], 2.0)))
        return cls(tuple(round(z, 4) for z in zoom), round(1 - target.bright, 4), round(target.bright, 4),
                   target.colour)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        log_low, log_high = math.log(self.zoom[0]), math.log(self.zoom[1])
        zoom = torch.exp(log_low + (log_high - log_low) * torch.rand(b)).to(x.device)
        x = random_affine(x, zoom=zoom)
        p = torch.where(digit_bright(x).cpu(), torch.tensor(self.invert_bright), torch.tensor(self.invert_dark))
        flip = (torch.rand(b) < p).to(x.device, x.dtype).view(b, 1, 1, 1)
        x = flip * (1 - x) + (1 - flip) * x
        if self.colour:
            x = random_colours(x, invert=0.0)
        else:
            low = (torch.rand(b, 1, 1, 1) * 0.3).to(x.device)
            high = (0.7 + torch.rand(b, 1, 1, 1) * 0.3).to(x.device)
            x = low + (high - low) * x.mean(1, keepdim=True)
        return (x + 0.05 * torch.randn_like(x)).expand(-1, 3, -1, -1).contiguous()
