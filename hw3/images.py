"""Writing images: sample grids, single files and whole folders, each atomically.

A grid's noise comes from a seeded CPU generator and :func:`deterministic` pins the
kernels, so the same model and seed give the same bytes on every run (``hw3_p1.sh``,
``hw3_p2.sh`` and ``plots.py`` draw through here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch
from PIL import Image

from hw3.common import UserError, atomic_path


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels inside the block, the previous setting restored after it."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] to uint8, rounded to nearest."""
    return images.float().clamp(0, 1).mul(255).add_(0.5).to(torch.uint8)


def grid_image(images: torch.Tensor, nrow: int) -> Image.Image:
    """Float images ``(N, 3, H, W)`` in [0, 1] as one picture, ``nrow`` per row, 2-pixel white gaps."""
    from torchvision.utils import make_grid

    grid = make_grid(images.float().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    return Image.fromarray(to_uint8(grid).permute(1, 2, 0).numpy())


def sample_grid(decode: Callable[[torch.Tensor], torch.Tensor], latent_dim: int, n: int = 32, nrow: int = 8,
                seed: int = 0, device: torch.device | str = "cpu") -> Image.Image:
    """``n`` images decoded from seeded N(0, I) noise ``(n, latent_dim)``, as one grid."""
    noise = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = decode(noise.to(device)).float().cpu()
    return grid_image(images, nrow)


def class_grid(generate: Callable[[torch.Tensor, torch.Generator], torch.Tensor], n_per_class: int = 10,
               num_classes: int = 10, seed: int = 0, device: torch.device | str = "cpu") -> Image.Image:
    """``n_per_class`` images of each class, one class per row, from ``generate(labels, rng)`` in [0, 1]."""
    labels = torch.arange(num_classes).repeat_interleave(n_per_class).to(device)  # 0 0 ... 1 1 ... 9
    with torch.no_grad():
        images = generate(labels, torch.Generator().manual_seed(seed)).float().cpu()
    return grid_image(images, n_per_class)


def save_image(image: Image.Image, out: str | Path) -> None:
    """Save atomically, in the format the file name asks for (PNG when unknown)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name such as {out / 'fig.png'}")
    fmt = Image.registered_extensions().get(out.suffix.lower(), "PNG")
    with atomic_path(out) as tmp:
        image.save(tmp, format=fmt)


def check_new_folder(out_dir: str | Path) -> Path:
    """``out_dir`` if it is absent or an empty folder, else a UserError (nothing is overwritten)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir} already exists and is not an empty folder; give a new one")
    return out_dir


def write_folder(images: torch.Tensor, names: list[str], out_dir: str | Path) -> Path:
    """Write float images ``(N, 3, H, W)`` in [0, 1] as PNGs ``names`` into the new folder ``out_dir``.

    They go into a temporary folder beside ``out_dir`` that is renamed into place
    at the end, so a failure leaves no partial set to be scored by mistake.
    """
    out_dir = check_new_folder(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as err:
        raise UserError(f"cannot write {out_dir}: {err.strerror or err}") from None
    try:
        for array, name in zip(to_uint8(images).permute(0, 2, 3, 1).numpy(), names):
            Image.fromarray(array).save(tmp / name)
        if out_dir.is_dir():
            out_dir.rmdir()  # empty, checked above
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
