"""Regenerate every figure and table of the report from checkpoints and logs.

One sub-command per problem::

    python3 plots.py vae ...   # fig1_2, table1_3, fig1_4, fig1_5
    python3 plots.py gan ...   # fig2_2, loss curves, VAE vs GAN
    python3 plots.py uda ...   # accuracy table, t-SNE by class and by domain
    python3 plots.py digits ...  # Problem 5: 10x10 grids, the reverse process, training curves

Every figure uses a fixed seed, so a second run draws the same picture.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on the grader's or CI's machine
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import dann  # noqa: E402, F401  (registers its method)
import swd  # noqa: E402, F401  (registers its method)
from hw3 import artifacts, uda  # noqa: E402
import vae  # noqa: E402, F401  (registers its checkpoint kind)
from hw3 import checkpoints  # noqa: E402
from hw3.domains import FACES, split_folder  # noqa: E402
from hw3.checkpoints import CLASSIFIERS, load_model  # noqa: E402
from hw3.common import UserError, atomic_path, batched, cli, markdown_table, progress, write_text  # noqa: E402
from datasets import SCENARIOS, load_digits, load_faces, to_float, train_val_split  # noqa: E402
from hw3.ddpm import GUIDANCE, DiffusionSampler  # noqa: E402
from hw3.images import class_grid, deterministic, save_image  # noqa: E402
from sample import face_grid, load_sampler  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def moving_average(series: pd.Series, window: int) -> pd.Series:
    """The mean of the last ``window`` values at each step (fewer at the start)."""
    return series.rolling(window, min_periods=1).mean()


def read_log(path: Path, columns: set[str], writer: str) -> pd.DataFrame:
    """A training log with at least ``columns``; a missing or malformed file is a UserError."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"training log not found: {path} (give --log)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read training log {path}: {err}") from None
    missing = columns - set(table.columns)
    if missing or table.empty:
        raise UserError(f"{path} is not a {writer} log (empty, or lacks {', '.join(sorted(missing))})")
    return table


def tsne_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """Seeded 2-D t-SNE of ``(N, D)`` features; perplexity 30, or less for sets too small for it."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(1.0, (len(features) - 1) / 3))  # sklearn needs it below N
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


# ---------------------------------------------------------------------------
# Problem 1: VAE
# ---------------------------------------------------------------------------


def _vae_eval_set(root: Path, checkpoint: dict):
    """face/test when it exists; otherwise the checkpoint's validation split of face/train."""
    if split_folder(root, FACES, "test").is_dir():
        return load_faces(root, "test"), "face/test"
    split = checkpoint["extra"]
    _, val = train_val_split(load_faces(root, "train"), split["val_fraction"], split["split_seed"])
    print(f"note: {split_folder(root, FACES, 'test')} not found; using the validation split of face/train "
          f"({len(val)} images)", file=sys.stderr)
    return val, "validation split of face/train"


