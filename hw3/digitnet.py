"""The digit network every domain-adaptation method trains, its shape, and running it on uint8 digits.

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

Its widths and dropouts are one :class:`DigitShape`, whose defaults are every method's; a method
whose network adds modules declares their fields in a subclass (``dann.DANNShape``), and
``train_uda.py`` gives each field its flag. :func:`predict_labels` and :func:`adapt_batch_norm`
run a trained network on uint8 images ``(N, 3, 28, 28)``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from hw3.common import autocast, batched, to_float

NUM_CLASSES = 10  # the digits 0-9, in every domain


@dataclass(frozen=True)
class DigitShape:
    """The digit network's widths and dropouts: every method's defaults, saved in its checkpoints."""

    c1: int = 32  # channels of the two conv layers: DANN_py3 uses 64/50; 32/48 trains twice as fast on a CPU
    c2: int = 48  # and reached the same accuracy here
    hidden: int = 100  # the label classifier's hidden units
    dropout: float = 0.5  # in the label classifier
    conv_dropout: float = 0.1  # Dropout2d in the extractor; 0.5 (Ganin et al.'s) held adaptation back

    @classmethod
    def own_fields(cls) -> list:
        """The fields a method's shape adds to the digit network's; each has ``metadata["help"]``."""
        return [f for f in fields(cls) if f.name not in {g.name for g in fields(DigitShape)}]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, prefix: str) -> None:
        """A flag for each of :meth:`own_fields` (``disc_hidden`` -> ``--disc-hidden``), its default the field's."""
        for f in cls.own_fields():
            parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                                help=f"{prefix}: {f.metadata['help']}")


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
    padding (28 -> 24 -> 12 -> 8 -> 4), flattened.
    """

    def __init__(self, c1: int, c2: int, dropout: float):
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

    def __init__(self, feature_dim: int, hidden: int, dropout: float):
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
    :meth:`classify` when their prediction is not the one classifier's. A subclass with modules of
    its own declares their widths in its ``Shape`` (a :class:`DigitShape` with more fields).
    """

    Shape: ClassVar[type[DigitShape]] = DigitShape

    def __init__(self, shape: DigitShape = DigitShape()):
        super().__init__()
        self.extractor = FeatureExtractor(shape.c1, shape.c2, shape.conv_dropout)
        self.classifier = LabelClassifier(self.extractor.feature_dim, shape.hidden, shape.dropout)

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



@torch.no_grad()
def adapt_batch_norm(model: nn.Module, images: torch.Tensor, device, batch_size: int = 500) -> None:
    """AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016,
    https://arxiv.org/abs/1603.04779): every batch-norm layer's running statistics recomputed
    on uint8 target images ``(N, 3, 28, 28)``, as an exact average over them; the weights stay.

    Training normalised each target batch by its own statistics; this gives inference the same.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    try:
        batched(lambda x: model(to_float(x)), images, batch_size, device)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


def predict_labels(model: nn.Module, images: torch.Tensor, device: torch.device | str,
                   batch_size: int = 1024) -> torch.Tensor:
    """Argmax class of uint8 images ``(N, 3, 28, 28)``, batched; returns ``(N,)`` int64 on the CPU."""
    # Channels-last halves the CPU time of these small convolutions and max-pools (measured: 3.4 s
    # against 6.9 s for 26k digits on 2 threads); the model is restored as it was.
    model.eval().to(memory_format=torch.channels_last)

    def classify(x: torch.Tensor) -> torch.Tensor:
        return model(to_float(x).contiguous(memory_format=torch.channels_last)).argmax(dim=1)

    try:
        with autocast(torch.device(device)):  # as --precision asks (predict.py: fp32)
            return batched(classify, images, batch_size, device)
    finally:
        model.to(memory_format=torch.contiguous_format)
