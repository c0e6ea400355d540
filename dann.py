"""DANN: domain-adversarial training of a digit classifier (Problem 3).

Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016,
https://arxiv.org/abs/1505.07818. A feature extractor feeds a label classifier
and, through a gradient reversal layer, a domain discriminator: the
discriminator learns to tell source from target features while the reversed
gradient pushes the extractor towards features it cannot tell apart.

The extractor and classifier are ``hw3/digitnet.py``'s, shared by every method; this
file adds the discriminator, the reversal layer and its schedule. The domain loss
is :func:`digitnet.domain_bce`. Inference contract: see :class:`digitnet.DigitNet`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from hw3.digitnet import DigitNet


class DomainDiscriminator(nn.Module):
    """Features ``(B, D)`` -> one logit per image: source (1) or target (0).

    ``layers`` hidden layers of ``hidden`` units: the paper's MNIST discriminator has one of
    100, its SVHN and GTSRB ones two of 1024 (Ganin et al. 2016, section 5.2.2).
    """

    def __init__(self, feature_dim: int, hidden: int = 100, layers: int = 1):
        super().__init__()
        blocks, width = [], feature_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)  # (B,)


class _GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-coeff`` (Ganin et al., eq. 13)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Gradient reversal layer R_lambda: forward is the identity, backward is ``-coeff * grad``."""
    return _GradientReversal.apply(x, float(coeff))


def grl_coefficient(progress: float, gamma: float = 10.0) -> float:
    """Ganin et al.'s schedule lambda_p = 2 / (1 + exp(-gamma p)) - 1, p = training progress in [0, 1].

    Starts at 0 so the discriminator's noisy early gradients do not wreck the
    features, and rises to ~1 (https://arxiv.org/abs/1505.07818, section 5.2.2).
    """
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DANN(DigitNet):
    """Feature extractor + label classifier + domain discriminator."""

    def __init__(self, c1: int = 32, c2: int = 48, hidden: int = 100, dropout: float = 0.5,
                 conv_dropout: float = 0.1, disc_hidden: int = 100, disc_layers: int = 1):
        super().__init__(c1, c2, hidden, dropout, conv_dropout)
        self.discriminator = DomainDiscriminator(self.feature_dim, disc_hidden, disc_layers)

    def domain_logits(self, features: torch.Tensor, coeff: float) -> torch.Tensor:
        """Discriminator logits ``(B,)`` on features seen through the gradient reversal layer."""
        return self.discriminator(reverse_gradient(features, coeff))
