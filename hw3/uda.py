"""The domain-adaptation family: its methods, described once, and the model config, names, loading, prediction.

Every method trains a :class:`digitnet.DigitNet` (DANN's adds a discriminator in
``dann.py``, SWD+'s a second classifier in ``swd.py``, ADDA's a second extractor in
``hw3/adda.py``) and differs only in how one update is made. A :class:`Method` record holds
everything ``train_uda.py`` needs to know about a method: its network, its log columns,
its optimizers, which data it reads and its step function, all with one signature.
Adding a method means one record and one step function here, and its model file.

Run folders and published model files are named ``<method>_<source>-<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn as nn

from hw3 import adda
import dann
import swd
from hw3.common import UserError, autocast, batched
from datasets import SCENARIOS, to_float
from hw3.augment import augment_strong
from hw3.digitnet import DigitNet, classification_loss, domain_bce
from hw3.training import Recipe

KIND = "uda"  # the checkpoint kind of every method


@dataclass(frozen=True)
class UDARecipe(Recipe):
    """How a digit classifier is trained: the same for every method, plus each method's own knobs.

    Field names are ``train_uda.py``'s flags, whose defaults and reasons are given there.
    """

    # A resumed run may train longer; its schedules then stretch over the new length.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"epochs"})

    epochs: int
    steps_per_epoch: int
    batch_size: int
    lr: float
    lr_schedule: str
    weight_decay: float
    augment: str
    augment_scale: float
    val_fraction: float
    select: str
    seed: int
    # DANN
    augment_target: bool
    domain_weight: float
    adabn: bool
    # SWD+
    swd_weight: float
    num_projections: int
    im_weight: float
    pl_weight: float
    pl_threshold: float
    rampup: float
    align: bool
    align_momentum: float
    # ADDA
    adda_pretrain_steps: int
    adda_lr: float

    def learning_rate(self, progress: float) -> float:
        """``lr``, or Ganin et al.'s annealing lr / (1 + 10 p)^0.75 at training progress p."""
        return self.lr / (1 + 10 * progress) ** 0.75 if self.lr_schedule == "anneal" else self.lr


@dataclass(frozen=True)
class StepInput:
    """What one update sees: float images in [0, 1] on the device, and where training stands."""

    source: torch.Tensor  # (B, 3, 28, 28) labelled images (the target's for target-only), augmented
    labels: torch.Tensor  # (B,)
    target: torch.Tensor | None  # (B, 3, 28, 28) unlabelled target images, for methods that read them
    step: int  # 0-based update index
    progress: float  # step / total updates, in [0, 1)


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def supervised_step(model: DigitNet, optimizers: dict, batch: StepInput, recipe: UDARecipe) -> dict:
    """One update of the class loss on labelled images: source-only, target-only, ADDA's stage 1."""
    with autocast(batch.source.device):
        loss = classification_loss(model.logits(batch.source), batch.labels)
    _update(optimizers["model"], loss)
    return {"loss_cls": loss.item()}


def dann_step(model: dann.DANN, optimizers: dict, batch: StepInput, recipe: UDARecipe) -> dict:
    """One DANN update: class loss on the source plus domain loss through the reversal layer.

    Source and target go through the network in separate passes, so batch norm
    normalises each domain with its own statistics (measured: 92.6 % vs 70.0 % with
    one mixed batch on mnist -> mnistm). With ``augment_target`` the loop has given the target
    images the same kind of augmentation, so the discriminator cannot tell the domains apart by it.
    """
    xs, ys, xt = batch.source, batch.labels, batch.target
    coeff = dann.grl_coefficient(batch.progress)
    with autocast(xs.device):
        fs, ft = model.features(xs), model.features(xt)
        loss_cls = classification_loss(model.classifier(fs), ys)
        ds, dt = model.domain_logits(fs, coeff).float(), model.domain_logits(ft, coeff).float()
        loss_domain = domain_bce(ds, dt)
    _update(optimizers["model"], loss_cls + recipe.domain_weight * loss_domain)
    domain_acc = 0.5 * ((ds > 0).float().mean() + (dt <= 0).float().mean())
    return {"loss_cls": loss_cls.item(), "loss_domain": loss_domain.item(), "grl_coeff": coeff,
            "domain_acc": domain_acc.item()}


