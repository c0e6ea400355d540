"""ADDA: adversarial discriminative domain adaptation (beside Problem 4, as in the 2021 report).

Tzeng et al., "Adversarial Discriminative Domain Adaptation", CVPR 2017,
https://arxiv.org/abs/1702.05464. Two stages:

1. pre-training: an extractor and a classifier learn the source labels;
2. adaptation: the extractor is frozen as the source extractor; a target extractor,
   initialised from it, is trained
   against a domain discriminator with the inverted-label GAN loss (eq. 9) so that
   its target features look like source features; the source extractor and the
   classifier stay fixed.

At inference target images go through the target extractor and the fixed
classifier. Interface as in ``dann.py``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dann import FeatureExtractor, LabelClassifier


class ADDA(nn.Module):
    """Source extractor, target extractor, shared classifier and the paper's 500-500 discriminator."""

    def __init__(self, c1: int = 32, c2: int = 48, hidden: int = 100, dropout: float = 0.5,
                 conv_dropout: float = 0.1):
        super().__init__()
        self.extractor = FeatureExtractor(c1, c2, conv_dropout)  # the source's in stage 1, the target's in stage 2
        self.source_extractor = FeatureExtractor(c1, c2, conv_dropout)  # a fixed copy from stage 2 on
        dim = self.extractor.feature_dim
        self.classifier = LabelClassifier(dim, hidden, dropout)
        self.discriminator = nn.Sequential(nn.Linear(dim, 500), nn.LeakyReLU(0.2), nn.Linear(500, 500),
                                           nn.LeakyReLU(0.2), nn.Linear(500, 1))

    def start_adaptation(self) -> None:
        """Stage 2 begins: the pre-trained extractor is kept as the fixed source extractor."""
        self.source_extractor.load_state_dict(self.extractor.state_dict())
        self.source_extractor.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)  # (B, D)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(features), dim=1)  # (B, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.extractor(x))


def discriminator_loss(source_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: source features labelled 1, target features 0 (Tzeng et al., eq. 7)."""
    return (F.binary_cross_entropy_with_logits(source_logits, torch.ones_like(source_logits))
            + F.binary_cross_entropy_with_logits(target_logits, torch.zeros_like(target_logits)))


def mapping_loss(target_logits: torch.Tensor) -> torch.Tensor:
    """The target extractor's loss with inverted labels: its features should be called source (eq. 9)."""
    return F.binary_cross_entropy_with_logits(target_logits, torch.ones_like(target_logits))
