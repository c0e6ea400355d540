"""Train a digit classifier across domains: source-only, DANN, SWD+, ADDA or target-only.

    python3 train_uda.py --data hw3_data --source usps --target mnistm --method dann

Source-only, DANN, SWD+ and ADDA see source train images with labels and target
train images *without* labels; target-only (the upper bound) sees target train
images with labels. Every method trains the same network with the same recipe
(updates, batch, optimizer, schedule, augmentation), so the table compares methods.

Every ``--steps-per-epoch`` updates the run is evaluated with label-free scores
(``selection.py``: source-validation accuracy, target entropy, information
maximisation, SND, DEV); all are logged and ``--select`` picks the evaluation whose
weights become ``model.pt``. Target test labels are read once, after training,
to report ``target_test_accuracy`` in ``metrics.json`` (and, with
``--log-test-accuracy``, at every evaluation for the selection study; never to choose).

Runs go to ``runs/uda/<method>_<source>-<target>`` (``--out-dir``): ``log.csv`` (one row
per step; each evaluation's scores on the epoch's last row), ``best.pt``, ``model.pt``
(published as ``checkpoints/<method>_<source>-<target>.pt``) and ``metrics.json``.
Checkpoints and resuming: see ``training.py``.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import adda
import dann
import selection
import swd
import uda
from common import UserError, autocast, batched, cli, progress, runtime, seed_everything, write_json
from datasets import DOMAINS, EndlessBatches, augment_source, augment_strong, load_digits, to_float, train_val_split
from training import Checkpointer, StepLog, add_training_args, ema_of, run_args

LOSSES = {
    "source-only": ["loss_cls"],
    "target-only": ["loss_cls"],
    "dann": ["loss_cls", "loss_domain", "grl_coeff", "domain_acc"],
    "swd": ["loss_cls", "discrepancy", "loss_im", "loss_pl", "pl_share"],
    "adda": ["loss_cls", "loss_disc", "loss_map"],
}
EVAL_COLUMNS = ["lr", *selection.CRITERIA, "target_test_accuracy"]
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


def load_data(root: str, source: str, target: str, method: str, val_fraction: float, seed: int,
              device: torch.device) -> DigitData:
    """Decode (through the cache) and move to the device, once."""
    labelled = target if method == "target-only" else source
    train, val = train_val_split(load_digits(root, labelled, "train"), val_fraction, seed)
    target_train = load_digits(root, target, "train").images
    test = load_digits(root, target, "test")
    return DigitData(*(t.to(device) for t in (train.images, train.labels, val.images, val.labels, target_train,
                                              test.images, test.labels)))


def make_optimizers(model: torch.nn.Module, method: str, args) -> dict:
    """Adam for every method; ADDA's adversarial stage uses the paper's lr and betas (0.5, 0.999)."""
    adam = lambda params, **kw: torch.optim.Adam(params, **{"lr": args.lr, "weight_decay": args.weight_decay, **kw})  # noqa: E731
    if method != "adda":
        return {"model": adam(model.parameters())}
    gan = {"lr": args.adda_lr, "betas": (0.5, 0.999), "weight_decay": 0.0}
    return {"model": adam([*model.extractor.parameters(), *model.classifier.parameters()]),
            "target": adam(model.extractor.parameters(), **gan),
            "discriminator": adam(model.discriminator.parameters(), **gan)}


def learning_rate(args, progress_: float) -> float:
    """``--lr``, or Ganin et al.'s annealing lr / (1 + 10 p)^0.75 at training progress p."""
    return args.lr / (1 + 10 * progress_) ** 0.75 if args.lr_schedule == "anneal" else args.lr


