"""Train the Problem 1 VAE on ``face/train``.

    python3 train_vae.py --data hw3_data --out-dir runs/vae

A seeded share of ``face/train`` (``--val-fraction``) is held out for validation;
``face/test`` is never read here. ``log.csv`` has one row per step (``recon`` is the
pixel-mean MSE, ``kl`` the KL summed over latent dims, both of the training batch); the
last row of each epoch adds ``val_mse``/``val_kl`` (decoded from the posterior mean).
``best.pt`` and ``model.pt`` (published as ``checkpoints/vae.pt``) hold the epoch of
lowest validation MSE. Checkpoints and resuming: see ``hw3/training.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from hw3 import artifacts, checkpoints
from hw3.common import UserError, autocast, batched, cli
from datasets import EndlessBatches, load_faces, random_hflip, to_float, train_val_split
from hw3.training import Checkpointer, Recipe, add_training_args, start, train_loop
from vae import VAE, VAEConfig, kl_per_image, vae_loss

LOG_FIELDS = ["step", "epoch", "recon", "kl", "loss", "val_mse", "val_kl"]
DRY_RUN_STEPS = 2


@dataclass(frozen=True)
class VAERecipe(Recipe):
    """How the VAE trains; field names are the flags. A resumed run may only raise ``epochs``."""

    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"epochs"})

    epochs: int
    batch_size: int
    lr: float
    kl_weight: float
    val_fraction: float
    hflip: bool
    seed: int


def train_step(model: VAE, batches: EndlessBatches, optimizer: torch.optim.Optimizer, recipe: VAERecipe) -> dict:
    """One update on the next batch of uint8 faces ``(B, 3, 64, 64)``: the batch's ``recon``, ``kl`` and ``loss``."""
    model.train()
    (x,) = next(batches)
    x = to_float(x)
    if recipe.hflip:
        x = random_hflip(x, batches.rng)
    with autocast(x.device):
        recon, mu, logvar = model(x)
    losses = vae_loss(recon, x, mu, logvar, recipe.kl_weight)
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    optimizer.step()
    return {"recon": losses.recon.item(), "kl": losses.kl.item(), "loss": losses.total.item()}


@torch.no_grad()
def evaluate(model: VAE, images: torch.Tensor, device: torch.device, *, batch_size: int = 256) -> dict:
    """Pixel-mean MSE of the reconstructions decoded from the posterior mean, and the mean KL.

    Decoding mu instead of a sample makes the metric deterministic.
    """
    model.eval()

    def per_image(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_float(x)
        with autocast(device):
            mu, logvar = model.encode(x)
            recon = model.decode(mu)
        se = (recon.float() - x).pow(2).flatten(1).mean(1)  # (B,) pixel-mean squared error
        return se, kl_per_image(mu.float(), logvar.float())

    se, kl = batched(per_image, images, batch_size, device)
    return {"mse": se.mean().item(), "kl": kl.mean().item()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the Problem 1 VAE on face/train.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the hw3_data folder (holds face/train)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/vae"), help="log and checkpoints; resumed when it holds latest.pt")
    parser.add_argument("--epochs", type=int, default=40, help="total epochs (a resumed run trains up to this many)")
    parser.add_argument("--batch-size", type=int, default=64, help="faces per update")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    # With a pixel-mean MSE (about 1e-2) and a KL summed over 512 dims (hundreds of nats),
    # 1e-5 keeps reconstructions sharp while still pulling q(z|x) towards N(0, I) for sampling.
    parser.add_argument("--kl-weight", type=float, default=1e-5, help="lambda_KL in MSE + lambda_KL * KL")
    parser.add_argument("--latent-dim", type=int, default=512)
    parser.add_argument("--channels", type=int, default=32, help="width of the first conv stage (doubles per stage)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of face/train held out for validation")
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flips")
    parser.add_argument("--dry-run", action="store_true", help=f"{DRY_RUN_STEPS} steps per epoch, at most 2 epochs")
    add_training_args(parser)
    return parser


def recipe_from(args: argparse.Namespace) -> VAERecipe:
    """Check the flags and build the run's :class:`VAERecipe` (``--dry-run``: at most 2 epochs)."""
    for name in ("epochs", "batch_size", "latent_dim", "channels"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.val_fraction < 1:
        raise UserError("--val-fraction must lie strictly between 0 and 1")
    if args.lr <= 0 or args.kl_weight < 0:
        raise UserError("--lr must be positive and --kl-weight non-negative")
    return VAERecipe.from_args(args, epochs=min(args.epochs, 2) if args.dry_run else args.epochs)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    recipe = recipe_from(args)
    device = start(args, recipe)

    train_set, val_set = train_val_split(load_faces(args.data, "train"), recipe.val_fraction, recipe.seed)
    val_images = val_set.images.to(device)  # uint8 stays small; converted per batch
    if args.dry_run:
        val_images = val_images[:DRY_RUN_STEPS * 256]
    # Batch order and flips come from one generator on the CPU, checkpointed with the stream.
    batches = EndlessBatches(train_set.images.to(device), batch_size=recipe.batch_size,
                             rng=torch.Generator().manual_seed(recipe.seed))
    steps_per_epoch = DRY_RUN_STEPS if args.dry_run else max(1, len(train_set.images) // batches.batch_size)

    config = VAEConfig(args.latent_dim, args.channels)
    model = config.build().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    ckpt = Checkpointer(args.out_dir, checkpoints.VAE, asdict(config), model, recipe, optimizers={"adam": optimizer},
                        state={"data": batches}, extra={"val_fraction": recipe.val_fraction, "split_seed": recipe.seed,
                                                        "val_names": val_set.names})
    state = ckpt.resume(args.restart)

    def validation() -> dict:
        val = evaluate(model, val_images, device)
        return {"val_mse": val["mse"], "val_kl": val["kl"]}

    def checkpoint(scores: dict) -> None:
        # The epoch of lowest validation MSE is the published model.
        is_best = state.improves(scores["val_mse"], higher_is_better=False)
        if is_best:
            state.best_metric, state.best_step = scores["val_mse"], state.step
        ckpt.save(state, is_best=is_best, publish=is_best)
        if not args.quiet:
            print(f"epoch {state.epoch}/{recipe.epochs} step {state.step}: val_mse {scores['val_mse']:.5f} "
                  f"val_kl {scores['val_kl']:.1f}", flush=True)

    train_loop(state, steps=recipe.epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch,
               every=steps_per_epoch, step=lambda _: train_step(model, batches, optimizer, recipe),
               log_path=args.out_dir / artifacts.LOG, log_fields=LOG_FIELDS, evaluate=validation,
               checkpoint=checkpoint, name=checkpoints.VAE, quiet=args.quiet, postfix=("recon",))
    return 0


if __name__ == "__main__":
    cli(main)