def _vae_encode_decode(model, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means (N, latent_dim) and their decodings (N, 3, 64, 64) in [0, 1] for uint8 images."""
    def encode_decode(x):
        mu, _ = model.encode(to_float(x))
        return mu, model.decode(mu).clamp(0, 1)

    return batched(encode_decode, images, batch_size=256)


def plot_vae_curves(log: pd.DataFrame, path: Path) -> Path:
    """fig1_2: reconstruction MSE and KL per step (raw and smoothed), validation MSE per epoch."""
    fig, (ax_rec, ax_kl) = plt.subplots(1, 2, figsize=(11, 4))
    window = max(1, len(log) // 50)
    for ax, column, label in ((ax_rec, "recon", "reconstruction MSE (pixel mean)"),
                              (ax_kl, "kl", "KL divergence (nats, sum over latent dims)")):
        if window > 1:
            ax.plot(log["step"], log[column], color="tab:blue", alpha=0.3, linewidth=0.8, label="train batch")
            ax.plot(log["step"], moving_average(log[column], window), color="tab:blue",
                    label=f"train, mean of {window} steps")
        else:
            ax.plot(log["step"], log[column], color="tab:blue", label="train batch")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    val = log.dropna(subset=["val_mse"])
    ax_rec.plot(val["step"], val["val_mse"], "o-", color="tab:orange", markersize=3, label="validation (per epoch)")
    if (log["recon"] > 0).all():
        ax_rec.set_yscale("log")
    ax_rec.set_title("Reconstruction loss")
    ax_kl.set_title("KL divergence")
    ax_rec.legend()
    ax_kl.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_vae_table(names: list[str], images: torch.Tensor, recons: torch.Tensor, mse: np.ndarray,
                   figure_path: Path, csv_path: Path, source: str) -> None:
    """table1_3: input row, reconstruction row and each image's MSE, as a figure and a CSV."""
    n = len(names)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n + 1, 3.4), squeeze=False)
    for i in range(n):
        for row, batch in enumerate((images, recons)):
            ax = axes[row, i]
            ax.imshow(batch[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, i].set_title(names[i], fontsize=8)
        axes[1, i].set_xlabel(f"MSE\n{mse[i]:.5f}", fontsize=8)
    axes[0, 0].set_ylabel("test image" if source == "face/test" else "held-out image")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle(f"{n} images from {source}, reconstructed from the posterior mean (MSE on [0, 1] pixels)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, figure_path)
    with atomic_path(csv_path) as tmp:
        pd.DataFrame({"image_name": names, "mse": mse}).to_csv(tmp, index=False, float_format="%.6f")


def plot_vae_tsne(means: np.ndarray, values: np.ndarray, attribute: str, path: Path, seed: int, source: str) -> Path:
    """fig1_5: 2-D t-SNE of the latent means, one colour per value of ``attribute``."""
    points = tsne_2d(means, seed)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for k, value in enumerate(np.unique(values)):
        chosen = values == value
        text = f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
        ax.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.7, color=plt.cm.tab10(k % 10),
                   label=f"{attribute} = {text} ({chosen.sum()})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(f"t-SNE of VAE latent means ({len(means)} images, {source})", fontsize=9)
    ax.legend(markerscale=2)
    fig.tight_layout()
    return save_figure(fig, path)


def vae_figures(args) -> int:
    """Write fig1_2, table1_3 (.png and .csv), fig1_4 and fig1_5 into ``args.out_dir``."""
    model, checkpoint = load_model(args.checkpoint, (checkpoints.VAE,))
    log = read_log(args.log or args.checkpoint.parent / artifacts.LOG, {"step", "recon", "kl", "val_mse"}, "train_vae.py")
    data, source = _vae_eval_set(args.data, checkpoint)
    if data.attributes is None or args.attribute not in data.attributes.columns:
        columns = [] if data.attributes is None else list(data.attributes.columns)
        raise UserError(f"attribute {args.attribute!r} not found; choose one of: {', '.join(columns) or '(none)'}")
    out = args.out_dir

    plot_vae_curves(log, out / artifacts.VAE_CURVES)

    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(len(data), size=min(10, len(data)), replace=False))
    picked = data.subset(chosen)
    _, recons = _vae_encode_decode(model, picked.images)
    originals = picked.images.float() / 255
    mse = (recons - originals).pow(2).flatten(1).mean(1).numpy()
    plot_vae_table(picked.names, originals, recons, mse, out / artifacts.VAE_TABLE, out / artifacts.VAE_TABLE_CSV, source)

    # The same grid as `hw3_p1.sh` writes (sample.py, deterministic kernels, CPU).
    save_image(face_grid(load_sampler(args.checkpoint), seed=args.seed), out / artifacts.VAE_SAMPLES)

    means, _ = _vae_encode_decode(model, data.images)
    values = data.attributes[args.attribute].to_numpy()
    plot_vae_tsne(means.numpy(), values, args.attribute, out / artifacts.VAE_TSNE, args.seed, source)
    if not args.quiet:
        print(f"wrote fig1_2.png, table1_3.png, table1_3.csv, fig1_4.png, fig1_5.png to {out}")
    return 0


def add_vae_commands(subparsers) -> None:
    """``plots.py vae``: Problem 1's fig1_2, table1_3, fig1_4 and fig1_5."""
    parser = subparsers.add_parser("vae", help="Problem 1 figures from a VAE checkpoint and its log",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="model.pt (or best.pt) from train_vae.py")
    parser.add_argument("--log", type=Path, default=None, help="log.csv of the run (default: beside the checkpoint)")
    parser.add_argument("--data", required=True, type=Path, help="the hw3_data folder (face/test, else face/train)")
    parser.add_argument("--out-dir", type=Path, default=Path("report"), help="where the figures go")
    parser.add_argument("--attribute", default="Male", help="face attribute that colours the t-SNE points")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image choice, the noise and t-SNE")
    parser.add_argument("--quiet", action="store_true", help="no summary line")
    parser.set_defaults(func=vae_figures)


# ---------------------------------------------------------------------------
# Problem 2: GAN
# ---------------------------------------------------------------------------


def gan_figures(args) -> int:
    """Write fig2_2 (the bytes hw3_p2.sh writes), fig2_losses and fig2_vae_vs_gan into ``args.out_dir``."""
    # Read every input before writing anything, so a bad one leaves no figure behind.
    columns = {"step", "loss_d", "loss_g", "d_real_acc", "d_fake_acc"}
    beside = args.checkpoint.parent / artifacts.LOG  # the run's own log, as plots.py vae finds it
    log_path = args.log if args.log is not None else (beside if beside.is_file() else None)
    log = read_log(log_path, columns, "train_gan.py") if log_path is not None else None
    gan_grid = face_grid(load_sampler(args.checkpoint), seed=args.seed)  # the bytes hw3_p2.sh writes
    vae_grid = face_grid(load_sampler(args.vae_checkpoint), seed=args.seed) if args.vae_checkpoint else None
    save_image(gan_grid, args.out_dir / artifacts.GAN_SAMPLES)
    written = [artifacts.GAN_SAMPLES]
    if log is not None:
        save_figure(gan_loss_figure(log, args.smooth), args.out_dir / artifacts.GAN_LOSSES)
        written.append(artifacts.GAN_LOSSES)
    if vae_grid is not None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
        for ax, grid, title in zip(axes, (vae_grid, gan_grid), ("VAE", "GAN")):
            ax.imshow(grid)
            ax.set_title(f"{title}: 32 samples from N(0, I)")
            ax.axis("off")
        save_figure(fig, args.out_dir / artifacts.VAE_VS_GAN)
        written.append(artifacts.VAE_VS_GAN)
    print(f"wrote {', '.join(written)} to {args.out_dir}")
    return 0


def gan_loss_figure(log: pd.DataFrame, smooth: int = 50):
    """D and G losses (faint: per step; solid: moving average) and D's accuracy on real and fake."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    window = max(1, min(smooth, len(log)))
    for column, label, colour in (("loss_d", "D loss", "tab:blue"), ("loss_g", "G loss", "tab:orange")):
        ax_loss.plot(log["step"], log[column], color=colour, alpha=0.25, linewidth=0.8)
        ax_loss.plot(log["step"], moving_average(log[column], window), color=colour, label=label)
    for column, label, colour in (("d_real_acc", "D accuracy on real", "tab:green"),
                                  ("d_fake_acc", "D accuracy on fake", "tab:red")):
        ax_acc.plot(log["step"], moving_average(log[column], window), color=colour, label=label)
    ax_loss.set(xlabel="generator step", ylabel="loss", title=f"losses (moving average of {window} steps)")
    ax_acc.set(xlabel="generator step", ylabel="accuracy", ylim=(-0.02, 1.02), title="discriminator accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def add_gan_commands(subparsers) -> None:
    """``plots.py gan``: Problem 2's fig2_2, the training curves and the VAE vs GAN comparison."""
    parser = subparsers.add_parser(
        "gan", help="fig2_2.png, fig2_losses.png and fig2_vae_vs_gan.png",
        description="fig2_2.png (the same image hw3_p2.sh writes), fig2_losses.png from a training log, "
                    "and fig2_vae_vs_gan.png when a VAE checkpoint is given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="the gan model.pt (checkpoints/gan.pt)")
    parser.add_argument("--log", type=Path, default=None,
                        help="train_gan.py's log.csv, for the loss curves (default: log.csv beside the checkpoint)")
    parser.add_argument("--vae-checkpoint", type=Path, default=None, help="a vae model.pt, for the side-by-side figure")
    parser.add_argument("--out-dir", type=Path, default=Path("report"), help="where the figures go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (hw3_p2.sh uses 0)")
    parser.add_argument("--smooth", type=int, default=50, help="steps in the moving average of the curves")
    parser.set_defaults(func=gan_figures)


# ---------------------------------------------------------------------------
# Problems 3 and 4: domain adaptation
# ---------------------------------------------------------------------------


def uda_accuracy_table(runs: Path) -> tuple[list[str], list[list[str]]]:
    """Rows: one per method; columns: the scenarios; cells: target test accuracy in %.

    Reads ``runs/<method>_<source>-<target>/metrics.json``; a run not there is an empty cell.
    """
    header = ["method", *(f"{s}->{t}" for s, t in SCENARIOS)]
    rows = []
    for method in uda.METHODS:
        row = [uda.METHOD_TITLES[method]]
        for source, target in SCENARIOS:
            path = runs / uda.run_name(method, source, target) / artifacts.METRICS
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
    csv_path, md_path = out_dir / artifacts.UDA_TABLE, out_dir / artifacts.UDA_TABLE_MD
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])
    table = markdown_table(["", *header[1:]], ([r[0], *(f"{c} %" if c else "–" for c in r[1:])] for r in rows))
    write_text(md_path, "Target test accuracy\n\n" + table)
    return csv_path, md_path


