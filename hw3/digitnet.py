"""The digit network every domain-adaptation method trains, and what the digit code shares.

The network is Ganin et al.'s digit architecture ("Domain-Adversarial Training of
Neural Networks", JMLR 2016, https://arxiv.org/abs/1505.07818) at a CPU-friendly
width: a feature extractor and a label classifier. :class:`DigitNet` is the
source-only and target-only network; DANN (``dann.py``), SWD+ (``swd.py``) and
ADDA (``hw3/adda.py``) subclass it and add what their training needs, so the methods
differ only in how they are trained.

The inference contract of every :class:`DigitNet`: ``forward(x)`` returns
log-probabilities ``(B, 10)``, ``features(x)`` the embedding ``(B, D)`` used for
t-SNE and model selection, and ``classify(features)`` the log-probabilities from an
embedding (so both come from one pass); ``x`` is float ``(B, 3, 28, 28)`` in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10  # the digits 0-9, in every domain


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


class DigitNet(nn.Module):
    """Feature extractor + label classifier: the baselines' network and the base of every adapted one.

    Subclasses add modules after calling this constructor (so the shared parts are
    initialised first, from the same seed, in every method) and override
    :meth:`classify` when their prediction is not the one classifier's.
    """

    def __init__(self, c1: int = 32, c2: int = 48, hidden: int = 100, dropout: float = 0.5,
                 conv_dropout: float = 0.1):
        super().__init__()
        self.extractor = FeatureExtractor(c1, c2, conv_dropout)
        self.classifier = LabelClassifier(self.extractor.feature_dim, hidden, dropout)

    @property
    def feature_dim(self) -> int:
        return self.extractor.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)  # (B, D)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extractor(x))  # (B, 10)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(features), dim=1)  # (B, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits ``(B, 10)`` against labels ``(B,)`` (Ganin et al., eq. 4, L_y)."""
    return F.cross_entropy(logits, labels)

