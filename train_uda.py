"""Train a digit classifier across domains: source-only, DANN, SWD+, ADDA or target-only.

    python3 train_uda.py --data hw3_data --source usps --target mnistm --method dann

DANN, SWD+ and ADDA see source train images with labels and target train images
*without* labels; source-only (the lower bound) sees no target image at all, for
training or for choosing what it keeps; target-only (the upper bound) sees target
train images with labels. Every method trains the same network for the same number
of updates, batch, optimizer and schedule; the augmentation and the kept evaluation
are each method's default (``--augment``, ``--select``), so the table compares methods.

Every ``--steps-per-epoch`` updates the run is evaluated with label-free scores
(``hw3/selection.py``: source-validation accuracy, target entropy, information
maximisation, SND, DEV); all are logged and ``--select`` picks the evaluation whose
weights become ``model.pt`` (the bounds: ``last`` by default; source-only may only use
``source_val_acc`` or ``last``). Target test labels are read once, after training, to report ``target_test_accuracy`` in ``metrics.json`` (and, with
``--log-test-accuracy``, at every evaluation for the selection study; never to choose).

Runs go to ``runs/uda/<method>_<source>-<target>`` (``--out-dir``): ``log.csv`` (one row
per step; each evaluation's scores on the epoch's last row), ``best.pt``, ``model.pt``
(published as ``checkpoints/<method>_<source>-<target>.pt``) and ``metrics.json``.
What each method does in one update, and its own flags, are in its own file (``dann.py``,
``swd.py``, ``hw3/adda.py``; the bounds in ``hw3/method.py``); this file is the loop.
Checkpoints and resuming: see ``hw3/training.py``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import dann  # noqa: F401  (registers its method)
import swd  # noqa: F401  (registers its method)
from hw3 import artifacts, selection, uda
from hw3.common import UserError, batched, cli, write_json
from hw3.digitnet import DigitShape, adapt_batch_norm, predict_labels
from datasets import DOMAINS, EndlessBatches, load_digits, to_float, train_val_split
from hw3.augment import DigitLook, MeasuredAugment, augment_source
from hw3.training import Checkpointer, add_training_args, start, train_loop
from hw3.method import Method, StepInput, UDARecipe

UDA_RUNS = Path(artifacts.RUNS) / artifacts.UDA_RUNS  # where runs go without --out-dir

NORMED = 5000  # target train images whose batch-norm statistics AdaBN takes (all of a smaller set)
SCORED = 500  # target (and source) train images the label-free scores look at; DEV fits a classifier on them


@dataclass
class DigitData:
    """Every tensor training needs, already on the device (uint8 images, int64 labels)."""

    train_x: torch.Tensor  # labelled domain: source, or target for target-only
    train_y: torch.Tensor
    val_x: torch.Tensor  # a held-out split of the labelled train set
    val_y: torch.Tensor
    target_x: torch.Tensor  # target train images, never their labels
    test_x: torch.Tensor  # target test, for the final report (and the selection study)
    test_y: torch.Tensor
    scored_target: torch.Tensor  # the SCORED target and labelled train images every evaluation scores
    scored_source: torch.Tensor
    norm_target: torch.Tensor  # the NORMED target train images whose statistics AdaBN takes
    pass_images: int  # the larger of the source and target train sets (the source's less its validation split)


def load_data(root: str, source: str, target: str, labelled: str, val_fraction: float, seed: int,
              device: torch.device) -> DigitData:
    """Decode (through the cache) and move to the device, once. ``labelled`` is "source" or "target"."""
    target_set = load_digits(root, target, "train")  # target-only trains on it with its labels
    source_train, source_val = train_val_split(load_digits(root, source, "train"), val_fraction, seed)
    train, val = train_val_split(target_set, val_fraction, seed) if labelled == "target" else (source_train, source_val)
    target_train = target_set.images
    test = load_digits(root, target, "test")
    rng = np.random.default_rng(seed)  # the same images at every evaluation, drawn once
    scored_target = target_train[np.sort(rng.permutation(len(target_train))[:SCORED])]
    scored_source = train.images[np.sort(rng.permutation(len(train.images))[:SCORED])]
    norm_target = target_train[np.sort(rng.permutation(len(target_train))[:NORMED])]
    return DigitData(*(t.to(device) for t in (train.images, train.labels, val.images, val.labels, target_train,
                                              test.images, test.labels, scored_target, scored_source, norm_target)),
                     pass_images=max(len(source_train.images), len(target_train)))


def augmenters(recipe: UDARecipe, method: Method, data: DigitData) -> tuple[dict, dict]:
    """The augmentation of each stream, and what was measured to choose it (logged in metrics.json).

    ``source``: one fixed range for every pair. ``measured``: the labelled images changed to cover
    the look of the unlabelled target images (:class:`hw3.augment.MeasuredAugment`); reading them makes it
    part of the adaptation. With ``augment_target`` (DANN) the target images get the same kind of
    change around their own look, so the discriminator cannot tell the domains apart by it.
    """
    keep = lambda x: x
    same_for_target = recipe.settings.augments_target()
    if recipe.augment == "none":
        return {"labelled": keep, "target": keep}, {}
    if recipe.augment == "source":
        fixed = lambda x: augment_source(x, recipe.augment_scale)
        return {"labelled": fixed, "target": fixed if same_for_target else keep}, {}
    looks = {"labelled": DigitLook.measure(data.train_x), "target": DigitLook.measure(data.target_x)}
    plans = {"labelled": MeasuredAugment.between(looks["labelled"], looks["target"]),
             "target": MeasuredAugment.between(looks["target"], looks["target"])}
    chosen = {"labelled": plans["labelled"], "target": plans["target"] if same_for_target else keep}
    return chosen, {"looks": {k: asdict(v) for k, v in looks.items()},
                    "augment": {k: asdict(v) for k, v in plans.items() if chosen[k] is v}}


def train_step(model, method: Method, optimizers: dict, streams: dict, augment: dict, recipe: UDARecipe,
               step: int, total_steps: int) -> dict:
    """Update ``step`` of ``method``: the scheduled lr, the next batches (augmented), the method's own step."""
    model.train()
    lr = recipe.learning_rate(step / total_steps)
    for group in optimizers["model"].param_groups:  # ADDA's adversarial stage keeps its own lr
        group["lr"] = lr
    xs, ys = next(streams["labelled"])
    xs = augment["labelled"](to_float(xs))
    xt = augment["target"](to_float(next(streams["target"])[0])) if method.reads_target else None
    batch = StepInput(xs, ys, xt, step, total_steps)
    return {"lr": lr, **method.step(model, optimizers, batch, recipe.settings)}


