"""Problem 5's measurements: class-conditional digits judged by three classifiers, and their FID beside real digits'.

    python3 demo_data.py --out demo_data
    python3 benchmarks/digit_generation.py --dev demo_data --out runs/p5 --jobs 2

Per data tree (``--dev``, and ``--heldout`` when given, only reported) and generator
(``--models``: the ACGAN of ``train_gan.py --task digits`` and the DDPM of ``train_ddpm.py``,
each with its own defaults plus what ``--acgan-args``/``--ddpm-args`` add):

- three judges: target-only digit classifiers of seeds 0, 1, 2 (``train_uda.py --method
  target-only``, the UDA study's budget), each with its accuracy on the real test digits;
- 1,000 generated digits, 100 per class (``generate_digits.py``, seed 0; the DDPM at each
  ``--guidance`` weight w), scored by each judge, overall and per class;
- FID and KID of those 1,000 against the domain's test digits (``fidelity.py score``, the TF
  FID Inception), and the same of 1,000 real train digits, 100 per class, as the floor
  that a generator's FID is read against at this sample size;
- each generator's training time (its checkpoint's totals, one CPU thread).

Finished steps are skipped, so the command can be run again until it is done. It writes
``--report`` (markdown), its ``.csv`` (one row per folder scored) and ``_curve.png`` (the
DDPM's accuracy against FID over w).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import generate_digits  # noqa: E402
import uda_study  # noqa: E402
from datasets import DIGIT_SIZE, load_digits  # noqa: E402
from hw3 import artifacts, ddpm  # noqa: E402
from hw3.checkpoints import ACGAN, DDPM  # noqa: E402
from hw3.common import cli, command_line, markdown_table, write_text  # noqa: E402
from hw3.digitnet import NUM_CLASSES  # noqa: E402
from hw3.images import write_folder  # noqa: E402
from hw3.jobs import run_jobs  # noqa: E402
from hw3.method import TARGET_ONLY  # noqa: E402

DOMAIN = "mnistm"  # the course judged Problem 5 on MNIST-M digits
JUDGE_SEEDS = (0, 1, 2)
TRAINERS = {ACGAN: ["train_gan.py", "--task", "digits"], DDPM: ["train_ddpm.py"]}
TITLES = {ACGAN: "ACGAN", DDPM: "DDPM"}
SPLITS = uda_study.SPLITS


def real_floor(tree: Path, out_dir: Path, per_class: int = 100, seed: int = 0) -> Path:
    """``per_class`` seeded real train digits of each class, named like generated ones (``<digit>_<nnn>.png``);
    every train digit when a class has fewer (a small held-out tree), with no image twice."""
    if out_dir.is_dir():
        return out_dir
    train = load_digits(tree, DOMAIN, "train")
    labels = train.labels.numpy()
    take = min(per_class, *(int((labels == d).sum()) for d in range(NUM_CLASSES))) or None
    rng = np.random.default_rng(seed)
    picked, names = [], []
    for digit in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == digit)
        chosen = rows if take is None else np.sort(rng.choice(rows, take, replace=False))
        picked += chosen.tolist()
        names += [f"{digit}_{i + 1:03d}.png" for i in range(len(chosen))]
    return write_folder(train.images[torch.tensor(picked)].float() / 255, names, out_dir)


def subset_tree(tree: Path, n: int, out_dir: Path) -> Path:
    """``tree`` with only ``n`` of its mnistm train digits (sampled with seed 0, in their order), the rest linked.

    A control for training-set size: judges, generators and the floor all see the same ``n`` digits.
    """
    if out_dir.is_dir():
        return out_dir
    train = tree / "digits" / DOMAIN / "train"
    table = pd.read_csv(train.with_suffix(".csv"))
    if not 0 < n <= len(table):
        raise SystemExit(f"error: --train-digits must be between 1 and the {len(table)} train digits of {tree}")
    kept = table.sample(n, random_state=0).sort_index()
    tmp = out_dir.with_name(out_dir.name + ".partial")  # renamed onto out_dir once whole
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "digits" / DOMAIN / "train").mkdir(parents=True)
    for top in tree.iterdir():
        if top.name != "digits":
            (tmp / top.name).symlink_to(top.resolve())
    for domain in (tree / "digits").iterdir():
        if domain.name != DOMAIN:
            (tmp / "digits" / domain.name).symlink_to(domain.resolve())
    for entry in (tree / "digits" / DOMAIN).iterdir():
        if entry.name not in ("train", "train.csv"):
            (tmp / "digits" / DOMAIN / entry.name).symlink_to(entry.resolve())
    for name in kept.image_name:
        (tmp / "digits" / DOMAIN / "train" / name).symlink_to((train / name).resolve())
    kept.to_csv(tmp / "digits" / DOMAIN / "train.csv", index=False)
    tmp.rename(out_dir)
    return out_dir


def run_dir(out: Path, split: str, model: str, tag: str) -> Path:
    """A generator's training run on one tree."""
    return out / split / f"{model}{tag}"