def _update(optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def supervised_step(model, optimizers, xs, ys, device) -> dict:
    with autocast(device):
        loss = dann.classification_loss(model.logits(xs), ys)
    _update(optimizers["model"], loss)
    return {"loss_cls": loss.item()}


def dann_step(model, optimizers, xs, ys, xt, coeff: float, args, device) -> dict:
    """One DANN update: class loss on the source plus domain loss through the reversal layer.

    Source and target go through the network in separate passes, so batch norm
    normalises each domain with its own statistics (measured: 92.6 % vs 70.0 % with
    one mixed batch on mnist -> mnistm).
    """
    with autocast(device):
        fs, ft = model.features(xs), model.features(xt)
        loss_cls = dann.classification_loss(model.classifier(fs), ys)
        ds, dt = model.domain_logits(fs, coeff).float(), model.domain_logits(ft, coeff).float()
        loss_domain = dann.domain_loss(ds, dt)
    _update(optimizers["model"], loss_cls + args.domain_weight * loss_domain)
    domain_acc = 0.5 * ((ds > 0).float().mean() + (dt <= 0).float().mean())
    return {"loss_cls": loss_cls.item(), "loss_domain": loss_domain.item(), "grl_coeff": coeff,
            "domain_acc": domain_acc.item()}


def swd_step(model, optimizers, xs, ys, xt, progress_: float, args, device) -> dict:
    """One SWD+ update: source loss, sliced Wasserstein discrepancy, information maximisation, pseudo-labels.

    The discrepancy goes through the gradient reversal layer: the classifiers get
    ``-grad`` (they maximise it) and the extractor ``+grad`` (it minimises it), Lee et
    al.'s min-max in one backward pass.
    """
    with autocast(device):
        fs = model.features(xs)
        loss_cls = swd.source_loss(*model.both_logits(fs), ys)
        ft_all = model.features(torch.cat([xt, augment_strong(xt)]))  # one target BN batch: weak and strong views
        ft, ft_strong = ft_all[:len(xt)], ft_all[len(xt):]
        discrepancy = swd.discrepancy_on_logits(*model.both_logits(dann.reverse_gradient(ft)), args.num_projections)
        probs = swd.mean_probs(*(l.float() for l in model.both_logits(ft)))  # (B, 10)
        loss_im = swd.information_maximization_loss(probs)
        targets = probs.detach()
        if args.align:
            with torch.no_grad():
                model.target_prior.mul_(args.align_momentum).add_((1 - args.align_momentum) * targets.mean(0))
            targets = swd.align_distribution(targets, model.target_prior)
        strong1, strong2 = (l.float() for l in model.both_logits(ft_strong))
        loss_pl1, share = swd.pseudo_label_loss(strong1, targets, args.pl_threshold)
        loss_pl = loss_pl1 + swd.pseudo_label_loss(strong2, targets, args.pl_threshold)[0]
        ramp = swd.ramp_up(progress_, args.rampup)
        loss = (loss_cls - args.swd_weight * discrepancy
                + ramp * (args.im_weight * loss_im + args.pl_weight * loss_pl))
    _update(optimizers["model"], loss)
    return {"loss_cls": loss_cls.item(), "discrepancy": discrepancy.item(), "loss_im": loss_im.item(),
            "loss_pl": loss_pl.item(), "pl_share": share.item()}


def adda_step(model, optimizers, xs, ys, xt, step: int, args, device) -> dict:
    """ADDA: the first ``--adda-pretrain-steps`` train on the source; then one discriminator and one mapping update."""
    if step < args.adda_pretrain_steps:
        with autocast(device):
            loss = dann.classification_loss(model.classifier(model.extractor(xs)), ys)
        _update(optimizers["model"], loss)
        return {"loss_cls": loss.item()}
    if step == args.adda_pretrain_steps:
        model.start_adaptation()
    model.source_extractor.eval()  # fixed: batch norm uses its running statistics
    with autocast(device):
        with torch.no_grad():
            fs = model.source_extractor(xs)
        ft = model.extractor(xt)
        loss_disc = adda.discriminator_loss(model.discriminator(fs).squeeze(1).float(),
                                            model.discriminator(ft.detach()).squeeze(1).float())
    _update(optimizers["discriminator"], loss_disc)
    with autocast(device):
        loss_map = adda.mapping_loss(model.discriminator(ft).squeeze(1).float())
    _update(optimizers["target"], loss_map)
    return {"loss_disc": loss_disc.item(), "loss_map": loss_map.item()}


def train_one_epoch(model, method: str, optimizers: dict, streams: dict, steps: int, first_step: int,
                    total_steps: int, args, device, log: StepLog, epoch: int, average=None) -> dict:
    """``steps`` updates of ``method``; one log row per step; returns the epoch's mean losses.

    ``average`` (an ``AveragedModel``), when given, follows the weights after every update.
    """
    model.train()
    sums: dict[str, float] = {}
    for i in progress(range(steps), args.quiet, desc=f"epoch {epoch}", leave=False):
        step = first_step + i
        lr = learning_rate(args, step / total_steps)
        for group in optimizers["model"].param_groups:  # ADDA's adversarial stage keeps its own lr
            group["lr"] = lr
        xs, ys = next(streams["labelled"])
        xs = to_float(xs)
        xt = to_float(next(streams["target"])[0]) if method in ("dann", "swd", "adda") else None
        if args.augment == "source":
            xs = augment_source(xs, args.augment_scale)
            if method == "dann" and args.augment_target:  # the same augmentation on both sides of the discriminator
                xt = augment_source(xt, args.augment_scale)
        if method == "dann":
            row = dann_step(model, optimizers, xs, ys, xt, dann.grl_coefficient(step / total_steps), args, device)
        elif method == "swd":
            row = swd_step(model, optimizers, xs, ys, xt, step / total_steps, args, device)
        elif method == "adda":
            row = adda_step(model, optimizers, xs, ys, xt, step, args, device)
        else:
            row = supervised_step(model, optimizers, xs, ys, device)
        if average is not None:
            average.update_parameters(model)
        if not all(math.isfinite(v) for v in row.values()):
            raise RuntimeError(f"non-finite loss at step {step}: {row}; lower --lr")
        log.write({"step": step + 1, "epoch": epoch, **row})
        for key, value in row.items():
            sums[key] = sums.get(key, 0.0) + value
    return {"lr": lr, **{key: value / steps for key, value in sums.items()}}


def evaluate(model, data: DigitData, device, seed: int, with_test: bool) -> dict:
    """Every label-free selection score of the current weights (and the test accuracy, for the study)."""
    model.eval()
    rng = np.random.default_rng(seed)  # the same images at every evaluation
    target = data.target_x[np.sort(rng.permutation(len(data.target_x))[:SCORED])]
    source = data.train_x[np.sort(rng.permutation(len(data.train_x))[:SCORED])]
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
        "last": 0.0,
    }
    if with_test:
        scores["target_test_accuracy"] = test_accuracy(model, data, device)
    return scores


