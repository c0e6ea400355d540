"""Draw a grid of faces from a trained VAE decoder or GAN generator (fig1_4, fig2_2).

The noise comes from a seeded CPU generator and the network runs on the CPU,
so the same checkpoint and seed give a byte-identical image on any machine
with the same library versions, GPU or not. This is what ``hw3_p1.sh`` and
``hw3_p2.sh`` run.

A checkpoint of kind ``vae`` (its decoder, output in [0, 1]) or ``gan`` (its EMA
generator, output in [-1, 1]) is rebuilt by its family's ``from_checkpoint``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import gan  # noqa: F401  (registers its checkpoint kind)
import vae  # noqa: F401  (registers its checkpoint kind)
from hw3.common import cli
from hw3.images import deterministic, sample_grid, save_image
from hw3.checkpoints import FACE_SAMPLERS, load_model


def load_sampler(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The VAE or GAN generator of a checkpoint, in eval mode on ``device``.

    Both families offer ``decode(z)``: noise ``(B, latent_dim)`` to faces
    ``(B, 3, 64, 64)`` in [0, 1], and ``latent_dim``.
    """
    return load_model(path, FACE_SAMPLERS, device)[0]


def face_grid(model: torch.nn.Module, n: int = 32, nrow: int = 8, seed: int = 0,
              device: torch.device | str = "cpu"):
    """The grid of fig1_4 / fig2_2: ``n`` faces from seeded noise, with deterministic kernels."""
    with deterministic():
        return sample_grid(model.decode, model.latent_dim, n, nrow, seed, device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write a grid of generated faces.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="a vae or gan checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="output image (.png or .jpg)")
    parser.add_argument("--n", type=int, default=32, help="number of samples")
    parser.add_argument("--nrow", type=int, default=8, help="samples per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    args = parser.parse_args(argv)
    save_image(face_grid(load_sampler(args.checkpoint), args.n, args.nrow, args.seed), args.out)
    return 0


if __name__ == "__main__":
    cli(main)
