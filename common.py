"""Helpers every script shares: errors, seeding, devices, atomic files, checkpoints.

Nothing here knows about a particular model; the training and inference scripts
do the wiring. torch is imported where it is used, so ``fetch.py`` starts fast.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    import torch



class UserError(Exception):
    """A mistake in what the user gave us (a path, a name, a file).

    Scripts run under :func:`cli`, which prints the message as one line and
    exits with status 2 instead of showing a traceback.
    """


def cli(main: Callable[[Sequence[str] | None], int | None]) -> None:
    """Run ``main`` as a command-line program with one-line error reports."""
    try:
        code = main(None)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> "torch.device":
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def autocast(device: "torch.device"):
    """bf16 autocast on CUDA (no loss scaling needed); a no-op on the CPU."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def add_common_args(parser) -> None:
    """The flags every training script shares."""
    parser.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy and torch")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto uses CUDA (with bf16 autocast) when present")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def progress(iterable: Iterable, quiet: bool = False, **kwargs) -> Iterator:
    """A tqdm bar that stays silent when asked to or when stderr is not a terminal."""
    from tqdm.auto import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, make_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves ``path`` as it was (absent or the old file),
    never half-written. An unwritable location is a :class:`UserError`.
    """
    path = Path(path)
    parent = path.parent
    try:
        if make_parent:
            parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write one checkpoint dict atomically.

    By convention a checkpoint holds ``kind`` (which model family), ``config``
    (the keyword arguments that rebuild the model), ``model`` (its state dict),
    and, for resuming, ``optimizer``, ``step``, ``epoch`` and ``best_metric``.
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Load a checkpoint on the CPU; a missing, damaged or wrong-kind file is a UserError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise UserError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a checkpoint of this project")
    if kind is not None and checkpoint.get("kind") != kind:
        raise UserError(f"checkpoint {path} holds a {checkpoint.get('kind')!r} model, not {kind!r}")
    return checkpoint


class StepLog:
    """A training run's ``log.csv``: one row per step, appended and flushed as it goes.

    ``resume_step`` is the step of the checkpoint a run resumes from: rows written
    after it (by the interrupted run) are dropped first, so the log reads as if the
    run had never stopped. ``resume_step=0`` starts a new log. Floats are written
    with 6 significant digits; missing fields stay empty.
    """

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], resume_step: int = 0):
        path = Path(path)
        kept = []
        if resume_step and path.is_file():
            with open(path, newline="") as f:
                kept = [row for row in csv.DictReader(f)
                        if (row.get("step") or "").isdigit() and int(row["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fields, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fields, restval="")

    def write(self, row: dict) -> None:
        self._writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "StepLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