def uda_tsne_features(run_dir: Path, data_root: Path, per_domain: int, seed: int) -> dict:
    """One run's features of ``per_domain`` seeded source and target *test* images, with their classes and domains."""
    model, checkpoint = load_model(run_dir / artifacts.MODEL, CLASSIFIERS)
    method, source, target = checkpoint["config"]["method"], checkpoint["run"]["source"], checkpoint["run"]["target"]
    rng = np.random.default_rng(seed)
    features, labels, domains = [], [], []
    for d, domain in enumerate((source, target)):
        data = load_digits(data_root, domain, "test")
        keep = np.sort(rng.permutation(len(data))[:per_domain])
        features.append(batched(lambda x: model.features(to_float(x)), data.images[keep], 512).numpy())
        labels.append(data.labels.numpy()[keep])
        domains.append(np.full(len(keep), d))
    return {"method": method, "source": source, "target": target, "features": np.concatenate(features),
            "labels": np.concatenate(labels), "domains": np.concatenate(domains)}


def tsne_figure(points: np.ndarray, colours: np.ndarray, names: list[str], cmap: str, title: str) -> plt.Figure:
    """A 2-D embedding ``(N, 2)`` as a scatter, point ``i`` coloured by ``names[colours[i]]``."""
    fig, ax = plt.subplots(figsize=(6, 6))
    palette = plt.get_cmap(cmap)
    for value, name in enumerate(names):
        mask = colours == value
        colour = palette(value / max(1, len(names) - 1)) if cmap == "coolwarm" else palette(value)
        ax.scatter(points[mask, 0], points[mask, 1], s=4, color=colour, label=name, alpha=0.7)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=7, loc="best")
    return fig


