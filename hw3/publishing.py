"""What the grader receives and runs: the graded model files by their published names, the commands of
``hw3_p1.sh`` ... ``hw3_p5.sh`` run as the grader runs them, and whether those scripts wrote the very
files of the report. ``pipeline.py`` writes the manifest (``fetch.py``) and scores the CSVs (``score.py``)."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Mapping

from hw3 import artifacts, checkpoints, uda
from hw3.domains import SCENARIOS, split_folder
from hw3.jobs import run_script, script_env
from hw3.plan import Plan

GraderRun = str | tuple[str, str, str]  # "p1", "p2", "p5", or (method, source, target) for a UDA script


def published_files(plan: Plan, best_digits: str, graded: Iterable[str]) -> dict[str, Path]:
    """The graded model files by published name: ``vae.pt``, ``gan.pt``, ``dann_usps-mnistm.pt`` ..., ``digits.pt``.

    ``graded`` names the UDA methods a homework script publishes (``uda.GRADED_METHODS``).
    """
    files = {artifacts.PUBLISHED_VAE: plan.vae_dir / artifacts.MODEL, artifacts.PUBLISHED_GAN: plan.gan_dir / artifacts.MODEL}
    for source, target in SCENARIOS:
        for method in graded:
            files[uda.published_model(method, target)] = plan.uda_run(method, source, target) / artifacts.MODEL
    files[artifacts.PUBLISHED_DIGITS] = plan.digit_dir(best_digits) / artifacts.MODEL
    return files


def grader_runs(plan: Plan, graded: Mapping[str, str]) -> dict[GraderRun, list[str]]:
    """The command of every grader script run, by run; their output folders made ready.

    ``graded`` maps each UDA method a homework script publishes to that script
    (``uda.GRADED_METHODS``); a UDA run's last argument is the CSV it writes.
    """
    out, data = plan.out, plan.data
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / artifacts.GRADER_DIGITS, ignore_errors=True)
    runs: dict[GraderRun, list[str]] = {
        "p1": ["hw3_p1.sh", str(out / artifacts.grader_copy(artifacts.VAE_SAMPLES))],
        "p2": ["hw3_p2.sh", str(out / artifacts.grader_copy(artifacts.GAN_SAMPLES))],
        "p5": ["hw3_p5.sh", str(out / artifacts.GRADER_DIGITS)]}
    for method, script in graded.items():
        for source, target in SCENARIOS:
            runs[(method, source, target)] = [script, str(split_folder(data, target, "test")), target,
                                              str(out / artifacts.PREDICTIONS / artifacts.prediction_csv(method, target))]
    return runs


def run_scripts(runs: dict[GraderRun, list[str]], model_dir: Path, workers: int) -> dict[GraderRun, float]:
    """Run each grader script, ``workers`` at a time, finding its models in ``model_dir``; each run's wall seconds.

    Each script is a process of its own, as on the grader's machine; the seconds of each
    prediction run are its own wall time, with another script beside it.
    """
    env = script_env(model_dir)

    def timed(args: list[str]) -> float:
        started = time.perf_counter()
        run_script(args, env)
        return time.perf_counter() - started

    order = sorted(runs, key=lambda key: runs[key][0] != "hw3_p5.sh")  # the slow hw3_p5.sh starts first
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(order, pool.map(lambda key: timed(runs[key]), order)))


def grader_matches(plan: Plan, best_digits: str) -> dict[str, bool]:
    """Whether ``hw3_p1.sh``, ``hw3_p2.sh`` and ``hw3_p5.sh`` wrote the very files of the report, byte for byte."""
    out = plan.out
    same = {kind: (out / artifacts.grader_copy(fig)).read_bytes() == (out / fig).read_bytes()
            for kind, fig in ((checkpoints.VAE, artifacts.VAE_SAMPLES), (checkpoints.GAN, artifacts.GAN_SAMPLES))}
    same["digits"] = _same_files(plan.digit_dir(best_digits) / artifacts.GENERATED, out / artifacts.GRADER_DIGITS)
    return same


def _same_files(a: Path, b: Path) -> bool:
    """Whether folders ``a`` and ``b`` hold the same file names with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes()
                                                                for n in names)
