"""SWD: sliced Wasserstein discrepancy between two classifiers (Problem 4).

Lee et al., "Sliced Wasserstein Discrepancy for Unsupervised Domain
Adaptation", CVPR 2019, https://arxiv.org/abs/1903.04064. A feature
extractor (the paper's "generator") feeds two classifiers. On target images the classifiers
are trained to disagree as much as possible while staying right on the
source, and the extractor is trained to make them agree: target features are
pulled inside the source's class regions. Disagreement is measured by the
sliced Wasserstein distance between the two classifiers' softmax outputs.

Inference interface as in ``dann.py``: ``forward(x)`` -> log-probabilities
``(B, 10)`` (both classifiers count: the mean of their probabilities),
``features(x)`` -> ``(B, D)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dann import FeatureExtractor, LabelClassifier


class SWDNet(nn.Module):
    """Feature extractor + two classifiers of the same shape, initialised differently."""

    def __init__(self, feature_dim: int = 128, width: int = 32, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.extractor = FeatureExtractor(feature_dim, width)
        self.classifier1 = LabelClassifier(feature_dim, hidden, dropout)
        self.classifier2 = LabelClassifier(feature_dim, hidden, dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)  # (B, D)

    def both_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier1(features), self.classifier2(features)  # 2 x (B, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits1, logits2 = self.both_logits(self.extractor(x))
        probs = 0.5 * (logits1.softmax(dim=1) + logits2.softmax(dim=1))  # (B, 10)
        return probs.clamp_min(1e-12).log()


def sliced_wasserstein_discrepancy(
    p1: torch.Tensor, p2: torch.Tensor, num_projections: int = 128, rng: torch.Generator | None = None
) -> torch.Tensor:
    """Sliced Wasserstein discrepancy between two batches of outputs ``(B, C)`` (Lee et al., eq. 5-6).

    Both batches are projected on ``num_projections`` random unit directions in
    R^C; along each direction the 1-D optimal transport pairs the sorted
    values, so the squared W2 distance is the mean squared difference of the
    sorted projections. Zero when the two batches are equal as sets.
    """
    if p1.shape != p2.shape or p1.dim() != 2:
        raise ValueError(f"expected two (B, C) batches of the same shape, got {tuple(p1.shape)} and {tuple(p2.shape)}")
    directions = torch.randn(p1.shape[1], num_projections, generator=rng,
                             device="cpu" if rng is not None else p1.device)
    directions = directions.to(device=p1.device, dtype=p1.dtype)
    directions = directions / directions.norm(dim=0, keepdim=True)  # (C, M) unit columns
    proj1 = torch.sort(p1 @ directions, dim=0).values  # (B, M)
    proj2 = torch.sort(p2 @ directions, dim=0).values
    return (proj1 - proj2).pow(2).mean()


def discrepancy_on_logits(logits1: torch.Tensor, logits2: torch.Tensor, num_projections: int = 128) -> torch.Tensor:
    """SWD between the two classifiers' softmax outputs, as in the paper's digit experiments."""
    return sliced_wasserstein_discrepancy(logits1.softmax(dim=1), logits2.softmax(dim=1), num_projections)


def source_loss(logits1: torch.Tensor, logits2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of both classifiers' cross-entropies on labelled source images (Lee et al., eq. 1)."""
    return F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)