def test_accuracy(model, data: DigitData, device) -> float:
    predicted = uda.predict_labels(model, data.test_x, device)
    return (predicted == data.test_y.cpu()).float().mean().item()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="the hw3_data folder (with digits/<domain>/...)")
    parser.add_argument("--source", required=True, choices=DOMAINS)
    parser.add_argument("--target", required=True, choices=DOMAINS)
    parser.add_argument("--method", required=True, choices=uda.METHODS)
    parser.add_argument("--epochs", type=int, default=10, help="evaluations; each follows --steps-per-epoch updates")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="0: one pass over the larger train set")
    parser.add_argument("--batch-size", type=int, default=64, help="per domain")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--lr-schedule", choices=["constant", "anneal"], default="constant",
                        help="anneal: Ganin et al.'s lr / (1 + 10 p)^0.75")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="L2 penalty of every Adam optimizer")
    parser.add_argument("--conv-dropout", type=float, default=0.1, help="Dropout2d rate in the feature extractor")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="evaluate and keep an exponential moving average of the weights (0: the weights)")
    parser.add_argument("--augment", choices=["none", "source"], default="source",
                        help="source: random affine, colours and noise on the labelled images")
    parser.add_argument("--augment-scale", type=float, default=0.5,
                        help="source augmentation's zoom, log-uniform in [1/(1+s), 1+s]: wide enough to cover digits "
                             "that fill the frame (USPS) and digits in a 20x20 box (MNIST)")
    parser.add_argument("--augment-target", action=argparse.BooleanOptionalAction, default=True,
                        help="DANN: with --augment source, give target images the source augmentation too, so the "
                             "discriminator cannot tell the domains apart by the augmentation alone")
    parser.add_argument("--domain-weight", type=float, default=0.3,
                        help="DANN: weight of the domain loss (0.3 beat 1.0 in three of the four study scenarios)")
    parser.add_argument("--swd-weight", type=float, default=1.0, help="SWD+: weight of the discrepancy")
    parser.add_argument("--num-projections", type=int, default=128, help="SWD+: random directions per update")
    parser.add_argument("--im-weight", type=float, default=0.3, help="SWD+: weight of information maximisation")
    parser.add_argument("--pl-weight", type=float, default=1.0, help="SWD+: weight of the pseudo-label loss")
    parser.add_argument("--pl-threshold", type=float, default=0.8, help="SWD+: confidence that makes a pseudo-label")
    parser.add_argument("--rampup", type=float, default=0.3,
                        help="SWD+: share of training over which the self-training terms ramp up (Laine & Aila)")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="SWD+: align pseudo-labels with the running target prediction mean (ReMixMatch)")
    parser.add_argument("--align-momentum", type=float, default=0.99, help="SWD+: momentum of that running mean")
    parser.add_argument("--adda-pretrain-steps", type=int, default=500, help="ADDA: source-only updates first")
    parser.add_argument("--adda-lr", type=float, default=2e-4, help="ADDA: lr of the adversarial stage")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the labelled train set held out")
    parser.add_argument("--select", choices=list(selection.CRITERIA), default="info_max",
                        help="the label-free score that picks the evaluation kept as model.pt (info_max had the "
                             "lowest mean regret on the development pairs of benchmarks/uda_study.md: 0.64 points)")
    parser.add_argument("--log-test-accuracy", action="store_true",
                        help="for selection studies: log target test accuracy at each evaluation (never used to choose)")
    parser.add_argument("--width", type=int, nargs=2, default=(32, 48), metavar=("C1", "C2"), help="conv channels")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: runs/uda/<method>_<source>-<target>")
    parser.add_argument("--dry-run", action="store_true", help="1 epoch of 2 steps: checks the wiring only")
    add_training_args(parser)
    return parser


