"""Problems 3 and 4: DANN and SWD maths, one step of each method, training, prediction, scoring, scripts."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import dann
import fetch
import plots
import predict
import score
import swd
import datasets
from hw3 import adda, adversarial, augment, checkpoints, digitnet
import train_uda
from hw3 import uda
from hw3.common import UserError
from hw3.training import load_checkpoint
from datasets import load_digits
from helpers import run

DRY = ["--dry-run", "--quiet", "--batch-size", "8", "--device", "cpu"]


# ---------------------------------------------------------------------------
# Model maths
# ---------------------------------------------------------------------------


def test_gradient_reversal_is_identity_forward_and_flips_scaled_gradient():
    x = torch.randn(4, 5, dtype=torch.double, requires_grad=True)
    weights = torch.randn(4, 5, dtype=torch.double)
    y = adversarial.reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -0.3 * weights)
    # Against autograd on the plain identity: the same Jacobian, times -coeff.
    x2 = x.detach().clone().requires_grad_(True)
    (grad_plain,) = torch.autograd.grad((x2 * weights).sum(), x2)
    assert torch.allclose(x.grad, -0.3 * grad_plain)


def test_grl_schedule_follows_ganin():
    assert adversarial.grl_coefficient(0.0) == 0.0
    assert adversarial.grl_coefficient(0.5) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert adversarial.grl_coefficient(1.0) == pytest.approx(1.0, abs=1e-4)
    values = [adversarial.grl_coefficient(p) for p in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_swd_zero_for_identical_and_permuted_batches():
    p = torch.randn(16, 10).softmax(dim=1)
    g = torch.Generator().manual_seed(0)
    assert swd.sliced_wasserstein_discrepancy(p, p, 64, rng=g).item() == 0.0
    shuffled = p[torch.randperm(16, generator=g)]
    assert swd.sliced_wasserstein_discrepancy(p, shuffled, 64, rng=g).item() == pytest.approx(0.0, abs=1e-12)


def test_swd_grows_with_a_shift_quadratically():
    p = torch.rand(32, 10, dtype=torch.double)
    shift = torch.zeros(10, dtype=torch.double)
    shift[3] = 1.0
    values = []
    for c in (0.1, 0.2, 0.4):
        g = torch.Generator().manual_seed(1)  # the same directions for each shift
        values.append(swd.sliced_wasserstein_discrepancy(p, p + c * shift, 128, rng=g).item())
    assert 0 < values[0] < values[1] < values[2]
    # A translation moves every sorted projection by (c * shift . theta): SWD = c^2 E[theta_3^2].
    assert values[1] / values[0] == pytest.approx(4.0)
    assert values[2] / values[0] == pytest.approx(16.0)


def test_alignment_keeps_an_over_predicted_class_from_taking_the_pseudo_labels():
    """A case built to collapse: the model gives class 0 to most of a target batch whose classes are balanced."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(512, 10, generator=g)
    logits[:, 0] += 2.0  # class 0 wins for most images
    probs = logits.softmax(dim=1)
    prior = probs.mean(dim=0)  # what the running mean converges to
    aligned = swd.align_distribution(probs, prior)
    assert torch.allclose(aligned.sum(dim=1), torch.ones(512))

    def class0_share(p):  # share of the confident pseudo-labels that are class 0
        confidence, labels = p.max(dim=1)
        return (labels[confidence >= 0.5] == 0).float().mean().item()

    assert class0_share(probs) > 0.8  # unaligned, self-training would confirm class 0 everywhere
    assert class0_share(aligned) < 0.3
    assert torch.allclose(swd.align_distribution(probs, torch.full((10,), 0.1)), probs)  # a uniform prior changes nothing


def test_ramp_up_rises_from_near_zero_to_one():
    values = [swd.ramp_up(p, 0.3) for p in np.linspace(0, 0.5, 11)]
    assert values[0] == pytest.approx(math.exp(-5)) and values[-1] == 1.0
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert swd.ramp_up(0.0, 0.0) == 1.0  # no ramp


def test_standardize_makes_the_model_blind_to_brightness_and_contrast():
    model = dann.DANN().eval()
    x = torch.rand(6, 3, 28, 28) * 0.5
    z = digitnet.standardize(x)
    assert torch.allclose(z.mean(dim=(1, 2, 3)), torch.zeros(6), atol=1e-5)
    assert torch.allclose(z.std(dim=(1, 2, 3)), torch.ones(6), atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(model(x), model(0.4 * x + 0.3), atol=1e-4)


@pytest.mark.parametrize("method", uda.METHODS)
def test_inference_interface_is_shared(method):
    net = uda.UDAConfig.of(method).build().eval()
    assert isinstance(net, digitnet.DigitNet)
    x = torch.rand(5, 3, 28, 28)
    with torch.no_grad():
        out, feats = net(x), net.features(x)
    assert out.shape == (5, 10) and feats.shape == (5, net.extractor.feature_dim)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)  # log-probabilities


