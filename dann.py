"""DANN: domain-adversarial training of a digit classifier (Problem 3), and the shared digit network.

Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016,
https://arxiv.org/abs/1505.07818. A feature extractor feeds a label classifier
and, through a gradient reversal layer, a domain discriminator: the
discriminator learns to tell source from target features while the reversed
gradient pushes the extractor towards features it cannot tell apart.

The network is the paper's digit architecture at a CPU-friendly width
(:class:`FeatureExtractor`, :class:`LabelClassifier`); every method of
``train_uda.py`` trains it (SWD with a second classifier, ADDA with a second
extractor), so the methods differ only in how they are trained.

Every model here, in ``swd.py`` and in ``adda.py`` has one inference interface:
``forward(x)`` returns log-probabilities ``(B, 10)``, ``features(x)`` the embedding
``(B, D)`` used for t-SNE and model selection, and ``classify(features)`` the
log-probabilities from an embedding (so both come from one pass); ``x`` is
float ``(B, 3, 28, 28)`` in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10


def standardize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each image by its own mean and std over all pixels and channels.

    Removes brightness and contrast, a large part of the gap between grayscale
    and colour digit domains.
    """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


class FeatureExtractor(nn.Module):
    """Ganin et al.'s MNIST extractor: two 5x5 conv blocks, ``(B, 3, 28, 28)`` -> ``(B, 16 * c2)``.

    conv(c1) - BN - maxpool - ReLU - conv(c2) - BN - Dropout2d - maxpool - ReLU, no
    padding (28 -> 24 -> 12 -> 8 -> 4), flattened. DANN_py3 uses 64/50; 32/48 trains
    twice as fast on a CPU and reached the same accuracy here.
    """

    def __init__(self, c1: int = 32, c2: int = 48, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, c1, 5), nn.BatchNorm2d(c1), nn.MaxPool2d(2), nn.ReLU(inplace=True),  # (B, c1, 12, 12)
            nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.Dropout2d(dropout), nn.MaxPool2d(2),
            nn.ReLU(inplace=True),  # (B, c2, 4, 4)
            nn.Flatten(),
        )
        self.feature_dim = 16 * c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(standardize(x))  # (B, 16 * c2)


class LabelClassifier(nn.Module):
    """Ganin et al.'s label predictor: features ``(B, D)`` -> fc-BN-ReLU-dropout-fc-BN-ReLU-fc -> logits ``(B, 10)``."""

    def __init__(self, feature_dim: int, hidden: int = 100, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class DomainDiscriminator(nn.Module):
    """Features ``(B, D)`` -> one logit per image: source (1) or target (0). One hidden layer, as in the paper."""

    def __init__(self, feature_dim: int, hidden: int = 100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

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


class DANN(nn.Module):
    """Feature extractor + label classifier + domain discriminator.

    Also the network of the source-only and target-only baselines, which
    simply never call :meth:`domain_logits`.
    """

    def __init__(self, c1: int = 32, c2: int = 48, hidden: int = 100, dropout: float = 0.5,
                 conv_dropout: float = 0.1):
        super().__init__()
        self.extractor = FeatureExtractor(c1, c2, conv_dropout)
        self.classifier = LabelClassifier(self.extractor.feature_dim, hidden, dropout)
        self.discriminator = DomainDiscriminator(self.extractor.feature_dim, hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)  # (B, D)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extractor(x))  # (B, 10)

    def domain_logits(self, features: torch.Tensor, coeff: float) -> torch.Tensor:
        """Discriminator logits ``(B,)`` on features seen through the gradient reversal layer."""
        return self.discriminator(reverse_gradient(features, coeff))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(features), dim=1)  # (B, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.extractor(x))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits ``(B, 10)`` against labels ``(B,)`` (Ganin et al., eq. 4, L_y)."""
    return F.cross_entropy(logits, labels)


def domain_loss(source_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator, source labelled 1 and target 0 (Ganin et al., eq. 4, L_d).

    Each domain's mean, summed, so unequal batch sizes weigh equally.
    """
    source = F.binary_cross_entropy_with_logits(source_logits, torch.ones_like(source_logits))
    target = F.binary_cross_entropy_with_logits(target_logits, torch.zeros_like(target_logits))
    return source + target
