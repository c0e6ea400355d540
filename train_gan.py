"""Train Problem 2's GAN on ``hw3_data/face/train``, or Problem 5's ACGAN on ``hw3_data/digits/<domain>/train``.

    python3 train_gan.py --data hw3_data --out-dir runs/gan --arch sagan --loss hinge --steps 20000
    python3 train_gan.py --data hw3_data --task digits --domain mnistm --out-dir runs/acgan

``log.csv`` has one row per generator step (losses and accuracies of that step's last
discriminator update); ``samples/step_NNNNNN.png`` shows 32 faces of the EMA generator
from the fixed noise of ``hw3_p2.sh`` every ``--sample-every`` steps, when ``latest.pt``
and ``model.pt`` (published as ``gan.pt``) are written too. With ``--task digits`` the grid
is 10 digits of each class, one class per row, and the log adds the class head's accuracy. There is no ``best.pt``: a
GAN has no cheap validation score, so the last EMA generator is the model (score it with
``fidelity.py``). Checkpoints and resuming: see ``hw3/training.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from hw3 import artifacts, checkpoints
from hw3.common import UserError, autocast, cli
from datasets import DOMAINS, EndlessBatches, load_digits, load_faces, random_hflip, to_float
from gan import (ARCHS, LOSSES, AuxiliaryClassifier, GANConfig, Unconditional, discriminator_accuracy,
                 discriminator_loss, generator_loss, gradient_penalty)
from hw3.images import class_grid, sample_grid, save_image
from hw3.training import Checkpointer, Recipe, add_training_args, ema_of, start, train_loop

ClassHook = Unconditional | AuxiliaryClassifier  # what the classes add to a step: see gan.GANConfig.class_hook
# One row per generator step; the ACGAN's class hook adds "d_class_acc" (the class head's accuracy on real digits).
LOG_FIELDS = ["step", "epoch", "loss_d", "loss_g", "d_real_acc", "d_fake_acc"]
# Defaults that depend on the task: SAGAN's recipe for faces (two time scales, beta1 = 0), and
# for digits ACGAN's (Odena et al.: DCGAN's Adam 2e-4, beta1 0.5, the BCE loss).
TASK_DEFAULTS = {
    "faces": {"arch": "sagan", "loss": "hinge", "steps": 20000, "channels": 64, "lr_g": 1e-4, "lr_d": 4e-4,
              "betas_g": (0.0, 0.9), "betas_d": (0.0, 0.9)},
    "digits": {"arch": "acgan", "loss": "bce", "steps": 10000, "channels": 32, "lr_g": 2e-4, "lr_d": 2e-4,
               "betas_g": (0.5, 0.999), "betas_d": (0.5, 0.999)},
}


def per_task(flag: str) -> str:
    """The defaults of a task-dependent flag for its help text, read from :data:`TASK_DEFAULTS`."""
    faces, digits = (" ".join(map(str, v)) if isinstance(v, tuple) else str(v)
                     for v in (TASK_DEFAULTS["faces"][flag], TASK_DEFAULTS["digits"][flag]))
    return f"default: {faces}, {digits} for digits"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a DCGAN or SAGAN on the face images, or an ACGAN on digits.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the hw3_data folder (uses face/train)")
    parser.add_argument("--task", choices=list(TASK_DEFAULTS), default="faces",
                        help="digits: class-conditional ACGAN on digits/<domain>/train")
    parser.add_argument("--domain", choices=DOMAINS, default="mnistm", help="the digits of --task digits")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/gan"), help="logs, samples and checkpoints")
    parser.add_argument("--arch", choices=ARCHS, default=None,
                        help=f"network family (sagan: spectral norm + attention); {per_task('arch')}")
    parser.add_argument("--loss", choices=LOSSES, default=None, help=f"adversarial loss; {per_task('loss')}")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"generator updates in all (a resumed run stops here too); {per_task('steps')}")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="real images per D update and fakes per G update (at most the training set)")
    parser.add_argument("--z-dim", type=int, default=128, help="noise size")
    parser.add_argument("--channels", type=int, default=None, help=f"base width of both nets; {per_task('channels')}")
    # SAGAN's two time-scale rule (Heusel et al. 2017): D learns faster than G, beta1 = 0.
    parser.add_argument("--lr-g", type=float, default=None, help=f"generator learning rate; {per_task('lr_g')}")
    parser.add_argument("--lr-d", type=float, default=None, help=f"discriminator learning rate; {per_task('lr_d')}")
    parser.add_argument("--betas-g", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                        help=f"Adam betas of G; {per_task('betas_g')}")
    parser.add_argument("--betas-d", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                        help=f"Adam betas of D; {per_task('betas_d')}")
    parser.add_argument("--n-critic", type=int, default=None, help="D updates per G update (default: 5 for wgan-gp, else 1)")
    parser.add_argument("--gp-weight", type=float, default=10.0, help="lambda of WGAN-GP's gradient penalty")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="one-sided: real target 1 - this (bce only)")
    parser.add_argument("--ema-decay", type=float, default=0.999, help="decay of the generator's weight average")
    parser.add_argument("--class-weight", type=float, default=1.0, help="ACGAN: weight of the class loss L_C")
    parser.add_argument("--fake-class-loss", action=argparse.BooleanOptionalAction, default=False,
                        help="ACGAN: D's class head learns from generated digits as well as real ones (Odena et al.); "
                             "off, it learns from real ones only: 95-97 %% against 76-78 %% by three judges on the "
                             "development tree (docs/problem5_digits.md)")
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=True,
                        help="random left-right flips of real faces (never of digits)")
    parser.add_argument("--sample-every", type=int, default=500, help="steps between sample grids and checkpoints")
    parser.add_argument("--dry-run", action="store_true", help="2 steps with batch 8: checks the wiring")
    add_training_args(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    for name, value in TASK_DEFAULTS[args.task].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if (args.task == "digits") != (args.arch == "acgan"):
        raise UserError("--task digits trains --arch acgan, and acgan only digits")
    if args.task == "digits" and args.loss == "wgan-gp":
        raise UserError("--task digits trains with --loss bce or hinge: the ACGAN's discriminator has batch norm, "
                        "which WGAN-GP's per-image gradient penalty rules out")
    args.hflip = args.hflip and args.task == "faces"
    if args.n_critic is None:
        args.n_critic = 5 if args.loss == "wgan-gp" else 1
    if args.dry_run:
        args.steps, args.batch_size, args.sample_every = min(args.steps, 2), min(args.batch_size, 8), 1
    for name in ("steps", "batch_size", "z_dim", "channels", "n_critic", "sample_every"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= args.label_smoothing < 1.0:
        raise UserError("--label-smoothing must be in [0, 1)")
    if args.label_smoothing and args.loss != "bce":
        raise UserError("--label-smoothing applies to --loss bce only")
    if not 0.0 <= args.ema_decay <= 1.0:
        raise UserError("--ema-decay must be in [0, 1]")


def model_config(args: argparse.Namespace) -> GANConfig:
    """The :class:`GANConfig` these flags ask for."""
    return GANConfig(args.z_dim, args.arch, args.channels, GANConfig.norm_for(args.arch, args.loss))


@dataclass(frozen=True)
class GANRecipe(Recipe):
    """How a GAN run trains, built once from the checked flags; each field is the flag of its name.

    The networks' shape (``--arch``, ``--z-dim``, ``--channels``) is :class:`GANConfig`'s;
    where the files go and how to run (paths, device, threads, quiet, restart, dry run)
    is neither. ``domain`` is None for faces.
    """

    # A resumed run may train longer and write its grids and checkpoints at another pace: neither
    # changes an update, so it still ends with the weights of a run never stopped. Any other field does.
    RESUMABLE = frozenset({"steps", "sample_every"})

    task: str
    domain: str | None
    loss: str
    steps: int
    batch_size: int
    lr_g: float
    lr_d: float
    betas_g: tuple[float, float]
    betas_d: tuple[float, float]
    n_critic: int
    gp_weight: float
    label_smoothing: float
    ema_decay: float
    class_weight: float
    fake_class_loss: bool
    hflip: bool
    sample_every: int
    seed: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "GANRecipe":
        """The recipe of flags that :func:`check_args` has completed and checked."""
        return super().from_args(args, domain=args.domain if args.task == "digits" else None,
                                 betas_g=tuple(args.betas_g), betas_d=tuple(args.betas_d))


class DiscriminatorStep(NamedTuple):
    """What one discriminator update saw: its loss and its outputs on the real and the generated batch."""

    loss: torch.Tensor
    real: torch.Tensor  # (B,) real/fake logits or critic scores
    fake: torch.Tensor  # (B,)
    real_logits: torch.Tensor | None  # (B, 10) class logits on the real digits; None without classes
    real_labels: torch.Tensor | None  # (B,)


def d_step(generator: nn.Module, discriminator: nn.Module, opt_d: torch.optim.Optimizer,
           batch: tuple[torch.Tensor, ...], recipe: GANRecipe, hook: ClassHook,
           device: torch.device) -> DiscriminatorStep:
    """One discriminator update on a real ``batch`` (``(images,)`` or ``(images, labels)``, uint8) and as many fakes.

    D minimises its adversarial loss, plus the class hook's term and, for WGAN-GP, the
    gradient penalty; the generator only draws (no gradients).
    """
    real, *labels = batch
    real_labels = labels[0] if labels else None
    real = to_float(real) * 2 - 1  # (B, 3, H, W) in [-1, 1], like G's tanh
    if recipe.hflip:
        real = random_hflip(real)
    with torch.no_grad(), autocast(device):
        z = torch.randn(len(real), generator.latent_dim, device=device)
        fake_labels = hook.draw_labels(len(real), device)
        fake = hook.generate(generator, z, fake_labels)
    fake = fake.float()
    with autocast(device):
        (d_real, real_logits), (d_fake, fake_logits) = hook.split(discriminator(real)), hook.split(discriminator(fake))
    loss = discriminator_loss(recipe.loss, d_real, d_fake, recipe.label_smoothing)
    loss = loss + hook.d_term(real_logits, real_labels, fake_logits, fake_labels)
    if recipe.loss == "wgan-gp":
        loss = loss + recipe.gp_weight * gradient_penalty(discriminator, real, fake)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    return DiscriminatorStep(loss.detach(), d_real.detach(), d_fake.detach(),
                             None if real_logits is None else real_logits.detach(), real_labels)


def g_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer, n: int, recipe: GANRecipe,
           hook: ClassHook, device: torch.device) -> torch.Tensor:
    """One generator update on ``n`` fakes, of its adversarial loss through D plus the class hook's term; its loss."""
    discriminator.requires_grad_(False)  # gradients flow through D to G, but D's own are not needed
    try:
        with autocast(device):
            z = torch.randn(n, generator.latent_dim, device=device)
            fake_labels = hook.draw_labels(n, device)
            d_fake, fake_logits = hook.split(discriminator(hook.generate(generator, z, fake_labels)))
        loss = generator_loss(recipe.loss, d_fake) + hook.g_term(fake_logits, fake_labels)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    finally:
        discriminator.requires_grad_(True)
    return loss.detach()