def test_swd_inference_uses_both_classifiers():
    net = swd.SWDNet().eval()
    x = torch.rand(5, 3, 28, 28)
    with torch.no_grad():
        l1, l2 = net.both_logits(net.features(x))
        expected = (0.5 * (l1.softmax(1) + l2.softmax(1))).log()
        assert torch.allclose(net(x), expected, atol=1e-6)
        assert not torch.allclose(net(x), l1.log_softmax(1), atol=1e-3)


# ---------------------------------------------------------------------------
# One step of each method
# ---------------------------------------------------------------------------


# The parts one update leaves alone: ADDA's stage 2 trains the target extractor against its critic only
# (checked below). Every other part of every registered method's network must change.
FIXED = {"adda": {"classifier", "source_extractor"}}


def trained_parts(name: str, model: torch.nn.Module) -> list[str]:
    """The top-level parts with weights of ``model`` (method ``name``) that one update changes."""
    return [part for part, module in model.named_children()
            if any(True for _ in module.parameters()) and part not in FIXED.get(name, set())]


def tiny_training(tiny_data, name: str, *flags: str):
    """A small network of method ``name`` on the tiny usps -> mnistm, with what train_uda.py's loop hands a step."""
    recipe = train_uda.recipe_from(train_uda.build_parser().parse_args(
        ["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", name, *flags]))
    method = uda.METHODS[name]
    data = train_uda.load_data(tiny_data, "usps", "mnistm", method.labelled, 0.2, 0, torch.device("cpu"))
    model = uda.UDAConfig.of(name, c1=8, c2=8, hidden=16).build()
    streams = {"labelled": datasets.EndlessBatches(data.train_x, data.train_y, batch_size=8,
                                                   rng=torch.Generator().manual_seed(0))}
    if method.reads_target:  # the baselines get no target stream: they never see a target image
        streams["target"] = datasets.EndlessBatches(data.target_x, batch_size=8, rng=torch.Generator().manual_seed(1))
    augment, _ = train_uda.augmenters(recipe, method, data)
    return model, method, recipe, streams, augment


@pytest.mark.parametrize("name", uda.METHODS)
def test_one_update_of_each_method_changes_its_parts(tiny_data, name):
    torch.manual_seed(0)
    model, method, recipe, streams, augment = tiny_training(tiny_data, name, "--adda-pretrain-share", "0")
    optimizers = method.optimizers(model, recipe)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    row = train_uda.train_step(model, method, optimizers, streams, augment, recipe, 0, 10)
    assert {"lr"} < set(row) <= {"lr", *method.losses}  # ADDA logs loss_cls in stage 1 only
    assert row and all(np.isfinite(v) for v in row.values())
    after = model.state_dict()
    assert "extractor" in trained_parts(name, model)
    for part in trained_parts(name, model):
        keys = [k for k, _ in model.named_parameters() if k.startswith(part + ".")]  # weights, not BN statistics
        assert any(not torch.equal(before[k], after[k]) for k in keys), part
    if name == "swd":  # the alignment safeguard follows the target predictions
        assert not torch.equal(before["target_prior"], after["target_prior"])
        assert after["target_prior"].sum().item() == pytest.approx(1.0)
    if name == "adda":  # stage 2: the classifier stays fixed, the source extractor is the pre-trained copy
        assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("classifier."))
        assert all(torch.equal(before[k.replace("source_extractor", "extractor")], after[k])
                   for k in after if k.startswith("source_extractor.") and after[k].is_floating_point())


def test_adda_pretrains_for_its_share_of_the_run_then_stays_in_stage_two(tiny_data):
    settings = adda.ADDASettings(adda_pretrain_share=0.5, adda_lr=1e-3, adda_critic_lr=2e-5)
    assert [settings.adaptation_start(n) for n in (1000, 9380, 2)] == [500, 4690, 1]
    late = replace(settings, adda_pretrain_share=0.9)
    assert late.adaptation_start(1000) == 900 and late.shortened().adaptation_start(2) == 1  # a dry run has both
    with pytest.raises(UserError, match="adda-pretrain-share"):
        replace(settings, adda_pretrain_share=1.0)
    torch.manual_seed(0)
    model, method, recipe, streams, augment = tiny_training(tiny_data, "adda", "--adda-pretrain-share", "0.5")
    optimizers = method.optimizers(model, recipe)
    rows = []
    for step in range(4):
        if step == 2:
            pretrained = {k: v.clone() for k, v in model.extractor.state_dict().items()}
        rows.append(train_uda.train_step(model, method, optimizers, streams, augment, recipe, step, 4))
    assert ["loss_cls" in row for row in rows] == [True, True, False, False]
    assert model.adaptation_began.item() == 2
    assert all(torch.equal(pretrained[k], v) for k, v in model.source_extractor.state_dict().items())
    # The stage is saved with the weights: the same run lengthened to 16 updates (stage 2 would begin at 8)
    # stays in stage 2.
    resumed = uda.UDAConfig.of("adda", c1=8, c2=8, hidden=16).build()
    resumed.load_state_dict(model.state_dict())
    row = train_uda.train_step(resumed, method, method.optimizers(resumed, recipe), streams, augment, recipe, 4, 16)
    assert "loss_map" in row and resumed.adaptation_began.item() == 2


