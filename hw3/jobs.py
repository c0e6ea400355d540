"""Running the pipeline's jobs: each stage printed and timed, training runs in a pool of worker
processes, the grader's scripts run as the grader runs them."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from hw3.common import UserError

REPO = Path(__file__).resolve().parent.parent


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
    """One OpenMP thread per worker, and a thread lock for tqdm.

    The variable is set before any library loads OpenMP (this module imports none). Without it,
    scikit-learn's t-SNE in one worker and torch in the other each spun a thread per core: the
    test pipeline's figures stage took 58 s instead of 6 s on 2 cores. tqdm's default lock, a
    multiprocessing semaphore, leaks with a warning from a killed worker.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


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
