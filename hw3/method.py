"""What a domain-adaptation method is, as ``train_uda.py`` runs it: one :class:`Method` record.

Each method lives in one file that holds its network (with its ``Shape``: the widths of what it adds
to the digit network, each a flag), its :class:`Settings` (its own knobs and their flags), its
optimizers, its update and what the report says of it, and ends in its record:
``dann.py`` (Problem 3), ``swd.py`` (Problem 4), ``hw3/adda.py``. The two bounds, source-only and
target-only, are the plain supervised update and their two records at the end of this file.
Every method trains the same :class:`UDARecipe`: updates, batch, optimizer and schedule; the augmentation
and the score that keeps an evaluation are each method's default (``Method.augment``, ``Method.select``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from hw3.common import autocast
from hw3.digitnet import DigitNet, classification_loss
from hw3.training import Recipe


@dataclass(frozen=True)
class Settings(Recipe):
    """A method's own knobs, beside the shared recipe; the bounds have none.

    A method subclasses it with its fields (named as its flags) and adds those flags in
    :meth:`add_arguments`. A resume compares only the settings of the method it trains.
    """

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the method's flags (their defaults and reasons) to ``train_uda.py``'s parser."""

    def shortened(self) -> Settings:
        """The settings of a ``--dry-run`` (two updates): the same unless a phase would not start."""
        return self

    def augments_target(self) -> bool:
        """Whether the unlabelled target images get the labelled images' kind of augmentation."""
        return False

    def adapts_batch_norm(self) -> bool:
        """Whether batch-norm statistics are recomputed on target images before each evaluation (AdaBN)."""
        return False


@dataclass(frozen=True)
class UDARecipe(Recipe):
    """How a digit classifier is trained: the same for every method, plus the method's own ``settings``.

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
    settings: Settings

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
    total: int  # updates in the whole run

    @property
    def progress(self) -> float:
        """Where training stands: step / total updates, in [0, 1)."""
        return self.step / self.total


def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on ``loss``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def supervised_step(model: DigitNet, optimizers: dict, batch: StepInput, settings: Settings) -> dict:
    """One update of the class loss on labelled images: source-only, target-only, ADDA's stage 1."""
    with autocast(batch.source.device):
        loss = classification_loss(model.logits(batch.source), batch.labels)
    update(optimizers["model"], loss)
    return {"loss_cls": loss.item()}


def adam(model: DigitNet, recipe: UDARecipe) -> dict[str, torch.optim.Optimizer]:
    """One Adam over every parameter, named ``model`` (its lr follows the recipe's schedule)."""
    return {"model": torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)}


@dataclass(frozen=True)
class Discussion:
    """What the report says of a graded method: its items, the log column it watches, whom it is compared with."""

    card: str  # the item of its architecture card ("3-5")
    item: str  # the item of its discussion ("P3-6")
    watch: str  # a log column whose last 10 % of updates the discussion reads
    watch_label: str
    compare: str  # whose accuracy its discussion lists: "bounds" (itself between the two bounds) or "adapting" (every
    # method that adapts); hw3/uda.py's compared() names them


@dataclass(frozen=True)
class Method:
    """One domain-adaptation method, as ``train_uda.py`` runs it."""

    name: str
    title: str  # its row in the accuracy table
    label: str  # its name in a sentence
    network: type[DigitNet]
    losses: tuple[str, ...]  # the log columns its step returns
    step: Callable[[DigitNet, dict, StepInput, Settings], dict]
    optimizers: Callable[[DigitNet, UDARecipe], dict] = adam
    settings: type[Settings] = Settings  # its own knobs
    reads_target: bool = True  # unlabelled target train images
    labelled: str = "source"  # whose labels it trains on
    graded: str | None = None  # the homework script that publishes it
    augment: str = "source"  # train_uda.py's --augment when none is given
    bound: str | None = None  # "lower" (no adaptation) or "upper" (target labels); None: it adapts
    select: str = "info_max"  # train_uda.py's --select when none is given: the score that keeps an evaluation
    discussion: Discussion | None = None  # graded methods: what the report says of it


# The two bounds train the same network with the plain supervised update: on the source labels (no
# adaptation, the lower bound) and on the target labels (the upper bound); neither sees the other domain,
# and each keeps its last evaluation: no score of target images, and no early tie of a validation accuracy
# that saturates (a usps source reaches 100 % within 100 updates, and the first of ties was kept).
SOURCE_ONLY = Method("source-only", "Trained on source", "source-only", DigitNet, ("loss_cls",), supervised_step,
                     reads_target=False, bound="lower", select="last")
TARGET_ONLY = Method("target-only", "Trained on target", "target-only", DigitNet, ("loss_cls",), supervised_step,
                     reads_target=False, labelled="target", bound="upper", select="last")
