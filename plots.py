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
    """Problem 2's figures (filled in with the GAN)."""


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
