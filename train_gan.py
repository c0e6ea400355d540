"""Train Problem 2's GAN on ``hw3_data/face/train``, or Problem 5's ACGAN on ``hw3_data/digits/<domain>/train``.

    python3 train_gan.py --data hw3_data --out-dir runs/gan --arch sagan --loss hinge --steps 20000
    python3 train_gan.py --data hw3_data --task digits --domain mnistm --out-dir runs/acgan

``log.csv`` has one row per generator step (losses and accuracies of that step's last
discriminator update); ``samples/step_NNNNNN.png`` shows 32 faces of the EMA generator
from the fixed noise of ``hw3_p2.sh`` every ``--sample-every`` steps, when ``latest.pt``
and ``model.pt`` (published as ``gan.pt``) are written too. With ``--task digits`` the grid
is 10 digits of each class, one class per row, and the log adds the class head's accuracy. There is no ``best.pt``: a
GAN has no cheap validation score, so the last EMA generator is the model (score it with
``fidelity.py``). Checkpoints and resuming: see ``training.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch

from common import UserError, autocast, cli, runtime, seed_everything
from datasets import DOMAINS, EndlessBatches, load_digits, load_faces, random_hflip, to_float
from gan import (ARCHS, LOSSES, NUM_CLASSES, GANConfig, class_loss, discriminator_accuracy, discriminator_loss,
                 generator_loss, gradient_penalty)
from images import class_grid, sample_grid, save_image
from training import Checkpointer, StepLog, add_training_args, ema_of, run_args, run_steps

LOG_FIELDS = ["step", "epoch", "loss_d", "loss_g", "d_real_acc", "d_fake_acc"]
DIGIT_LOG_FIELDS = [*LOG_FIELDS, "d_class_acc"]  # the class head's accuracy on real digits
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
    parser.add_argument("--batch-size", type=int, default=64)
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


def train_one_epoch(generator, discriminator, ema, opt_g, opt_d, data, args, device, step, epoch, steps_per_epoch, on_step) -> int:
    """``steps_per_epoch`` generator updates, each after ``args.n_critic`` discriminator updates.

    ``data`` yields ``(real,)`` uint8 batches already on ``device``, or ``(real, labels)``
    for the ACGAN, whose generator draws uniform classes and whose losses add the class
    loss L_C (Odena et al., eq. 1-2: D minimises L_C - L_S, G minimises L_C + its own
    adversarial loss). ``on_step(row)`` receives each step's log row. Returns the step count reached.
    """
    conditional = args.task == "digits"

    def fake_batch(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = torch.randn(n, args.z_dim, device=device)
        if not conditional:
            return generator(z), None
        labels = torch.randint(0, NUM_CLASSES, (n,), device=device)
        return generator(z, labels), labels

    def scores(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake outputs ``(B,)`` and, for the ACGAN, its class logits ``(B, 10)``."""
        out = discriminator(images)
        return (out[0].float(), out[1].float()) if conditional else (out.float(), None)

    generator.train()
    discriminator.train()
    for _ in range(steps_per_epoch):
        if step >= args.steps:
            break
        discriminator.requires_grad_(True)
        for _ in range(args.n_critic):
            real, *real_labels = next(data)
            real = to_float(real) * 2 - 1  # (B, 3, H, W) in [-1, 1], like G's tanh
            if args.hflip:
                real = random_hflip(real)
            with torch.no_grad(), autocast(device):
                fake, fake_labels = fake_batch(len(real))
            fake = fake.float()
            with autocast(device):
                (d_real, real_logits), (d_fake, fake_logits) = scores(real), scores(fake)
            loss_d = discriminator_loss(args.loss, d_real, d_fake, args.label_smoothing)
            if conditional:
                loss_d = loss_d + args.class_weight * (class_loss(real_logits, real_labels[0])
                                                       + class_loss(fake_logits, fake_labels))
            if args.loss == "wgan-gp":
                loss_d = loss_d + args.gp_weight * gradient_penalty(discriminator, real, fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        discriminator.requires_grad_(False)  # G's step needs gradients through D, not for D
        with autocast(device):
            fake, fake_labels = fake_batch(args.batch_size)
            d_fake_g, fake_logits = scores(fake)
        loss_g = generator_loss(args.loss, d_fake_g)
        if conditional:
            loss_g = loss_g + args.class_weight * class_loss(fake_logits, fake_labels)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema.update_parameters(generator)
        step += 1
        real_acc, fake_acc = discriminator_accuracy(args.loss, d_real.detach(), d_fake.detach())
        row = {"step": step, "epoch": epoch, "loss_d": loss_d.item(), "loss_g": loss_g.item(),
               "d_real_acc": real_acc, "d_fake_acc": fake_acc}
        if conditional:
            row["d_class_acc"] = (real_logits.argmax(1) == real_labels[0]).float().mean().item()
        on_step(row)
    discriminator.requires_grad_(True)
    return step


@torch.no_grad()
def evaluate(generator, device, n: int = 32, seed: int = 0):
    """The EMA generator's faces for fixed noise (``n`` of them, seed ``seed``) as one grid image.

    The noise is the one ``sample.py`` draws, so the last grid of a run matches
    what ``hw3_p2.sh`` writes from its ``model.pt`` (up to CPU/GPU rounding). An
    ACGAN draws 10 digits of each class instead, one class per row.
    """
    generator.eval()
    if hasattr(generator, "generate"):
        return class_grid(generator.generate, seed=seed, device=device)
    return sample_grid(generator.decode, generator.latent_dim, n=n, nrow=8, seed=seed, device=device)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    device = runtime(args)
    seed_everything(args.seed)
    if args.task == "digits":
        digits = load_digits(args.data, args.domain, "train")
        tensors = (digits.images.to(device), digits.labels.to(device))
    else:
        tensors = (load_faces(args.data, "train").images.to(device),)  # uint8 on the device once
    images = tensors[0]
    args.batch_size = min(args.batch_size, len(images))

    config = model_config(args)
    generator = config.generator().to(device)
    discriminator = config.discriminator().to(device)
    ema = ema_of(generator, args.ema_decay)
    ema.module.eval()
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr_g, betas=tuple(args.betas_g))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr_d, betas=tuple(args.betas_d))
    data = EndlessBatches(*tensors, batch_size=args.batch_size, rng=torch.Generator().manual_seed(args.seed))
    run = {"loss": args.loss, **({"domain": args.domain} if args.task == "digits" else {})}
    ckpt = Checkpointer(args.out_dir, "gan", asdict(config), ema.module, run=run,
                        modules={"generator": generator, "discriminator": discriminator, "ema": ema},
                        optimizers={"g": opt_g, "d": opt_d}, state={"data": data}, extra={"args": run_args(args)})
    state = ckpt.resume(args.restart)
    if state.step >= args.steps:
        print(f"already at step {state.step} >= --steps {args.steps}; nothing to do")
        return 0

    log = StepLog(args.out_dir / "log.csv", DIGIT_LOG_FIELDS if args.task == "digits" else LOG_FIELDS,
                  resume_step=state.step)

    def snapshot() -> None:
        save_image(evaluate(ema.module, device), args.out_dir / "samples" / f"step_{state.step:06d}.png")
        ckpt.save(state, publish=True)

    run_steps(partial(train_one_epoch, generator, discriminator, ema, opt_g, opt_d, data, args, device),
              state, args.steps, max(1, len(images) // (args.batch_size * args.n_critic)), log, args.sample_every,
              snapshot, ("loss_d", "loss_g"), args.quiet, "gan")
    return 0


if __name__ == "__main__":
    cli(main)
