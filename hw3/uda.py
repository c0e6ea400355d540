"""The domain-adaptation family: the registry of its methods, their names and the config that rebuilds one.

Every method trains a :class:`digitnet.DigitNet` and lives in one file with its record
(:class:`hw3.method.Method`), which registers itself here with :func:`register`: ``dann.py`` and
``swd.py`` when they are imported; ``hw3/adda.py`` and the two bounds of ``hw3/method.py`` below.
This package imports nothing above it, so a script that reads the registry imports ``dann`` and
``swd`` first (as ``train_uda.py``, ``predict.py`` and ``pipeline.py`` do).

Run folders and published model files are named ``<method>_<source>-<target>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn as nn

from hw3 import adda, checkpoints
from hw3.common import UserError
from hw3.digitnet import DigitNet, DigitShape
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


def compared(record: Method) -> list[str]:
    """The methods whose accuracy ``record``'s discussion lists (see ``Discussion.compare``), in registry order."""
    if record.discussion.compare == "bounds":
        return [LOWER_BOUND, record.name, UPPER_BOUND]
    return list(ADAPTED)


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
    """What rebuilds one method's network: its name and its network's shape (saved flat in every checkpoint)."""

    method: str  # a registered name
    shape: DigitShape  # of the method's network's own ``Shape`` type

    @classmethod
    def of(cls, name: str, **shape) -> UDAConfig:
        """``name``'s config, its shape's fields given by name (the rest at their defaults)."""
        return cls(name, method(name).network.Shape(**shape))

    def build(self) -> DigitNet:
        return method(self.method).network(self.shape)

    def saved(self) -> dict:
        """The flat dict a checkpoint keeps: ``{"method": ..., "c1": ..., ...}``."""
        return {"method": self.method, **asdict(self.shape)}


def from_checkpoint(checkpoint: dict) -> nn.Module:
    """The network of a loaded ``uda`` checkpoint, weights in place, in eval mode."""
    shape = dict(checkpoint["config"])
    model = UDAConfig.of(shape.pop("method"), **shape).build()
    model.load_state_dict(checkpoint["model"])
    return model.eval()


checkpoints.register((KIND,), from_checkpoint)
