"""What the adversarial methods share: the gradient reversal layer, its schedule, a domain
discriminator and its loss (tllib keeps these in one module the same way).

DANN (``dann.py``) trains its extractor against :class:`DomainDiscriminator` through
:func:`reverse_gradient`; SWD+ (``swd.py``) sends its discrepancy through the same layer;
ADDA (``hw3/adda.py``) trains its discriminator with :func:`domain_bce`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def domain_bce(source_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """A domain discriminator's binary cross-entropy, source labelled 1 and target 0.

    DANN's domain loss (Ganin et al., eq. 4, L_d) and ADDA's discriminator loss
    (Tzeng et al., eq. 7). Each domain's mean, summed, so unequal batch sizes weigh equally.
    """
    source = F.binary_cross_entropy_with_logits(source_logits, torch.ones_like(source_logits))
    target = F.binary_cross_entropy_with_logits(target_logits, torch.zeros_like(target_logits))
    return source + target