def swd_step(model: swd.SWDNet, optimizers: dict, batch: StepInput, recipe: UDARecipe) -> dict:
    """One SWD+ update: source loss, sliced Wasserstein discrepancy, information maximisation, pseudo-labels.

    The discrepancy goes through the gradient reversal layer: the classifiers get
    ``-grad`` (they maximise it) and the extractor ``+grad`` (it minimises it), Lee et
    al.'s min-max in one backward pass.
    """
    xs, ys, xt = batch.source, batch.labels, batch.target
    with autocast(xs.device):
        loss_cls = swd.source_loss(*model.both_logits(model.features(xs)), ys)
        ft_all = model.features(torch.cat([xt, augment_strong(xt)]))  # one target BN batch: weak and strong views
        ft, ft_strong = ft_all[:len(xt)], ft_all[len(xt):]
        discrepancy = swd.discrepancy_on_logits(*model.both_logits(dann.reverse_gradient(ft)), recipe.num_projections)
        probs = swd.mean_probs(*(l.float() for l in model.both_logits(ft)))  # (B, 10)
        loss_im = swd.information_maximization_loss(probs)
        targets = probs.detach()
        if recipe.align:  # the running prior keeps one class from taking over the pseudo-labels
            with torch.no_grad():
                model.target_prior.mul_(recipe.align_momentum).add_((1 - recipe.align_momentum) * targets.mean(0))
            targets = swd.align_distribution(targets, model.target_prior)
        strong1, strong2 = (l.float() for l in model.both_logits(ft_strong))
        loss_pl1, share = swd.pseudo_label_loss(strong1, targets, recipe.pl_threshold)
        loss_pl = loss_pl1 + swd.pseudo_label_loss(strong2, targets, recipe.pl_threshold)[0]
        ramp = swd.ramp_up(batch.progress, recipe.rampup)
        loss = (loss_cls - recipe.swd_weight * discrepancy
                + ramp * (recipe.im_weight * loss_im + recipe.pl_weight * loss_pl))
    _update(optimizers["model"], loss)
    return {"loss_cls": loss_cls.item(), "discrepancy": discrepancy.item(), "loss_im": loss_im.item(),
            "loss_pl": loss_pl.item(), "pl_share": share.item()}


def adda_step(model: adda.ADDA, optimizers: dict, batch: StepInput, recipe: UDARecipe) -> dict:
    """ADDA: the first ``adda_pretrain_steps`` train on the source; then one discriminator and one mapping update."""
    if batch.step < recipe.adda_pretrain_steps:
        return supervised_step(model, optimizers, batch, recipe)
    if batch.step == recipe.adda_pretrain_steps:
        model.start_adaptation()
    model.source_extractor.eval()  # fixed: batch norm uses its running statistics
    with autocast(batch.source.device):
        with torch.no_grad():
            fs = model.source_extractor(batch.source)
        ft = model.extractor(batch.target)
        loss_disc = domain_bce(model.discriminator(fs).squeeze(1).float(),
                               model.discriminator(ft.detach()).squeeze(1).float())
    _update(optimizers["discriminator"], loss_disc)
    with autocast(batch.source.device):
        loss_map = adda.mapping_loss(model.discriminator(ft).squeeze(1).float())
    _update(optimizers["target"], loss_map)
    return {"loss_disc": loss_disc.item(), "loss_map": loss_map.item()}


def adam(model: DigitNet, recipe: UDARecipe) -> dict[str, torch.optim.Optimizer]:
    """One Adam over every parameter, named ``model`` (its lr follows the recipe's schedule)."""
    return {"model": torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)}


def adda_optimizers(model: adda.ADDA, recipe: UDARecipe) -> dict[str, torch.optim.Optimizer]:
    """Stage 1's Adam on extractor and classifier; stage 2's at the paper's lr and betas (0.5, 0.999), no decay."""
    gan = {"lr": recipe.adda_lr, "betas": (0.5, 0.999), "weight_decay": 0.0}
    return {"model": torch.optim.Adam([*model.extractor.parameters(), *model.classifier.parameters()],
                                      lr=recipe.lr, weight_decay=recipe.weight_decay),
            "target": torch.optim.Adam(model.extractor.parameters(), **gan),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), **gan)}


@dataclass(frozen=True)
class Discussion:
    """What the report says of a graded method: its items, the log column it watches, whom it is compared with."""

    card: str  # the item of its architecture card ("3-5")
    item: str  # the item of its discussion ("P3-6")
    watch: str  # a log column whose last 10 % of updates the discussion reads
    watch_label: str
    compare: tuple[str, ...]  # the methods whose accuracy its discussion lists, itself included


