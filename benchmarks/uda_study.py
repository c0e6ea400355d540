"""The domain-adaptation study: methods x scenarios x seeds on development and held-out data.

    python3 demo_data.py --out demo_data
    python3 demo_data.py --out demo_heldout --variant heldout
    python3 benchmarks/uda_study.py --dev demo_data --heldout demo_heldout --out runs/study --jobs 2

Every recipe choice is made on the ``--dev`` tree; the ``--heldout`` tree (other
handwriting, photographs and fonts; ``demo_data.py --variant heldout``) is only reported,
in its own columns, so its numbers say how a recipe does on data it was not chosen on.

Each run is ``train_uda.py`` with its defaults (the bounds keep their last evaluation, the adapting
methods the one with the best ``info_max``) at the study's budget (``BUDGET``: 1,000
updates), plus what ``--train-args`` adds, and ``--log-test-accuracy``, so every evaluation's label-free scores sit beside the target
test accuracy in its ``log.csv``. Finished runs (with ``metrics.json``) are skipped and
interrupted ones resume, so the command can be run again until it is done. It writes
``--report`` (markdown), its ``.csv`` (one row per run), ``_curves.csv`` (one row per
evaluation) and ``_curves.png``:

- target test accuracy per method and scenario, mean +- std over the seeds, of the
  evaluation the default criterion (``train_uda.py --select``) keeps;
- the convergence curves: mean target test accuracy at each evaluation;
- per selection choice (each label-free criterion, and ``last``, the log's last row), its
  regret: the best test accuracy among a run's evaluations minus the accuracy of the
  evaluation the choice picks, averaged over the adapted runs. Only this study reads
  those labels, as model-selection papers score validators; no training run reads a
  target label;
- per method, the mean wall-clock and CPU seconds of a run (train_uda.py's totals over
  every resumed segment). Runs share the cores, so wall time grows with ``--jobs``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dann  # noqa: E402,F401  (registers its method)
import swd  # noqa: E402,F401  (registers its method)
from hw3 import artifacts, selection  # noqa: E402
from hw3 import uda  # noqa: E402
from hw3.common import cli, command_line, markdown_table, write_text  # noqa: E402
from hw3.jobs import run_jobs  # noqa: E402

SCENARIOS = (("mnist", "mnistm"), ("usps", "mnistm"), ("mnistm", "svhn"), ("svhn", "usps"))
# The study's budget: 1,000 updates of 64, evaluated every 100 (train_uda.py's own is 10 passes over
# the larger train set, sized for the real 60,000-73,257-image domains).
BUDGET = ["--epochs", "10", "--steps-per-epoch", "100"]
SPLITS = {"dev": "dev", "heldout": "held-out"}  # the data tree's role: where recipes are chosen, or only reported


def evaluations(run_dir: Path) -> pd.DataFrame:
    """The evaluation rows of a run's log: one per epoch, with every criterion and the test accuracy."""
    log = pd.read_csv(run_dir / artifacts.LOG)
    return log.dropna(subset=["source_val_acc"]).reset_index(drop=True)


def run_dir(out: Path, split: str, seed: int, method: str, source: str, target: str) -> Path:
    return out / split / f"seed{seed}" / uda.run_name(method, source, target)


