"""One table from a checkpoint's kind to the model it rebuilds, and the one loader every script uses.

Every checkpoint file names its kind (``hw3/training.py``): ``vae`` and ``gan`` are face
samplers (``decode(z)``), ``acgan`` and ``ddpm`` class-conditional digit generators
(``generate(labels, rng)``), ``uda`` a digit classifier of any domain-adaptation method.
The package's own kinds (``ddpm``, ``uda``) are in the table below; ``vae.py`` and ``gan.py``
add theirs with :func:`register` when imported, as this package imports nothing above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from hw3.common import UserError
from hw3.training import load_checkpoint

FACE_SAMPLERS = ("vae", "gan")
DIGIT_GENERATORS = ("acgan", "ddpm")
CLASSIFIERS = ("uda",)


def _ddpm(checkpoint: dict, steps: int | None = None, eta: float = 0.0, guidance: float | None = None):
    from hw3 import ddpm

    model, schedule = ddpm.from_checkpoint(checkpoint)
    return ddpm.DiffusionSampler(model, schedule, steps or ddpm.SAMPLE_STEPS, eta,
                                 ddpm.GUIDANCE if guidance is None else guidance)


def _uda(checkpoint: dict):
    from hw3 import uda

    return uda.from_checkpoint(checkpoint)


# kind -> the function that rebuilds its model (in eval mode) from the loaded checkpoint
LOADERS: dict[str, Callable[..., object]] = {"ddpm": _ddpm, "uda": _uda}
# what the ddpm's loader takes beyond the checkpoint: the sampler's settings
OPTIONS = {"ddpm": ("steps", "eta", "guidance")}


def register(kinds: tuple[str, ...], loader: Callable[[dict], object]) -> None:
    """Rebuild checkpoints of ``kinds`` with ``loader`` (a model file's ``from_checkpoint``)."""
    for kind in kinds:
        LOADERS[kind] = loader


def load_model(path: str | Path, kinds: tuple[str, ...], device: torch.device | str = "cpu",
               **options) -> tuple[object, dict]:
    """The model of the checkpoint file ``path``, on ``device``, and the checkpoint dict.

    Its kind must be one of ``kinds``; a wrong kind, or weights that do not fit the model its
    config describes, is one :class:`UserError`. ``options`` go to the loaders that take them
    (the DDPM's ``steps``, ``eta``, ``guidance``).
    """
    checkpoint = load_checkpoint(path)
    kind = checkpoint.get("kind")
    if kind not in kinds:
        raise UserError(f"checkpoint {path} holds a {kind!r} model; expected {' or '.join(kinds)}")
    if kind not in LOADERS:  # a model file the script did not import
        raise UserError(f"checkpoint {path}: no loader for {kind!r} models (its model file registers one)")
    taken = {k: v for k, v in options.items() if k in OPTIONS.get(kind, ())}
    try:
        model = LOADERS[kind](checkpoint, **taken)
    except (KeyError, TypeError, RuntimeError) as err:
        raise UserError(f"checkpoint {path} does not fit its model ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:120]})") from None
    return model.to(device), checkpoint
