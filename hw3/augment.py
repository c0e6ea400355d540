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


QUIET_QUANTILE = 0.9
FRAME_INK = 0.25  # at most this share of the frame may be ink (USPS's digits reach it; a busy texture fills it)
QUIET = 0.2  # a frame is quiet when its colours stay within this share of the digit's contrast (see _quiet_frame)
FALLBACK_ZOOM = (1 / 1.5, 1.5)  # augment_source's default range, for a domain whose digit height cannot be read


def _border(t: torch.Tensor) -> torch.Tensor:
    """The 2-pixel frame of ``(B, ..., H, W)``, flattened: ``(B, ..., F)``."""
    return torch.cat([t[..., :2, :].flatten(-2), t[..., -2:, :].flatten(-2),
                      t[..., 2:-2, :2].flatten(-2), t[..., 2:-2, -2:].flatten(-2)], -1)


def _ink(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Background colour ``(B, C, 1, 1)``, digit mask ``(B, H, W)``, each pixel's colour distance to the
    background ``(B, H, W)`` and its 98th percentile ``(B,)``, of float images ``(B, C, H, W)``.

    The background is the median colour of the 2-pixel frame; the digit is where the colour
    distance to it passes half of the image's 98th percentile. That mask is only right on a quiet
    background (see :func:`_quiet_frame`).
    """
    b, c, h, w = x.shape
    background = _border(x).median(-1).values.view(b, c, 1, 1)
    distance = (x - background).square().sum(1).sqrt()  # (B, H, W); 80x faster than .norm(dim=1) on a CPU
    top = distance.flatten(1).quantile(0.98, dim=1)  # (B,)
    return background, distance > 0.5 * top.view(b, 1, 1), distance, top


def _quiet_frame(ink: torch.Tensor, distance: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: is the image's frame quiet, so that :func:`_ink`'s mask can be trusted?

    Over a busy texture (grass, gravel, fur; MNIST-M's |patch - digit| over BSDS500 crops) the
    texture passes the mask's threshold too. A frame is quiet when the 90th percentile of its
    background pixels' distances (ink that reaches the frame, USPS's or a neighbour digit's, left
    out) stays under ``QUIET`` of the image's 98th percentile, and at most ``FRAME_INK`` of it is
    ink. The frame holds background, not digit, and a domain's backgrounds are drawn apart from
    its digits, so the quiet images' digits are a fair sample.
    """
    frame = _border(torch.where(ink, torch.nan, distance))  # (B, F)
    return (frame.nanquantile(QUIET_QUANTILE, dim=1).nan_to_num(float("inf")) < QUIET * top) & \
        (frame.isnan().float().mean(1) < FRAME_INK)


def _brighter(x: torch.Tensor, background: torch.Tensor, ink: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: is the mean grey of the ``ink`` pixels ``(B, H, W)`` above the ``background``'s?"""
    ink_grey = (x.mean(1) * ink).sum((1, 2)) / ink.sum((1, 2)).clamp_min(1)
    return ink_grey > background.mean(1).view(len(x))


def digit_bright(x: torch.Tensor) -> torch.Tensor:
    """Per image of float ``(B, 3, H, W)``: is the digit brighter than its background? ``(B,)`` bool."""
    background, ink, _, _ = _ink(x)  # no frame test: this runs on every training batch
    return _brighter(x, background, ink.float())


def digit_measures(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image of float ``(B, 3, H, W)``: digit height / H, digit brighter than background, colourfulness,
    and whether the first two can be trusted (the frame is quiet, see :func:`_quiet_frame`).

    The digit is :func:`_ink`'s mask; its height spans the rows holding the central 90 % of
    its pixels, so a stray blob in the frame moves it little. Colourfulness is the mean
    spread of the channels around their mean.
    """
    h = x.shape[2]
    background, mask, distance, top = _ink(x)
    quiet = _quiet_frame(mask, distance, top)
    ink = mask.float()
    rows = ink.sum(2).cumsum(1) / ink.sum((1, 2)).clamp_min(1).unsqueeze(1)  # (B, H) cumulative share
    height = ((rows < 0.95).sum(1) - (rows < 0.05).sum(1) + 1).float() / h
    bright = _brighter(x, background, ink)
    spread = ((x - x.mean(1, keepdim=True)).square().sum(1) / (x.shape[1] - 1)).sqrt()
    return height, bright, spread.mean((1, 2)), quiet


@dataclass(frozen=True)
class DigitLook:
    """What a domain's digits look like, measured on unlabelled images by :func:`digit_measures`.

    Height and polarity are read on the images with a quiet frame only. Where fewer than
    ``MIN_QUIET`` of them (and of ``MIN_QUIET_SHARE`` of the images) have one, as over busy
    textures, the height is not read (None), and :class:`MeasuredAugment` falls back to the fixed
    zoom range. A digit's size does not depend on its background, so the quiet images give a fair
    height; its polarity can (over |patch - digit|, a dark patch makes a bright digit, and quiet
    patches are often bright sky), so the polarity is read only where most frames are quiet
    (``POLARITY_QUIET_SHARE``) and is otherwise None: both polarities are then trained equally.
    Errors against known truth, per kind of background: ``benchmarks/digit_look.md``.
    """

    height: tuple[float, float, float] | None  # 10th, 50th and 90th percentiles of digit height / image height
    bright: float | None  # share of images whose digit is brighter than its background
    colour: bool  # median colourfulness (channel spread) above COLOURFUL
    quiet: float = 1.0  # share of the measured images with a quiet frame

    COLOURFUL = 0.02
    MIN_QUIET = 50
    MIN_QUIET_SHARE = 0.1
    POLARITY_QUIET_SHARE = 0.5

    @classmethod
    def measure(cls, images: torch.Tensor, limit: int = 2000, batch: int = 500) -> "DigitLook":
        """Measure uint8 ``(N, 3, H, W)`` images: ``limit`` of them, evenly spaced (deterministic)."""
        if len(images) == 0:
            raise UserError("no images to measure")
        chosen = images[::max(1, len(images) // limit)][:limit]
        parts = [digit_measures(to_float(chosen[i:i + batch]).cpu()) for i in range(0, len(chosen), batch)]
        height, bright, colourful, quiet = (torch.cat(p) for p in zip(*parts))
        colour = bool(colourful.median().item() > cls.COLOURFUL)
        share = round(quiet.float().mean().item(), 4)
        if quiet.sum().item() < min(cls.MIN_QUIET, len(chosen)) or share < cls.MIN_QUIET_SHARE:
            return cls(None, None, colour, share)
        spread = height[quiet].quantile(torch.tensor([0.1, 0.5, 0.9])).tolist()
        polarity = round(bright[quiet].float().mean().item(), 4) if share >= cls.POLARITY_QUIET_SHARE else None
        return cls(tuple(round(q, 4) for q in spread), polarity, colour, share)


@dataclass(frozen=True)
class MeasuredAugment:
    """Source images changed at random to cover what a target's unlabelled images show:

    - zoom log-uniform over the target's 10-90 % height range divided by the source's median
      height (widened by ``margin``), and at least as wide as the fixed range ``FALLBACK_ZOOM``
      around its centre: a pair without a size gap gets the fixed range (a narrower one cost DANN
      2.6-3.4 points on mnist->mnistm), USPS -> MNIST-M a range shifted to shrink (covering the
      fixed range's enlargements cost it 10); where either height could not be read (busy
      backgrounds), the fixed range;
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
        """The plan from ``source``'s look to ``target``'s. The zoom is centred on what the target's heights
        need and at least as wide as the fixed range ``FALLBACK_ZOOM``; a height or polarity that could not
        be read (None) gives the fixed range or an even chance of inverting."""
        zoom = FALLBACK_ZOOM
        if source.height is not None and target.height is not None:
            mid = source.height[1]
            need = (target.height[0] / mid / (1 + margin), target.height[2] / mid * (1 + margin))
            # At least the fixed range's width, centred (in log scale) on what the target needs.
            half = max(math.log(need[1] / need[0]), math.log(zoom[1] / zoom[0])) / 2
            centre = math.log(need[0] * need[1]) / 2
            zoom = (max(0.5, math.exp(centre - half)), min(2.0, math.exp(centre + half)))
        bright = 0.5 if target.bright is None else target.bright
        return cls(tuple(round(z, 4) for z in zoom), round(1 - bright, 4), round(bright, 4), target.colour)

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
