"""What every trainer shares: the checkpoint layout, resuming, and the per-step log.

One layout for every checkpoint (nanoGPT keeps one dict, written atomically)::

    {"format": 3, "kind": "vae" | "gan" | "acgan" | "ddpm" | "uda", "config": {...},  # rebuilds the model exactly
     "run": {...},                                # what else defines the run (a UDA run's domains)
     "recipe": {...},                             # how it was trained: the trainer's Recipe, field by field
     "model": state_dict,                         # the weights inference uses
     "modules": {name: state_dict},               # other networks (a GAN's D, its EMA, ...)
     "optimizers": {...}, "state": {...},          # e.g. the data streams' positions
     "optimizer_settings": {name: {"class", "lr", "betas", ...}},  # for reports: what trained it
     "step": optimizer steps done, "epoch": epochs finished,
     "wall_seconds", "cpu_seconds": time spent training so far, resumed segments included,
     "best_metric": float | None, "best_step": int | None,
     "rng": {"python", "numpy", "torch", "cuda", "data": {name: state}},
     "extra": {...}}                              # whatever else a trainer keeps (a validation split)

``latest.pt`` holds all of it; ``best.pt`` the same at the best evaluation; ``model.pt``
(the file that is published) keeps what inference needs: no optimizer, stream or
random state, and of ``modules`` only those named ``published``.
:class:`Checkpointer` writes and restores them.

Resuming: run the same command again. When ``OUT_DIR/latest.pt`` exists, training goes on
from it with every state restored (weights, optimizers, random states, the position in
the data), so a run killed at any moment ends with the weights of one never stopped; rows
of ``log.csv`` written after it are dropped. Raise ``--epochs``/``--steps`` to train
longer; a changed model or recipe field (other than those its ``Recipe.RESUMABLE`` names)
is refused; ``--restart`` starts afresh.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from hw3 import artifacts
from hw3.common import UserError, add_runtime_args, atomic_path, precision_used, progress, runtime, seed_everything

FORMAT = 3  # 3: with the recipe; 2: without; no "format": the first version of this repository


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Write one checkpoint dict atomically: a crash leaves the previous file, never half of one."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Load a checkpoint on the CPU; a missing, damaged, outdated or wrong-kind file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise UserError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a checkpoint of this project")
    if checkpoint.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} was written by an older version of this repository "
                        f"(format {checkpoint.get('format', 1)}, this one reads {FORMAT}): train it again "
                        "(--restart, or a new --out-dir)")
    if kind is not None and checkpoint.get("kind") != kind:
        raise UserError(f"checkpoint {path} holds a {checkpoint.get('kind')!r} model, not {kind!r}")
    return checkpoint


def rng_state(data: dict[str, torch.Generator]) -> dict:
    """Every random state a run draws from: Python, NumPy, torch (CPU and CUDA) and its data generators."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "data": {name: rng.get_state() for name, rng in data.items()}}


def set_rng_state(state: dict, data: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when the same devices are present)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, rng in data.items():
        rng.set_state(state["data"][name])


class Recipe:
    """Base of each trainer's recipe: a frozen dataclass of everything that defines how a run trains.

    A trainer builds its recipe once from the checked flags and hands it to its step
    functions, so a step's signature says what it reads. The checkpoint stores it field by
    field; a resumed run must give the same values, except for the fields a recipe
    names in ``RESUMABLE`` (how long to train, how often to evaluate). Field names are the
    flag names, so a refusal can name the flag. (nanoGPT keeps ``model_args`` the same way.)
    """

    RESUMABLE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_args(cls, args, **overrides):
        """The recipe of the parsed flags of its fields' names, with ``overrides`` (a dry run's lengths, say)."""
        return cls(**{f.name: overrides[f.name] if f.name in overrides else getattr(args, f.name)
                      for f in fields(cls)})

    def record(self) -> dict:
        """The recipe as a checkpoint keeps it: field by field, a nested recipe's fields beside the others
        (a UDA run's method settings), so every key is a flag."""
        flat = {}
        for f in fields(self):
            value = getattr(self, f.name)
            flat.update(value.record() if isinstance(value, Recipe) else {f.name: value})
        return flat

    def changed_from(self, saved: dict) -> list[str]:
        """The fields, other than ``RESUMABLE`` ones, whose value differs from the ``saved`` recipe."""
        now = self.record()
        return sorted(k for k in now.keys() | saved.keys()
                      if k not in self.RESUMABLE and _plain(now.get(k)) != _plain(saved.get(k)))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass
class Progress:
    """Where a run stands: optimizer steps done, epochs finished, the best evaluation, time spent so far."""

    step: int = 0
    epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    wall_seconds: float = 0.0  # totals over every segment of a resumed run
    cpu_seconds: float = 0.0

    def improves(self, metric: float, higher_is_better: bool) -> bool:
        return improves(self.best_metric, metric, higher_is_better)