def check_args(args) -> None:
    if args.source == args.target:
        raise UserError("--source and --target must differ")
    for flag in ("epochs", "batch_size", "num_projections"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.steps_per_epoch < 0 or not 0 < args.val_fraction < 1 or args.lr <= 0:
        raise UserError("--steps-per-epoch must be >= 0, --val-fraction in (0, 1) and --lr > 0")
    if args.dry_run:
        args.epochs, args.steps_per_epoch = 1, 2
        args.adda_pretrain_steps = min(args.adda_pretrain_steps, 1)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    method = args.method
    out_dir = args.out_dir or Path("runs") / "uda" / uda.run_name(method, args.source, args.target)
    device = runtime(args)
    seed_everything(args.seed)
    data = load_data(args.data, args.source, args.target, method, args.val_fraction, args.seed, device)
    config = uda.UDAConfig(method, *args.width, conv_dropout=args.conv_dropout)
    model = config.build().to(device)
    optimizers = make_optimizers(model, method, args)
    # Polyak averaging (Polyak & Juditsky 1992) smooths the adversarial methods' step-to-step swings.
    average = ema_of(model, args.ema_decay) if args.ema_decay > 0 else None
    kept = average.module if average is not None else model  # the weights evaluated and published

    steps = args.steps_per_epoch or math.ceil(max(len(data.train_x), len(data.target_x)) / args.batch_size)
    total_steps = steps * args.epochs
    streams = {"labelled": EndlessBatches(data.train_x, data.train_y, batch_size=args.batch_size,
                                          rng=torch.Generator().manual_seed(args.seed)),
               "target": EndlessBatches(data.target_x, batch_size=args.batch_size,
                                        rng=torch.Generator().manual_seed(args.seed + 1))}
    ckpt = Checkpointer(out_dir, uda.KIND, asdict(config), kept, run={"source": args.source, "target": args.target},
                        modules={"trained": model, **({"average": average} if average is not None else {})},
                        optimizers=optimizers, state=streams, extra={"select": args.select, "args": run_args(args)})
    state = ckpt.resume(args.restart)

    fields = ["step", "epoch", *LOSSES[method], *EVAL_COLUMNS]
    higher = selection.CRITERIA[args.select]
    started = time.monotonic()
    with StepLog(out_dir / "log.csv", fields, resume_step=state.step) as log:
        while state.epoch < args.epochs:
            means = train_one_epoch(model, method, optimizers, streams, steps, state.step, total_steps, args,
                                    device, log, state.epoch + 1, average)
            state.step += steps
            state.epoch += 1
            scores = evaluate(kept, data, device, args.seed, args.log_test_accuracy)
            log.write({"step": state.step, "epoch": state.epoch, "lr": means["lr"], **scores})
            metric = scores[args.select]
            is_best = args.select == "last" or state.improves(metric, higher)
            if is_best:
                state.best_metric, state.best_step = metric, state.step
            ckpt.save(state, is_best=is_best)
            if not args.quiet:
                losses = " ".join(f"{k}={v:.3f}" for k, v in means.items())
                print(f"epoch {state.epoch}: {losses} {args.select}={metric:.4f}", flush=True)
    seconds = time.monotonic() - started

    # The report: the evaluation --select kept, scored once on the target test labels.
    best = ckpt.publish_best()
    kept.load_state_dict(best["model"])
    metrics = {
        "method": method, "source": args.source, "target": args.target, "selection": args.select,
        "selected_epoch": best["epoch"], "selected_score": best["best_metric"],
        "target_test_accuracy": test_accuracy(kept, data, device), "target_test_images": len(data.test_y),
        "epochs": args.epochs, "steps_per_epoch": steps, "train_seconds_this_run": round(seconds, 1),
    }
    write_json(out_dir / "metrics.json", metrics)
    if not args.quiet:
        print(f"{method} {args.source}->{args.target}: target_test_accuracy={metrics['target_test_accuracy']:.4f} "
              f"(epoch {best['epoch']} by {args.select}) -> {out_dir}")
    return 0


if __name__ == "__main__":
    cli(main)
