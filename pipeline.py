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
import importlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

import uda
from common import UserError, atomic_path, cli
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
    """Prints each stage as it starts and keeps its wall time for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._start = 0.0

    def start(self, name: str) -> None:
        self.stop()
        print(f"==> {name}", flush=True)
        self._name, self._start = name, time.perf_counter()

    def stop(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = time.perf_counter() - self._start
            print(f"    {self._name}: {self.seconds[self._name]:.0f} s", flush=True)
            self._name = None


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


def main(argv=None) -> int:
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
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise UserError("--jobs must be 1 or more")

    import demo_data
    import plots
    import score

    settings = DEMO_ARGS if args.profile == "demo" else FULL_ARGS
    quick = ["--dry-run"] if args.quick else []
    common_args = ["--device", args.device, "--quiet", *quick, *(["--restart"] if args.restart else [])]
    stages = Stages()

    stages.start("data")
    data = args.data
    if data is None:
        data = demo_data.build(args.runs / "demo_data", force=True)
    elif not data.is_dir():
        raise UserError(f"data folder not found: {data}")
    attribute = args.attribute or ("Is_Face" if args.data is None else "Male")
    model_dir = args.model_dir or (args.runs / "models" if args.profile == "demo" else REPO / "checkpoints")
    model_dir.mkdir(parents=True, exist_ok=True)
    published: dict[str, Path] = {}

    stages.start(f"train VAE, GAN and {len(SCENARIOS) * len(uda.METHODS)} digit classifiers")
    vae_dir, gan_dir, uda_root = args.runs / "vae", args.runs / "gan", args.runs / "uda"
    jobs = {"train GAN": [["train_gan.py", "--data", str(data), "--out-dir", str(gan_dir), *settings["gan"],
                           *common_args]],
            "train VAE": [["train_vae.py", "--data", str(data), "--out-dir", str(vae_dir), *settings["vae"],
                           *common_args]]}
    published["vae.pt"], published["gan.pt"] = vae_dir / "model.pt", gan_dir / "model.pt"
    for source, target in SCENARIOS:
        for method in uda.METHODS:
            run_dir = uda_root / uda.run_name(method, source, target)
            jobs[f"train {method} {source}->{target}"] = [[
                "train_uda.py", "--data", str(data), "--source", source, "--target", target, "--method", method,
                "--out-dir", str(run_dir), *settings["uda"], *common_args]]
            if method in uda.GRADED_METHODS:
                published[uda.published_model(method, target)] = run_dir / "model.pt"
    job_seconds = run_jobs(jobs, args.jobs)

    # Problem 5: each model is trained, then its 1000 digits generated and scored, beside the other.
    stages.start("train ACGAN and DDPM, score their digits")
    source = next(s for s, t in SCENARIOS if t == DIGITS_DOMAIN)
    classifier = uda_root / uda.run_name("target-only", source, DIGITS_DOMAIN) / "model.pt"
    digit_dirs = {name: args.runs / name for name in DIGIT_MODELS}
    trainers = {"acgan": ["train_gan.py", "--task", "digits"], "ddpm": ["train_ddpm.py"]}
    jobs = {}
    for name, run_dir in digit_dirs.items():
        shutil.rmtree(run_dir / "generated", ignore_errors=True)
        jobs[f"train and score {name.upper()}"] = [
            [*trainers[name], "--data", str(data), "--domain", DIGITS_DOMAIN, "--out-dir", str(run_dir),
             *settings[name], *common_args],
            ["generate_digits.py", "--checkpoint", str(run_dir / "model.pt"), "--out-dir", str(run_dir / "generated"),
             "--classifier", str(classifier), "--json", str(args.out / f"digits_{name}.json"),
             "--device", args.device]]
    job_seconds |= run_jobs(jobs, args.jobs)
    digit_scores = {name: json.loads((args.out / f"digits_{name}.json").read_text()) for name in DIGIT_MODELS}
    best_digits = max(DIGIT_MODELS, key=lambda name: digit_scores[name]["accuracy"])
    published["digits.pt"] = digit_dirs[best_digits] / "model.pt"

    stages.start("publish models")
    import fetch

    for name, path in published.items():
        shutil.copyfile(path, model_dir / name)
    fetch.publish(model_dir, sorted(published), base_url=None)

    stages.start("grader scripts")
    env = script_env(model_dir)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    run_script(["hw3_p1.sh", str(out / "grader_fig1_4.png")], env)
    run_script(["hw3_p2.sh", str(out / "grader_fig2_2.png")], env)
    grader_rows = []
    for method, script in uda.GRADED_METHODS.items():
        for source, target in SCENARIOS:
            test_dir = data / "digits" / target / "test"
            csv = out / "predictions" / f"{method}_{target}.csv"
            started = time.perf_counter()
            run_script([script, str(test_dir), target, str(csv)], env)
            seconds = time.perf_counter() - started
            accuracy = score.accuracy(score.read_labels(csv), score.read_labels(data / "digits" / target / "test.csv"))
            grader_rows.append({"script": script, "scenario": f"{source}->{target}", "accuracy": accuracy,
                                "images": len(pd.read_csv(csv)), "seconds": f"{seconds:.1f}"})

    shutil.rmtree(out / "grader_digits", ignore_errors=True)
    run_script(["hw3_p5.sh", str(out / "grader_digits")], env)
    digits_match = _same_files(digit_dirs[best_digits] / "generated", out / "grader_digits")

    fidelity_json = None
    if args.inception_weights is not None:
        stages.start("FID and IS")
        import fidelity

        fake = args.runs / "gan" / "fake"
        shutil.rmtree(fake, ignore_errors=True)
        fidelity.main(["generate", "--checkpoint", str(gan_dir / "model.pt"), "--out-dir", str(fake),
                       "--device", args.device])
        real = data / "face" / "test" if (data / "face" / "test").is_dir() else data / "face" / "train"
        fidelity_json = out / "fidelity.json"
        fidelity.main(["score", "--generated", str(fake), "--real", str(real), "--inception-weights",
                       str(args.inception_weights), "--json", str(fidelity_json), "--device", args.device])

    stages.start("figures")
    plots.main(["vae", "--checkpoint", str(vae_dir / "model.pt"), "--data", str(data), "--out-dir", str(out),
                "--attribute", attribute, "--quiet"])
    plots.main(["gan", "--checkpoint", str(gan_dir / "model.pt"), "--log", str(gan_dir / "log.csv"), "--vae-checkpoint", str(vae_dir / "model.pt"),
                "--out-dir", str(out)])
    plots.main(["uda", "--runs", str(uda_root), "--data", str(data), "--out-dir", str(out / "uda"),
                *settings["tsne"], "--quiet"])
    plots.main(["digits", *[f for name, d in digit_dirs.items()
                            for f in (f"--{name}", str(d / "model.pt"), f"--{name}-log", str(d / "log.csv"))],
                "--out-dir", str(out)])
    stages.stop()

    grids_match = {kind: (out / f"grader_{fig}.png").read_bytes() == (out / f"{fig}.png").read_bytes()
                   for kind, fig in (("vae", "fig1_4"), ("gan", "fig2_2"))}
    report = write_report(out, data, args.profile, stages.seconds, job_seconds, args.jobs, vae_dir / "log.csv",
                          pd.DataFrame(grader_rows),
                          grids_match, fidelity_json, digit_scores, best_digits, digits_match)
    print(f"report: {report}")
    return 0


def _same_files(a: Path, b: Path) -> bool:
    """Whether folders ``a`` and ``b`` hold the same file names with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes()
                                                                for n in names)