def improves(best: float | None, new: float, higher_is_better: bool) -> bool:
    """Whether ``new`` is strictly better than ``best`` (None: nothing kept yet), so the first of ties stays."""
    return best is None or (new > best if higher_is_better else new < best)


@dataclass
class Checkpointer:
    """Writes ``latest.pt``/``best.pt``/``model.pt`` of one run folder and resumes from ``latest.pt``.

    ``model`` is the network inference uses; ``modules`` are the others that training
    needs (a discriminator, an EMA copy); ``published`` names those of ``modules`` that
    ``model.pt`` keeps as well. ``config`` (the model's shape), ``run`` (its data),
    ``recipe`` and the precision the steps run in must match for a resume. ``rngs`` are the run's data-order generators, and
    ``state`` holds objects with ``state_dict()``/``load_state_dict()`` (a batch stream)
    saved alongside.
    """

    out_dir: Path
    kind: str
    config: dict
    model: torch.nn.Module
    recipe: Recipe
    run: dict = field(default_factory=dict)
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    rngs: dict[str, torch.Generator] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    published: Sequence[str] = ()
    extra: dict = field(default_factory=dict)

    @property
    def precision(self) -> str:
        """``bf16`` or ``fp32``: what the steps run in (``--precision`` on the model's device), saved and compared."""
        return precision_used(next(self.model.parameters()).device)

    @property
    def latest(self) -> Path:
        return Path(self.out_dir) / artifacts.LATEST

    def resume(self, restart: bool = False) -> Progress:
        """Restore everything from ``latest.pt`` when it exists (unless ``restart``); else a fresh start."""
        if restart or not self.latest.is_file():
            return Progress()
        saved = load_checkpoint(self.latest, kind=self.kind)
        before, now = {**saved["config"], **saved["run"]}, {**self.config, **self.run}
        changed = sorted(k for k in {**before, **now} if before.get(k) != now.get(k))
        changed += [k for k in self.recipe.changed_from(saved.get("recipe", {})) if k not in changed]
        if saved.get("precision", self.precision) != self.precision:  # bf16 and fp32 runs are not one run
            changed.append("precision")
        if changed:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise UserError(f"{self.latest} belongs to a run with other settings ({flags}): "
                            "give the same flags, a new --out-dir, or --restart")
        try:
            self.model.load_state_dict(saved["model"])
        except RuntimeError as err:
            raise UserError(f"{self.latest} does not fit its model: {str(err).splitlines()[0]}") from None
        for group, parts in (("modules", self.modules), ("optimizers", self.optimizers),
                             ("state", self.state)):
            for name, part in parts.items():
                part.load_state_dict(saved[group][name])
        set_rng_state(saved["rng"], self.rngs)
        progress = Progress(saved["step"], saved["epoch"], saved["best_metric"], saved["best_step"],
                            saved.get("wall_seconds", 0.0), saved.get("cpu_seconds", 0.0))
        print(f"resuming from {self.latest}: epoch {progress.epoch}, step {progress.step}")
        return progress

    def _inference(self, progress: Progress) -> dict:
        return {"format": FORMAT, "kind": self.kind, "config": self.config, "run": self.run,
                "recipe": self.recipe.record(), "precision": self.precision,
                "optimizer_settings": self.optimizer_settings(),
                "model": self.model.state_dict(),
                "modules": {name: self.modules[name].state_dict() for name in self.published},
                "step": progress.step, "epoch": progress.epoch, "best_metric": progress.best_metric,
                "best_step": progress.best_step, "wall_seconds": progress.wall_seconds,
                "cpu_seconds": progress.cpu_seconds, "extra": self.extra}

    def optimizer_settings(self) -> dict[str, dict]:
        """Each optimizer's class and hyperparameters (its first parameter group's; ``lr`` as of this save)."""
        kept = ("lr", "betas", "weight_decay", "eps", "momentum")
        return {name: {"class": type(o).__name__, **{k: v for k, v in o.param_groups[0].items() if k in kept}}
                for name, o in self.optimizers.items()}

    def save(self, progress: Progress, is_best: bool = False, publish: bool = False) -> None:
        """Write ``latest.pt`` (and ``best.pt`` when ``is_best``; ``model.pt`` when ``publish``)."""
        checkpoint = {**self._inference(progress),
                      "modules": {name: m.state_dict() for name, m in self.modules.items()},
                      "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
                      "state": {name: s.state_dict() for name, s in self.state.items()},
                      "rng": rng_state(self.rngs)}
        if is_best:
            save_checkpoint(Path(self.out_dir) / artifacts.BEST, checkpoint)
        if publish:
            save_checkpoint(Path(self.out_dir) / artifacts.MODEL, self._inference(progress))
        save_checkpoint(self.latest, checkpoint)  # last, so a crash before it resumes from the previous one

    def publish_best(self) -> dict:
        """Write ``model.pt`` from ``best.pt`` (what inference needs) and return that checkpoint."""
        best = load_checkpoint(Path(self.out_dir) / artifacts.BEST, kind=self.kind)
        model = {k: v for k, v in best.items() if k not in ("optimizers", "state", "rng")}
        model["modules"] = {name: best["modules"][name] for name in self.published}
        save_checkpoint(Path(self.out_dir) / artifacts.MODEL, model)
        return model


