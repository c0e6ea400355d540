"""Helpers every script shares: errors, seeding, devices and threads, atomic files, batched inference, uint8 to float, markdown tables.

Nothing here knows about a particular model; the training and inference scripts
do the wiring. torch is imported where it is used, so ``fetch.py`` starts fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
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


PRECISIONS = ("auto", "bf16", "fp32")
_precision = "auto"  # set once per process by runtime() from --precision


def set_precision(precision: str) -> None:
    """Choose what :func:`autocast` does in this process: ``auto``, ``bf16`` or ``fp32``."""
    global _precision
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    _precision = precision


def precision_used(device: "torch.device") -> str:
    """What :func:`autocast` runs in on ``device`` under this process's ``--precision``: ``bf16`` or ``fp32``."""
    return "fp32" if _precision == "fp32" or (_precision == "auto" and device.type != "cuda") else "bf16"


def autocast(device: "torch.device"):
    """bf16 autocast (no loss scaling needed) or none, as ``--precision`` asks.

    ``auto``: bf16 on CUDA, fp32 on the CPU (where bf16 is slower); ``bf16``: on any device,
    which lets the CPU run the dtype paths a GPU takes; ``fp32``: never.
    """
    import torch

    if precision_used(device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cores() -> int:
    """The CPU cores this process may use (its affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def add_runtime_args(parser, precision: str | None = "auto", threads: int = 1) -> None:
    """``--device``, ``--threads`` and ``--precision``: the one runtime policy of every script.

    ``precision=None`` leaves out ``--precision`` (a script whose numbers must be fp32: FID).
    ``threads=0`` (all cores) suits a script that runs alone, as the grader's predictor does;
    1 suits trainings that run side by side.
    """
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto uses CUDA when present")
    parser.add_argument("--threads", type=int, default=threads,
                        help="CPU threads for torch; 0: torch's default. One is the fastest for these small "
                             "nets on a small shared CPU (two threads with one core busy ran over 10x slower)")
    if precision is not None:
        parser.add_argument("--precision", choices=PRECISIONS, default=precision,
                            help="auto: bf16 autocast on CUDA, fp32 on the CPU; bf16: autocast on any device; "
                                 "fp32: none")


def runtime(args) -> "torch.device":
    """Apply ``--threads`` and ``--precision`` and return the ``--device`` to run on."""
    import torch

    if args.threads < 0:
        raise UserError("--threads must be 0 (torch's default) or more")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    set_precision(getattr(args, "precision", "auto"))
    return resolve_device(args.device)


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


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text``, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically (see :func:`atomic_path`)."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def batched(fn: Callable, inputs: "torch.Tensor", batch_size: int, device: "torch.device | str" = "cpu"):
    """``fn`` over ``inputs`` in batches moved to ``device``, without gradients; outputs joined on the CPU.

    ``fn`` returns a tensor or a tuple of tensors, each with the batch as its first
    dimension; the result has the same structure over all of ``inputs``.
    """
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out = fn(inputs[start:start + batch_size].to(device, non_blocking=True))
            outputs.append(tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu())
    if outputs and isinstance(outputs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs))
    return torch.cat(outputs)


def to_float(images: "torch.Tensor") -> "torch.Tensor":
    """uint8 ``(B, 3, H, W)`` in [0, 255] to float in [0, 1]."""
    return images.float().div_(255)


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How a report names the command that wrote it: ``python3 <script>`` and its arguments, quoted."""
    return f"python3 {script} " + shlex.join(sys.argv[1:] if argv is None else argv)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub markdown table of ``str(cell)``, one line per row, ending in a newline.

    A ``|`` in a cell is escaped; a row whose length differs from the header's is a ``ValueError``.
    """

    def line(cells: Sequence) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(header), "|" + "---|" * len(header)]
    for number, row in enumerate(rows, start=1):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"row {number} has {len(row)} cells, the header {len(header)}")
        lines.append(line(row))
    return "\n".join(lines) + "\n"