def test_target_only_trains_on_target_labels(tiny_data):
    data = train_uda.load_data(tiny_data, "usps", "mnistm", "target", 0.2, 0, torch.device("cpu"))
    mnistm = load_digits(tiny_data, "mnistm", "train")
    assert len(data.train_x) + len(data.val_x) == len(mnistm)
    assert any(torch.equal(data.train_x[0], img) for img in mnistm.images)


def _with_target_train(tiny_data: Path, root: Path, donor: str) -> Path:
    """A copy of the tiny tree whose mnistm train images are ``donor``'s (same names, other pixels)."""
    shutil.copytree(tiny_data, root)
    target = root / "digits" / "mnistm" / "train"
    for png in (root / "digits" / donor / "train").glob("*.png"):
        shutil.copy(png, target / png.name)
    return root


def test_source_only_keeps_the_same_model_whatever_the_target_images(tiny_data, tmp_path, monkeypatch):
    """The lower bound reads no target image, for training or for choosing its kept evaluation.

    Here the target train images are swapped for usps' own. Anything of the target that reached the run
    (a measured augmentation, AdaBN's statistics, a target score choosing the evaluation) would change
    the kept weights; checked by giving source-only AdaBN once.
    """
    monkeypatch.setenv("HW3_CACHE_DIR", str(tmp_path / "cache"))
    runs = []
    for donor in ("mnistm", "usps"):
        tree = tmp_path / f"tree_{donor}"
        if donor == "mnistm":
            shutil.copytree(tiny_data, tree)
        else:
            _with_target_train(tiny_data, tree, donor)
        out = tmp_path / f"run_{donor}"
        train_uda.main(["--data", str(tree), "--source", "usps", "--target", "mnistm", "--method", "source-only",
                        "--epochs", "6", "--steps-per-epoch", "2", "--batch-size", "8", "--device", "cpu",
                        "--quiet", "--out-dir", str(out)])
        runs.append(out)
    logs = [pd.read_csv(out / "log.csv").dropna(subset=["info_max"]) for out in runs]
    # The swap is real: the target scores logged beside (never used to choose) differ ...
    assert not np.allclose(logs[0]["info_max"], logs[1]["info_max"])
    # ... yet the same evaluation is kept, with the same weights.
    kept = [json.loads((out / "metrics.json").read_text()) for out in runs]
    assert kept[0]["selection"] == "last" == kept[1]["selection"]
    assert kept[0]["selected_epoch"] == kept[1]["selected_epoch"]
    a, b = (load_checkpoint(out / "model.pt")["model"] for out in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("flags", [["--select", "info_max"], ["--select", "entropy"], ["--augment", "measured"]])
def test_source_only_refuses_what_reads_the_target(tiny_data, flags):
    args = train_uda.build_parser().parse_args(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm",
                                                "--method", "source-only", *flags])
    with pytest.raises(UserError, match="reads no target image"):
        train_uda.recipe_from(args)


def test_target_only_makes_as_many_updates_as_the_other_methods(tiny_data, tmp_path):
    """A pass is sized by the larger of the two train sets for every method, whichever labels it reads."""
    tree = tmp_path / "tree"
    shutil.copytree(tiny_data, tree)
    usps = tree / "digits" / "usps"
    rows = (usps / "train.csv").read_text().splitlines()
    (usps / "train.csv").write_text("\n".join(rows[:21]) + "\n")  # 20 of usps' 40 train images: the smaller set
    for name in [r.split(",")[0] for r in rows[21:]]:
        (usps / "train" / name).unlink()
    sizes = {labelled: train_uda.load_data(tree, "svhn", "usps", labelled, 0.1, 0, torch.device("cpu")).pass_images
             for labelled in ("source", "target")}
    assert sizes["source"] == sizes["target"] == 36  # svhn's 40 less its validation split, not usps' 20


