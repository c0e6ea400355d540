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


UDA_METHODS = (("source-only", "Trained on source"), ("dann", "Adaptation (DANN)"),
               ("swd", "Adaptation (SWD)"), ("target-only", "Trained on target"))


def uda_accuracy_table(runs: Path) -> tuple[list[str], list[list[str]]]:
    """Rows source-only / DANN / SWD / target-only, columns the scenarios: target test accuracy in %.

    Reads ``runs/<method>_<source>-<target>/metrics.json``; a run not there is an empty cell.
    """
    import json

    from common import UserError
    from datasets import SCENARIOS

    header = ["method", *(f"{s}->{t}" for s, t in SCENARIOS)]
    rows = []
    for method, label in UDA_METHODS:
        row = [label]
        for source, target in SCENARIOS:
            path = runs / f"{method}_{source}-{target}" / "metrics.json"
            try:
                row.append(f"{100 * json.loads(path.read_text())['target_test_accuracy']:.2f}")
            except FileNotFoundError:
                row.append("")
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{path} is not a metrics file of train_uda.py") from None
        rows.append(row)
    if all(cell == "" for row in rows for cell in row[1:]):
        raise UserError(f"no runs under {runs}: expected <method>_<source>-<target>/metrics.json from train_uda.py")
    return header, rows


def write_uda_table(header: list[str], rows: list[list[str]], out_dir: Path) -> tuple[Path, Path]:
    """The accuracy table as ``uda_accuracy.csv`` and ``uda_accuracy.md`` (written atomically)."""
    import csv

    csv_path, md_path = out_dir / "uda_accuracy.csv", out_dir / "uda_accuracy.md"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    lines = ["| " + " | ".join(["", *header[1:]]) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([r[0], *(f"{c} %" if c else "–" for c in r[1:])]) + " |" for r in rows]
    with atomic_path(md_path) as tmp:
        tmp.write_text("Target test accuracy\n\n" + "\n".join(lines) + "\n")
    return csv_path, md_path


def tsne_embedding(features, seed: int = 0):
    """2-D t-SNE of ``(N, D)`` features, seeded; perplexity shrinks for tiny sets."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(features) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def plot_uda_tsne(run_dir: Path, data_root: Path, out_dir: Path, per_domain: int, seed: int) -> list[Path]:
    """t-SNE of the source and target *test* features of one run, coloured by class and by domain."""
    import numpy as np
    import torch

    from datasets import load_digits, to_float
    from predict import load_model

    model, checkpoint = load_model(run_dir / "model.pt")
    source, target = checkpoint["source"], checkpoint["target"]
    rng = np.random.default_rng(seed)
    features, labels, domains = [], [], []
    for d, domain in enumerate((source, target)):
        data = load_digits(data_root, domain, "test")
        keep = np.sort(rng.permutation(len(data))[:per_domain])
        with torch.no_grad():
            images = data.images[torch.from_numpy(keep)]
            features.append(torch.cat([model.features(to_float(images[i:i + 512])) for i in range(0, len(images), 512)]).numpy())
        labels.append(data.labels.numpy()[keep])
        domains.append(np.full(len(keep), d))
    points = tsne_embedding(np.concatenate(features), seed)
    labels, domains = np.concatenate(labels), np.concatenate(domains)
    stem = f"tsne_{checkpoint['method']}_{source}-{target}"
    title = f"{checkpoint['method']}, {source} -> {target}"
    written = []
    for suffix, colours, names, cmap in (("class", labels, [str(i) for i in range(10)], "tab10"),
                                         ("domain", domains, [f"source ({source})", f"target ({target})"], "coolwarm")):
        fig, ax = plt.subplots(figsize=(6, 6))
        palette = plt.get_cmap(cmap)
        for value, name in enumerate(names):
            mask = colours == value
            colour = palette(value / max(1, len(names) - 1)) if cmap == "coolwarm" else palette(value)
            ax.scatter(points[mask, 0], points[mask, 1], s=4, color=colour, label=name, alpha=0.7)
        ax.set_title(f"t-SNE by {suffix}: {title}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=7, loc="best")
        written.append(save_figure(fig, out_dir / f"{stem}_{suffix}.png"))
    return written


def uda_report(args) -> int:
    from common import UserError, progress

    runs, out_dir = Path(args.runs), Path(args.out_dir)
    header, rows = uda_accuracy_table(runs)
    for path in write_uda_table(header, rows, out_dir):
        print(path)
    if args.no_tsne:
        return 0
    if args.data is None:
        raise UserError("t-SNE needs --data (the hw3_data folder); or pass --no-tsne")
    run_dirs = sorted(p.parent for p in runs.glob("*_*-*/model.pt"))
    for run_dir in progress(run_dirs, args.quiet, desc="t-SNE"):
        for path in plot_uda_tsne(run_dir, Path(args.data), out_dir, args.per_domain, args.seed):
            print(path)
    return 0


def add_uda_commands(subparsers) -> None:
    """Problems 3 and 4: the accuracy table (markdown + CSV) and t-SNE by class and by domain."""
    parser = subparsers.add_parser("uda", help="DANN/SWD accuracy table and t-SNE figures",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", default="runs/uda", help="folder of train_uda.py runs <method>_<source>-<target>")
    parser.add_argument("--data", default=None, help="the hw3_data folder (test images for t-SNE)")
    parser.add_argument("--out-dir", default="report/uda")
    parser.add_argument("--per-domain", type=int, default=1000, help="test images per domain in each t-SNE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tsne", action="store_true", help="only the accuracy table")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=uda_report)


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
