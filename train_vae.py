"""Train the Problem 1 VAE on ``face/train``.

    python3 train_vae.py --data hw3_data --out-dir runs/vae

A seeded share of ``face/train`` (``--val-fraction``) is held out for validation;
``face/test`` is never read here. ``log.csv`` has one row per step (``recon`` is the
pixel-mean MSE, ``kl`` the KL summed over latent dims, both of the training batch); the
last row of each epoch adds ``val_mse``/``val_kl`` (decoded from the posterior mean).
``best.pt`` and ``model.pt`` (published as ``checkpoints/vae.pt``) hold the epoch of
lowest validation MSE. Checkpoints and resuming: see ``training.py``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import torch

from common import UserError, autocast, batched, cli, progress, runtime, seed_everything
from datasets import batches, load_faces, random_hflip, to_float, train_val_split
from training import Checkpointer, StepLog, add_training_args, run_args
from vae import VAE, VAEConfig, kl_per_image, vae_loss

LOG_COLUMNS = ["step", "epoch", "recon", "kl", "loss", "val_mse", "val_kl", "epoch_seconds"]
DRY_RUN_STEPS = 2


def train_one_epoch(model: VAE, images: torch.Tensor, optimizer: torch.optim.Optimizer, device: torch.device, *,
                    kl_weight: float, batch_size: int, rng: torch.Generator, hflip: bool = True,
                    max_steps: int | None = None, quiet: bool = False, desc: str = "train") -> list[dict]:
    """One shuffled pass over uint8 ``images`` (N, 3, 64, 64) already on ``device``.

    Returns one dict per optimizer step with the batch's ``recon``, ``kl`` and
    ``loss`` as floats.
    """
    model.train()
    rows = []
    # Keep the last small batch only when there is nothing else (tiny data sets).
    drop_last = len(images) > batch_size
    steps = len(images) // batch_size if drop_last else 1
    if max_steps is not None:
        steps = min(steps, max_steps)
    stream = batches(images, batch_size=batch_size, shuffle=True, rng=rng, drop_last=drop_last)
    for _, (x,) in zip(range(steps), progress(stream, quiet, total=steps, desc=desc, leave=False)):
        x = to_float(x)
        if hflip:
            x = random_hflip(x, rng)
        with autocast(device):
            recon, mu, logvar = model(x)
        losses = vae_loss(recon, x, mu, logvar, kl_weight)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        rows.append({"recon": losses.recon.item(), "kl": losses.kl.item(), "loss": losses.total.item()})
    return rows


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the Problem 1 VAE on face/train.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the hw3_data folder (holds face/train)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/vae"), help="log and checkpoints; resumed when it holds latest.pt")
    parser.add_argument("--epochs", type=int, default=40, help="total epochs (a resumed run trains up to this many)")
    parser.add_argument("--batch-size", type=int, default=64)
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
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "latent_dim", "channels"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.val_fraction < 1:
        raise UserError("--val-fraction must lie strictly between 0 and 1")
    if args.lr <= 0 or args.kl_weight < 0:
        raise UserError("--lr must be positive and --kl-weight non-negative")

    device = runtime(args)
    seed_everything(args.seed)
    epochs = min(args.epochs, 2) if args.dry_run else args.epochs
    max_steps = DRY_RUN_STEPS if args.dry_run else None

    train_set, val_set = train_val_split(load_faces(args.data, "train"), args.val_fraction, args.seed)
    train_images = train_set.images.to(device)  # uint8 stays small; converted per batch
    val_images = val_set.images.to(device)
    if args.dry_run:
        val_images = val_images[:DRY_RUN_STEPS * 256]

    config = VAEConfig(args.latent_dim, args.channels)
    model = config.build().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(args.seed)  # batch order and flips, on the CPU
    ckpt = Checkpointer(args.out_dir, "vae", asdict(config), model, optimizers={"adam": optimizer},
                        rngs={"data": rng}, extra={"val_fraction": args.val_fraction, "split_seed": args.seed,
                                                   "val_names": val_set.names, "args": run_args(args)})
    state = ckpt.resume(args.restart)
    for group in optimizer.param_groups:
        group["lr"] = args.lr
    if state.epoch >= epochs:
        print(f"{ckpt.latest} already holds {state.epoch} epoch(s); raise --epochs to train longer")
        return 0

    with StepLog(args.out_dir / "log.csv", LOG_COLUMNS, resume_step=state.step) as log:
        while state.epoch < epochs:
            started = time.perf_counter()
            rows = train_one_epoch(model, train_images, optimizer, device, kl_weight=args.kl_weight,
                                   batch_size=args.batch_size, rng=rng, hflip=args.hflip, max_steps=max_steps,
                                   quiet=args.quiet, desc=f"epoch {state.epoch + 1}/{epochs}")
            val = evaluate(model, val_images, device)
            state.epoch += 1
            seconds = time.perf_counter() - started
            rows[-1].update(val_mse=val["mse"], val_kl=val["kl"], epoch_seconds=round(seconds, 3))
            for row in rows:
                state.step += 1
                log.write({"step": state.step, "epoch": state.epoch, **row})
            is_best = state.improves(val["mse"], higher_is_better=False)
            if is_best:
                state.best_metric, state.best_step = val["mse"], state.step
            ckpt.save(state, is_best=is_best, publish=is_best)
            if not args.quiet:
                mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("recon", "kl")}
                print(f"epoch {state.epoch}/{epochs} step {state.step}: recon {mean['recon']:.5f} "
                      f"kl {mean['kl']:.1f} val_mse {val['mse']:.5f} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    cli(main)
