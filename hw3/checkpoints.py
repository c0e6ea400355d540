"""The checkpoint kinds, one table from a kind to the model it rebuilds, and the one loader every script uses.

Every checkpoint file names its kind (``hw3/training.py``): ``vae`` and ``gan`` are face
samplers (``decode(z)``), ``acgan`` and ``ddpm`` class-conditional digit generators
(``generate(labels, rng)``), ``uda`` a digit classifier of any domain-adaptation method.
Each kind's model file adds its loader with :func:`register` when imported (``vae.py``,
``gan.py``, ``hw3/ddpm.py``, ``hw3/uda.py``), so this module imports none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from hw3.common import UserError
from hw3.training import load_checkpoint

# The kinds, as trainers save them and loaders ask for them.
VAE, GAN, ACGAN, DDPM, UDA = "vae", "gan", "acgan", "ddpm", "uda"
FACE_SAMPLERS = (VAE, GAN)
DIGIT_GENERATORS = (ACGAN, DDPM)
CLASSIFIERS = (UDA,)

# kind -> the function that rebuilds its model (in eval mode) from the loaded checkpoint
LOADERS: dict[str, Callable[..., object]] = {}
# kind -> what its loader takes beyond the checkpoint (the DDPM's sampler settings)
OPTIONS: dict[str, tuple[str, ...]] = {}


def register(kinds: tuple[str, ...], loader: Callable[..., object], options: tuple[str, ...] = ()) -> None:
    """Rebuild checkpoints of ``kinds`` with ``loader`` (a model file's ``from_checkpoint``), which also
    takes the keyword ``options`` that :func:`load_model` is given."""
    for kind in kinds:
        LOADERS[kind] = loader
        OPTIONS[kind] = options


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
