"""The one checkpoint mechanism: a run killed at any moment resumes to the weights of one never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import REPO
from hw3.training import load_checkpoint

RUNS = {
    "train_uda.py": ["--source", "usps", "--target", "mnistm", "--method", "dann", "--epochs", "4",
                     "--steps-per-epoch", "12", "--batch-size", "8", "--width", "8", "8"],
    "train_vae.py": ["--epochs", "5", "--batch-size", "4", "--channels", "8", "--latent-dim", "16"],
}


def _command(script: str, data, out) -> list[str]:
    return [sys.executable, str(REPO / script), "--data", str(data), "--out-dir", str(out), "--device", "cpu",
            "--quiet", *RUNS[script]]


def _kill_after_first_checkpoint(command: list[str], latest) -> int:
    """Start ``command``, SIGKILL it as soon as its first ``latest.pt`` lands; return the exit status."""
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


@pytest.mark.parametrize("script", sorted(RUNS))
def test_run_killed_mid_way_resumes_to_the_same_final_weights(script, tiny_data, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_command(script, tiny_data, straight), cwd=REPO, check=True, capture_output=True)
    status = _kill_after_first_checkpoint(_command(script, tiny_data, killed), killed / "latest.pt")
    assert status == -signal.SIGKILL  # it was still training when killed
    interrupted_at = load_checkpoint(killed / "latest.pt")["epoch"]
    result = subprocess.run(_command(script, tiny_data, killed), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    a, b = load_checkpoint(straight / "latest.pt"), load_checkpoint(killed / "latest.pt")
    assert interrupted_at < b["epoch"] == a["epoch"] and a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert open(straight / "log.csv").read().count("\n") == open(killed / "log.csv").read().count("\n")