# ---------------------------------------------------------------------------
# Training script
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """Dry-run checkpoints of DANN and SWD for usps -> mnistm (shared, read-only)."""
    root = tmp_path_factory.mktemp("uda_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HW3_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        for method in ("dann", "swd"):
            train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", method,
                            "--out-dir", str(root / f"{method}_usps-mnistm"), *DRY])
    return root


def test_dry_run_writes_every_output(trained, tiny_data):
    out = trained / "swd_usps-mnistm"
    for name in ("latest.pt", "best.pt", "model.pt", "log.csv", "metrics.json"):
        assert (out / name).is_file(), name
    model = load_checkpoint(out / "model.pt", kind="uda")
    assert (model["config"]["method"], model["run"]["source"], model["run"]["target"]) == ("swd", "usps", "mnistm")
    assert "optimizers" not in model and "rng" not in model
    assert set(load_checkpoint(out / "latest.pt")["optimizers"]) == {"model"}
    metrics = json.loads((out / "metrics.json").read_text())
    net, _ = checkpoints.load_model(out / "model.pt", checkpoints.CLASSIFIERS)  # the reported accuracy is the published model's
    test = load_digits(tiny_data, "mnistm", "test")
    expected = (digitnet.predict_labels(net, test.images, "cpu") == test.labels).float().mean().item()
    assert metrics["target_test_accuracy"] == pytest.approx(expected) and metrics["target_test_images"] == len(test)
    assert metrics["selection"] == "info_max" and metrics["cpu_seconds"] > 0 and metrics["wall_seconds"] > 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["step"] for r in rows] == ["1", "2"]  # the evaluation's scores are on the last update's row
    assert rows[-1]["source_val_acc"] != "" and rows[0]["discrepancy"] != "" and rows[-1]["snd"] != ""
    assert rows[-1]["target_test_accuracy"] == ""  # only with --log-test-accuracy