def collect(out: Path, splits, methods, pairs: dict, seeds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per finished run, the accuracy kept by each selection choice and the best in hindsight; and every evaluation.

    ``pairs`` maps each split to its (source, target) scenarios. A run's ``wall_seconds`` and
    ``cpu_seconds`` are train_uda.py's totals over the whole run, resumed segments included.
    """
    rows, curves = [], []
    runs = [(split, method, pair, seed) for split in splits
            for method, pair, seed in itertools.product(methods, pairs[split], seeds)]
    for split, method, (source, target), seed in runs:
        folder = run_dir(out, split, seed, method, source, target)
        if not (folder / artifacts.METRICS).is_file():
            continue
        metrics = json.loads((folder / artifacts.METRICS).read_text())
        evals = evaluations(folder)
        key = {"split": split, "method": method, "scenario": f"{source}->{target}", "seed": seed}
        row = {**key, "kept": metrics["target_test_accuracy"], "selection": metrics["selection"],
               "best": evals["target_test_accuracy"].max(), "wall_seconds": metrics["wall_seconds"],
               "cpu_seconds": metrics["cpu_seconds"]}
        for choice in selection.CHOICES:
            # "last" is a choice, not a logged score: its evaluation is the log's last row.
            at = len(evals) - 1 if choice == "last" else selection.pick(evals[choice].tolist(), choice)
            row[choice] = evals["target_test_accuracy"][at]
        rows.append(row)
        curves += [{**key, "step": int(e.step), "target_test_accuracy": e.target_test_accuracy}
                   for e in evals.itertuples()]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def _columns(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(table["split"], table["scenario"])))


def mean_curves(curves: pd.DataFrame) -> pd.Series:
    """Target test accuracy averaged over seeds, indexed by (split, scenario, method, step)."""
    return curves.groupby(["split", "scenario", "method", "step"])["target_test_accuracy"].mean()


def gains(table: pd.DataFrame, columns: list[tuple[str, str]]) -> list[str]:
    """Per adapted method and scenario, its accuracy minus source-only's of the same seed: mean and the worst seed."""
    kept = table.set_index(["split", "scenario", "seed", "method"])["kept"].unstack("method")
    rows = []
    for method in [m for m in dict.fromkeys(table["method"]) if m in uda.ADAPTED]:
        cells = []
        for split, scenario in columns:
            gain = 100 * (kept.loc[(split, scenario), method] - kept.loc[(split, scenario), uda.LOWER_BOUND]).dropna()
            cells.append(f"{gain.mean():+.1f} (worst {gain.min():+.1f})" if len(gain) else "–")
        rows.append([uda.METHOD_TITLES[method], *cells])
    return ["Gain over source-only (points), seed against seed: mean, and the worst seed:\n",
            markdown_table(["method", *(f"{s} ({SPLITS[d]})" for d, s in columns)], rows)]


def lower_bound_both_ways(table: pd.DataFrame, columns: list[tuple[str, str]]) -> list[str]:
    """Source-only's accuracy when its evaluation is kept by a target score (info_max), by its own source
    validation accuracy, or is its last: the first reads target images, so only the others are lower bounds."""
    bound = table[table.method == uda.LOWER_BOUND]
    rows = []
    for choice, title in (("info_max", "kept by `info_max` (reads target train images)"),
                          ("source_val_acc", "kept by `source_val_acc` (no target image; first of ties)"),
                          ("last", "the last evaluation (no target image; the default)")):
        cells = []
        for split, scenario in columns:
            values = 100 * bound[(bound.split == split) & (bound.scenario == scenario)][choice]
            cells.append(f"{values.mean():.1f}" if len(values) else "–")
        rows.append([title, *cells])
    return ["Source-only, mean over seeds, by the score that keeps its evaluation:\n",
            markdown_table([uda.LOWER_BOUND, *(f"{s} ({SPLITS[d]})" for d, s in columns)], rows)]


def report(table: pd.DataFrame, curves: pd.DataFrame, default: str, command: str) -> str:
    columns = _columns(table)
    n_seeds = table["seed"].nunique()
    rows = []
    for method in dict.fromkeys(table["method"]):
        cells = []
        for split, scenario in columns:
            values = 100 * table[(table.method == method) & (table.split == split) & (table.scenario == scenario)]["kept"]
            seeds = "" if len(values) == n_seeds else f" ({len(values)} seed{'s' * (len(values) > 1)})"
            cells.append(f"{values.mean():.1f} ± {values.std(ddof=0):.1f}{seeds}" if len(values) else "–")
        rows.append([uda.METHOD_TITLES[method], *cells])
    lines = [f"Built-in digits, `{command}`; {n_seeds} seed{'s' * (n_seeds > 1)} per cell unless marked.\n",
             f"Target test accuracy (%), mean ± std over seeds, of the evaluation each run kept (the adapting methods "
             f"by `{default}`, the bounds their last evaluation):\n",
             markdown_table(["method", *(f"{s} ({SPLITS[d]})" for d, s in columns)], rows)]

    if uda.LOWER_BOUND in set(table["method"]):
        lines += gains(table, columns) + lower_bound_both_ways(table, columns)

    mean = mean_curves(curves).unstack("step")
    every = -(-len(mean.columns) // 10)  # at most about ten columns; the CSV holds every evaluation
    steps = list(mean.columns)[every - 1::every]
    mean = mean[steps]
    shown = "each evaluation" if every == 1 else f"every {every}th evaluation"
    rows = [[SPLITS[split], scenario, uda.METHOD_TITLES[method],
             *("" if pd.isna(v) else f"{100 * v:.1f}" for v in values)]
            for (split, scenario, method), values in mean.iterrows()]
    lines += [f"Convergence: mean target test accuracy (%) at {shown} (update count), over seeds:\n",
              markdown_table(["data", "scenario", "method", *map(str, steps)], rows)]

    adapted = table[table.method.isin(uda.ADAPTED)]
    splits = list(dict.fromkeys(adapted["split"]))
    counts = ", ".join(f"{(adapted.split == s).sum()} {SPLITS[s]}" for s in splits)
    rows = []
    for choice in selection.CHOICES:
        cells = []
        for split in splits:
            regret = 100 * (adapted[adapted.split == split]["best"] - adapted[adapted.split == split][choice])
            cells += [f"{regret.mean():.2f}", f"{regret.max():.2f}"]
        mark = " (default)" if choice == default else ""
        rows.append([f"`{choice}`{mark}", *cells])
    lines += [f"Regret of each selection criterion (points of target test accuracy below the best "
              f"evaluation in hindsight), over the adapted runs "
              f"({', '.join(uda.METHOD_TITLES[m] for m in dict.fromkeys(adapted['method']))}; {counts}):\n",
              markdown_table(["criterion",
                              *(f"{kind} regret, {SPLITS[s]}" for s in splits for kind in ("mean", "max"))], rows)]

    rows = []
    for method in [m for m in dict.fromkeys(adapted["method"])]:
        cells = []
        for split in splits:
            runs = adapted[(adapted.split == split) & (adapted.method == method)]
            regret = 100 * (runs["best"] - runs[default])
            cells += [f"{regret.mean():.2f}", f"{regret.max():.2f}"] if len(runs) else ["–", "–"]
        rows.append([uda.METHOD_TITLES[method], *cells])
    lines += [f"Regret of `{default}` per method:\n",
              markdown_table(["method",
                              *(f"{kind} regret, {SPLITS[s]}" for s in splits for kind in ("mean", "max"))], rows)]

    # Wall time is not CPU time: runs share the cores (--jobs at a time), so a run's wall time
    # grows with what runs beside it while its CPU time does not.
    seconds = table.groupby("method")[["wall_seconds", "cpu_seconds"]].mean()
    lines += ["Mean seconds of a run's training, over its runs (one CPU thread each; totals over resumed segments):\n",
              markdown_table(["method", "wall-clock seconds", "CPU seconds"],
                             [[uda.METHOD_TITLES[m], f"{s.wall_seconds:.0f}", f"{s.cpu_seconds:.0f}"]
                              for m, s in seconds.iterrows()])]
    return "\n".join(lines)


def plot_curves(curves: pd.DataFrame, path: Path) -> None:
    """One panel per (data, scenario): mean target test accuracy against updates, a line per method."""
    import matplotlib.pyplot as plt

    from plots import save_figure  # sets the Agg backend

    mean = mean_curves(curves)
    panels = list(dict.fromkeys((s, c) for s, c, _, _ in mean.index))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False, sharey=True)
    for ax, (split, scenario) in zip(axes[0], panels):
        for method, line in mean.loc[split, scenario].groupby(level="method"):
            ax.plot(line.index.get_level_values("step"), 100 * line.values, label=uda.METHOD_TITLES[method])
        ax.set_title(f"{scenario} ({SPLITS[split]})", fontsize=9)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("target test accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    save_figure(fig, path, dpi=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dev", required=True, type=Path, help="the development hw3_data tree (recipes are chosen here)")
    parser.add_argument("--heldout", type=Path, default=None,
                        help="a held-out tree (demo_data.py --variant heldout), only reported")
    parser.add_argument("--out", type=Path, default=Path("runs/study"), help="run folders (resumed, skipped when done)")
    parser.add_argument("--methods", nargs="+", default=list(uda.METHODS), choices=uda.METHODS)
    parser.add_argument("--scenarios", nargs="*", default=[f"{s}-{t}" for s, t in SCENARIOS],
                        help="SOURCE-TARGET pairs (none: the held-out tree only)")
    parser.add_argument("--heldout-scenarios", nargs="*", default=[f"{s}-{t}" for s, t in SCENARIOS],
                        help="SOURCE-TARGET pairs run on the held-out tree")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    parser.add_argument("--train-args", default="", help="extra train_uda.py flags for every run, quoted")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "uda_study.md")
    parser.add_argument("--no-train", action="store_true", help="only write the report from the finished runs")
    args = parser.parse_args(argv)
    trees = {"dev": args.dev, **({"heldout": args.heldout} if args.heldout else {})}
    pairs = {"dev": [tuple(s.split("-")) for s in args.scenarios],
             "heldout": [tuple(s.split("-")) for s in args.heldout_scenarios]}
    extra = args.train_args.split()
    jobs = {}
    # Seed by seed, so an interrupted study has whole tables for its first seeds.
    for seed, split in [] if args.no_train else itertools.product(args.seeds, trees):
        for (source, target), method in itertools.product(pairs[split], args.methods):
            folder = run_dir(args.out, split, seed, method, source, target)
            if not (folder / artifacts.METRICS).is_file():
                jobs[f"train {folder}"] = [["train_uda.py", "--data", str(trees[split]), "--source", source,
                                            "--target", target, "--method", method, "--seed", str(seed),
                                            "--out-dir", str(folder), "--quiet", "--log-test-accuracy", *BUDGET, *extra]]
    run_jobs(jobs, args.jobs)
    default = next(m.select for m in uda.METHODS.values() if m.bound is None)  # the adapting methods' score
    table, curves = collect(args.out, trees, args.methods, pairs, args.seeds)
    if table.empty:
        raise SystemExit(f"error: no finished runs under {args.out}")
    command = command_line("benchmarks/uda_study.py", argv)
    text = report(table, curves, default, command)
    write_text(args.report, text)
    table.to_csv(args.report.with_suffix(".csv"), index=False)
    curves.to_csv(args.report.with_name(args.report.stem + "_curves.csv"), index=False)
    plot_curves(curves, args.report.with_name(args.report.stem + "_curves.png"))
    print(text)
    return 0


if __name__ == "__main__":
    cli(main)