def folders(out: Path, split: str, models: list[str], guidance: list[float], tag: str,
            sampler: tuple[int, float]) -> dict[str, dict]:
    """Every folder to score on one tree: its model, w, checkpoint, sampler and where its images and FID go.

    ``sampler``: the DDPM's (DDIM steps, eta); a folder name says when they are not the defaults.
    """
    found = {"real": {"model": "real", "w": None, "images": out / split / "real_train", "checkpoint": None}}
    steps, eta = sampler
    suffix = "" if sampler == (ddpm.SAMPLE_STEPS, 0.0) else f"_s{steps}_eta{eta:g}"
    for model in models:
        for w in (guidance if model == DDPM else [None]):
            name = f"{model}{tag}" + ("" if w is None else f"_w{w:g}{suffix}")
            found[name] = {"model": model, "w": w, "checkpoint": run_dir(out, split, model, tag) / artifacts.MODEL,
                           "images": out / split / "generated" / name,
                           "sampler": [] if w is None else ["--guidance", f"{w:g}", "--sample-steps", str(steps),
                                                            "--eta", f"{eta:g}"]}
    return found


def judge(split_dir: Path, seed: int) -> Path:
    return split_dir / f"judge{seed}"


def collect(out: Path, trees: dict, models: list[str], guidance: list[float], tag: str,
            sampler: tuple[int, float]) -> pd.DataFrame:
    rows = []
    for split, tree in trees.items():
        judges = [judge(out / split, s) / artifacts.MODEL for s in JUDGE_SEEDS]
        for name, spec in folders(out, split, models, guidance, tag, sampler).items():
            fid_path = spec["images"].with_suffix(".fid.json")
            if not fid_path.is_file():
                continue
            fid = json.loads(fid_path.read_text())
            row = {"split": split, "folder": name, "model": spec["model"], "w": spec["w"],
                   "sampler": f"{sampler[0]} steps, eta {sampler[1]:g}" if spec["w"] is not None else "–",
                   "fid": fid["fid"], "kid": fid["kid_mean"], "kid_std": fid["kid_std"],
                   "n_generated": fid["n_generated"], "n_real": fid["n_real"]}
            if spec["model"] != "real":
                scores = [generate_digits.score(spec["images"], j) for j in judges]
                for seed, s in zip(JUDGE_SEEDS, scores):
                    row[f"judge{seed}"] = s["accuracy"]
                for digit in range(NUM_CLASSES):
                    row[f"digit{digit}"] = float(np.mean([s["per_digit"][str(digit)] for s in scores]))
                saved = torch.load(spec["checkpoint"], map_location="cpu", weights_only=False)
                row.update(steps=saved["step"], wall_seconds=saved["wall_seconds"], cpu_seconds=saved["cpu_seconds"])
            rows.append(row)
        for seed in JUDGE_SEEDS:
            metrics = json.loads((judge(out / split, seed) / artifacts.METRICS).read_text())
            rows.append({"split": split, "folder": f"judge{seed}", "model": "judge",
                         "real_test_accuracy": metrics["target_test_accuracy"]})
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, command: str) -> str:
    lines = [f"Built-in digits, `{command}`.\n"]
    for split in dict.fromkeys(table["split"]):
        part = table[table.split == split]
        judges = part[part.model == "judge"].set_index("folder")["real_test_accuracy"]
        floor = part[part.model == "real"].iloc[0]
        lines += [f"**{SPLITS[split]} tree.** Judges (target-only classifiers, seeds {', '.join(map(str, JUDGE_SEEDS))}) on "
                  f"the real {DOMAIN} test digits: " + " / ".join(f"{100 * a:.1f} %" for a in judges) + ". "
                  f"The floor, {int(floor.n_generated)} real train digits against the {int(floor.n_real)} test digits: "
                  f"FID {floor.fid:.1f}, KID {floor.kid:.4f}.\n"]
        rows = []
        for r in part[part.model.isin(TRAINERS)].itertuples():
            accs = [100 * getattr(r, f"judge{s}") for s in JUDGE_SEEDS]
            rows.append([TITLES[r.model], r.sampler, "–" if pd.isna(r.w) else f"{r.w:g}",
                         " / ".join(f"{a:.1f}" for a in accs), f"{min(accs):.1f}",
                         *(f"{100 * getattr(r, f'digit{d}'):.0f}" for d in range(NUM_CLASSES)),
                         f"{r.fid:.1f}", f"{r.fid / floor.fid:.2f}x", f"{r.kid:.4f}",
                         f"{int(r.steps)}", f"{r.cpu_seconds / 60:.0f}"])
        lines += [markdown_table(["model", "sampler", "w", "accuracy % (judge 0 / 1 / 2)", "worst judge",
                                  *(f"{d}" for d in range(NUM_CLASSES)), "FID", "FID / floor", "KID",
                                  "updates", "CPU min"], rows),
                  "Digit columns: accuracy (%) per asked class, mean of the three judges.\n"]
    return "\n".join(lines)