def plot_uda_tsne(run_dir: Path, data_root: Path, out_dir: Path, per_domain: int, seed: int) -> list[Path]:
    """t-SNE of the source and target *test* features of one run, coloured by class and by domain."""
    run = uda_tsne_features(run_dir, data_root, per_domain, seed)
    points = tsne_2d(run["features"], seed)
    source, target = run["source"], run["target"]
    name = uda.run_name(run["method"], source, target)
    written = []
    for colour, values, names, cmap in (("class", run["labels"], [str(i) for i in range(10)], "tab10"),
                                        ("domain", run["domains"], [f"source ({source})", f"target ({target})"],
                                         "coolwarm")):
        title = f"t-SNE by {colour}: {run['method']}, {source} -> {target}"
        written.append(save_figure(tsne_figure(points, values, names, cmap, title),
                                   out_dir / artifacts.tsne_figure(name, colour)))
    return written


def uda_report(args) -> int:
    """Write the accuracy table and, unless ``--no-tsne``, both t-SNE figures of every run of ``--methods``."""
    runs, out_dir = Path(args.runs), Path(args.out_dir)
    header, rows = uda_accuracy_table(runs)
    for path in write_uda_table(header, rows, out_dir):
        if not args.quiet:
            print(path)
    if args.no_tsne:
        return 0
    if args.data is None:
        raise UserError("t-SNE needs --data (the hw3_data folder); or pass --no-tsne")
    run_dirs = sorted(p.parent for p in runs.glob("*_*-*/model.pt") if p.parent.name.partition("_")[0] in args.methods)
    for run_dir in progress(run_dirs, args.quiet, desc="t-SNE"):
        for path in plot_uda_tsne(run_dir, Path(args.data), out_dir, args.per_domain, args.seed):
            if not args.quiet:
                print(path)
    return 0


