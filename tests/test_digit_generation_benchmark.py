"""benchmarks/digit_generation.py: the real-digit floor it scores, and the report it writes."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import digit_generation  # noqa: E402
from datasets import load_folder  # noqa: E402


def test_real_floor_takes_each_train_digit_once_and_names_it_by_class(tiny_data, tmp_path):
    train = tiny_data / "digits" / "mnistm"
    labels = pd.read_csv(train / "train.csv").set_index("image_name")["label"]
    fewest = labels.value_counts().reindex(range(10), fill_value=0).min()
    floor = digit_generation.real_floor(tiny_data, tmp_path / "real", per_class=100)
    picked = load_folder(floor)
    assert len(picked.names) == (len(labels) if fewest == 0 else 10 * min(100, fewest))
    originals = load_folder(train / "train")
    # Each picked image is a train digit of the class its name says, and none is taken twice.
    available = Counter((bytes(image.numpy()), labels[name]) for image, name in zip(originals.images, originals.names))
    taken = Counter((bytes(image.numpy()), int(name.split("_")[0])) for image, name in zip(picked.images, picked.names))
    assert all(available[key] >= n for key, n in taken.items())


def test_report_reads_fid_against_the_floor_and_each_judge():
    judges = {f"judge{s}": acc for s, acc in zip(digit_generation.JUDGE_SEEDS, (0.9, 0.8, 0.7))}
    rows = [{"split": "dev", "model": "real", "fid": 50.0, "kid": 0.0, "n_generated": 1000, "n_real": 500},
            {"split": "dev", "model": "ddpm", "w": 2.0, "sampler": "25 steps, eta 0", "fid": 75.0, "kid": 0.01,
             **judges, **{f"digit{d}": 0.8 for d in range(10)}, "steps": 3000, "cpu_seconds": 600.0},
            *({"split": "dev", "folder": f"judge{s}", "model": "judge", "real_test_accuracy": 0.95}
              for s in digit_generation.JUDGE_SEEDS)]
    text = digit_generation.report(pd.DataFrame(rows), "cmd")
    assert "1000 real train digits against the 500 test digits: FID 50.0" in text
    assert "| DDPM | 25 steps, eta 0 | 2 | 90.0 / 80.0 / 70.0 | 70.0 |" in text
    assert "| 75.0 | 1.50x | 0.0100 | 3000 | 10 |" in text
    assert "test digits: 95.0 % / 95.0 % / 95.0 %." in text  # the judges' own accuracy


def test_splits_must_name_a_tree_that_was_given(tmp_path):
    with pytest.raises(SystemExit, match="--splits names no tree"):
        digit_generation.main(["--dev", str(tmp_path), "--splits", "heldout", "--no-train", "--out", str(tmp_path)])


def test_train_digits_subset_keeps_n_train_digits_and_the_rest_of_the_tree(tiny_data, tmp_path):
    full = pd.read_csv(tiny_data / "digits" / "mnistm" / "train.csv")
    subset = digit_generation.subset_tree(tiny_data, 5, tmp_path / "tree5")
    kept = pd.read_csv(subset / "digits" / "mnistm" / "train.csv")
    assert len(kept) == 5 and kept.merge(full).shape == (5, 2)  # 5 of the tree's digits, with their labels
    assert sorted(p.name for p in (subset / "digits" / "mnistm" / "train").iterdir()) == sorted(kept.image_name)
    assert load_folder(subset / "digits" / "mnistm" / "test").names == load_folder(
        tiny_data / "digits" / "mnistm" / "test").names  # the test digits are all there
    assert {p.name for p in (subset / "digits").iterdir()} == {p.name for p in (tiny_data / "digits").iterdir()}
    assert digit_generation.subset_tree(tiny_data, 5, tmp_path / "again").joinpath(
        "digits", "mnistm", "train.csv").read_text() == (subset / "digits" / "mnistm" / "train.csv").read_text()
    with pytest.raises(SystemExit, match="--train-digits must be between 1 and"):
        digit_generation.subset_tree(tiny_data, len(full) + 1, tmp_path / "too_many")
    assert not (tmp_path / "too_many").exists()
