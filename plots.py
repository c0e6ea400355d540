"""Regenerate every figure and table of the report from checkpoints and logs.

One sub-command per problem::

    python3 plots.py vae ...   # fig1_2, table1_3, fig1_4, fig1_5
    python3 plots.py gan ...   # fig2_2, loss curves, VAE vs GAN
    python3 plots.py uda ...   # accuracy table, t-SNE by class and by domain

Every figure uses a fixed seed, so a second run draws the same picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on the grader's or CI's machine
import matplotlib.pyplot as plt  # noqa: E402

from common import atomic_path, cli  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------
# Problem 1: VAE
# ---------------------------------------------------------------------------


def add_vae_commands(subparsers) -> None:
    """Problem 1's figures (filled in with the VAE)."""


# ---------------------------------------------------------------------------
# Problem 2: GAN
# ---------------------------------------------------------------------------


def add_gan_commands(subparsers) -> None:
    """Problem 2's figures: fig2_2, the training curves and the VAE vs GAN comparison."""
    parser = subparsers.add_parser(
        "gan", help="fig2_2.png, fig2_losses.png and fig2_vae_vs_gan.png",
        description="fig2_2.png (the same image hw3_p2.sh writes), fig2_losses.png from a training log, "
                    "and fig2_vae_vs_gan.png when a VAE checkpoint is given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="the gan model.pt (checkpoints/gan.pt)")
    parser.add_argument("--log", type=Path, default=None, help="train_gan.py's log.csv, for the loss curves")
    parser.add_argument("--vae-checkpoint", type=Path, default=None, help="a vae model.pt, for the side-by-side figure")
    parser.add_argument("--out-dir", type=Path, default=Path("report"), help="where the figures go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (hw3_p2.sh uses 0)")
    parser.add_argument("--smooth", type=int, default=50, help="steps in the moving average of the curves")
    parser.set_defaults(func=gan_figures)


def gan_figures(args) -> int:
    import torch

    from sample import load_sampler, sample_grid, save_image

    torch.use_deterministic_algorithms(True)  # as sample.py does, so fig2_2 matches hw3_p2.sh byte for byte
    # Read every input before writing anything, so a bad one leaves no figure behind.
    log = read_log(args.log) if args.log is not None else None
    gan_sampler = load_sampler(args.checkpoint)
    vae_sampler = load_sampler(args.vae_checkpoint) if args.vae_checkpoint is not None else None
    gan_grid = sample_grid(*gan_sampler, n=32, nrow=8, seed=args.seed)
    save_image(gan_grid, args.out_dir / "fig2_2.png")
    written = ["fig2_2.png"]
    if log is not None:
        save_figure(gan_loss_figure(log, args.smooth), args.out_dir / "fig2_losses.png")
        written.append("fig2_losses.png")
    if vae_sampler is not None:
        vae_grid = sample_grid(*vae_sampler, n=32, nrow=8, seed=args.seed)
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
        for ax, grid, title in zip(axes, (vae_grid, gan_grid), ("VAE", "GAN")):
            ax.imshow(grid)
            ax.set_title(f"{title}: 32 samples from N(0, I)")
            ax.axis("off")
        save_figure(fig, args.out_dir / "fig2_vae_vs_gan.png")
        written.append("fig2_vae_vs_gan.png")
    print(f"wrote {', '.join(written)} to {args.out_dir}")
    return 0


def read_log(path: Path):
    """A training log as a DataFrame; a missing or malformed file is a UserError."""
    import pandas as pd

    from common import UserError

    if not Path(path).is_file():
        raise UserError(f"log not found: {path}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    needed = {"step", "loss_d", "loss_g", "d_real_acc", "d_fake_acc"}
    if not needed <= set(table.columns) or table.empty:
        raise UserError(f"{path} is not a train_gan.py log (needs rows with {', '.join(sorted(needed))})")
    return table


def gan_loss_figure(log, smooth: int = 50):
    """D and G losses (faint: per step; solid: moving average) and D's accuracy on real and fake."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    window = max(1, min(smooth, len(log)))
    for column, label, colour in (("loss_d", "D loss", "tab:blue"), ("loss_g", "G loss", "tab:orange")):
        ax_loss.plot(log["step"], log[column], color=colour, alpha=0.25, linewidth=0.8)
        ax_loss.plot(log["step"], log[column].rolling(window, min_periods=1).mean(), color=colour, label=label)
    for column, label, colour in (("d_real_acc", "D accuracy on real", "tab:green"),
                                  ("d_fake_acc", "D accuracy on fake", "tab:red")):
        ax_acc.plot(log["step"], log[column].rolling(window, min_periods=1).mean(), color=colour, label=label)
    ax_loss.set(xlabel="generator step", ylabel="loss", title=f"losses (moving average of {window} steps)")
    ax_acc.set(xlabel="generator step", ylabel="accuracy", ylim=(-0.02, 1.02), title="discriminator accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Problems 3 and 4: domain adaptation
# ---------------------------------------------------------------------------


def add_uda_commands(subparsers) -> None:
    """Problems 3 and 4's table and t-SNE figures (filled in with DANN and SWD)."""


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_vae_commands(subparsers)
    add_gan_commands(subparsers)
    add_uda_commands(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    cli(main)
