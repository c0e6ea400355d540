"""Run the whole homework end to end and write ``report/``: what ``make demo`` and ``make report`` do.

Steps, each printed as it starts and timed:

1. data: the given ``hw3_data`` folder, or the built-in demo data (``demo_data.py``);
2. train the VAE, the GAN, and source-only / DANN / SWD+ / ADDA / target-only for the
   three scenarios; then the ACGAN and the DDPM on mnistm digits (Problem 5), whose
   1000 images are scored by the target-only mnistm classifier of step 2. The training
   runs are independent processes of one CPU thread each, ``--jobs`` at a time (one per
   core by default);
3. publish the model files into a model folder with its manifest (``fetch.py``); the
   digit generator with the higher classifier accuracy becomes ``digits.pt``;
4. run ``hw3_p1.sh`` ... ``hw3_p5.sh`` exactly as the grader does (they find the
   published files with the right hashes and download nothing) and score the
   CSVs against the test labels;
5. draw every figure and table (``plots.py``) and write ``report/README.md``.

``--profile demo`` uses short settings that finish in minutes on a 2-core CPU;
``--profile full`` uses each training script's own defaults (hours on a GPU).
The demo publishes into ``runs/models`` so the committed ``checkpoints/manifest.json``
is left alone; ``full`` publishes into ``checkpoints/`` (then upload the files and
commit the manifest).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

import uda
from common import UserError, atomic_path, cli, markdown_table
from datasets import SCENARIOS

REPO = Path(__file__).resolve().parent

# Short settings for the built-in data: every stage is a few seconds to a minute on 2 CPU cores.
DEMO_ARGS = {
    "vae": ["--epochs", "30", "--batch-size", "32"],
    # DCGAN's own recipe (Adam 2e-4, beta1 0.5) at a quarter of the width: faces appear within 1000 steps.
    "gan": ["--steps", "1000", "--batch-size", "32", "--channels", "16", "--arch", "dcgan", "--loss", "bce",
            "--lr-g", "2e-4", "--lr-d", "2e-4", "--betas-g", "0.5", "0.999", "--betas-d", "0.5", "0.999",
            "--ema-decay", "0.99", "--sample-every", "250"],
    # train_uda.py's recipe in a seventh of the updates.
    "uda": ["--epochs", "3", "--steps-per-epoch", "50", "--adda-pretrain-steps", "50"],
    "tsne": ["--per-domain", "300"],
    # Problem 5 with short runs averaged over ~10 steps; the two train side by side, so each gets the
    # ~90 s of one core that the DDPM needs. The ACGAN at half the width and 5x the learning rate: 73 %
    # classifier accuracy after 600 steps, against 20 % after 500 at 2e-4.
    "acgan": ["--steps", "900", "--channels", "16", "--lr-g", "1e-3", "--lr-d", "1e-3", "--ema-decay", "0.9",
              "--sample-every", "300"],
    # The DDPM at half the width and twice the learning rate, in half the updates: digit shapes after
    # 1000 updates (49 % by the demo's classifier), most classes legible after 1500.
    "ddpm": ["--steps", "1500", "--channels", "16", "--lr", "4e-3", "--ema-decay", "0.95", "--sample-every", "750"],
}
FULL_ARGS = {"vae": [], "gan": [], "tsne": [], "acgan": [], "ddpm": [],
             # Budgets in passes over the larger train set (MNIST-M 60,000, SVHN 73,257 images: about
             # 940-1,150 updates of 64 a pass), not train_uda.py's 1,000 updates sized for the built-in data,
             # where DANN was still rising at 1,000 (README, convergence). One evaluation per pass.
             "uda": ["--epochs", "10", "--steps-per-epoch", "0"]}
DIGITS_DOMAIN = "mnistm"  # Problem 5 generates MNIST-M digits
DIGIT_MODELS = ("acgan", "ddpm")


class Stages:
    """Prints each stage as it starts and keeps its wall time for the report: ``with stage("data"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start  # a failed stage is not timed: the run stops there
        print(f"    {name}: {self.seconds[name]:.0f} s", flush=True)


def run_jobs(jobs: dict[str, list[list[str]]], workers: int) -> dict[str, float]:
    """Run each job's commands in order, ``workers`` jobs at a time; their wall times by name.

    A command is a script of this repository and its arguments (``["train_vae.py", "--data", ...]``),
    run as ``main(arguments)`` in one of ``workers`` worker processes. Each worker imports torch
    once and runs job after job; each training sets its own single CPU thread and seeds, so
    a result does not depend on what runs beside it. The first failure stops the stage at once
    with the job's name and its one-line error: the jobs still running are killed (a training
    run resumes from its last checkpoint) and those not started are dropped.
    """
    seconds = {}
    pool = multiprocessing.get_context("spawn").Pool(max(1, workers), initializer=_worker_init)  # no torch threads
    try:
        for name, took in pool.imap_unordered(_run_job, jobs.items()):
            seconds[name] = took
            print(f"    {name}: {took:.0f} s", flush=True)
    finally:
        pool.terminate()  # kills the jobs still running after a failure
        pool.join()
    return {name: seconds[name] for name in jobs}


def _worker_init() -> None:
    """Give tqdm a thread lock: its default, a multiprocessing semaphore, leaks with a warning from a killed worker."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_job(job: tuple[str, list[list[str]]]) -> tuple[str, float]:
    name, commands = job
    started = time.perf_counter()
    for script, *arguments in commands:
        try:
            importlib.import_module(Path(script).stem).main(arguments)
        except UserError as err:
            raise UserError(f"{name} failed: {err}") from None
        except SystemExit as exit:  # argparse's usage errors; a pool worker must not exit
            raise UserError(f"{name} failed: {script} exited with status {exit.code}") from None
    return name, time.perf_counter() - started


def run_script(args: list[str], env: dict) -> None:
    """Run a grader script as the grader does (``bash script ...``); fail loudly on error."""
    result = subprocess.run(["bash", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"{' '.join(args)} failed: {result.stderr.strip().splitlines()[-1:] or result.returncode}")


def script_env(model_dir: Path) -> dict:
    env = dict(os.environ)
    env["HW3_MODEL_DIR"] = str(model_dir)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # `python3` is this Python
    return env


@dataclass
class Plan:
    """The run's inputs, resolved from the flags: what every stage reads, and where it writes."""

    data: Path  # the hw3_data tree (given, or the demo data just built)
    runs: Path
    out: Path  # the report folder
    model_dir: Path  # where the models are published
    profile: str
    settings: dict[str, list[str]]  # DEMO_ARGS or FULL_ARGS
    train_args: list[str]  # what every training run gets: --device, --quiet, --dry-run, --restart
    jobs: int
    device: str
    attribute: str  # the face attribute of the VAE t-SNE
    inception_weights: Path | None

    @property
    def vae_dir(self) -> Path:
        return self.runs / "vae"

    @property
    def gan_dir(self) -> Path:
        return self.runs / "gan"

    @property
    def uda_root(self) -> Path:
        return self.runs / "uda"

    def uda_run(self, method: str, source: str, target: str) -> Path:
        return self.uda_root / uda.run_name(method, source, target)

    def digit_dir(self, name: str) -> Path:
        """The run folder of a Problem 5 model (``acgan`` or ``ddpm``)."""
        return self.runs / name

    @property
    def digit_classifier(self) -> Path:
        """The target-only classifier of the digits' domain, which scores the generated digits."""
        source = next(s for s, t in SCENARIOS if t == DIGITS_DOMAIN)
        return self.uda_run("target-only", source, DIGITS_DOMAIN) / "model.pt"


@dataclass
class VaeResults:
    """Problem 1's numbers: the best validation epoch and the reconstruction table (``table1_3.csv``)."""

    best_val_mse: float
    best_epoch: int
    reconstructions: pd.DataFrame


@dataclass
class DigitResults:
    """Problem 5: each model's classifier accuracy (``generate_digits.py``'s JSON), the better one, job times."""

    scores: dict[str, dict]
    best: str  # the model published as digits.pt
    job_seconds: dict[str, float]


@dataclass
class Results:
    """Everything ``report/README.md`` shows, as the stages returned it; :func:`write_report` only formats it.

    To add an item to the report: add a field here (with a default when a stage may not run),
    fill it in :func:`main` from the stage that measures it, and print it in :func:`write_report`.
    """

    plan: Plan
    vae: VaeResults
    uda_accuracy: str  # plots.py's target test accuracy table, in markdown
    grader: pd.DataFrame  # one row per graded script and scenario: accuracy, images, seconds
    digits: DigitResults
    grader_matches: dict[str, bool]  # "vae", "gan", "digits": the grader's scripts wrote the report's files
    stage_seconds: dict[str, float]
    job_seconds: dict[str, float]
    fidelity: dict[str, float] | None = None  # FID and IS, with --inception-weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="the hw3_data folder (default: build the demo data)")
    parser.add_argument("--profile", choices=["demo", "full"], default="demo", help="short or full training")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="training runs (resumed when present)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="the report folder")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="where models are published (default: runs/models for demo, checkpoints/ for full)")
    parser.add_argument("--attribute", default=None, help="face attribute of the VAE t-SNE (default: Is_Face for demo data, else Male)")
    parser.add_argument("--inception-weights", type=Path, default=None, help="local Inception weights: adds FID and IS")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="dry-run every training (checks the wiring in seconds)")
    parser.add_argument("--jobs", type=int, default=_cores(),
                        help="training runs at a time, one CPU thread each (default: one per core)")
    parser.add_argument("--restart", action="store_true",
                        help="train every model afresh instead of resuming the runs in --runs (after a recipe change)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise UserError("--jobs must be 1 or more")
    stage = Stages()
    with stage("data"):
        plan = prepare_data(args)
    with stage(f"train VAE, GAN and {len(SCENARIOS) * len(uda.METHODS)} digit classifiers"):
        job_seconds = train_models(plan)
    with stage("train ACGAN and DDPM, score their digits"):
        digits = train_digit_models(plan)
    with stage("publish models"):
        publish_models(plan, digits.best)
    with stage("grader scripts"):
        grader = run_grader_scripts(plan)
    fidelity = None
    if plan.inception_weights is not None:
        with stage("FID and IS"):
            fidelity = score_fidelity(plan)
    with stage("figures"):
        vae = vae_figures(plan)
        gan_figures(plan)
        uda_accuracy = uda_figures(plan)
        digit_figures(plan)
    results = Results(plan=plan, vae=vae, uda_accuracy=uda_accuracy, grader=grader, digits=digits,
                      grader_matches=grader_matches(plan, digits.best), stage_seconds=stage.seconds,
                      job_seconds=job_seconds | digits.job_seconds, fidelity=fidelity)
    print(f"report: {write_report(results)}")
    return 0


def prepare_data(args: argparse.Namespace) -> Plan:
    """The data tree (the demo data is built afresh when none is given), the model folder, and the plan."""
    import demo_data

    data = args.data
    if data is None:
        data = demo_data.build(args.runs / "demo_data", force=True)
    elif not data.is_dir():
        raise UserError(f"data folder not found: {data}")
    model_dir = args.model_dir or (args.runs / "models" if args.profile == "demo" else REPO / "checkpoints")
    model_dir.mkdir(parents=True, exist_ok=True)
    train_args = ["--device", args.device, "--quiet", *(["--dry-run"] if args.quick else []),
                  *(["--restart"] if args.restart else [])]
    return Plan(data=data, runs=args.runs, out=args.out, model_dir=model_dir, profile=args.profile,
                settings=DEMO_ARGS if args.profile == "demo" else FULL_ARGS, train_args=train_args, jobs=args.jobs,
                device=args.device, attribute=args.attribute or ("Is_Face" if args.data is None else "Male"),
                inception_weights=args.inception_weights)


def train_models(plan: Plan) -> dict[str, float]:
    """Problems 1-4: the VAE, the GAN and every method on every scenario; each job's wall seconds."""
    data, settings = str(plan.data), plan.settings
    jobs = {"train GAN": [["train_gan.py", "--data", data, "--out-dir", str(plan.gan_dir), *settings["gan"],
                           *plan.train_args]],
            "train VAE": [["train_vae.py", "--data", data, "--out-dir", str(plan.vae_dir), *settings["vae"],
                           *plan.train_args]]}
    for source, target in SCENARIOS:
        for method in uda.METHODS:
            jobs[f"train {method} {source}->{target}"] = [[
                "train_uda.py", "--data", data, "--source", source, "--target", target, "--method", method,
                "--out-dir", str(plan.uda_run(method, source, target)), *settings["uda"], *plan.train_args]]
    return run_jobs(jobs, plan.jobs)


def train_digit_models(plan: Plan) -> DigitResults:
    """Problem 5: each model is trained, then its 1000 digits generated and scored, beside the other."""
    trainers = {"acgan": ["train_gan.py", "--task", "digits"], "ddpm": ["train_ddpm.py"]}
    jobs = {}
    for name in DIGIT_MODELS:
        run_dir = plan.digit_dir(name)
        shutil.rmtree(run_dir / "generated", ignore_errors=True)
        jobs[f"train and score {name.upper()}"] = [
            [*trainers[name], "--data", str(plan.data), "--domain", DIGITS_DOMAIN, "--out-dir", str(run_dir),
             *plan.settings[name], *plan.train_args],
            ["generate_digits.py", "--checkpoint", str(run_dir / "model.pt"), "--out-dir", str(run_dir / "generated"),
             "--classifier", str(plan.digit_classifier), "--json", str(plan.out / f"digits_{name}.json"),
             "--device", plan.device]]
    job_seconds = run_jobs(jobs, plan.jobs)
    scores = {name: json.loads((plan.out / f"digits_{name}.json").read_text()) for name in DIGIT_MODELS}
    return DigitResults(scores, max(DIGIT_MODELS, key=lambda name: scores[name]["accuracy"]), job_seconds)


def published_files(plan: Plan, best_digits: str) -> dict[str, Path]:
    """The graded model files by published name: ``vae.pt``, ``gan.pt``, ``dann_mnistm.pt`` ..., ``digits.pt``."""
    files = {"vae.pt": plan.vae_dir / "model.pt", "gan.pt": plan.gan_dir / "model.pt"}
    for source, target in SCENARIOS:
        for method in uda.GRADED_METHODS:
            files[uda.published_model(method, target)] = plan.uda_run(method, source, target) / "model.pt"
    files["digits.pt"] = plan.digit_dir(best_digits) / "model.pt"
    return files


def publish_models(plan: Plan, best_digits: str) -> dict[str, Path]:
    """Copy the graded models into the model folder and write its manifest (``fetch.py``); the copies by name."""
    import fetch

    files = published_files(plan, best_digits)
    for name, path in files.items():
        shutil.copyfile(path, plan.model_dir / name)
    fetch.publish(plan.model_dir, sorted(files), base_url=None)
    return {name: plan.model_dir / name for name in files}


def run_grader_scripts(plan: Plan) -> pd.DataFrame:
    """``hw3_p1.sh`` ... ``hw3_p5.sh`` as the grader runs them; each UDA script's accuracy on each target test set."""
    import score

    env, out, data = script_env(plan.model_dir), plan.out, plan.data
    out.mkdir(parents=True, exist_ok=True)
    run_script(["hw3_p1.sh", str(out / "grader_fig1_4.png")], env)
    run_script(["hw3_p2.sh", str(out / "grader_fig2_2.png")], env)
    rows = []
    for method, script in uda.GRADED_METHODS.items():
        for source, target in SCENARIOS:
            csv = out / "predictions" / f"{method}_{target}.csv"
            started = time.perf_counter()
            run_script([script, str(data / "digits" / target / "test"), target, str(csv)], env)
            seconds = time.perf_counter() - started
            accuracy = score.accuracy(score.read_labels(csv), score.read_labels(data / "digits" / target / "test.csv"))
            rows.append({"script": script, "scenario": f"{source}->{target}", "accuracy": accuracy,
                         "images": len(pd.read_csv(csv)), "seconds": f"{seconds:.1f}"})
    shutil.rmtree(out / "grader_digits", ignore_errors=True)
    run_script(["hw3_p5.sh", str(out / "grader_digits")], env)
    return pd.DataFrame(rows)


def score_fidelity(plan: Plan) -> dict[str, float]:
    """FID and IS of 1000 GAN samples against the face test set (or train set), into ``fidelity.json``."""
    import fidelity

    fake = plan.gan_dir / "fake"
    shutil.rmtree(fake, ignore_errors=True)
    fidelity.main(["generate", "--checkpoint", str(plan.gan_dir / "model.pt"), "--out-dir", str(fake),
                   "--device", plan.device])
    faces = plan.data / "face"
    real = faces / "test" if (faces / "test").is_dir() else faces / "train"
    path = plan.out / "fidelity.json"
    fidelity.main(["score", "--generated", str(fake), "--real", str(real), "--inception-weights",
                   str(plan.inception_weights), "--json", str(path), "--device", plan.device])
    return json.loads(path.read_text())


def vae_figures(plan: Plan) -> VaeResults:
    """Problem 1's figures and reconstruction table, and the numbers the report quotes."""
    import plots

    plots.main(["vae", "--checkpoint", str(plan.vae_dir / "model.pt"), "--data", str(plan.data),
                "--out-dir", str(plan.out), "--attribute", plan.attribute, "--quiet"])
    log = pd.read_csv(plan.vae_dir / "log.csv")
    best = log.loc[log["val_mse"].idxmin()]
    return VaeResults(float(best["val_mse"]), int(best["epoch"]), pd.read_csv(plan.out / "table1_3.csv"))


def gan_figures(plan: Plan) -> None:
    """Problem 2's samples, loss curves and the VAE-vs-GAN figure."""
    import plots

    plots.main(["gan", "--checkpoint", str(plan.gan_dir / "model.pt"), "--log", str(plan.gan_dir / "log.csv"),
                "--vae-checkpoint", str(plan.vae_dir / "model.pt"), "--out-dir", str(plan.out)])


def uda_figures(plan: Plan) -> str:
    """Problems 3-4: the accuracy table and every run's t-SNE figures; the table in markdown."""
    import plots

    plots.main(["uda", "--runs", str(plan.uda_root), "--data", str(plan.data), "--out-dir", str(plan.out / "uda"),
                *plan.settings["tsne"], "--quiet"])
    return (plan.out / "uda" / "uda_accuracy.md").read_text()


def digit_figures(plan: Plan) -> None:
    """Problem 5's grids, the DDPM's reverse process and the training curves."""
    import plots

    runs = [f for name in DIGIT_MODELS for f in (f"--{name}", str(plan.digit_dir(name) / "model.pt"),
                                                 f"--{name}-log", str(plan.digit_dir(name) / "log.csv"))]
    plots.main(["digits", *runs, "--out-dir", str(plan.out)])


def grader_matches(plan: Plan, best_digits: str) -> dict[str, bool]:
    """Whether ``hw3_p1.sh``, ``hw3_p2.sh`` and ``hw3_p5.sh`` wrote the very files of the report, byte for byte."""
    out = plan.out
    same = {kind: (out / f"grader_{fig}.png").read_bytes() == (out / f"{fig}.png").read_bytes()
            for kind, fig in (("vae", "fig1_4"), ("gan", "fig2_2"))}
    same["digits"] = _same_files(plan.digit_dir(best_digits) / "generated", out / "grader_digits")
    return same


def _same_files(a: Path, b: Path) -> bool:
    """Whether folders ``a`` and ``b`` hold the same file names with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes()
                                                                for n in names)


def _frame_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table (floats to 4 places)."""
    return markdown_table(frame.columns, frame.itertuples(index=False), float_format=".4f", spaced_rule=True)


def _image(path: Path, out: Path, title: str) -> str:
    return f"![{title}]({path.relative_to(out).as_posix()})\n" if path.is_file() else f"*{title}: not drawn*\n"


def _yes(same: bool) -> str:
    return "yes" if same else "NO"


def write_report(results: Results) -> Path:
    """``report/README.md``: every figure, with the numbers measured in this run."""
    plan, out = results.plan, results.plan.out
    vae, digits, matches = results.vae, results.digits, results.grader_matches
    lines = [
        "# HW3 report (generated by `pipeline.py`)\n",
        f"Data: `{plan.data}`; profile: `{plan.profile}`. Every number below was measured in this run; "
        f"the whole run took {sum(results.stage_seconds.values()):.0f} s.\n",
        "## Problem 1: VAE\n",
        f"Best validation MSE {vae.best_val_mse:.4f} (epoch {vae.best_epoch}); "
        f"mean MSE of the 10 images below {vae.reconstructions.iloc[:, -1].mean():.4f}.\n",
        _image(out / "fig1_2.png", out, "fig1_2 learning curves"),
        _image(out / "table1_3.png", out, "table1_3 reconstructions"),
        _frame_table(vae.reconstructions) + "\n",
        _image(out / "fig1_4.png", out, "fig1_4 samples"),
        f"`bash hw3_p1.sh` wrote the same bytes as fig1_4.png: **{_yes(matches['vae'])}**.\n",
        _image(out / "fig1_5.png", out, "fig1_5 t-SNE of latent means"),
        "## Problem 2: GAN\n",
        _image(out / "fig2_2.png", out, "fig2_2 samples"),
        f"`bash hw3_p2.sh` wrote the same bytes as fig2_2.png: **{_yes(matches['gan'])}**.\n",
        _image(out / "fig2_losses.png", out, "GAN losses and discriminator accuracy"),
        _image(out / "fig2_vae_vs_gan.png", out, "VAE vs GAN"),
    ]
    if results.fidelity is not None:
        lines.append("FID and IS on 1000 samples: " + ", ".join(f"{k} {v:.3f}" for k, v in results.fidelity.items()
                                                                  if isinstance(v, (int, float))) + "\n")
    else:
        lines.append("FID and IS: not computed (pass `--inception-weights` with a local copy of "
                     "torch-fidelity's Inception weights).\n")
    lines += [
        "## Problems 3 and 4: DANN and SWD\n",
        "Target test accuracy of each training run (the evaluation kept by train_uda.py's label-free --select):\n",
        results.uda_accuracy + "\n",
        "The grader's scripts, run on each target test folder and scored with `score.py`:\n",
        _frame_table(results.grader) + "\n",
    ]
    for method in uda.GRADED_METHODS:
        for source, target in SCENARIOS:
            stem = out / "uda" / f"tsne_{uda.run_name(method, source, target)}"
            lines.append(f"**{method.upper()} {source} -> {target}**\n")
            lines.append(_image(stem.with_name(stem.name + "_class.png"), out, "by class").rstrip("\n") + " "
                         + _image(stem.with_name(stem.name + "_domain.png"), out, "by domain"))
    lines += [
        "## Problem 5: class-conditional digits (ACGAN and DDPM)\n",
        f"1000 generated {DIGITS_DOMAIN} digits per model (100 per class, `generate_digits.py`), labelled by the "
        "target-only classifier trained above; accuracy against the asked class:\n",
        _frame_table(pd.DataFrame([{"model": name.upper(), "accuracy": scores["accuracy"],
                                    **{f"digit {d}": v for d, v in scores["per_digit"].items()}}
                                   for name, scores in digits.scores.items()])) + "\n",
        f"`digits.pt` is the {digits.best.upper()}; `bash hw3_p5.sh` wrote the same 1000 files, byte for byte: "
        f"**{_yes(matches['digits'])}**.\n",
        *[_image(out / f"fig5_{name}_grid.png", out, f"{name.upper()}: 10 digits per class, one class per row")
          for name in DIGIT_MODELS],
        _image(out / "fig5_reverse.png", out, "DDPM reverse process of one 0"),
        _image(out / "fig5_curves.png", out, "Problem 5 training curves"),
        "## Time per stage\n",
        markdown_table(["stage", "seconds"], [[name, f"{value:.0f}"] for name, value in results.stage_seconds.items()]),
        f"The training stages ran {plan.jobs} job(s) at a time; each job's own time:\n",
        markdown_table(["job", "seconds"], [[name, f"{value:.0f}"] for name, value in results.job_seconds.items()]),
    ]
    path = out / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    cli(main)