def test_a_methods_network_flags_come_from_its_shape(trained, tiny_data, tmp_path):
    """DANN's discriminator widths are fields of its shape: each is a flag, reaches the network and the checkpoint."""
    saved = load_checkpoint(trained / "dann_usps-mnistm" / "model.pt")["config"]
    assert saved == {"method": "dann", **dataclasses.asdict(dann.DANNShape())}  # the defaults, declared once
    assert "disc_hidden" not in load_checkpoint(trained / "swd_usps-mnistm" / "model.pt")["config"]
    out = tmp_path / "wide"
    train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", "dann",
                    "--disc-hidden", "7", "--disc-layers", "2", "--width", "4", "6", "--out-dir", str(out), *DRY])
    net, checkpoint = checkpoints.load_model(out / "model.pt", checkpoints.CLASSIFIERS)
    assert (checkpoint["config"]["disc_hidden"], checkpoint["config"]["disc_layers"], checkpoint["config"]["c2"]) == (7, 2, 6)
    linears = [m for m in net.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [7, 7, 1] and linears[0].in_features == 16 * 6


def test_same_seed_same_weights(tiny_data, tmp_path, trained):
    out = tmp_path / "again"
    train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", "dann",
                    "--out-dir", str(out), *DRY])
    a = load_checkpoint(out / "model.pt")["model"]
    b = load_checkpoint(trained / "dann_usps-mnistm" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_after_last_epoch(tiny_data, tmp_path, capsys):
    common = ["--data", str(tiny_data), "--source", "svhn", "--target", "usps", "--method", "source-only",
              "--out-dir", str(tmp_path), "--steps-per-epoch", "1", "--batch-size", "8", "--device", "cpu"]
    train_uda.main([*common, "--epochs", "1"])
    first = load_checkpoint(tmp_path / "latest.pt")
    train_uda.main([*common, "--epochs", "2"])
    assert "resuming" in capsys.readouterr().out
    second = load_checkpoint(tmp_path / "latest.pt")
    assert second["epoch"] == 2  # epochs finished
    assert second["cpu_seconds"] > first["cpu_seconds"] > 0  # time adds up over the resumed segments
    assert json.loads((tmp_path / "metrics.json").read_text())["cpu_seconds"] == round(second["cpu_seconds"], 3)
    assert second["recipe"]["epochs"] == 2 and second["recipe"]["lr"] == 1e-3  # the recipe travels with it
    steps = [r["step"] for r in csv.DictReader(open(tmp_path / "log.csv"))]
    assert steps == ["1", "2"]
    with pytest.raises(UserError, match="belongs to"):
        train_uda.main([*common, "--epochs", "2", "--method", "dann"])
    # A finished run is not silently reused under another recipe: training flags must match too.
    with pytest.raises(UserError, match=r"other settings \(--lr, --weight-decay\)"):
        train_uda.main([*common, "--epochs", "2", "--lr", "1e-2", "--weight-decay", "0"])
    # bf16 and fp32 are not one run: the precision the steps ran in is saved and compared.
    assert second["precision"] == "fp32"
    with pytest.raises(UserError, match=r"other settings \(--precision\)"):
        train_uda.main([*common, "--epochs", "2", "--precision", "bf16"])
    train_uda.main([*common, "--epochs", "2", "--precision", "fp32"])  # what auto runs on the CPU
    train_uda.main([*common, "--epochs", "2", "--quiet", "--threads", "2"])  # how to run may change
    train_uda.main([*common, "--epochs", "2", "--width", "32", "48"])  # the default tuple, given as a list


@pytest.mark.parametrize("args, message", [
    (["--source", "usps", "--target", "usps"], "must differ"),
    (["--source", "usps", "--target", "svhn", "--epochs", "0"], "at least 1"),
])
def test_training_rejects_bad_arguments(tiny_data, tmp_path, args, message):
    with pytest.raises(UserError, match=message):
        train_uda.main(["--data", str(tiny_data), "--method", "dann", "--out-dir", str(tmp_path), *args, *DRY])


def test_training_on_missing_data_is_one_line_error(tmp_path):
    result = run(["python3", "train_uda.py", "--data", str(tmp_path / "nope"), "--source", "usps", "--target", "svhn",
                  "--method", "dann", "--out-dir", str(tmp_path / "out"), "--dry-run"])
    assert result.returncode == 2
    assert result.stderr.startswith("error: image folder not found") and result.stderr.count("\n") == 1


# ---------------------------------------------------------------------------
# Predictor and scorer
# ---------------------------------------------------------------------------


def _image_folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in names:  # written out of order on purpose
        Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_predictor_csv_format_and_order(trained, tmp_path):
    folder = _image_folder(tmp_path, ["b.png", "a10.png", "a2.png", "c.png", "0.png"])
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "pred.csv"
    predict.main(["--checkpoint", str(trained / "swd_usps-mnistm" / "model.pt"), "--img-dir", str(folder),
                  "--out", str(out), "--batch-size", "2"])
    lines = out.read_text().splitlines()
    assert lines[0] == "image_name,label"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == ["0.png", "a10.png", "a2.png", "b.png", "c.png"]
    assert all(r[1].isdigit() and 0 <= int(r[1]) <= 9 for r in rows)
    first = out.read_bytes()
    assert b"\r" not in first  # Unix line ends, as a Linux grader reads them
    predict.main(["--checkpoint", str(trained / "swd_usps-mnistm" / "model.pt"), "--img-dir", str(folder),
                  "--out", str(out)])
    assert out.read_bytes() == first  # batch size does not change predictions


def test_predictor_refuses_a_model_for_another_target(trained, tiny_data, tmp_path):
    with pytest.raises(UserError, match="adapted to 'mnistm'"):
        predict.main(["--checkpoint", str(trained / "dann_usps-mnistm" / "model.pt"), "--target", "svhn",
                      "--img-dir", str(tiny_data / "digits" / "svhn" / "test"), "--out", str(tmp_path / "p.csv")])
    assert not (tmp_path / "p.csv").exists()


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("image_name,label\n" + "".join(f"{n},{l}\n" for n, l in rows))
    return path


def test_accuracy_compares_labels_as_written(tmp_path):
    truth = score.read_labels(_csv(tmp_path / "t.csv", [("a.png", "1"), ("b.png", "2"), ("c.png", "3"), ("d.png", "4")]))
    pred = score.read_labels(_csv(tmp_path / "p.csv", [("d.png", "4"), ("c.png", "3.0"), ("b.png", "2"), ("a.png", "7")]))
    assert score.accuracy(pred, truth) == 0.5
    assert score.accuracy(truth, truth) == 1.0


@pytest.mark.parametrize("pred_rows, message", [
    ([("a.png", "1"), ("b.png", "2"), ("z.png", "3")], "not in the ground truth"),
    ([("a.png", "1")], "have no prediction"),
    ([("a.png", "1"), ("a.png", "1"), ("b.png", "2")], "twice"),
])
def test_accuracy_errors_on_mismatched_images(tmp_path, pred_rows, message):
    truth = _csv(tmp_path / "t.csv", [("a.png", "1"), ("b.png", "2")])
    pred = _csv(tmp_path / "p.csv", pred_rows)
    with pytest.raises(UserError, match=message):
        score.accuracy(score.read_labels(pred), score.read_labels(truth))


def test_score_command(tmp_path, capsys):
    truth = _csv(tmp_path / "t.csv", [("a.png", "1"), ("b.png", "2")])
    result = run(["python3", "score.py", str(_csv(tmp_path / "p.csv", [("a.png", "1")])), str(truth)])
    assert result.returncode == 2 and result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    score.main([str(_csv(tmp_path / "q.csv", [("b.png", "2"), ("a.png", "0")])), str(truth)])
    assert capsys.readouterr().out.strip() == "accuracy: 0.5000"


def test_accuracy_rejects_wrong_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,pred\na.png,1\n")
    with pytest.raises(UserError, match="image_name,label"):
        score.read_labels(bad)


# ---------------------------------------------------------------------------
# Grader scripts on loopback
# ---------------------------------------------------------------------------


@pytest.fixture
def published(trained, model_server, tmp_path):
    """Both usps -> mnistm models served on loopback; an empty model dir holding only the manifest."""
    for method in ("dann", "swd"):
        shutil.copy(trained / f"{method}_usps-mnistm" / "model.pt", model_server.directory / f"{method}_usps-mnistm.pt")
    fetch.publish(model_server.directory, ["dann_usps-mnistm.pt", "swd_usps-mnistm.pt"], None)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    shutil.copy(model_server.directory / "manifest.json", model_dir / "manifest.json")
    return {"HW3_MODEL_DIR": str(model_dir), "HW3_MODEL_BASE_URL": model_server.url}


@pytest.mark.parametrize("script, runs", [("hw3_p3.sh", 2), ("hw3_p4.sh", 1)])
def test_script_end_to_end(script, runs, published, trained, tiny_data, tmp_path):
    img_dir = tiny_data / "digits" / "mnistm" / "test"
    out = tmp_path / "out" / "pred.csv"
    outputs = []
    for _ in range(runs):  # the second run uses the verified local copy
        result = run(["bash", script, str(img_dir), "mnistm", str(out)], **published)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert all(o == outputs[0] for o in outputs)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 20 and [r["image_name"] for r in rows] == sorted(r["image_name"] for r in rows)
    acc = score.accuracy(score.read_labels(out), score.read_labels(tiny_data / "digits" / "mnistm" / "test.csv"))
    method = "dann" if script == "hw3_p3.sh" else "swd"
    metrics = json.loads((trained / f"{method}_usps-mnistm" / "metrics.json").read_text())
    assert acc == pytest.approx(metrics["target_test_accuracy"])  # the script predicts what training measured
    model_name = method + "_usps-mnistm.pt"
    assert (Path(published["HW3_MODEL_DIR"]) / model_name).is_file()  # fetched with wget and verified


def _assert_fails_with(result, message):
    assert result.returncode != 0
    assert message in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


@pytest.mark.parametrize("script", ["hw3_p3.sh", "hw3_p4.sh"])
def test_script_usage_and_unknown_domain_before_fetching(script, published, tiny_data, tmp_path):
    img_dir = str(tiny_data / "digits" / "mnistm" / "test")
    _assert_fails_with(run(["bash", script, img_dir, "mnistm"], **published), "usage:")
    _assert_fails_with(run(["bash", script, img_dir, "mnist", str(tmp_path / "o.csv")], **published),
                       "unknown target domain 'mnist'")
    assert not any(Path(published["HW3_MODEL_DIR"]).glob("*.pt"))  # nothing was fetched
    assert not (tmp_path / "o.csv").exists()


def test_script_bad_folders_and_output(published, trained, tiny_data, tmp_path):
    # hw3_p4.sh differs from hw3_p3.sh only in its model names, so one script covers these.
    img_dir = str(tiny_data / "digits" / "mnistm" / "test")
    empty = tmp_path / "empty"
    empty.mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = [
        ([str(tmp_path / "missing"), "mnistm", str(tmp_path / "o2.csv")], "image folder not found"),
        ([str(empty), "mnistm", str(tmp_path / "o3.csv")], "no images"),
    ]
    for args, message in cases:
        _assert_fails_with(run(["bash", "hw3_p3.sh", *args], **published), message)
    assert not any(Path(published["HW3_MODEL_DIR"]).glob("*.pt"))  # bad folders fail before any download
    # The script hands OUT to predict.py unchanged; checked in-process to spare two interpreter starts.
    checkpoint = trained / "dann_usps-mnistm" / "model.pt"
    with pytest.raises(UserError, match="cannot write"):
        predict.main(["--checkpoint", str(checkpoint), "--img-dir", img_dir, "--out", str(blocker / "o4.csv")])
    leftovers = [p.name for p in tmp_path.rglob("*") if p.suffix in (".csv", ".tmp")]
    assert leftovers == []


def test_script_with_damaged_download_leaves_no_csv(published, model_server, tiny_data, tmp_path):
    (model_server.directory / "swd_usps-mnistm.pt").write_bytes(b"not the published file")
    out = tmp_path / "pred.csv"
    result = run(["bash", "hw3_p4.sh", str(tiny_data / "digits" / "mnistm" / "test"), "mnistm", str(out)], **published)
    assert result.returncode != 0 and "damaged" in result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def test_uda_report_table_and_tsne(trained, tiny_data, tmp_path):
    runs = tmp_path / "runs"
    for run in ("dann_usps-mnistm", "swd_usps-mnistm"):
        shutil.copytree(trained / run, runs / run)
    (runs / "swd_svhn-usps").mkdir()
    (runs / "swd_svhn-usps" / "metrics.json").write_text(json.dumps({"target_test_accuracy": 0.8125}))
    out = tmp_path / "report"
    plots.main(["uda", "--runs", str(runs), "--data", str(tiny_data), "--out-dir", str(out), "--methods", "dann",
                "--quiet"])
    table = list(csv.reader(open(out / "uda_accuracy.csv")))
    assert table[0] == ["method", "usps->mnistm", "mnistm->svhn", "svhn->usps"]
    assert [r[0] for r in table[1:]] == ["Trained on source", "Adaptation (DANN)", "Adaptation (SWD+)",
                                         "Adaptation (ADDA)", "Trained on target"]
    assert table[3][3] == "81.25" and table[3][2] == "" and table[2][1] != "" and table[3][1] != ""
    assert re.search(r"\| Adaptation \(SWD\+\) \| \d+\.\d\d % \| – \| 81\.25 % \|", (out / "uda_accuracy.md").read_text())
    for suffix in ("class", "domain"):
        assert (out / f"tsne_dann_usps-mnistm_{suffix}.png").stat().st_size > 1000
        assert not (out / f"tsne_swd_usps-mnistm_{suffix}.png").exists()  # only the runs of --methods


def test_uda_report_without_runs_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no runs"):
        plots.main(["uda", "--runs", str(tmp_path), "--no-tsne", "--out-dir", str(tmp_path / "r")])


@pytest.mark.parametrize("flags, calls", [(["--augment-target", "--augment", "source"], 2),
                                          (["--no-augment-target", "--augment", "source"], 1),
                                          (["--augment-target", "--augment", "none"], 0)])
def test_dann_augments_target_images_only_when_asked(tiny_data, monkeypatch, flags, calls):
    """With --augment-target the discriminator sees both domains through the same augmentation."""
    seen = []
    monkeypatch.setattr(train_uda, "augment_source", lambda x, scale: seen.append(len(x)) or x)
    args = train_uda.build_parser().parse_args(["--data", "-", "--source", "usps", "--target", "mnistm",
                                                 "--method", "dann", *flags, "--quiet"])
    recipe = train_uda.recipe_from(args)
    data = train_uda.load_data(tiny_data, "usps", "mnistm", "source", 0.2, 0, torch.device("cpu"))
    model = uda.UDAConfig.of("dann", c1=8, c2=8, hidden=16).build()
    streams = {"labelled": datasets.EndlessBatches(data.train_x, data.train_y, batch_size=8,
                                                   rng=torch.Generator().manual_seed(0)),
               "target": datasets.EndlessBatches(data.target_x, batch_size=6, rng=torch.Generator().manual_seed(1))}
    dann_ = uda.METHODS["dann"]
    augment, measured = train_uda.augmenters(recipe, dann_, data)
    train_uda.train_step(model, dann_, dann_.optimizers(model, recipe), streams, augment, recipe, 0, 10)
    assert seen == [8, 6][:calls] and measured == {}


@pytest.mark.parametrize("method, default", [("dann", "measured"), ("source-only", "source"), ("swd", "measured"),
                                             ("target-only", "source")])
def test_each_method_defaults_to_its_chosen_augmentation(method, default):
    """Source-only keeps the fixed augmentation: reading target images would make it an adaptation."""
    args = train_uda.build_parser().parse_args(["--data", "-", "--source", "usps", "--target", "mnistm",
                                                 "--method", method])
    assert train_uda.recipe_from(args).augment == default


@pytest.mark.parametrize("method, target_changed", [("dann", True), ("swd", False)])
def test_measured_augmentation_reads_both_domains_and_is_logged(tiny_data, tmp_path, method, target_changed):
    """--augment measured: the plan comes from the labelled and the target train images and lands in metrics.json."""
    out = tmp_path / "run"
    assert train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", method,
                           "--augment", "measured", "--dry-run", "--quiet", "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["looks"]) == {"labelled", "target"}
    assert ("target" in metrics["augment"]) == target_changed
    data = train_uda.load_data(tiny_data, "usps", "mnistm", "source", 0.1, 0, torch.device("cpu"))
    expected = augment.MeasuredAugment.between(augment.DigitLook.measure(data.train_x),
                                                augment.DigitLook.measure(data.target_x))
    assert metrics["augment"]["labelled"]["zoom"] == list(expected.zoom)


def test_adapt_batch_norm_takes_the_statistics_of_the_given_images():
    """AdaBN: the first batch norm's running mean becomes the mean of its inputs over the target images, exactly."""
    torch.manual_seed(0)
    model = uda.UDAConfig.of("dann", c1=4, c2=4, hidden=8).build().eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    images = torch.randint(0, 256, (40, 3, 28, 28), dtype=torch.uint8)
    digitnet.adapt_batch_norm(model, images, "cpu", batch_size=20)  # two equal batches: their mean is the mean
    conv, norm = model.extractor.net[0], model.extractor.net[1]
    with torch.no_grad():
        expected = conv(digitnet.standardize(datasets.to_float(images))).mean(dim=(0, 2, 3))
    assert torch.allclose(norm.running_mean, expected, atol=1e-5)
    assert norm.momentum == 0.1 and not model.training  # left as it was found
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # no weight changed


def test_dann_adabn_changes_only_the_kept_statistics(tiny_data, tmp_path):
    """--adabn trains the same weights; only the batch-norm buffers of the kept model differ."""
    models = {}
    for flag in ("--no-adabn", "--adabn"):
        out = tmp_path / flag
        assert train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method",
                               "dann", flag, "--out-dir", str(out), *DRY]) == 0
        models[flag] = load_checkpoint(out / "model.pt", kind="uda")["model"]
    plain, adapted = models.values()
    buffers = [k for k in plain if "running" in k or "num_batches_tracked" in k]
    assert all(torch.equal(plain[k], adapted[k]) for k in plain if k not in buffers)
    assert any(not torch.equal(plain[k], adapted[k]) for k in buffers)


