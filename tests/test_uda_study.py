"""The domain-adaptation study's report: development and held-out data in their own columns."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import uda_study  # noqa: E402


def fake_run(out: Path, split: str, method: str, accuracies: list[float], info_max: list[float],
             seconds: tuple[float, float] = (12.0, 10.0)) -> None:
    """A finished train_uda.py run: its log (one row per evaluation, no "last" column) and metrics.json."""
    folder = uda_study.run_dir(out, split, 0, method, "usps", "mnistm")
    folder.mkdir(parents=True)
    rows = [{"step": 100 * (i + 1), "source_val_acc": 0.9, "entropy": 1.0, "info_max": score, "snd": 0.0,
             "dev": 0.0, "target_test_accuracy": acc}
            for i, (acc, score) in enumerate(zip(accuracies, info_max))]
    pd.DataFrame(rows).to_csv(folder / "log.csv", index=False)
    kept = accuracies[max(range(len(info_max)), key=info_max.__getitem__)]
    (folder / "metrics.json").write_text(json.dumps({"target_test_accuracy": kept, "selection": "info_max",
                                                     "wall_seconds": seconds[0], "cpu_seconds": seconds[1]}))


def test_report_keeps_heldout_pairs_apart(tmp_path):
    fake_run(tmp_path, "dev", "swd", [0.5, 0.7, 0.6], [1.0, 2.0, 1.5])
    fake_run(tmp_path, "heldout", "swd", [0.4, 0.3, 0.2], [0.5, 0.6, 0.7], seconds=(30.0, 20.0))  # it declines
    table, curves = uda_study.collect(tmp_path, ["dev", "heldout"], ["swd"],
                                     {"dev": [("usps", "mnistm")], "heldout": [("usps", "mnistm")]}, [0])
    assert table.set_index("split")["kept"].to_dict() == {"dev": 0.7, "heldout": 0.2}
    assert len(curves) == 6
    text = uda_study.report(table, curves, "info_max", "cmd")
    assert "| usps->mnistm (dev) | usps->mnistm (held-out) |" in text
    assert "| Adaptation (SWD+) | 70.0 ± 0.0 | 20.0 ± 0.0 |" in text
    # Regret of info_max: 0 on dev, 40 - 20 = 20 points on the held-out run.
    assert "| `info_max` (default) | 0.00 | 0.00 | 20.00 | 20.00 |" in text
    assert "| held-out | usps->mnistm | Adaptation (SWD+) | 40.0 | 30.0 | 20.0 |" in text
    # "last" is the log's last row: 70 - 60 on dev, 40 - 20 held out.
    assert table["last"].tolist() == [0.6, 0.2]
    assert "| `last` | 10.00 | 10.00 | 20.00 | 20.00 |" in text
    # Wall-clock and CPU seconds, each under its own name, averaged over the method's runs.
    assert "| method | wall-clock seconds | CPU seconds |\n|---|---|---|\n| Adaptation (SWD+) | 21 | 15 |\n" in text
    assert "| Adaptation (SWD+) | 0.00 | 0.00 | 20.00 | 20.00 |" in text  # the default's regret, per method


def test_gain_over_source_only_is_seed_against_seed(tmp_path):
    fake_run(tmp_path, "dev", "source-only", [0.5, 0.6], [1.0, 2.0])
    fake_run(tmp_path, "dev", "dann", [0.7, 0.65], [2.0, 1.0])
    table, curves = uda_study.collect(tmp_path, ["dev"], ["source-only", "dann"], {"dev": [("usps", "mnistm")]}, [0])
    text = uda_study.report(table, curves, "info_max", "cmd")
    assert "| Adaptation (DANN) | +10.0 (worst +10.0) |" in text  # 70 kept against source-only's 60
    assert "Trained on source | +" not in text  # source-only is the reference, not a row
    # The lower bound both ways: the fake run's info_max keeps its second evaluation (60), its flat
    # source validation accuracy its first (50).
    assert "| kept by `info_max` (reads target train images) | 60.0 |" in text
    assert "| kept by `source_val_acc` (no target image; first of ties) | 50.0 |" in text
    assert "| the last evaluation (no target image; the default) | 60.0 |" in text


def test_no_development_scenarios_reports_the_held_out_runs_alone_with_a_command_that_runs(tmp_path):
    fake_run(tmp_path, "heldout", "dann", [0.4, 0.5], [1.0, 2.0])
    report = tmp_path / "report.md"
    uda_study.main(["--dev", str(tmp_path / "dev"), "--heldout", str(tmp_path / "heldout"), "--out", str(tmp_path),
                    "--methods", "dann", "--seeds", "0", "--scenarios", "--heldout-scenarios", "usps-mnistm",
                    "--train-args", "--steps-per-epoch 938", "--no-train", "--report", str(report)])
    text = report.read_text()
    assert "| method | usps->mnistm (held-out) |" in text and "(dev)" not in text
    assert "--train-args '--steps-per-epoch 938'" in text  # quoted as a shell would need it