@torch.no_grad()
def evaluate(model, data: DigitData, device, seed: int, with_test: bool) -> dict:
    """Every label-free selection score of the current weights (and the test accuracy, for the study)."""
    model.eval()
    target, source = data.scored_target, data.scored_source

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = model.features(to_float(x))  # (B, D), one pass for both outputs
        return features, model.classify(features).exp()

    val_features, val_probs = batched(run, data.val_x, 512, device)
    target_features, target_probs = batched(run, target, 512, device)
    source_features = batched(lambda x: model.features(to_float(x)), source, 512, device)
    val_y = data.val_y.cpu()
    val_losses = F.nll_loss(val_probs.clamp_min(1e-12).log(), val_y, reduction="none").numpy()
    weights = selection.density_ratio(source_features.numpy(), target_features.numpy(), val_features.numpy(), seed)
    scores = {
        "source_val_acc": (val_probs.argmax(1) == val_y).float().mean().item(),
        "entropy": selection.mean_entropy(target_probs),
        "info_max": selection.information_maximization(target_probs),
        "snd": selection.soft_neighborhood_density(target_probs),
        "dev": selection.deep_embedded_validation(weights, val_losses),
    }
    if with_test:
        scores["target_test_accuracy"] = test_accuracy(model, data, device)
    return scores