@dataclass(frozen=True)
class Method:
    """One domain-adaptation method, as ``train_uda.py`` runs it."""

    name: str
    title: str  # its row in the accuracy table
    label: str  # its name in a sentence
    network: type[DigitNet]
    losses: tuple[str, ...]  # the log columns its step returns
    step: Callable[[DigitNet, dict, StepInput, UDARecipe], dict]
    optimizers: Callable[[DigitNet, UDARecipe], dict] = adam
    reads_target: bool = True  # unlabelled target train images
    labelled: str = "source"  # whose labels it trains on
    graded: str | None = None  # the homework script that publishes it
    augment: str = "source"  # train_uda.py's --augment when none is given
    knobs: tuple[str, ...] = ()  # the UDARecipe fields only this method reads
    network_args: tuple[str, ...] = ()  # the UDAConfig fields its network takes beyond the digit network's
    bound: str | None = None  # "lower" (no adaptation) or "upper" (target labels); None: it adapts
    discussion: Discussion | None = None  # graded methods: what the report says of it


METHODS = {m.name: m for m in (
    Method("source-only", "Trained on source", "source-only", DigitNet, ("loss_cls",), supervised_step,
           reads_target=False, bound="lower"),
    Method("dann", "Adaptation (DANN)", "DANN", dann.DANN, ("loss_cls", "loss_domain", "grl_coeff", "domain_acc"),
           dann_step, graded="hw3_p3.sh", augment="measured", knobs=("augment_target", "domain_weight", "adabn"),
           network_args=("disc_hidden", "disc_layers"),
           discussion=Discussion("3-5", "P3-6", "domain_acc", "domain discriminator accuracy",
                                 ("source-only", "dann", "target-only"))),
    Method("swd", "Adaptation (SWD+)", "SWD+", swd.SWDNet, ("loss_cls", "discrepancy", "loss_im", "loss_pl", "pl_share"),
           swd_step, graded="hw3_p4.sh", knobs=("swd_weight", "num_projections", "im_weight", "pl_weight",
                                                "pl_threshold", "rampup", "align", "align_momentum"),
           discussion=Discussion("4-3", "P4-4", "pl_share", "share of target images with a pseudo-label",
                                 ("dann", "swd", "adda"))),
    Method("adda", "Adaptation (ADDA)", "ADDA", adda.ADDA, ("loss_cls", "loss_disc", "loss_map"), adda_step,
           optimizers=adda_optimizers, knobs=("adda_pretrain_steps", "adda_lr")),
    Method("target-only", "Trained on target", "target-only", DigitNet, ("loss_cls",), supervised_step,
           reads_target=False, labelled="target", bound="upper"),
)}
ADAPTED = tuple(m.name for m in METHODS.values() if m.bound is None)
LOWER_BOUND, UPPER_BOUND = (next(m.name for m in METHODS.values() if m.bound == b) for b in ("lower", "upper"))
GRADED_METHODS = {m.name: m.graded for m in METHODS.values() if m.graded}  # Problem 3 and Problem 4
METHOD_KNOBS = frozenset(k for m in METHODS.values() for k in m.knobs)  # the fields no other method reads
METHOD_TITLES = {m.name: m.title for m in METHODS.values()}


def method(name: str) -> Method:
    """The :class:`Method` called ``name``; an unknown one is a UserError."""
    if name not in METHODS:
        raise UserError(f"unknown UDA method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]


def run_name(method: str, source: str, target: str) -> str:
    """``dann_usps-mnistm``: the run folder under ``runs/uda`` and, with ``.pt``, the published file."""
    return f"{method}_{source}-{target}"


def published_model(method: str, target: str) -> str:
    """File name of the published ``method`` model adapted to ``target`` (the assignment's scenarios)."""
    sources = {t: s for s, t in SCENARIOS}
    if target not in sources:
        raise UserError(f"unknown target domain {target!r}: choose {', '.join(sources)}")
    return run_name(method, sources[target], target) + ".pt"


@dataclass(frozen=True)
class UDAConfig:
    """Everything that shapes the network of one method; saved whole in every checkpoint."""

    method: str = "dann"
    c1: int = 32  # channels of the two conv layers
    c2: int = 48
    hidden: int = 100  # classifier and discriminator hidden units
    dropout: float = 0.5  # in the classifier
    conv_dropout: float = 0.1  # Dropout2d in the extractor; 0.5 (Ganin et al.'s) held adaptation back
    disc_hidden: int = 100  # DANN's discriminator: units per hidden layer, and hidden layers
    disc_layers: int = 1

    def build(self) -> DigitNet:
        record = method(self.method)
        extra = {name: getattr(self, name) for name in record.network_args}
        return record.network(self.c1, self.c2, self.hidden, self.dropout, self.conv_dropout, **extra)


def from_checkpoint(checkpoint: dict) -> nn.Module:
    """The network of a loaded ``uda`` checkpoint, weights in place, in eval mode."""
    model = UDAConfig(**checkpoint["config"]).build()
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def load_model(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a ``uda`` checkpoint file in eval mode; return it with the checkpoint dict."""
    from hw3.checkpoints import load_model as load

    return load(path, (KIND,), device)


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
