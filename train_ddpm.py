"""Train Problem 5's conditional diffusion model on ``hw3_data/digits/<domain>/train``.

    python3 train_ddpm.py --data hw3_data --domain mnistm --out-dir runs/ddpm

``log.csv`` has one row per update (the diffusion loss: on x_0 or on the noise); every ``--sample-every``
updates ``samples/step_NNNNNN.png`` shows 10 digits of each class from the EMA network
(the DDIM sampler with guidance, as ``generate_digits.py`` runs it), and ``latest.pt`` and
``model.pt`` (the EMA weights; published for ``hw3_p5.sh``) are written. Like the GAN it
has no validation score: the last EMA network is the model, scored by
``generate_digits.py`` with a digit classifier. Checkpoints and resuming: see ``hw3/training.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from hw3 import artifacts, checkpoints
from hw3.common import UserError, autocast, cli
from datasets import DOMAINS, EndlessBatches, load_digits, to_float
from hw3.ddpm import (GUIDANCE, NOISE_SCHEDULES, SAMPLE_STEPS, DDPMConfig, DiffusionSampler, Schedule,
                      diffusion_loss)
from hw3.images import class_grid, save_image
from hw3.training import Checkpointer, Recipe, add_training_args, ema_of, start, train_loop

LOG_FIELDS = ["step", "epoch", "loss"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a class-conditional DDPM on digits.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the hw3_data folder (uses digits/<domain>/train)")
    parser.add_argument("--domain", choices=DOMAINS, default="mnistm", help="the digits to learn")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/ddpm"), help="logs, samples and checkpoints")
    parser.add_argument("--steps", type=int, default=6000,
                        help="updates in all (a resumed run stops here too); 6000 with --ema-decay 0.999 beat 3000 with "
                             "0.995 on both trees, in accuracy and in FID (docs/problem5_digits.md)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per update (at most the training set)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (constant)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip, as Ho et al.")
    parser.add_argument("--channels", type=int, default=DDPMConfig.channels, help="width of the U-Net's first level")
    parser.add_argument("--patch", type=int, choices=(1, 2), default=DDPMConfig.patch,
                        help="2: the U-Net runs on 14x14 grids of 2x2 pixel blocks, at a quarter of the cost")
    parser.add_argument("--prediction", choices=("eps", "x0"), default=DDPMConfig.prediction,
                        help="what the network learns to output: the noise or the clean image")
    parser.add_argument("--timesteps", type=int, default=DDPMConfig.timesteps, help="T of the noise schedule")
    parser.add_argument("--noise-schedule", choices=NOISE_SCHEDULES, default=DDPMConfig.noise_schedule,
                        help="alpha-bar over the T steps: Nichol & Dhariwal's cosine (FID 119.6-121.4 against "
                             "the linear one's 130.0-143.4 over two seeds of the development tree, "
                             "docs/problem5_digits.md) or Ho et al.'s linear betas")
    parser.add_argument("--drop-class", type=float, default=0.1,
                        help="probability that each training image is shown without its class "
                             "(classifier-free guidance)")
    parser.add_argument("--ema-decay", type=float, default=0.999, help="decay of the sampling network's weight average")
    parser.add_argument("--sample-every", type=int, default=500, help="updates between sample grids and checkpoints")
    parser.add_argument("--sample-steps", type=int, default=SAMPLE_STEPS, help="DDIM steps of the sample grids")
    parser.add_argument("--guidance", type=float, default=GUIDANCE,
                        help="classifier-free guidance weight w of the grids")
    parser.add_argument("--dry-run", action="store_true",
                        help="2 updates with batch 8 of a U-Net at most 8 channels wide: checks the wiring")
    add_training_args(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    for name in ("steps", "batch_size", "channels", "timesteps", "sample_every", "sample_steps"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.channels % 8:
        raise UserError("--channels must be a multiple of 8 (the U-Net's group norm)")
    if not 0.0 <= args.drop_class < 1.0:
        raise UserError("--drop-class must be in [0, 1)")
    if not 0.0 <= args.ema_decay <= 1.0:
        raise UserError("--ema-decay must be in [0, 1]")
    if args.dry_run:
        args.steps, args.batch_size, args.sample_every, args.sample_steps = min(args.steps, 2), 8, 1, 2
        args.channels = min(args.channels, 8)  # sampling 1000 digits: 7 s of one core, not 50


@dataclass(frozen=True)
class DDPMRecipe(Recipe):
    """How a DDPM run trains, built once from the checked flags; each field is the flag of its name.

    The network's and the schedule's shape (``--channels``, ``--patch``, ``--prediction``,
    ``--timesteps``) is :class:`DDPMConfig`'s; paths, device, threads, quiet, restart and
    dry run are neither.
    """

    # A resumed run may train longer and draw its grids at another pace, with another sampler:
    # none of them changes an update (the grids draw from their own seeded generator). Any other field does.
    RESUMABLE = frozenset({"steps", "sample_every", "sample_steps", "guidance"})

    domain: str
    steps: int
    batch_size: int
    lr: float
    grad_clip: float
    drop_class: float
    ema_decay: float
    sample_every: int
    sample_steps: int
    guidance: float
    seed: int


def ddpm_step(model: nn.Module, schedule: Schedule, ema, optimizer: torch.optim.Optimizer, data: EndlessBatches,
              recipe: DDPMRecipe, device: torch.device) -> dict[str, float]:
    """One update of the diffusion loss on the next ``(images, labels)`` batch of ``data``, then the EMA.

    The time steps, noise and dropped classes come from ``data.rng`` (checkpointed with
    the stream), so a resumed run repeats an uninterrupted one. Returns the log row.
    """
    model.train()
    images, labels = next(data)
    x0 = to_float(images) * 2 - 1  # (B, 3, 28, 28) in [-1, 1]
    with autocast(device):
        loss = diffusion_loss(model, schedule, x0, labels, recipe.drop_class, rng=data.rng)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    optimizer.step()
    ema.update_parameters(model)
    return {"loss": loss.item()}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    recipe = DDPMRecipe.from_args(args)
    device = start(args, recipe)
    digits = load_digits(args.data, recipe.domain, "train")
    images, labels = digits.images.to(device), digits.labels.to(device)  # on the device once

    config = DDPMConfig(args.channels, args.timesteps, patch=args.patch, prediction=args.prediction,
                        image_size=images.shape[-1], noise_schedule=args.noise_schedule)
    model = config.build().to(device)
    schedule = config.schedule()
    ema = ema_of(model, recipe.ema_decay)
    ema.module.eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    data = EndlessBatches(images, labels, batch_size=recipe.batch_size, rng=torch.Generator().manual_seed(recipe.seed))
    ckpt = Checkpointer(args.out_dir, checkpoints.DDPM, asdict(config), ema.module, recipe,
                        modules={"model": model, "ema": ema}, optimizers={"adam": optimizer}, state={"data": data})
    state = ckpt.resume(args.restart)

    sampler = DiffusionSampler(ema.module, schedule, recipe.sample_steps, guidance=recipe.guidance)

    def checkpoint(scores: dict) -> None:
        # No cheap score either: the grid is how a run is watched, and the last EMA network is the model.
        save_image(class_grid(sampler.generate, device=device), args.out_dir / artifacts.sample_grid(state.step))
        ckpt.save(state, publish=True)

    train_loop(state, steps=recipe.steps, steps_per_epoch=max(1, len(images) // data.batch_size),
               every=recipe.sample_every,
               step=lambda i: ddpm_step(model, schedule, ema, optimizer, data, recipe, device),
               log_path=args.out_dir / artifacts.LOG, log_fields=LOG_FIELDS, checkpoint=checkpoint, name=checkpoints.DDPM,
               quiet=args.quiet, postfix=("loss",))
    return 0


if __name__ == "__main__":
    cli(main)