def test_accuracy(model, data: DigitData, device) -> float:
    predicted = predict_labels(model, data.test_x, device)
    return (predicted == data.test_y.cpu()).float().mean().item()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="the hw3_data folder (with digits/<domain>/...)")
    parser.add_argument("--source", required=True, choices=DOMAINS)
    parser.add_argument("--target", required=True, choices=DOMAINS)
    parser.add_argument("--method", required=True, choices=list(uda.METHODS))
    # The real recipe: 10 passes over the larger train set (60,000 MNIST-M or 73,257 SVHN images: 9,380-11,450
    # updates of 64), evaluated once a pass. The CPU demo, the study and the tests pass shorter budgets.
    parser.add_argument("--epochs", type=int, default=10, help="evaluations; each follows --steps-per-epoch updates")
    parser.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the larger train set")
    parser.add_argument("--batch-size", type=int, default=64, help="per domain")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--lr-schedule", choices=["constant", "anneal"], default="constant",
                        help="anneal: Ganin et al.'s lr / (1 + 10 p)^0.75")
    parser.add_argument("--weight-decay", type=float, default=5e-4,
                        help="L2 penalty of the classifier's Adam (ADDA's adversarial stage uses none)")
    parser.add_argument("--conv-dropout", type=float, default=DigitShape.conv_dropout,
                        help="Dropout2d rate in the feature extractor")
    defaults = ", ".join(f"{name} {method.augment}" for name, method in uda.METHODS.items())
    parser.add_argument("--augment", choices=["none", "source", "measured"], default=None,
                        help="source: random affine, colours and noise on the labelled images, one range for every "
                             "pair; measured: zoom, polarity and colour chosen from the unlabelled target images "
                             "(reads them, so it belongs to the adaptation; chosen where it beat source on the "
                             f"development pairs). Default per method: {defaults}")
    parser.add_argument("--augment-scale", type=float, default=0.5,
                        help="source augmentation's zoom, log-uniform in [1/(1+s), 1+s]: wide enough to cover digits "
                             "that fill the frame (USPS) and digits in a 20x20 box (MNIST)")
    for method in uda.METHODS.values():  # each method's own flags: its settings' and its network's
        method.settings.add_arguments(parser)
        method.network.Shape.add_arguments(parser, method.label)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the labelled train set held out")
    selects = ", ".join(f"{name} {method.select}" for name, method in uda.METHODS.items())
    parser.add_argument("--select", choices=list(selection.CHOICES), default=None,
                        help="the label-free score that picks the evaluation kept as model.pt (the adapting methods' "
                             "info_max: low regret in benchmarks/uda_study.md; the lower bound may only use "
                             f"{' or '.join(selection.TARGET_FREE)}, which read no target image). Default per method: "
                             f"{selects}")
    parser.add_argument("--log-test-accuracy", action="store_true",
                        help="for selection studies: log target test accuracy at each evaluation (never used to choose)")
    parser.add_argument("--width", type=int, nargs=2, default=(DigitShape.c1, DigitShape.c2), metavar=("C1", "C2"),
                        help="conv channels")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help=f"default: {UDA_RUNS}/<method>_<source>-<target>")
    parser.add_argument("--dry-run", action="store_true", help="1 epoch of 2 steps: checks the wiring only")
    add_training_args(parser)
    return parser


