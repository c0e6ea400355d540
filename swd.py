"""Problem 4: SWD+, the sliced Wasserstein discrepancy with target self-training.

The base is Lee et al., "Sliced Wasserstein Discrepancy for Unsupervised Domain
Adaptation", CVPR 2019, https://arxiv.org/abs/1903.04064: a feature extractor
(the paper's "generator") feeds two classifiers; on target images the classifiers
are trained to disagree as much as possible while staying right on the source,
and the extractor is trained to make them agree, which pulls target features
inside the source's class regions. Disagreement is the sliced Wasserstein
distance between the two classifiers' softmax outputs.

``train_uda.py --method swd`` adds two well-known terms on the unlabelled target
batch, each justified by the study in the README:

- information maximisation (Krause et al. 2010; SHOT, Liang et al., ICML 2020,
  https://arxiv.org/abs/2002.08546): confident predictions that still cover every class;
- confident pseudo-labels on strongly augmented views (FixMatch, Sohn et al., NeurIPS
  2020, https://arxiv.org/abs/2001.07685): where the weak view is predicted with
  probability >= the threshold, the strong view must be predicted the same.

Inference contract as in :class:`digitnet.DigitNet`; ``forward(x)`` -> log-probabilities
``(B, 10)`` counts both classifiers: the mean of their probabilities. This file holds the
network, the losses, SWD+'s own settings and flags, its update and its record.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hw3 import uda
from hw3.adversarial import reverse_gradient
from hw3.augment import augment_strong
from hw3.common import UserError, autocast
from hw3.digitnet import NUM_CLASSES, DigitNet, DigitShape, LabelClassifier
from hw3.method import Discussion, Method, Settings, StepInput, update


class SWDNet(DigitNet):
    """Feature extractor + two classifiers of the same shape, initialised differently."""

    def __init__(self, shape: DigitShape = DigitShape()):
        super().__init__(shape)
        self.classifier2 = LabelClassifier(self.feature_dim, shape.hidden, shape.dropout)
        # Running mean of the pair's predictions on target batches, for distribution alignment.
        self.register_buffer("target_prior", torch.full((NUM_CLASSES,), 1.0 / NUM_CLASSES))

    def both_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(features), self.classifier2(features)  # 2 x (B, 10)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return mean_probs(*self.both_logits(features)).clamp_min(1e-12).log()  # (B, 10)


def mean_probs(logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
    """The two classifiers' mean softmax ``(B, 10)``: the prediction of the pair."""
    return 0.5 * (logits1.softmax(dim=1) + logits2.softmax(dim=1))


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
    return sliced_wasserstein_discrepancy(logits1.float().softmax(dim=1), logits2.float().softmax(dim=1),
                                          num_projections)


def source_loss(logits1: torch.Tensor, logits2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of both classifiers' cross-entropies on labelled source images (Lee et al., eq. 1)."""
    return F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels)


