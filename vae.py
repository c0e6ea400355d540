"""Convolutional variational auto-encoder for 3x64x64 faces, and its loss (Problem 1).

Kingma & Welling, "Auto-Encoding Variational Bayes", https://arxiv.org/abs/1312.6114.
The encoder maps an image to the mean and log-variance of a diagonal Gaussian
q(z|x); a sample drawn with the reparameterization trick is decoded back to an
image in [0, 1]. ``train_vae.py`` does the training; this file holds modules
and the loss only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from datasets import FACE_SIZE
from hw3 import checkpoints

# Four stride-2 stages take 64x64 down to 4x4 and back.
_STAGES = 4
_BOTTOM = FACE_SIZE // 2**_STAGES


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


@dataclass(frozen=True)
class VAEConfig:
    """Everything that shapes the network; saved whole in every checkpoint."""

    latent_dim: int = 512
    channels: int = 32  # width of the first encoder stage; doubles per stage (32-64-128-256)

    def build(self) -> "VAE":
        return VAE(self.latent_dim, self.channels)


def from_checkpoint(checkpoint: dict) -> "VAE":
    """The VAE of a loaded ``vae`` checkpoint, weights in place, in eval mode."""
    model = VAEConfig(**checkpoint["config"]).build()
    model.load_state_dict(checkpoint["model"])
    return model.eval()


checkpoints.register((checkpoints.VAE,), from_checkpoint)


class VAE(nn.Module):
    """Conv encoder to (mu, logvar) of ``latent_dim``; transposed-conv decoder with a sigmoid.

    ``channels`` is the width of the first encoder stage; it doubles at each of
    the four stages (32 gives 32-64-128-256), and the decoder mirrors it.
    """

    def __init__(self, latent_dim: int = 512, channels: int = 32):
        super().__init__()
        if latent_dim < 1 or channels < 1:
            raise ValueError("latent_dim and channels must be positive")
        self.latent_dim = latent_dim
        self.channels = channels
        widths = [channels * 2**i for i in range(_STAGES)]  # e.g. [32, 64, 128, 256]
        self.encoder = nn.Sequential(*[_down(c_in, c_out) for c_in, c_out in zip([3, *widths[:-1]], widths)])
        flat = widths[-1] * _BOTTOM * _BOTTOM
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        rev = widths[::-1]  # e.g. [256, 128, 64, 32]
        self.decoder = nn.Sequential(
            *[_up(c_in, c_out) for c_in, c_out in zip(rev[:-1], rev[1:])],
            nn.ConvTranspose2d(rev[-1], 3, kernel_size=4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, 3, 64, 64) in [0, 1] -> ``(mu, logvar)``, each (B, latent_dim)."""
        h = self.encoder(x).flatten(1)  # (B, C*4*4)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (B, latent_dim) -> images (B, 3, 64, 64) in [0, 1]."""
        h = self.from_latent(z).view(len(z), -1, _BOTTOM, _BOTTOM)  # (B, C, 4, 4)
        return self.decoder(h)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I), differentiable in mu and logvar."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, mu, logvar)`` for a sampled z; always this triple."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


class VAELoss(NamedTuple):
    """The two terms of the objective and their weighted sum (all scalar tensors)."""

    recon: torch.Tensor
    kl: torch.Tensor
    total: torch.Tensor


def kl_per_image(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) of each image, summed over latent dims: ``(B,)``.

    Closed form, Kingma & Welling (2013) Appendix B, https://arxiv.org/abs/1312.6114:
    KL = -1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)); ``mu`` and ``logvar`` are (B, latent_dim).
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """:func:`kl_per_image` averaged over the batch: a scalar."""
    return kl_per_image(mu, logvar).mean()


def vae_loss(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             kl_weight: float) -> VAELoss:
    """The assignment's objective: pixel-averaged MSE + ``kl_weight`` * KL.

    ``recon`` and ``target`` are (B, 3, 64, 64) in [0, 1]; the MSE is the mean
    over every pixel and channel of the batch, the KL is :func:`kl_divergence`
    (sum over latent dims, mean over the batch). Both are computed in float32.
    """
    recon_term = F.mse_loss(recon.float(), target.float(), reduction="mean")
    kl_term = kl_divergence(mu.float(), logvar.float())
    return VAELoss(recon=recon_term, kl=kl_term, total=recon_term + kl_weight * kl_term)
