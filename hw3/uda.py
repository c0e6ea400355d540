"""The domain-adaptation family: the registry of its methods, and the model config, names, loading, prediction.

Every method trains a :class:`digitnet.DigitNet` and lives in one file with its record
(:class:`hw3.method.Method`): ``dann.py``, ``swd.py``, ``hw3/adda.py``, and the two bounds in
``hw3/method.py``. Adding a method means one such file and one entry in ``METHODS`` below.

Run folders and published model files are named ``<method>_<source>-<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

import dann
import swd
from datasets import SCENARIOS, to_float
from hw3 import adda
from hw3.common import UserError, autocast, batched
from hw3.digitnet import DigitNet
from hw3.method import SOURCE_ONLY, TARGET_ONLY, Method

KIND = "uda"  # the checkpoint kind of every method

METHODS = {m.name: m for m in (SOURCE_ONLY, dann.METHOD, swd.METHOD, adda.METHOD, TARGET_ONLY)}
ADAPTED = tuple(m.name for m in METHODS.values() if m.bound is None)
LOWER_BOUND, UPPER_BOUND = (next(m.name for m in METHODS.values() if m.bound == b) for b in ("lower", "upper"))
GRADED_METHODS = {m.name: m.graded for m in METHODS.values() if m.graded}  # Problem 3 and Problem 4
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

    method: str = dann.METHOD.name
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