def _markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table (floats to 4 places)."""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    rows = [list(map(str, frame.columns)), ["---"] * frame.shape[1], *cells]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def _image(path: Path, out: Path, title: str) -> str:
    return f"![{title}]({path.relative_to(out).as_posix()})\n" if path.is_file() else f"*{title}: not drawn*\n"


def write_report(out: Path, data: Path, profile: str, seconds: dict[str, float], job_seconds: dict[str, float],
                 jobs: int, vae_log: Path,
                 grader: pd.DataFrame, grids_match: dict[str, bool], fidelity_json: Path | None,
                 digit_scores: dict[str, dict], best_digits: str, digits_match: bool) -> Path:
    """``report/README.md``: every figure, with the numbers measured in this run."""
    log = pd.read_csv(vae_log)
    best = log.loc[log["val_mse"].idxmin()]
    table = pd.read_csv(out / "table1_3.csv")
    lines = [
        "# HW3 report (generated by `pipeline.py`)\n",
        f"Data: `{data}`; profile: `{profile}`. Every number below was measured in this run; "
        f"the whole run took {sum(seconds.values()):.0f} s.\n",
        "## Problem 1: VAE\n",
        f"Best validation MSE {best['val_mse']:.4f} (epoch {int(best['epoch'])}); "
        f"mean MSE of the 10 images below {table.iloc[:, -1].mean():.4f}.\n",
        _image(out / "fig1_2.png", out, "fig1_2 learning curves"),
        _image(out / "table1_3.png", out, "table1_3 reconstructions"),
        _markdown(table) + "\n",
        _image(out / "fig1_4.png", out, "fig1_4 samples"),
        f"`bash hw3_p1.sh` wrote the same bytes as fig1_4.png: **{'yes' if grids_match['vae'] else 'NO'}**.\n",
        _image(out / "fig1_5.png", out, "fig1_5 t-SNE of latent means"),
        "## Problem 2: GAN\n",
        _image(out / "fig2_2.png", out, "fig2_2 samples"),
        f"`bash hw3_p2.sh` wrote the same bytes as fig2_2.png: **{'yes' if grids_match['gan'] else 'NO'}**.\n",
        _image(out / "fig2_losses.png", out, "GAN losses and discriminator accuracy"),
        _image(out / "fig2_vae_vs_gan.png", out, "VAE vs GAN"),
    ]
    if fidelity_json is not None:
        scores = json.loads(fidelity_json.read_text())
        lines.append("FID and IS on 1000 samples: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()
                                                                  if isinstance(v, (int, float))) + "\n")
    else:
        lines.append("FID and IS: not computed (pass `--inception-weights` with a local copy of "
                     "torch-fidelity's Inception weights).\n")
    lines += [
        "## Problems 3 and 4: DANN and SWD\n",
        "Target test accuracy of each training run (the evaluation kept by train_uda.py's label-free --select):\n",
        (out / "uda" / "uda_accuracy.md").read_text() + "\n",
        "The grader's scripts, run on each target test folder and scored with `score.py`:\n",
        _markdown(grader) + "\n",
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
        _markdown(pd.DataFrame([{"model": name.upper(), "accuracy": scores["accuracy"],
                                 **{f"digit {d}": v for d, v in scores["per_digit"].items()}}
                                for name, scores in digit_scores.items()])) + "\n",
        f"`digits.pt` is the {best_digits.upper()}; `bash hw3_p5.sh` wrote the same 1000 files, byte for byte: "
        f"**{'yes' if digits_match else 'NO'}**.\n",
        *[_image(out / f"fig5_{name}_grid.png", out, f"{name.upper()}: 10 digits per class, one class per row")
          for name in DIGIT_MODELS],
        _image(out / "fig5_reverse.png", out, "DDPM reverse process of one 0"),
        _image(out / "fig5_curves.png", out, "Problem 5 training curves"),
    ]
    lines += ["## Time per stage\n", "| stage | seconds |", "|---|---|",
              *[f"| {name} | {value:.0f} |" for name, value in seconds.items()], "",
              f"The training stages ran {jobs} job(s) at a time; each job's own time:\n",
              "| job | seconds |", "|---|---|",
              *[f"| {name} | {value:.0f} |" for name, value in job_seconds.items()], ""]
    path = out / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    cli(main)
