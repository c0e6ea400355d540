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


def test_partial_noise_gives_back_the_real_digits_when_the_network_is_exact(tmp_path):
    import ddpm_partial_noise
    import torch
    from torch import nn

    from hw3 import ddpm
    from hw3.images import write_folder

    real = torch.rand(20, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    names = [f"{i % 10}_{i // 10 + 1:03d}.png" for i in range(20)]
    folder = write_folder(real, names, tmp_path / "real")
    x0 = load_folder(folder).images.float() / 255 * 2 - 1  # as the PNGs hold them

    calls = []

    class Exact(nn.Module):  # predicts the true x_0 of every image in the batch (doubled by guidance)
        null_class, prediction, image_shape = 10, "x0", (3, 28, 28)

        def forward(self, x, t, labels):
            calls.append((t[0].item(), x[:len(x0)].clone(), labels[:len(x0)].clone()))
            return x0.repeat(len(x) // len(x0), 1, 1, 1)

    schedule = ddpm.DDPMConfig().schedule()
    digits, asked = ddpm_partial_noise.load_named_digits(folder)
    out = ddpm_partial_noise.denoise_real(Exact(), schedule, digits, asked, 249, tmp_path / "t250", guidance=2.0)
    denoised = load_folder(out)
    assert denoised.names == sorted(names)
    assert (denoised.images.int() - load_folder(folder).images.int()).abs().max() <= 1
    # It starts at the asked step from the real digits noised there (seed 0), under their own labels,
    # and takes that step's share of the 25 steps.
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    first_t, first_x, labels = calls[0]
    assert first_t == 249 and torch.allclose(first_x, schedule.q_sample(x0, 249, noise).float(), atol=1e-5)
    assert labels.tolist() == [int(n[0]) for n in sorted(names)] and len(calls) == round(25 * 250 / 1000)


def test_partial_noise_refuses_digits_not_named_by_class(tmp_path):
    import ddpm_partial_noise
    import torch

    from hw3.common import UserError
    from hw3.images import write_folder

    folder = write_folder(torch.rand(2, 3, 28, 28), ["a.png", "3_001.png"], tmp_path / "real")
    with pytest.raises(UserError, match="<digit>_<nnn>.png"):
        ddpm_partial_noise.main(["--checkpoint", str(tmp_path / "none.pt"), "--real", str(folder), "--test",
                                 str(folder), "--out", str(tmp_path / "out"), "--report", str(tmp_path / "r.md")])
    assert not (tmp_path / "out").exists()
