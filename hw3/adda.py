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
classifier. Inference contract as in :class:`digitnet.DigitNet`; the discriminator
loss is :func:`digitnet.domain_bce`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hw3.digitnet import DigitNet, FeatureExtractor


class ADDA(DigitNet):
    """Source extractor, target extractor, shared classifier and the paper's 500-500 discriminator.

    ``extractor`` is the source's in stage 1 and the target's in stage 2 (what inference uses).
    """

    def __init__(self, c1: int = 32, c2: int = 48, hidden: int = 100, dropout: float = 0.5,
                 conv_dropout: float = 0.1):
        super().__init__(c1, c2, hidden, dropout, conv_dropout)
        self.source_extractor = FeatureExtractor(c1, c2, conv_dropout)  # a fixed copy from stage 2 on
        self.discriminator = nn.Sequential(nn.Linear(self.feature_dim, 500), nn.LeakyReLU(0.2), nn.Linear(500, 500),
                                           nn.LeakyReLU(0.2), nn.Linear(500, 1))

    def start_adaptation(self) -> None:
        """Stage 2 begins: the pre-trained extractor is kept as the fixed source extractor."""
        self.source_extractor.load_state_dict(self.extractor.state_dict())
        self.source_extractor.requires_grad_(False)


def mapping_loss(target_logits: torch.Tensor) -> torch.Tensor:
    """The target extractor's loss with inverted labels: its features should be called source (eq. 9)."""
    return F.binary_cross_entropy_with_logits(target_logits, torch.ones_like(target_logits))
