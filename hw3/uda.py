"""The domain-adaptation family: the registry of its methods, and the model config, names, prediction.

Every method trains a :class:`digitnet.DigitNet` and lives in one file with its record
(:class:`hw3.method.Method`), which registers itself here with :func:`register`: ``dann.py`` and
``swd.py`` when they are imported; ``hw3/adda.py`` and the two bounds of ``hw3/method.py`` below.
This package imports nothing above it, so a script that reads the registry imports ``dann`` and
``swd`` first (as ``train_uda.py``, ``predict.py`` and ``pipeline.py`` do).

Run folders and published model files are named ``<method>_<source>-<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from hw3 import adda, checkpoints
from hw3.common import UserError, autocast, batched, to_float
from hw3.digitnet import DigitNet
from hw3.domains import SCENARIOS
from hw3.method import SOURCE_ONLY, TARGET_ONLY, Method

KIND = checkpoints.UDA  # the checkpoint kind of every method

# The registry, filled by register(), and the views of it the scripts read; all keep the
# registry's order: the lower bound, the graded methods by their script, the others, the upper bound.
METHODS: dict[str, Method] = {}
ADAPTED: list[str] = []  # the methods that adapt (neither bound)
LOWER_BOUND, UPPER_BOUND = SOURCE_ONLY.name, TARGET_ONLY.name
GRADED_METHODS: dict[str, str] = {}  # Problem 3 and Problem 4: name -> the homework script that publishes it
METHOD_TITLES: dict[str, str] = {}


def _position(method: Method) -> tuple:
    """Where ``method`` sits in the registry (its accuracy table's row): see ``METHODS``."""
    return {"lower": 0, None: 1, "upper": 2}[method.bound], method.graded is None, method.graded or ""


def register(method: Method) -> Method:
    """Add ``method`` to the registry (a method of the same name is replaced); return it."""
    METHODS[method.name] = method
    ordered = sorted(METHODS.values(), key=_position)  # stable: the ungraded keep their registration order
    METHODS.clear()
    METHODS.update((m.name, m) for m in ordered)
    ADAPTED[:] = [m.name for m in ordered if m.bound is None]
    GRADED_METHODS.clear()
    GRADED_METHODS.update((m.name, m.graded) for m in ordered if m.graded)
    METHOD_TITLES.clear()
    METHOD_TITLES.update((m.name, m.title) for m in ordered)
    return method


for _method in (SOURCE_ONLY, adda.METHOD, TARGET_ONLY):  # the package's own; dann.py and swd.py register theirs
    register(_method)


def method(name: str) -> Method:
    """The :class:`Method` called ``name``; an unknown one is a UserError."""
    if name not in METHODS:
        raise UserError(f"unknown UDA method {name!r}: choose one of {', '.join(METHODS)} "
                        "(a method registers itself when its file is imported)")
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

    method: str  # a registered name (every caller names it)
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


checkpoints.register((KIND,), from_checkpoint)


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
