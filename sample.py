"""Draw a grid of faces from a trained VAE decoder or GAN generator (fig1_4, fig2_2).

The noise comes from a seeded CPU generator and the network runs on the CPU,
so the same checkpoint and seed give a byte-identical image on any machine
with the same library versions, GPU or not.

Checkpoint contract: ``kind`` is ``vae`` (``vae.VAE(**config)`` with weights in
``model``, ``decode(z)`` in [0, 1]) or ``gan`` (``gan.Generator(**config["generator"])``
with the EMA weights in ``ema``, output in [-1, 1]).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

from common import UserError, atomic_path, cli, load_checkpoint


def load_sampler(path: str | Path, device: torch.device | str = "cpu"):
    """Return ``(decode, latent_dim)``: ``decode(z)`` maps ``(B, latent_dim)`` noise to ``(B, 3, 64, 64)`` in [0, 1].

    The network runs on ``device``; ``decode`` takes its noise and returns its
    images as float32 on the CPU, so callers draw noise the same way everywhere.
    """
    checkpoint = load_checkpoint(path)
    kind = checkpoint.get("kind")
    try:
        if kind == "vae":
            from vae import VAE

            model = VAE(**checkpoint["config"])
            model.load_state_dict(checkpoint["model"])
            model.to(device).eval()
            return (lambda z: model.decode(z.to(device)).float().cpu()), model.latent_dim
        if kind == "gan":
            from gan import Generator

            generator = Generator(**checkpoint["config"]["generator"])
            generator.load_state_dict(checkpoint["ema"])
            generator.to(device).eval()
            return (lambda z: ((generator(z.to(device)) + 1) / 2).float().cpu()), generator.z_dim
    except (KeyError, TypeError, RuntimeError) as err:
        raise UserError(f"checkpoint {path} does not fit its model ({type(err).__name__}: {str(err)[:120]})") from None
    raise UserError(f"checkpoint {path} holds a {kind!r} model; expected vae or gan")


@torch.no_grad()
def sample_grid(decode, latent_dim: int, n: int = 32, nrow: int = 8, seed: int = 0) -> Image.Image:
    """``n`` samples from N(0, I) noise as one image, ``nrow`` per row, 2-pixel gaps."""
    from torchvision.utils import make_grid

    noise = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    images = decode(noise).float().clamp(0, 1)
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    array = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)


def save_image(image: Image.Image, out: str | Path) -> None:
    """Save atomically, in the format the file name asks for (PNG when unknown)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name such as {out / 'fig.png'}")
    fmt = Image.registered_extensions().get(out.suffix.lower(), "PNG")
    with atomic_path(out) as tmp:
        image.save(tmp, format=fmt)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write a grid of generated faces.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="a vae or gan checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="output image (.png or .jpg)")
    parser.add_argument("--n", type=int, default=32, help="number of samples")
    parser.add_argument("--nrow", type=int, default=8, help="samples per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    args = parser.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    decode, latent_dim = load_sampler(args.checkpoint)
    save_image(sample_grid(decode, latent_dim, args.n, args.nrow, args.seed), args.out)
    return 0


if __name__ == "__main__":
    cli(main)
