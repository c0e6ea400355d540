"""Train the Problem 1 VAE on ``face/train``.

    python3 train_vae.py --data hw3_data --out-dir runs/vae

A seeded share of ``face/train`` (``--val-fraction``) is held out for
validation; ``face/test`` is never read here. OUT_DIR receives:

* ``log.csv``: one row per optimizer step with ``step,epoch,recon,kl,loss``
  (training batch values: pixel-mean MSE, KL summed over latent dims and
  averaged over the batch, and recon + kl_weight * KL). The last row of each
  epoch also fills ``val_mse`` and ``val_kl`` (the whole validation split,
  decoded from the posterior mean) and ``epoch_seconds``; other rows leave
  them empty.
* ``latest.pt``: everything needed to resume (model, optimizer, RNG states,
  step, epoch), written at the end of every epoch.
* ``best.pt``: the same for the epoch with the lowest validation MSE.
* ``model.pt``: the best weights alone (kind ``vae``, config, model), the file
  published as ``checkpoints/vae.pt`` and read by ``sample.py``.

Resuming: run the same command again. When OUT_DIR/latest.pt exists, training
continues from its epoch with its optimizer and RNG states (log rows written
after it are dropped), so an interrupted run ends as an uninterrupted one
would; raise ``--epochs`` to train longer. Use a new ``--out-dir`` to start over.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from common import (UserError, add_common_args, autocast, cli, load_checkpoint, progress,
                    resolve_device, save_checkpoint, seed_everything, StepLog)
from datasets import batches, load_faces, random_hflip, to_float, train_val_split
from vae import VAE, vae_loss

LOG_COLUMNS = ["step", "epoch", "recon", "kl", "loss", "val_mse", "val_kl", "epoch_seconds"]
DRY_RUN_STEPS = 2


def train_one_epoch(model: VAE, images: torch.Tensor, optimizer: torch.optim.Optimizer, device: torch.device, *,
                    kl_weight: float, batch_size: int, generator: torch.Generator, hflip: bool = True,
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
    stream = batches(images, batch_size=batch_size, shuffle=True, generator=generator, drop_last=drop_last)
    for _, (x,) in zip(range(steps), progress(stream, quiet, total=steps, desc=desc, leave=False)):
        x = to_float(x)
        if hflip:
            x = random_hflip(x, generator)
        with autocast(device):
            recon, mu, logvar = model(x)
        losses = vae_loss(recon, x, mu, logvar, kl_weight)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        rows.append({"recon": losses.recon.item(), "kl": losses.kl.item(), "loss": losses.total.item()})
    return rows


@torch.no_grad()
def evaluate(model: VAE, images: torch.Tensor, device: torch.device, *, batch_size: int = 256,
             max_batches: int | None = None) -> dict:
    """Pixel-mean MSE of the reconstructions decoded from the posterior mean, and the mean KL.

    Decoding mu instead of a sample makes the metric deterministic.
    """
    model.eval()
    total_se, total_kl, n_pixels, n_images = 0.0, 0.0, 0, 0
    for i, (x,) in enumerate(batches(images, batch_size=batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        x = to_float(x)
        with autocast(device):
            mu, logvar = model.encode(x)
            recon = model.decode(mu)
        losses = vae_loss(recon, x, mu, logvar, kl_weight=0.0)
        total_se += losses.recon.item() * x.numel()
        total_kl += losses.kl.item() * len(x)
        n_pixels += x.numel()
        n_images += len(x)
    return {"mse": total_se / n_pixels, "kl": total_kl / n_images}


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
    add_common_args(parser)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "latent_dim", "channels"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.val_fraction < 1:
        raise UserError("--val-fraction must lie strictly between 0 and 1")
    if args.lr <= 0 or args.kl_weight < 0:
        raise UserError("--lr must be positive and --kl-weight non-negative")

    seed_everything(args.seed)
    device = resolve_device(args.device)
    epochs = min(args.epochs, 2) if args.dry_run else args.epochs
    max_steps = DRY_RUN_STEPS if args.dry_run else None

    train_set, val_set = train_val_split(load_faces(args.data, "train"), args.val_fraction, args.seed)
    train_images = train_set.images.to(device)  # uint8 stays small; converted per batch
    val_images = val_set.images.to(device)

    config = {"latent_dim": args.latent_dim, "channels": args.channels}
    model = VAE(**config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)  # batch order and flips, on the CPU
    step, epoch, best = 0, 0, math.inf

    out_dir = args.out_dir
    latest = out_dir / "latest.pt"
    if latest.is_file():
        state = load_checkpoint(latest, kind="vae")
        if state["config"] != config:
            raise UserError(f"{latest} was trained with {state['config']}, not {config}; "
                            "give the same --latent-dim/--channels or a new --out-dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = args.lr
        step, epoch, best = state["step"], state["epoch"], state["best_metric"]
        generator.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        if not args.quiet:
            print(f"resuming from {latest}: epoch {epoch}, step {step}")
    if epoch >= epochs:
        print(f"{latest} already holds {epoch} epoch(s); raise --epochs to train longer")
        return 0
    log = StepLog(out_dir / "log.csv", LOG_COLUMNS, resume_step=step)

    extras = {"data": {"val_fraction": args.val_fraction, "split_seed": args.seed, "val_names": val_set.names},
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    while epoch < epochs:
        started = time.perf_counter()
        rows = train_one_epoch(model, train_images, optimizer, device, kl_weight=args.kl_weight,
                               batch_size=args.batch_size, generator=generator, hflip=args.hflip,
                               max_steps=max_steps, quiet=args.quiet, desc=f"epoch {epoch + 1}/{epochs}")
        val = evaluate(model, val_images, device, max_batches=max_steps)
        epoch += 1
        seconds = time.perf_counter() - started
        rows[-1].update(val_mse=val["mse"], val_kl=val["kl"], epoch_seconds=round(seconds, 3))
        for row in rows:
            step += 1
            log.write({"step": step, "epoch": epoch, **row})

        checkpoint = {
            "kind": "vae", "config": config, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "step": step, "epoch": epoch, "best_metric": min(best, val["mse"]),
            "rng": {"data": generator.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            **extras,
        }
        if val["mse"] < best:
            best = val["mse"]
            save_checkpoint(out_dir / "best.pt", checkpoint)
            save_checkpoint(out_dir / "model.pt", {k: v for k, v in checkpoint.items() if k not in ("optimizer", "rng")})
        save_checkpoint(latest, checkpoint)
        if not args.quiet:
            mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("recon", "kl")}
            print(f"epoch {epoch}/{epochs} step {step}: recon {mean['recon']:.5f} kl {mean['kl']:.1f} "
                  f"val_mse {val['mse']:.5f} ({seconds:.1f} s)")
    log.close()
    return 0


if __name__ == "__main__":
    cli(main)
