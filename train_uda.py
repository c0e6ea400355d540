"""Train a digit classifier across domains: source-only, DANN, SWD or target-only.

    python3 train_uda.py --data hw3_data --source usps --target mnistm --method dann

Source-only, DANN and SWD see source train images with labels and target
train images *without* labels; target-only (the upper bound) sees target train
images with labels. The checkpoint kept as "best" is the one with the highest
accuracy on a seeded validation split of the labelled training domain (source
train for source-only/DANN/SWD, target train for target-only): target test
labels are read once, after training, only to report
``target_test_accuracy`` in ``OUT_DIR/metrics.json``.

Runs go to ``runs/uda/<method>_<source>-<target>`` (``--out-dir``): ``log.csv`` (one row
per step, validation accuracy after each epoch), ``best.pt``, ``model.pt`` (the file
published as ``checkpoints/<method>_<source>-<target>.pt``) and ``metrics.json``.
Checkpoints and resuming: see ``training.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import dann
import swd
import uda
from common import UserError, atomic_path, autocast, cli, progress, runtime, seed_everything
from datasets import DOMAINS, EndlessBatches, load_digits, to_float, train_val_split
from training import Checkpointer, StepLog, add_training_args, run_args

LOG_COLUMNS = {
    "source-only": ["loss_cls"],
    "target-only": ["loss_cls"],
    "dann": ["loss_cls", "loss_domain", "grl_coeff", "domain_acc"],
    "swd": ["loss_cls", "loss_cls_disc", "discrepancy_c", "discrepancy_g"],
}


@dataclass
class DigitData:
    """Every tensor training needs, already on the device (uint8 images, int64 labels)."""

    train_x: torch.Tensor  # labelled domain: source, or target for target-only
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    unlabelled_x: torch.Tensor | None  # target train images for DANN/SWD, else None
    test_x: torch.Tensor  # target test, for the final report only
    test_y: torch.Tensor


def load_data(root: str, source: str, target: str, method: str, val_fraction: float, seed: int,
              device: torch.device) -> DigitData:
    """Decode (through the cache) and move to the device, once."""
    labelled = target if method == "target-only" else source
    train, val = train_val_split(load_digits(root, labelled, "train"), val_fraction, seed)
    unlabelled = load_digits(root, target, "train").images if method in ("dann", "swd") else None
    test = load_digits(root, target, "test")
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return DigitData(to(train.images), to(train.labels), to(val.images), to(val.labels),
                     to(unlabelled), to(test.images), to(test.labels))


def make_optimizers(model: torch.nn.Module, method: str, lr: float, weight_decay: float) -> dict:
    """One Adam for supervised and DANN training; SWD updates extractor and classifiers apart."""
    adam = lambda params: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)  # noqa: E731
    if method == "swd":
        return {
            "extractor": adam(model.extractor.parameters()),
            "classifiers": adam(list(model.classifier1.parameters()) + list(model.classifier2.parameters())),
        }
    return {"model": adam(model.parameters())}


def _zero(optimizers: dict) -> None:
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)


def supervised_step(model, optimizers, x, y, device) -> dict:
    _zero(optimizers)
    with autocast(device):
        loss = dann.classification_loss(model.logits(x), y)
    loss.backward()
    optimizers["model"].step()
    return {"loss_cls": loss.item()}


def dann_step(model, optimizers, xs, ys, xt, coeff: float, device) -> dict:
    """One DANN update: class loss on the source plus domain loss through the reversal layer."""
    _zero(optimizers)
    with autocast(device):
        features = model.features(torch.cat([xs, xt]))  # (Bs + Bt, D), one BN batch for both domains
        fs, ft = features[:len(xs)], features[len(xs):]
        loss_cls = dann.classification_loss(model.classifier(fs), ys)
        ds, dt = model.domain_logits(fs, coeff), model.domain_logits(ft, coeff)
        loss_domain = dann.domain_loss(ds.float(), dt.float())
    (loss_cls + loss_domain).backward()
    optimizers["model"].step()
    domain_acc = 0.5 * ((ds > 0).float().mean() + (dt <= 0).float().mean())
    return {"loss_cls": loss_cls.item(), "loss_domain": loss_domain.item(), "grl_coeff": coeff,
            "domain_acc": domain_acc.item()}


def swd_step(model, optimizers, xs, ys, xt, k: int, num_projections: int, device) -> dict:
    """The three-step update of Lee et al. (https://arxiv.org/abs/1903.04064, algorithm 1)."""
    # 1. extractor and both classifiers learn the source labels.
    _zero(optimizers)
    with autocast(device):
        loss_cls = swd.source_loss(*model.both_logits(model.extractor(xs)), ys)
    loss_cls.backward()
    optimizers["extractor"].step()
    optimizers["classifiers"].step()

    # 2. classifiers (extractor fixed) stay right on the source and disagree on the target.
    _zero(optimizers)
    with torch.no_grad(), autocast(device):
        fs, ft = model.extractor(xs), model.extractor(xt)
    with autocast(device):
        loss_src = swd.source_loss(*model.both_logits(fs), ys)
        disc_c = swd.discrepancy_on_logits(*(t.float() for t in model.both_logits(ft)), num_projections)
    (loss_src - disc_c).backward()
    optimizers["classifiers"].step()

    # 3. extractor (classifiers fixed) makes them agree on the target, k times.
    for _ in range(k):
        _zero(optimizers)
        with autocast(device):
            disc_g = swd.discrepancy_on_logits(*(t.float() for t in model.both_logits(model.extractor(xt))),
                                               num_projections)
        disc_g.backward()
        optimizers["extractor"].step()
    _zero(optimizers)
    return {"loss_cls": loss_cls.item(), "loss_cls_disc": loss_src.item(),
            "discrepancy_c": disc_c.item(), "discrepancy_g": disc_g.item()}


def train_one_epoch(model, method: str, optimizers: dict, data: DigitData, labelled_batches, unlabelled_batches,
                    steps: int, first_step: int, total_steps: int, args, device, log: StepLog, epoch: int) -> dict:
    """``steps`` updates of ``method``; one log row per step; returns the epoch's mean losses."""
    model.train()
    sums: dict[str, float] = {}
    for i in progress(range(steps), args.quiet, desc=f"epoch {epoch}", leave=False):
        step = first_step + i
        xs, ys = next(labelled_batches)
        xs = to_float(xs)
        if method == "dann":
            xt = to_float(next(unlabelled_batches)[0])
            row = dann_step(model, optimizers, xs, ys, xt, dann.grl_coefficient(step / max(1, total_steps)), device)
        elif method == "swd":
            xt = to_float(next(unlabelled_batches)[0])
            row = swd_step(model, optimizers, xs, ys, xt, args.k, args.num_projections, device)
        else:
            row = supervised_step(model, optimizers, xs, ys, device)
        if not all(math.isfinite(v) for v in row.values()):
            raise RuntimeError(f"non-finite loss at step {step}: {row}; lower --lr")
        log.write({"step": step + 1, "epoch": epoch, **row})
        for key, value in row.items():
            sums[key] = sums.get(key, 0.0) + value
    return {key: value / max(1, steps) for key, value in sums.items()}


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, device, batch_size: int = 1024) -> float:
    """Accuracy of ``model`` on uint8 ``images`` with ``labels`` (both on ``device``)."""
    predicted = uda.predict_labels(model, images, device, batch_size)
    return (predicted == labels.cpu()).float().mean().item()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="the hw3_data folder (with digits/<domain>/...)")
    parser.add_argument("--source", required=True, choices=DOMAINS)
    parser.add_argument("--target", required=True, choices=DOMAINS)
    parser.add_argument("--method", required=True, choices=uda.METHODS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=0,
                        help="0: one pass over the larger training set in use")
    parser.add_argument("--batch-size", type=int, default=128, help="per domain")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of the labelled train set held out to pick the best epoch")
    parser.add_argument("--num-projections", type=int, default=128, help="SWD: random directions per update")
    parser.add_argument("--k", type=int, default=2, help="SWD: extractor updates per step (step 3)")
    parser.add_argument("--feature-dim", type=int, default=128)
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv layer")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: runs/uda/<method>_<source>-<target>")
    parser.add_argument("--dry-run", action="store_true", help="1 epoch of 2 steps: checks the wiring only")
    add_training_args(parser)
    args = parser.parse_args(argv)
    if args.source == args.target:
        raise UserError("--source and --target must differ")
    for flag in ("epochs", "batch_size", "num_projections"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.k < 0 or args.steps_per_epoch < 0 or not 0 < args.val_fraction < 1 or args.lr <= 0:
        raise UserError("--k and --steps-per-epoch must be >= 0, --val-fraction in (0, 1) and --lr > 0")
    if args.dry_run:
        args.epochs, args.steps_per_epoch = 1, 2
    method = args.method
    out_dir = args.out_dir or Path("runs") / "uda" / uda.run_name(method, args.source, args.target)

    device = runtime(args)
    seed_everything(args.seed)
    data = load_data(args.data, args.source, args.target, method, args.val_fraction, args.seed, device)
    config = uda.UDAConfig(method, feature_dim=args.feature_dim, width=args.width)
    model = config.build().to(device)
    optimizers = make_optimizers(model, method, args.lr, args.weight_decay)

    n_labelled = len(data.train_x)
    n_unlabelled = 0 if data.unlabelled_x is None else len(data.unlabelled_x)
    steps = args.steps_per_epoch or math.ceil(max(n_labelled, n_unlabelled) / args.batch_size)
    total_steps = steps * args.epochs
    streams = {"labelled": EndlessBatches(data.train_x, data.train_y, batch_size=args.batch_size,
                                          rng=torch.Generator().manual_seed(args.seed))}
    if data.unlabelled_x is not None:
        streams["unlabelled"] = EndlessBatches(data.unlabelled_x, batch_size=args.batch_size,
                                               rng=torch.Generator().manual_seed(args.seed + 1))
    ckpt = Checkpointer(out_dir, uda.KIND, asdict(config), model,
                        run={"source": args.source, "target": args.target},
                        optimizers=optimizers, state=streams, extra={"args": run_args(args)})
    state = ckpt.resume(args.restart)

    fields = ["step", "epoch", *LOG_COLUMNS[method], "val_accuracy"]
    started = time.monotonic()
    with StepLog(out_dir / "log.csv", fields, resume_step=state.step) as log:
        while state.epoch < args.epochs:
            means = train_one_epoch(model, method, optimizers, data, streams["labelled"], streams.get("unlabelled"),
                                    steps, state.step, total_steps, args, device, log, state.epoch + 1)
            state.step += steps
            state.epoch += 1
            val_acc = evaluate(model, data.val_x, data.val_y, device)
            log.write({"step": state.step, "epoch": state.epoch, "val_accuracy": f"{val_acc:.4f}"})
            is_best = state.improves(val_acc, higher_is_better=True)
            if is_best:
                state.best_metric, state.best_step = val_acc, state.step
            ckpt.save(state, is_best=is_best)
            if not args.quiet:
                losses = " ".join(f"{k}={v:.3f}" for k, v in means.items())
                print(f"epoch {state.epoch}: {losses} val_accuracy={val_acc:.4f}", flush=True)
    seconds = time.monotonic() - started

    # The report: the best epoch by validation accuracy, scored once on the target test labels.
    best = ckpt.publish_best()
    model.load_state_dict(best["model"])
    test_acc = evaluate(model, data.test_x, data.test_y, device)
    metrics = {
        "method": method, "source": args.source, "target": args.target,
        "selection": f"best epoch by accuracy on a {args.val_fraction:g} validation split of "
                     f"{'target' if method == 'target-only' else 'source'} train",
        "best_epoch": best["epoch"], "val_accuracy": best["best_metric"],
        "target_test_accuracy": test_acc, "target_test_images": len(data.test_y),
        "epochs": args.epochs, "steps_per_epoch": steps, "train_seconds_this_run": round(seconds, 1),
    }
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    if not args.quiet:
        print(f"{method} {args.source}->{args.target}: target_test_accuracy={test_acc:.4f} "
              f"(best epoch {metrics['best_epoch']}, val {metrics['val_accuracy']:.4f}) -> {out_dir}")
    return 0


if __name__ == "__main__":
    cli(main)
