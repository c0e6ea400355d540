"""The domain-adaptation family: its methods, model config, run names, loading and prediction.

Every method trains the same digit network (``dann.py``'s; SWD+ in ``swd.py`` adds a
second classifier, ADDA in ``adda.py`` a second extractor) and differs only in how it is
trained (``train_uda.py``).
Run folders and published model files are named ``<method>_<source>-<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from common import UserError, batched
from datasets import SCENARIOS, to_float
from training import load_checkpoint

KIND = "uda"  # the checkpoint kind of every method
METHODS = ("source-only", "dann", "swd", "adda", "target-only")
GRADED_METHODS = {"dann": "hw3_p3.sh", "swd": "hw3_p4.sh"}  # Problem 3 and Problem 4
METHOD_TITLES = {"source-only": "Trained on source", "dann": "Adaptation (DANN)", "swd": "Adaptation (SWD+)",
                 "adda": "Adaptation (ADDA)", "target-only": "Trained on target"}


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

    def build(self) -> nn.Module:
        if self.method not in METHODS:
            raise UserError(f"unknown UDA method {self.method!r}: choose one of {', '.join(METHODS)}")
        import adda
        import dann
        import swd

        net = {"swd": swd.SWDNet, "adda": adda.ADDA}.get(self.method, dann.DANN)
        return net(self.c1, self.c2, self.hidden, self.dropout, self.conv_dropout)


def from_checkpoint(checkpoint: dict) -> nn.Module:
    """The network of a loaded ``uda`` checkpoint, weights in place, in eval mode."""
    model = UDAConfig(**checkpoint["config"]).build()
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def load_model(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a ``uda`` checkpoint file in eval mode; return it with the checkpoint dict."""
    checkpoint = load_checkpoint(path, kind=KIND)
    try:
        model = from_checkpoint(checkpoint)
    except (KeyError, TypeError, RuntimeError) as err:
        raise UserError(f"checkpoint {path} does not fit its model: {str(err).splitlines()[0]}") from None
    return model.to(device), checkpoint


def predict_labels(model: nn.Module, images: torch.Tensor, device: torch.device | str,
                   batch_size: int = 1024) -> torch.Tensor:
    """Argmax class of uint8 images ``(N, 3, 28, 28)``, batched; returns ``(N,)`` int64 on the CPU."""
    model.eval()
    return batched(lambda x: model(to_float(x)).argmax(dim=1), images, batch_size, device)
