"""The bf16 paths a GPU takes, run on the CPU: every trainer's step and both digit samplers under autocast."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hw3 import checkpoints, common
import datasets
import generate_digits
import train_ddpm
import train_gan
import train_uda
import train_vae
from hw3 import uda
from hw3.training import load_checkpoint

DRY = ["--dry-run", "--quiet", "--device", "cpu", "--precision", "bf16"]


@pytest.fixture(autouse=True)
def _back_to_auto():
    yield
    common.set_precision("auto")  # the setting is per process: leave it as other tests expect


@pytest.mark.parametrize("precision, device, expected", [
    ("auto", "cpu", False), ("bf16", "cpu", True), ("fp32", "cpu", False),
])
def test_autocast_follows_the_precision(precision, device, expected):
    common.set_precision(precision)
    with common.autocast(torch.device(device)):
        product = torch.ones(2, 2) @ torch.ones(2, 2)
    assert product.dtype == (torch.bfloat16 if expected else torch.float32)
    with pytest.raises(common.UserError, match="unknown precision"):
        common.set_precision("fp16")


@pytest.mark.parametrize("method", uda.METHODS)
def test_every_uda_method_trains_under_bf16(method, tiny_data, tmp_path):
    out = tmp_path / method
    assert train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", method,
                           "--out-dir", str(out), "--batch-size", "8", *DRY]) == 0
    # The reported accuracy is the bf16 prediction of the published model: the run says it stepped in
    # bf16, and the accuracy is the published weights' argmax under bf16, computed here by hand.
    net, checkpoint = checkpoints.load_model(out / "model.pt", checkpoints.CLASSIFIERS)
    assert checkpoint["precision"] == "bf16"
    test = datasets.load_digits(tiny_data, "mnistm", "test")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        predicted = net(test.images.float() / 255).argmax(dim=1)
    expected = (predicted == test.labels).float().mean().item()
    assert json.loads((out / "metrics.json").read_text())["target_test_accuracy"] == pytest.approx(expected)
    rows = np.genfromtxt(out / "log.csv", delimiter=",", names=True)
    assert np.isfinite(rows["loss_cls" if method != "adda" else "loss_disc"][-1])


@pytest.mark.parametrize("script, args", [
    (train_vae, ["--channels", "8", "--latent-dim", "16", "--batch-size", "4"]),
    (train_gan, ["--arch", "dcgan", "--loss", "bce", "--channels", "8", "--z-dim", "16"]),
    (train_gan, ["--arch", "sagan", "--loss", "wgan-gp", "--channels", "8", "--z-dim", "16"]),
    (train_gan, ["--task", "digits", "--channels", "8", "--z-dim", "16"]),
    (train_ddpm, ["--channels", "16"]),
], ids=["vae", "dcgan-bce", "sagan-wgan-gp", "acgan", "ddpm"])
def test_every_generative_trainer_steps_under_bf16_and_samplers_draw(script, args, tiny_data, tmp_path):
    assert script.main(["--data", str(tiny_data), "--out-dir", str(tmp_path / "run"), *args, *DRY]) == 0
    checkpoint = load_checkpoint(tmp_path / "run" / "model.pt")
    assert checkpoint["precision"] == "bf16"  # the steps ran under bf16 autocast, as asked
    if checkpoint["kind"] == "ddpm" or checkpoint["config"].get("arch") == "acgan":
        out = tmp_path / "digits"
        assert generate_digits.main(["--checkpoint", str(tmp_path / "run" / "model.pt"), "--out-dir", str(out),
                                     "--n-per-class", "1", "--sample-steps", "2", "--device", "cpu",
                                     "--precision", "bf16"]) == 0
        assert len(list(out.iterdir())) == 10


@pytest.mark.whole_run
def test_gpu_check_runs_every_trainer_and_refuses_without_cuda(tiny_data, tmp_path):
    """The one-shot GPU check is ready for a GPU day: its wiring runs here on the CPU."""
    import sys

    from helpers import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    if not torch.cuda.is_available():
        with pytest.raises(common.UserError, match="no CUDA device"):
            gpu_check.main(["--out", str(tmp_path / "x")])
    # fp32: the full-size models' bf16 steps take minutes on a CPU without native bf16 (AMD EPYC here);
    # the bf16 paths are tested above on small models.
    assert gpu_check.main(["--out", str(tmp_path), "--data", str(tiny_data), "--device", "cpu", "--steps", "2",
                           "--precision", "fp32", "--no-scripts"]) == 0
    assert not (tmp_path / "data").exists()  # the tree given was trained on, none built
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert len(results["trainers"]) == 5 + len(uda.METHODS)
    assert all(r["steps"] >= 2 and r["s_per_100_steps"] > 0 for r in results["trainers"].values())
    assert "| UDA swd | fp32 |" in (tmp_path / "gpu_check.md").read_text()