def information_maximization_loss(probs: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the predictions ``(B, C)`` minus the entropy of their mean (SHOT, eq. 2-3).

    Lowest when each prediction is confident and the batch spreads over the classes.
    """
    entropy = -(probs * probs.clamp_min(1e-8).log()).sum(dim=1).mean()
    mean = probs.mean(dim=0)
    return entropy + (mean * mean.clamp_min(1e-8).log()).sum()


def pseudo_label_loss(strong_logits: torch.Tensor, weak_probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabelled loss (Sohn et al. 2020, eq. 2) and the share of the batch above ``threshold``.

    ``weak_probs`` ``(B, C)`` are the (detached) predictions on weakly augmented views;
    their argmax is the label for the strong views where the top probability reaches ``threshold``.
    """
    confidence, labels = weak_probs.detach().max(dim=1)
    mask = (confidence >= threshold).float()
    loss = (F.cross_entropy(strong_logits, labels, reduction="none") * mask).mean()
    return loss, mask.mean()


def align_distribution(probs: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Distribution alignment (ReMixMatch, Berthelot et al., ICLR 2020, https://arxiv.org/abs/1911.09785, sec. 3.2).

    Scales predictions ``(B, C)`` by uniform / ``prior`` (the running mean of the model's
    target predictions) and renormalises. A class the model over-predicts loses
    confidence, so it cannot take over the pseudo-labels: the safeguard against
    self-training that collapses onto a few classes.
    """
    aligned = probs / prior.clamp_min(1e-6)
    return aligned / aligned.sum(dim=1, keepdim=True)


def ramp_up(progress: float, length: float) -> float:
    """Laine & Aila's sigmoid ramp-up exp(-5 (1 - t)^2), t = progress / length clipped to [0, 1] (ICLR 2017).

    Weighs the self-training terms, so they start once the source loss and the
    discrepancy have shaped the features; 1 throughout when ``length`` is 0.
    """
    if length <= 0:
        return 1.0
    t = min(max(progress / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


@dataclass(frozen=True)
class SWDSettings(Settings):
    """SWD+'s own knobs (``train_uda.py --method swd``; defaults and reasons in :meth:`add_arguments`)."""

    swd_weight: float
    num_projections: int
    im_weight: float
    pl_weight: float
    pl_threshold: float
    rampup: float
    align: bool
    align_momentum: float

    def __post_init__(self):
        if self.num_projections < 1:
            raise UserError("--num-projections must be at least 1")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--swd-weight", type=float, default=1.0, help="SWD+: weight of the discrepancy")
        parser.add_argument("--num-projections", type=int, default=128, help="SWD+: random directions per update")
        parser.add_argument("--im-weight", type=float, default=0.3, help="SWD+: weight of information maximisation")
        parser.add_argument("--pl-weight", type=float, default=1.0, help="SWD+: weight of the pseudo-label loss")
        parser.add_argument("--pl-threshold", type=float, default=0.8,
                            help="SWD+: confidence that makes a pseudo-label")
        parser.add_argument("--rampup", type=float, default=0.3,
                            help="SWD+: share of training over which the self-training terms ramp up (Laine & Aila)")
        parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                            help="SWD+: align pseudo-labels with the running target prediction mean (ReMixMatch)")
        parser.add_argument("--align-momentum", type=float, default=0.99, help="SWD+: momentum of that running mean")


def step(model: SWDNet, optimizers: dict, batch: StepInput, settings: SWDSettings) -> dict:
    """One SWD+ update: source loss, sliced Wasserstein discrepancy, information maximisation, pseudo-labels.

    The discrepancy goes through the gradient reversal layer: the classifiers get
    ``-grad`` (they maximise it) and the extractor ``+grad`` (it minimises it), Lee et
    al.'s min-max in one backward pass.
    """
    xs, ys, xt = batch.source, batch.labels, batch.target
    with autocast(xs.device):
        loss_cls = source_loss(*model.both_logits(model.features(xs)), ys)
        ft_all = model.features(torch.cat([xt, augment_strong(xt)]))  # one target BN batch: weak and strong views
        ft, ft_strong = ft_all[:len(xt)], ft_all[len(xt):]
        discrepancy = discrepancy_on_logits(*model.both_logits(reverse_gradient(ft)), settings.num_projections)
        probs = mean_probs(*(l.float() for l in model.both_logits(ft)))  # (B, 10)
        loss_im = information_maximization_loss(probs)
        targets = probs.detach()
        if settings.align:  # the running prior keeps one class from taking over the pseudo-labels
            with torch.no_grad():
                model.target_prior.mul_(settings.align_momentum).add_((1 - settings.align_momentum) * targets.mean(0))
            targets = align_distribution(targets, model.target_prior)
        strong1, strong2 = (l.float() for l in model.both_logits(ft_strong))
        loss_pl1, share = pseudo_label_loss(strong1, targets, settings.pl_threshold)
        loss_pl = loss_pl1 + pseudo_label_loss(strong2, targets, settings.pl_threshold)[0]
        ramp = ramp_up(batch.progress, settings.rampup)
        loss = (loss_cls - settings.swd_weight * discrepancy
                + ramp * (settings.im_weight * loss_im + settings.pl_weight * loss_pl))
    update(optimizers["model"], loss)
    return {"loss_cls": loss_cls.item(), "discrepancy": discrepancy.item(), "loss_im": loss_im.item(),
            "loss_pl": loss_pl.item(), "pl_share": share.item()}


METHOD = uda.register(Method(
    "swd", "Adaptation (SWD+)", "SWD+", SWDNet, ("loss_cls", "discrepancy", "loss_im", "loss_pl", "pl_share"),
    step, settings=SWDSettings, graded="hw3_p4.sh", augment="measured",
    discussion=Discussion("4-3", "P4-4", "pl_share", "share of target images with a pseudo-label",
                          "adapting")))
