"""The domain-adaptation study: methods x scenarios x seeds, and the regret of each selection criterion.

    python3 benchmarks/uda_study.py --data demo_data --out runs/study --jobs 2

Each run is ``train_uda.py`` with its defaults (plus what ``--train-args`` adds) and
``--log-test-accuracy``, so every evaluation's label-free scores sit beside the target
test accuracy in its ``log.csv``. Finished runs (with ``metrics.json``) are skipped and
interrupted ones resume, so the command can be run again until it is done. It writes
``--report`` (markdown):

- target test accuracy per method and scenario, mean +- std over the seeds, of the
  evaluation the default criterion (``train_uda.py --select``) keeps;
- per criterion, its regret: the best test accuracy among a run's evaluations minus the
  accuracy of the evaluation the criterion picks, averaged over the adapted runs. Only
  this study reads those labels, as model-selection papers score validators; no
  training run reads a target label.
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

import selection  # noqa: E402
import train_uda  # noqa: E402
import uda  # noqa: E402
from pipeline import run_jobs  # noqa: E402
from common import atomic_path, cli  # noqa: E402

SCENARIOS = (("mnist", "mnistm"), ("usps", "mnistm"), ("mnistm", "svhn"), ("svhn", "usps"))
ADAPTED = ("dann", "swd", "adda")


def evaluations(run_dir: Path) -> pd.DataFrame:
    """The evaluation rows of a run's log: one per epoch, with every criterion and the test accuracy."""
    log = pd.read_csv(run_dir / "log.csv")
    return log.dropna(subset=["source_val_acc"]).reset_index(drop=True)


def collect(out: Path, methods, scenarios, seeds, default: str) -> pd.DataFrame:
    """One row per run: accuracy kept by each criterion, the best in hindsight and the run's seconds."""
    rows = []
    for method, (source, target), seed in itertools.product(methods, scenarios, seeds):
        run_dir = out / f"seed{seed}" / uda.run_name(method, source, target)
        if not (run_dir / "metrics.json").is_file():
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        evals = evaluations(run_dir)
        row = {"method": method, "scenario": f"{source}->{target}", "seed": seed,
               "kept": metrics["target_test_accuracy"], "selection": metrics["selection"],
               "best": evals["target_test_accuracy"].max(), "seconds": metrics["train_seconds_this_run"]}
        for criterion in selection.CRITERIA:
            row[criterion] = evals["target_test_accuracy"][selection.pick(evals[criterion].tolist(), criterion)]
        rows.append(row)
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, default: str, command: str) -> str:
    scenarios = list(dict.fromkeys(table["scenario"]))
    lines = [f"Built-in digits, `{command}`; {table['seed'].nunique()} seeds per cell unless marked.\n",
             f"Target test accuracy (%), mean ± std over seeds, of the evaluation kept by `{default}`:\n",
             "| method | " + " | ".join(scenarios) + " |", "|---" * (len(scenarios) + 1) + "|"]
    for method in dict.fromkeys(table["method"]):
        cells = []
        for scenario in scenarios:
            values = 100 * table[(table.method == method) & (table.scenario == scenario)][default]
            seeds = "" if len(values) == table["seed"].nunique() else f" ({len(values)} seed{'s' * (len(values) > 1)})"
            cells.append(f"{values.mean():.1f} ± {values.std(ddof=0):.1f}{seeds}" if len(values) else "–")
        lines.append(f"| {uda.METHOD_TITLES[method]} | " + " | ".join(cells) + " |")
    adapted = table[table.method.isin(ADAPTED)]
    lines += ["", f"Regret of each selection criterion (points of target test accuracy below the best "
                  f"evaluation in hindsight), over the {len(adapted)} adapted runs (DANN, SWD+, ADDA):\n",
              "| criterion | mean regret | max regret | mean accuracy kept |", "|---|---|---|---|"]
    for criterion in selection.CRITERIA:
        regret = 100 * (adapted["best"] - adapted[criterion])
        mark = " (default)" if criterion == default else ""
        lines.append(f"| `{criterion}`{mark} | {regret.mean():.2f} | {regret.max():.2f} | "
                     f"{100 * adapted[criterion].mean():.1f} |")
    seconds = table.groupby("method")["seconds"].mean()
    lines += ["", "Mean CPU seconds per run (one thread): " +
              ", ".join(f"{uda.METHOD_TITLES[m]} {s:.0f}" for m, s in seconds.items()), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="a hw3_data folder, e.g. the built-in demo_data")
    parser.add_argument("--out", type=Path, default=Path("runs/study"), help="run folders (resumed, skipped when done)")
    parser.add_argument("--methods", nargs="+", default=list(uda.METHODS), choices=uda.METHODS)
    parser.add_argument("--scenarios", nargs="+", default=[f"{s}-{t}" for s, t in SCENARIOS],
                        help="SOURCE-TARGET pairs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    parser.add_argument("--train-args", default="", help="extra train_uda.py flags for every run, quoted")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "uda_study.md")
    parser.add_argument("--no-train", action="store_true", help="only write the report from the finished runs")
    args = parser.parse_args(argv)
    scenarios = [tuple(s.split("-")) for s in args.scenarios]
    extra = args.train_args.split()
    jobs = {}
    for method, (source, target), seed in [] if args.no_train else itertools.product(args.methods, scenarios,
                                                                                      args.seeds):
        run_dir = args.out / f"seed{seed}" / uda.run_name(method, source, target)
        if not (run_dir / "metrics.json").is_file():
            jobs[f"train {run_dir}"] = [["train_uda.py", "--data", str(args.data), "--source", source, "--target",
                                         target, "--method", method, "--seed", str(seed), "--out-dir", str(run_dir),
                                         "--quiet", "--log-test-accuracy", *extra]]
    run_jobs(jobs, args.jobs)
    default = train_uda.build_parser().get_default("select")
    table = collect(args.out, args.methods, scenarios, args.seeds, default)
    command = "python3 benchmarks/uda_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(table, default, command)
    with atomic_path(args.report) as tmp:
        tmp.write_text(text)
    table.to_csv(args.report.with_suffix(".csv"), index=False)
    print(text)
    return 0


if __name__ == "__main__":
    cli(main)