def recipe_from(args) -> UDARecipe:
    """Check the flags and build the run's :class:`UDARecipe` (``--dry-run`` shortens it)."""
    if args.source == args.target:
        raise UserError("--source and --target must differ")
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.steps_per_epoch < 0 or not 0 < args.val_fraction < 1 or args.lr <= 0:
        raise UserError("--steps-per-epoch must be >= 0, --val-fraction in (0, 1) and --lr > 0")
    method = uda.method(args.method)
    settings = method.settings.from_args(args)  # only this method's knobs: a resume compares only these
    augment = args.augment or method.augment
    select = args.select or method.select
    if method.bound == "lower" and (select not in selection.TARGET_FREE or augment == "measured"):
        raise UserError(f"{method.name} reads no target image: --select must be {' or '.join(selection.TARGET_FREE)} "
                        "and --augment not measured")
    if args.dry_run:
        return UDARecipe.from_args(args, epochs=1, steps_per_epoch=2, augment=augment, select=select,
                                   settings=settings.shortened())
    return UDARecipe.from_args(args, augment=augment, select=select, settings=settings)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    recipe = recipe_from(args)
    method = uda.method(args.method)
    out_dir = args.out_dir or UDA_RUNS / uda.run_name(method.name, args.source, args.target)
    device = start(args, recipe)
    data = load_data(args.data, args.source, args.target, method.labelled, recipe.val_fraction, recipe.seed, device)
    c1, c2 = args.width
    own = {f.name: getattr(args, f.name) for f in method.network.Shape.own_fields()}
    config = uda.UDAConfig.of(method.name, c1=c1, c2=c2, conv_dropout=args.conv_dropout, **own)
    model = config.build().to(device)
    optimizers = method.optimizers(model, recipe)
    augment, measured = augmenters(recipe, method, data)

    # Every method of a scenario, target-only included, makes the same number of updates.
    steps = recipe.steps_per_epoch or math.ceil(data.pass_images / recipe.batch_size)
    total_steps = steps * recipe.epochs
    streams = {"labelled": EndlessBatches(data.train_x, data.train_y, batch_size=recipe.batch_size,
                                          rng=torch.Generator().manual_seed(recipe.seed)),
               "target": EndlessBatches(data.target_x, batch_size=recipe.batch_size,
                                        rng=torch.Generator().manual_seed(recipe.seed + 1))}
    ckpt = Checkpointer(out_dir, uda.KIND, config.saved(), model, recipe,
                        run={"source": args.source, "target": args.target},
                        optimizers=optimizers, state=streams)
    state = ckpt.resume(args.restart)

    def evaluation() -> dict:
        if recipe.settings.adapts_batch_norm():
            adapt_batch_norm(model, data.norm_target, device)
        return evaluate(model, data, device, recipe.seed, args.log_test_accuracy)

    def checkpoint(scores: dict) -> None:
        # "last" keeps every evaluation as it comes; a score keeps the best one so far.
        if selection.keeps(state.best_metric, scores.get(recipe.select), recipe.select):
            state.best_metric, state.best_step = scores.get(recipe.select), state.step
            ckpt.save(state, is_best=True)
        else:
            ckpt.save(state)
        if not args.quiet:
            shown = " ".join(f"{k}={v:.4f}" for k, v in scores.items())
            print(f"epoch {state.epoch} (step {state.step}): {shown}", flush=True)

    fields_ = ["step", "epoch", "lr", *method.losses, *selection.CRITERIA, "target_test_accuracy"]
    train_loop(state, steps=total_steps, steps_per_epoch=steps, every=steps,
               step=lambda i: train_step(model, method, optimizers, streams, augment, recipe, i, total_steps),
               log_path=out_dir / artifacts.LOG, log_fields=fields_, evaluate=evaluation, checkpoint=checkpoint,
               name=method.name, quiet=args.quiet, postfix=method.losses)

    # The report: the evaluation --select kept, scored once on the target test labels.
    best = ckpt.publish_best()
    model.load_state_dict(best["model"])
    metrics = {
        "method": method.name, "source": args.source, "target": args.target, "selection": recipe.select,
        "selected_epoch": best["epoch"], "selected_score": best["best_metric"],
        "target_test_accuracy": test_accuracy(model, data, device), "target_test_images": len(data.test_y),
        "epochs": recipe.epochs, "steps_per_epoch": steps, **measured,
        "wall_seconds": round(state.wall_seconds, 3), "cpu_seconds": round(state.cpu_seconds, 3),
    }
    write_json(out_dir / artifacts.METRICS, metrics)
    if not args.quiet:
        print(f"{method.name} {args.source}->{args.target}: target_test_accuracy="
              f"{metrics['target_test_accuracy']:.4f} (epoch {best['epoch']} by {recipe.select}) -> {out_dir}")
    return 0


if __name__ == "__main__":
    cli(main)