def plot_curve(table: pd.DataFrame, path: Path) -> None:
    """The DDPM's mean judge accuracy against FID, a point per guidance weight, a line per tree."""
    import matplotlib.pyplot as plt

    from plots import save_figure  # sets the Agg backend

    diffusion = table[table.model == DDPM]
    if diffusion.empty:
        return
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for split in dict.fromkeys(diffusion["split"]):
        part = diffusion[diffusion.split == split].sort_values("w")
        accuracy = 100 * part[[f"judge{s}" for s in JUDGE_SEEDS]].mean(axis=1)
        line, = ax.plot(part["fid"], accuracy, marker="o", label=f"DDPM, {SPLITS[split]}")
        for w, x, y in zip(part["w"], part["fid"], accuracy):
            ax.annotate(f"w={w:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        floor = table[(table.split == split) & (table.model == "real")]["fid"].iloc[0]
        ax.axvline(floor, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("FID against the test digits (dotted: real train digits)")
    ax.set_ylabel("judge accuracy (%), mean of 3")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dev", required=True, type=Path, help="the development hw3_data tree (recipes are chosen here)")
    parser.add_argument("--heldout", type=Path, default=None, help="a held-out tree, only reported")
    parser.add_argument("--out", type=Path, default=Path("runs/p5"), help="run and image folders (skipped when done)")
    parser.add_argument("--splits", nargs="+", default=["dev", "heldout"], choices=["dev", "heldout"],
                        help="the trees to train and report (of those given)")
    parser.add_argument("--models", nargs="+", default=list(TRAINERS), choices=list(TRAINERS))
    parser.add_argument("--guidance", nargs="+", type=float, default=[0, 1, 2, 3, 5], help="the DDPM's weights w")
    parser.add_argument("--sample-steps", type=int, default=ddpm.SAMPLE_STEPS, help="the DDPM's DDIM steps")
    parser.add_argument("--eta", type=float, default=0.0, help="the DDPM sampler's eta (1: ancestral)")
    parser.add_argument("--acgan-args", default="", help="extra train_gan.py flags, quoted")
    parser.add_argument("--ddpm-args", default="", help="extra train_ddpm.py flags, quoted")
    parser.add_argument("--judge-args", default="", help="extra train_uda.py flags for the judges, quoted")
    parser.add_argument("--train-digits", type=int, default=None,
                        help="train judges and generators on this many of each tree's mnistm train digits "
                             "(a control for training-set size; the tree is linked under OUT/<split>/tree<N>)")
    parser.add_argument("--tag", default="", help="suffix of the generators' folder names (a variant's runs)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs in parallel (one CPU thread each)")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "digit_generation.md")
    parser.add_argument("--no-train", action="store_true", help="only write the report from what is done")
    args = parser.parse_args(argv)
    trees = {"dev": args.dev, **({"heldout": args.heldout} if args.heldout else {})}
    trees = {split: tree for split, tree in trees.items() if split in args.splits}
    if not trees:
        raise SystemExit("error: --splits names no tree that was given")
    if args.train_digits is not None:
        trees = {split: subset_tree(tree, args.train_digits, args.out / split / f"tree{args.train_digits}")
                 for split, tree in trees.items()}
    sampler = (args.sample_steps, args.eta)
    extra = {ACGAN: args.acgan_args.split(), DDPM: args.ddpm_args.split()}
    if not args.no_train:
        train, score, n_floor = {}, {}, {}
        for split, tree in trees.items():
            for seed in JUDGE_SEEDS:
                folder = judge(args.out / split, seed)
                if not (folder / artifacts.METRICS).is_file():
                    train[f"train {folder}"] = [["train_uda.py", "--data", str(tree), "--source", "usps", "--target",
                                                 DOMAIN, "--method", TARGET_ONLY.name, "--seed", str(seed),
                                                 "--out-dir", str(folder), "--quiet", *uda_study.BUDGET,
                                                 *args.judge_args.split()]]
            for model in args.models:
                run = run_dir(args.out, split, model, args.tag)
                train[f"train {run}"] = [[*TRAINERS[model], "--data", str(tree), "--domain", DOMAIN,
                                          "--out-dir", str(run), "--quiet", *extra[model]]]
            n_floor[split] = n = len(list(real_floor(tree, args.out / split / "real_train").glob("*.png")))
            test = str(tree / "digits" / DOMAIN / "test")
            for name, spec in folders(args.out, split, args.models, args.guidance, args.tag, sampler).items():
                images = spec["images"]
                if images.with_suffix(".fid.json").is_file():
                    continue
                # The generated set is scored at the floor's size, so their FIDs share one sample-size bias.
                fid = ["fidelity.py", "score", "--generated", str(images), "--real", test, "--size", str(DIGIT_SIZE),
                       "--json", str(images.with_suffix(".fid.json")), "--max-images", str(n)]
                make = [] if spec["checkpoint"] is None or images.is_dir() else [
                    ["generate_digits.py", "--checkpoint", str(spec["checkpoint"]), "--out-dir", str(images),
                     *spec["sampler"]]]
                score[f"score {images}"] = [*make, fid]
        run_jobs(train, args.jobs)
        import fidelity

        for split, tree in trees.items():  # once here, not once per worker beside each other
            fidelity.cache_real_features(tree / "digits" / DOMAIN / "test", DIGIT_SIZE, max_images=n_floor[split])
        run_jobs(score, args.jobs)
    table = collect(args.out, trees, args.models, args.guidance, args.tag, sampler)
    if table.empty or not (table.model == "real").any():
        raise SystemExit(f"error: nothing scored under {args.out}")
    command = command_line("benchmarks/digit_generation.py", argv)
    text = report(table, command)
    write_text(args.report, text)
    table.to_csv(args.report.with_suffix(".csv"), index=False)
    plot_curve(table, args.report.with_name(args.report.stem + "_curve.png"))
    print(text)
    return 0


if __name__ == "__main__":
    cli(main)