@pytest.mark.parametrize("layers", [1, 2])
def test_domain_discriminator_depth(layers):
    disc = adversarial.DomainDiscriminator(12, hidden=7, layers=layers)
    linear = [m for m in disc.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [7] * layers + [1]
    assert disc(torch.randn(5, 12)).shape == (5,)


def test_a_resume_compares_only_the_settings_the_method_reads(tiny_data, tmp_path):
    """Source-only never reads --pl-weight, so changing it does not stop its resume; SWD+ reads it, so it does."""
    for method, refused in (("source-only", False), ("swd", True)):
        common = ["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method", method,
                  "--dry-run", "--quiet", "--out-dir", str(tmp_path / method)]
        assert train_uda.main(common) == 0
        saved = load_checkpoint(tmp_path / method / "latest.pt")["recipe"]
        assert ("pl_weight" in saved) == (method == "swd")  # no other method's knobs are kept
        if refused:
            with pytest.raises(UserError, match=r"other settings \(--pl-weight\)"):
                train_uda.main([*common, "--pl-weight", "0.5"])
        else:
            assert train_uda.main([*common, "--pl-weight", "0.5"]) == 0


def test_methods_name_their_bounds_and_discussions():
    assert uda.METHODS[uda.LOWER_BOUND].labelled == "source" and not uda.METHODS[uda.LOWER_BOUND].reads_target
    assert uda.METHODS[uda.UPPER_BOUND].labelled == "target"
    assert set(uda.ADAPTED) == {m for m in uda.METHODS if m not in (uda.LOWER_BOUND, uda.UPPER_BOUND)}
    for method in uda.METHODS.values():
        if method.discussion is not None:
            assert method.graded and method.name in uda.compared(method)
            assert method.discussion.watch in method.losses and set(uda.compared(method)) <= set(uda.METHODS)


def test_tsne_figure_draws_every_point_in_its_named_colour():
    """The figure is a function of arrays: each name gets one legend entry and exactly its points."""
    points = np.arange(20, dtype=float).reshape(10, 2)
    colours = np.array([0, 1, 1, 0, 2, 2, 2, 0, 1, 2])
    fig = plots.tsne_figure(points, colours, ["a", "b", "c"], "tab10", "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    drawn = [c.get_offsets() for c in ax.collections]
    assert [len(d) for d in drawn] == [3, 3, 4]
    np.testing.assert_array_equal(drawn[2], points[colours == 2])
    plots.plt.close(fig)


def test_digit_curves_figure_has_one_panel_per_log():
    steps = np.arange(1, 31)
    logs = {"acgan": pd.DataFrame({"step": steps, "loss_d": 1.0, "loss_g": 2.0, "d_class_acc": 0.5}),
            "ddpm": pd.DataFrame({"step": steps, "loss": np.linspace(1, 0, 30)})}
    fig = plots.digit_curves_figure(logs, smooth=5)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["ACGAN (moving average of 5 steps)", "DDPM (moving average of 5 steps)"]
    assert len(fig.axes) == 3  # the ACGAN's class accuracy on a twin axis
    plots.plt.close(fig)