def add_uda_commands(subparsers) -> None:
    """``plots.py uda``: Problems 3 and 4's accuracy table (markdown + CSV) and t-SNE by class and by domain."""
    parser = subparsers.add_parser("uda", help="domain-adaptation accuracy table and t-SNE figures",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", default=str(Path(artifacts.RUNS) / artifacts.UDA_RUNS),
                        help="folder of train_uda.py runs <method>_<source>-<target>")
    parser.add_argument("--data", default=None, help="the hw3_data folder (test images for t-SNE)")
    parser.add_argument("--out-dir", default="report/uda")
    parser.add_argument("--per-domain", type=int, default=1000, help="test images per domain in each t-SNE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tsne", action="store_true", help="only the accuracy table")
    parser.add_argument("--methods", nargs="+", choices=list(uda.METHODS), default=list(uda.METHODS),
                        help="the methods whose runs get t-SNE figures (the report shows the graded ones')")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=uda_report)


# ---------------------------------------------------------------------------
# Problem 5: class-conditional digits
# ---------------------------------------------------------------------------


def reverse_process_figure(sampler, digit: int = 0, shown: int = 6, seed: int = 0, steps: int = 100):
    """One ``digit`` at ``shown`` evenly spaced steps of DDPM's reverse process, noise to image.

    Ancestral sampling (``eta = 1``) over ``steps`` evenly strided time steps: DDPM's own
    sampler when ``steps = T``; 100 keeps the figure to seconds on a CPU and looks the same.
    """
    full = DiffusionSampler(sampler.model, sampler.schedule, steps=min(steps, sampler.schedule.timesteps), eta=1.0,
                            guidance=sampler.guidance)
    trajectory: list = []
    with deterministic():
        full.generate(torch.tensor([digit]), torch.Generator().manual_seed(seed), trajectory)
    picks = np.linspace(0, len(trajectory) - 1, shown).round().astype(int)
    fig, axes = plt.subplots(1, shown, figsize=(1.6 * shown, 2.0))
    for ax, i in zip(axes, picks):
        t, x = trajectory[i]
        ax.imshow(((x[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(f"t = {t}")
        ax.axis("off")
    fig.tight_layout()
    return fig


def digit_curves_figure(logs: dict[str, pd.DataFrame], smooth: int):
    """Problem 5's training curves, one panel per model log (``acgan``: losses and D's class accuracy; ``ddpm``: loss)."""
    fig, axes = plt.subplots(1, len(logs), figsize=(5.5 * len(logs), 3.8), squeeze=False)
    for ax, (name, log) in zip(axes[0], logs.items()):
        window = max(1, min(smooth, len(log)))
        columns = ["loss_d", "loss_g"] if name == checkpoints.ACGAN else ["loss"]
        for column in columns:
            ax.plot(log["step"], moving_average(log[column], window), label=column)
        if name == checkpoints.ACGAN:
            twin = ax.twinx()
            twin.plot(log["step"], moving_average(log["d_class_acc"], window), color="tab:green",
                      label="D class accuracy (real)")
            twin.set(ylim=(0, 1.02), ylabel="accuracy")
            twin.legend(loc="center right")
        ax.set(xlabel="step", ylabel="loss", title=f"{name.upper()} (moving average of {window} steps)")
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def digits_figures(args) -> int:
    """Problem 5: fig5_<model>_grid.png for each checkpoint, fig5_reverse.png (DDPM) and fig5_curves.png."""
    from generate_digits import load_generator

    paths = {checkpoints.ACGAN: args.acgan, checkpoints.DDPM: args.ddpm}
    if not any(paths.values()):
        raise UserError("give --acgan and/or --ddpm")
    logs = {}  # read every input before writing anything
    if args.acgan_log is not None:
        logs[checkpoints.ACGAN] = read_log(args.acgan_log, {"step", "loss_d", "loss_g", "d_class_acc"}, "train_gan.py --task digits")
    if args.ddpm_log is not None:
        logs[checkpoints.DDPM] = read_log(args.ddpm_log, {"step", "loss"}, "train_ddpm.py")
    generators = {name: load_generator(path, guidance=args.guidance) for name, path in paths.items() if path}
    written = []
    for name, generator in generators.items():
        with deterministic():
            save_image(class_grid(generator.generate, seed=args.seed), args.out_dir / artifacts.digit_grid(name))
        written.append(artifacts.digit_grid(name))
        if isinstance(generator, DiffusionSampler):
            save_figure(reverse_process_figure(generator, seed=args.seed), args.out_dir / artifacts.DDPM_REVERSE)
            written.append(artifacts.DDPM_REVERSE)
    if logs:
        fig = digit_curves_figure(logs, args.smooth)
        save_figure(fig, args.out_dir / artifacts.DIGIT_CURVES)
        written.append(artifacts.DIGIT_CURVES)
    print(f"wrote {', '.join(written)} to {args.out_dir}")
    return 0


def add_digits_commands(subparsers) -> None:
    """``plots.py digits``: Problem 5's grids, reverse process and curves."""
    parser = subparsers.add_parser(
        "digits", help="fig5_acgan_grid.png, fig5_ddpm_grid.png, fig5_reverse.png, fig5_curves.png",
        description="10 digits of each class per model, one class per row; the DDPM reverse process of one "
                    "0 at six time steps; the training curves.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--acgan", type=Path, default=None, help="an ACGAN model.pt (train_gan.py --task digits)")
    parser.add_argument("--ddpm", type=Path, default=None, help="a DDPM model.pt (train_ddpm.py)")
    parser.add_argument("--acgan-log", type=Path, default=None, help="the ACGAN's log.csv")
    parser.add_argument("--ddpm-log", type=Path, default=None, help="the DDPM's log.csv")
    parser.add_argument("--guidance", type=float, default=GUIDANCE, help="DDPM: classifier-free guidance weight w")
    parser.add_argument("--out-dir", type=Path, default=Path("report"), help="where the figures go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smooth", type=int, default=50, help="steps in the moving average of the curves")
    parser.set_defaults(func=digits_figures)


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_vae_commands(subparsers)
    add_gan_commands(subparsers)
    add_uda_commands(subparsers)
    add_digits_commands(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    cli(main)