def gan_step(generator: nn.Module, discriminator: nn.Module, ema, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, data: EndlessBatches, recipe: GANRecipe, hook: ClassHook,
             device: torch.device) -> dict[str, float]:
    """One generator update after ``recipe.n_critic`` discriminator updates, then the EMA; returns the log row.

    ``data`` yields uint8 batches on ``device``; ``hook`` is the config's
    :meth:`~gan.GANConfig.class_hook`. The row holds both losses, D's accuracy on the
    real and the generated images of its last update, and what the hook adds (the ACGAN's
    ``d_class_acc``).
    """
    generator.train()
    discriminator.train()
    for _ in range(recipe.n_critic):
        d = d_step(generator, discriminator, opt_d, next(data), recipe, hook, device)
    loss_g = g_step(generator, discriminator, opt_g, data.batch_size, recipe, hook, device)
    ema.update_parameters(generator)
    real_acc, fake_acc = discriminator_accuracy(recipe.loss, d.real, d.fake)
    return {"loss_d": d.loss.item(), "loss_g": loss_g.item(), "d_real_acc": real_acc, "d_fake_acc": fake_acc,
            **hook.metrics(d.real_logits, d.real_labels)}


@torch.no_grad()
def evaluate(generator, device, n: int = 32, seed: int = 0, digits: bool = False):
    """The EMA generator's faces for fixed noise (``n`` of them, seed ``seed``) as one grid image.

    The noise is the one ``sample.py`` draws, so the last grid of a run matches
    what ``hw3_p2.sh`` writes from its ``model.pt`` (up to CPU/GPU rounding). An
    ACGAN draws 10 digits of each class instead, one class per row.
    """
    generator.eval()
    if digits:
        return class_grid(generator.generate, seed=seed, device=device)
    return sample_grid(generator.decode, generator.latent_dim, n=n, nrow=8, seed=seed, device=device)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    recipe = GANRecipe.from_args(args)
    device = start(args, recipe)
    if recipe.task == "digits":
        digits = load_digits(args.data, recipe.domain, "train")
        tensors = (digits.images.to(device), digits.labels.to(device))
    else:
        tensors = (load_faces(args.data, "train").images.to(device),)  # uint8 on the device once

    config = model_config(args)
    generator = config.generator().to(device)
    discriminator = config.discriminator().to(device)
    if recipe.task == "faces":
        # Channels-last convolutions: a 64x64 DCGAN G+D step at width 16 measured 16-19 % faster on one
        # CPU thread. The inputs follow the weights' layout; a saved model loads into either layout.
        generator, discriminator = (m.to(memory_format=torch.channels_last) for m in (generator, discriminator))
    hook = config.class_hook(recipe.class_weight, recipe.fake_class_loss)
    ema = ema_of(generator, recipe.ema_decay)
    ema.module.eval()
    opt_g = torch.optim.Adam(generator.parameters(), lr=recipe.lr_g, betas=recipe.betas_g)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=recipe.lr_d, betas=recipe.betas_d)
    # Batches never exceed the training set; G's batch is D's real batch (data.batch_size).
    data = EndlessBatches(*tensors, batch_size=recipe.batch_size, rng=torch.Generator().manual_seed(recipe.seed))
    kind = checkpoints.ACGAN if recipe.task == "digits" else checkpoints.GAN  # a digit generator, or a face sampler
    ckpt = Checkpointer(args.out_dir, kind, asdict(config), ema.module, recipe,
                        modules={"generator": generator, "discriminator": discriminator, "ema": ema},
                        optimizers={"g": opt_g, "d": opt_d}, state={"data": data})
    state = ckpt.resume(args.restart)

    def checkpoint(scores: dict) -> None:
        # A GAN has no cheap score: the grid is how a run is watched, and the last EMA generator is the model.
        save_image(evaluate(ema.module, device, digits=recipe.task == "digits"), args.out_dir / artifacts.sample_grid(state.step))
        ckpt.save(state, publish=True)

    steps_per_epoch = max(1, len(tensors[0]) // (data.batch_size * recipe.n_critic))  # a pass of D over the data
    train_loop(state, steps=recipe.steps, steps_per_epoch=steps_per_epoch, every=recipe.sample_every,
               step=lambda i: gan_step(generator, discriminator, ema, opt_g, opt_d, data, recipe, hook, device),
               log_path=args.out_dir / artifacts.LOG, log_fields=[*LOG_FIELDS, *hook.columns], checkpoint=checkpoint,
               name=kind, quiet=args.quiet, postfix=("loss_d", "loss_g"))
    return 0


if __name__ == "__main__":
    cli(main)