class StepLog:
    """A training run's ``log.csv``: one row per step, appended and flushed as it goes.

    ``resume_step`` is the step of the checkpoint a run resumes from: rows written
    after it (by the interrupted run) are dropped first, so the log reads as if the
    run had never stopped. ``resume_step=0`` starts a new log. Floats are written
    with 6 significant digits; missing fields stay empty.
    """

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], resume_step: int = 0):
        self.path = path = Path(path)
        kept = []
        if resume_step and path.is_file():
            with open(path, newline="") as f:
                kept = [row for row in csv.DictReader(f)
                        if (row.get("step") or "").isdigit() and int(row["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fields, restval="", extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fields, restval="", lineterminator="\n")

    def write(self, row: dict) -> None:
        self._writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "StepLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start(args, recipe: Recipe) -> torch.device:
    """What every trainer does first, in this order: threads and precision, the device, the seeds."""
    device = runtime(args)
    seed_everything(recipe.seed)
    return device


def train_loop(state: Progress, *, steps: int, steps_per_epoch: int, every: int, step: Callable[[int], dict],
               log_path: Path, log_fields: Sequence[str], checkpoint: Callable[[dict], None],
               evaluate: Callable[[], dict] | None = None, name: str, quiet: bool = False,
               postfix: Sequence[str] = ()) -> None:
    """The one training loop: from ``state.step`` to ``steps`` updates, evaluating every ``every``.

    ``step(i)`` makes update ``i`` (0-based) and returns its log row of floats, written to
    ``log_path`` (a :class:`StepLog` of ``log_fields``, cut back to ``state.step``). Every
    ``every`` updates and after the last, ``evaluate()`` (none: no scores) returns the scores
    logged on that update's row and ``checkpoint(scores)`` writes the run's files, after the
    row, so a resumed log never lacks a row its checkpoint has. ``state`` moves with each
    update (its epoch is the count of ``steps_per_epoch`` blocks done) and adds up the time.

    A run that already holds ``steps`` updates is the one rule for every trainer: it says so
    and trains nothing; the trainer then writes its outputs from the checkpoint as after
    training. Prints the speed at the end unless ``quiet``.
    """
    if state.step >= steps:
        print(f"{name}: the run already holds {state.step} of {steps} updates; nothing to train "
              "(ask for more to train longer)")
        return
    log = StepLog(log_path, log_fields, resume_step=state.step)
    bar = progress(range(state.step, steps), quiet, desc=name, initial=state.step, total=steps)
    first, wall, cpu = state.step, time.perf_counter(), time.process_time()
    wall_before, cpu_before = state.wall_seconds, state.cpu_seconds
    try:
        while state.step < steps:
            row = step(state.step)
            # A diverged run is stopped at once rather than trained on and saved.
            if not all(math.isfinite(v) for v in row.values()):
                raise RuntimeError(f"non-finite loss at step {state.step}: {row}; lower the learning rate")
            row = {"step": state.step + 1, "epoch": state.step // steps_per_epoch + 1, **row}
            state.step += 1
            state.epoch = state.step // steps_per_epoch
            bar.update(1)
            bar.set_postfix({column: f"{row[column]:.4f}" for column in postfix if column in row})
            if state.step % every and state.step != steps:
                log.write(row)
                continue
            scores = evaluate() if evaluate is not None else {}
            log.write({**row, **scores})
            state.wall_seconds = wall_before + time.perf_counter() - wall
            state.cpu_seconds = cpu_before + time.process_time() - cpu
            checkpoint(scores)
    finally:
        log.close()
        bar.close()
    if not quiet:
        done, wall, cpu = state.step - first, time.perf_counter() - wall, time.process_time() - cpu
        print(f"{done} steps in {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"({100 * wall / max(done, 1):.1f} s per 100 steps); run folder {log.path.parent}")


def ema_of(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and batch-norm statistics.

    Call ``.update_parameters(model)`` after each step; ``.module`` is a plain copy of
    the network to evaluate or sample from (Polyak & Juditsky 1992; Karras et al. 2018,
    https://arxiv.org/abs/1710.10196, and Yazici et al. 2019,
    https://arxiv.org/abs/1806.04498, show a GAN generator's average samples better).
    """
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def add_training_args(parser) -> None:
    """The flags every training script shares (with ``--device`` and ``--threads``)."""
    parser.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy and torch")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--restart", action="store_true", help="ignore OUT_DIR/latest.pt and start afresh")
    add_runtime_args(parser)
