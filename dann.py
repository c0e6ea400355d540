"""DANN: domain-adversarial training of a digit classifier (Problem 3).

Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016,
https://arxiv.org/abs/1505.07818. A feature extractor feeds a label classifier
and, through a gradient reversal layer, a domain discriminator: the
discriminator learns to tell source from target features while the reversed
gradient pushes the extractor towards features it cannot tell apart.

The extractor and classifier are ``hw3/digitnet.py``'s, shared by every method; the
discriminator, the reversal layer, its schedule and the domain loss are ``hw3/adversarial.py``'s.
This file holds the network and its shape, DANN's own settings and flags, its update and its record.
Inference contract: see :class:`digitnet.DigitNet`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from hw3 import uda
from hw3.adversarial import DomainDiscriminator, domain_bce, grl_coefficient, reverse_gradient
from hw3.common import autocast
from hw3.digitnet import DigitNet, DigitShape, classification_loss
from hw3.method import Discussion, Method, Settings, StepInput, update


@dataclass(frozen=True)
class DANNShape(DigitShape):
    """The digit network's shape and the discriminator's (``train_uda.py --disc-hidden``, ``--disc-layers``)."""

    disc_hidden: int = field(default=100, metadata={"help": "units per discriminator hidden layer"})
    disc_layers: int = field(default=1, metadata={"help": "discriminator hidden layers"})


class DANN(DigitNet):
    """Feature extractor + label classifier + domain discriminator."""

    Shape = DANNShape

    def __init__(self, shape: DANNShape = DANNShape()):
        super().__init__(shape)
        self.discriminator = DomainDiscriminator(self.feature_dim, shape.disc_hidden, shape.disc_layers)

    def domain_logits(self, features: torch.Tensor, coeff: float) -> torch.Tensor:
        """Discriminator logits ``(B,)`` on features seen through the gradient reversal layer."""
        return self.discriminator(reverse_gradient(features, coeff))


@dataclass(frozen=True)
class DANNSettings(Settings):
    """DANN's own knobs (``train_uda.py --method dann``; defaults and reasons in :meth:`add_arguments`)."""

    augment_target: bool
    domain_weight: float
    adabn: bool

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--augment-target", action=argparse.BooleanOptionalAction, default=True,
                            help="DANN: with --augment source, give target images the source augmentation too, so "
                                 "the discriminator cannot tell the domains apart by the augmentation alone")
        parser.add_argument("--domain-weight", type=float, default=0.3,
                            help="DANN: weight of the domain loss (0.3 beat 1.0 in three of the four study scenarios)")
        parser.add_argument("--adabn", action=argparse.BooleanOptionalAction, default=True,
                            help="DANN: recompute batch-norm statistics on target train images before each "
                                 "evaluation (AdaBN, Li et al. 2016), so the kept model normalises target images as "
                                 "training did")

    def augments_target(self) -> bool:
        return self.augment_target

    def adapts_batch_norm(self) -> bool:
        return self.adabn


def step(model: DANN, optimizers: dict, batch: StepInput, settings: DANNSettings) -> dict:
    """One DANN update: class loss on the source plus domain loss through the reversal layer.

    Source and target go through the network in separate passes, so batch norm
    normalises each domain with its own statistics (measured: 92.6 % vs 70.0 % with
    one mixed batch on mnist -> mnistm). With ``augment_target`` the loop has given the target
    images the same kind of augmentation, so the discriminator cannot tell the domains apart by it.
    """
    xs, ys, xt = batch.source, batch.labels, batch.target
    coeff = grl_coefficient(batch.progress)
    with autocast(xs.device):
        fs, ft = model.features(xs), model.features(xt)
        loss_cls = classification_loss(model.classifier(fs), ys)
        ds, dt = model.domain_logits(fs, coeff).float(), model.domain_logits(ft, coeff).float()
        loss_domain = domain_bce(ds, dt)
    update(optimizers["model"], loss_cls + settings.domain_weight * loss_domain)
    domain_acc = 0.5 * ((ds > 0).float().mean() + (dt <= 0).float().mean())
    return {"loss_cls": loss_cls.item(), "loss_domain": loss_domain.item(), "grl_coeff": coeff,
            "domain_acc": domain_acc.item()}


METHOD = uda.register(Method(
    "dann", "Adaptation (DANN)", "DANN", DANN, ("loss_cls", "loss_domain", "grl_coeff", "domain_acc"),
    step, settings=DANNSettings, graded="hw3_p3.sh", augment="measured",
    discussion=Discussion("3-5", "P3-6", "domain_acc", "domain discriminator accuracy",
                          "bounds")))
