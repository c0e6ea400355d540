"""The pipeline's job commands: which scripts of the repository each stage runs, with which flags, in
the pool of :func:`hw3.jobs.run_jobs`: the training runs (and the face models' FID/KID), the digit
generators' scoring and the figures. The scripts are named, not imported, so this package imports
nothing above it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

from hw3 import artifacts
from hw3.checkpoints import ACGAN, DDPM, GAN, UDA, VAE, DIGIT_GENERATORS as DIGIT_MODELS
from hw3.domains import DIGITS_DOMAIN, FACES, SCENARIOS, split_folder
from hw3.jobs import run_jobs
from hw3.plan import Plan
from hw3.report_content import DigitResults


def train_models(plan: Plan, methods: Iterable[str]) -> dict[str, float]:
    """Every training run, ``plan.jobs`` at a time (longest first); each job's wall seconds.

    Problems 1-2: the VAE and the GAN, each then scored by FID/KID; Problems 3-4: every method
    of ``methods`` (the UDA registry's names) on every scenario; Problem 5: the ACGAN and the
    DDPM (scored in the next stage, which needs the target-only classifier trained here).
    """
    data, settings = str(plan.data), plan.settings
    trainers = {ACGAN: ["train_gan.py", "--task", "digits"], DDPM: ["train_ddpm.py"]}
    jobs = {"train GAN": [["train_gan.py", "--data", data, "--out-dir", str(plan.gan_dir), *settings[GAN],
                           *plan.train_args], *_face_fidelity(plan, "GAN", plan.gan_dir)]}
    for name in (DDPM, ACGAN):
        jobs[f"train {name.upper()}"] = [[*trainers[name], "--data", data, "--domain", DIGITS_DOMAIN,
                                          "--out-dir", str(plan.digit_dir(name)), *settings[name], *plan.train_args]]
    jobs["train VAE"] = [["train_vae.py", "--data", data, "--out-dir", str(plan.vae_dir), *settings[VAE],
                          *plan.train_args], *_face_fidelity(plan, "VAE", plan.vae_dir)]
    for source, target in SCENARIOS:
        for method in methods:
            jobs[f"train {method} {source}->{target}"] = [[
                "train_uda.py", "--data", data, "--source", source, "--target", target, "--method", method,
                "--out-dir", str(plan.uda_run(method, source, target)), *settings[UDA], *plan.train_args]]
    plan.out.mkdir(parents=True, exist_ok=True)
    return run_jobs(jobs, plan.jobs)


def _face_fidelity(plan: Plan, title: str, run_dir: Path) -> list[list[str]]:
    """The commands that score a face model: ``plan.fid_images[0]`` samples (seed 0) against the test faces.

    They run in the model's training job, so the scoring fills the workers' idle time. No
    weights file is needed (the TorchScript TF Inception); ``--inception-weights`` adds IS.
    """
    fake = run_dir / artifacts.FAKE_FACES
    shutil.rmtree(fake, ignore_errors=True)
    weights = ["--inception-weights", str(plan.inception_weights)] if plan.inception_weights else []
    return [["fidelity.py", "generate", "--checkpoint", str(run_dir / artifacts.MODEL), "--out-dir", str(fake), "--n",
             str(plan.fid_images[0]), "--device", plan.device],
            ["fidelity.py", "score", "--generated", str(fake), "--real", str(split_folder(plan.data, FACES, "test")), "--json",
             str(plan.out / artifacts.fidelity_scores(title.lower())), "--device", plan.device, *weights]]


def score_digit_models(plan: Plan) -> DigitResults:
    """Problem 5: each model's 1000 digits, generated and scored by the classifier and FID/KID, beside the other."""
    jobs = {}
    for name in DIGIT_MODELS:
        run_dir = plan.digit_dir(name)
        shutil.rmtree(run_dir / artifacts.GENERATED, ignore_errors=True)
        jobs[f"score {name.upper()}"] = [[
            "generate_digits.py", "--checkpoint", str(run_dir / artifacts.MODEL), "--out-dir", str(run_dir / artifacts.GENERATED),
            "--classifier", str(plan.digit_classifier), "--json", str(plan.out / artifacts.digit_scores(name)),
            "--device", plan.device, "--real", str(split_folder(plan.data, DIGITS_DOMAIN, "test")),
            *(["--max-images", str(plan.fid_images[1])] if plan.fid_images[1] else [])]]
    job_seconds = run_jobs(jobs, plan.jobs)
    scores = {name: json.loads((plan.out / artifacts.digit_scores(name)).read_text()) for name in DIGIT_MODELS}
    return DigitResults(scores, max(DIGIT_MODELS, key=lambda name: scores[name]["accuracy"]), job_seconds)


def draw_figures(plan: Plan, graded: Iterable[str]) -> None:
    """Every figure and table of ``plots.py``, one job per problem, ``plan.jobs`` at a time.

    Problem 1: fig1_2, table1_3, fig1_4, fig1_5; Problem 2: fig2_2, the loss curves and the
    VAE-vs-GAN figure; Problems 3-4: the accuracy table and the t-SNE figures of ``graded``'s runs;
    Problem 5: the grids, the DDPM's reverse process and the training curves.
    """
    digit_runs = [f for name in DIGIT_MODELS for f in (f"--{name}", str(plan.digit_dir(name) / artifacts.MODEL),
                                                       f"--{name}-log", str(plan.digit_dir(name) / artifacts.LOG))]
    run_jobs({
        "t-SNE and accuracy table": [["plots.py", "uda", "--runs", str(plan.uda_root), "--data", str(plan.data),
                                      "--out-dir", str(plan.out / artifacts.UDA_FOLDER), "--methods", *graded,
                                      *plan.settings["tsne"], "--quiet"]],
        "VAE figures": [["plots.py", "vae", "--checkpoint", str(plan.vae_dir / artifacts.MODEL), "--data",
                         str(plan.data), "--out-dir", str(plan.out), "--attribute", plan.attribute, "--quiet"]],
        "GAN figures": [["plots.py", "gan", "--checkpoint", str(plan.gan_dir / artifacts.MODEL), "--log",
                         str(plan.gan_dir / artifacts.LOG), "--vae-checkpoint", str(plan.vae_dir / artifacts.MODEL),
                         "--out-dir", str(plan.out)]],
        "digit figures": [["plots.py", "digits", *digit_runs, "--out-dir", str(plan.out)]],
    }, plan.jobs)
