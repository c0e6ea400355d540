"""benchmarks/faces.py: the VAE's test MSE, read from a run it trains."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faces  # noqa: E402


def test_report_scores_the_kept_vae_on_every_test_face(tiny_data, tmp_path):
    report = tmp_path / "faces.md"
    assert faces.main(["--data", str(tiny_data), "--out", str(tmp_path / "runs"), "--train-args=--dry-run",
                       "--report", str(report)]) == 0
    row = faces.measure(tiny_data, tmp_path / "runs" / "vae")
    n_train = len(pd.read_csv(tiny_data / "face" / "train.csv"))
    assert row["train"] + row["val"] == n_train and row["val"] >= 1
    assert row["test"] == len(pd.read_csv(tiny_data / "face" / "test.csv"))
    assert 0 < row["test_mse"] < 1 and row["epochs"] == 2  # the dry run's two epochs
    text = report.read_text()
    assert f"| {row['train']} / {row['val']} / {row['test']} | 2 |" in text and f"{row['test_mse']:.4f}" in text
    assert "--train-args=--dry-run" in text  # the command that made it
