"""Problem 1: the VAE's loss, training, resuming, figures and grader script."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest
import torch
from PIL import Image

import fetch
import plots
import train_vae
from hw3.common import UserError
from hw3.training import load_checkpoint
from helpers import run
from vae import VAE, VAELoss, kl_divergence, vae_loss

# A small network so that the tests train in seconds on a CPU.
TINY = ["--latent-dim", "16", "--channels", "8", "--batch-size", "8", "--quiet"]


def _train(data, out_dir, *extra: str) -> None:
    assert train_vae.main(["--data", str(data), "--out-dir", str(out_dir), *TINY, *extra]) == 0


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    """A dry-run training directory (log.csv, latest.pt, best.pt, model.pt) shared by the module."""
    out_dir = tmp_path_factory.mktemp("vae_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HW3_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        _train(tiny_data, out_dir, "--dry-run")
    return out_dir


# --- model and loss ------------------------------------------------------------------


def test_kl_is_zero_for_the_prior():
    assert kl_divergence(torch.zeros(4, 7), torch.zeros(4, 7)).item() == 0.0


def test_kl_matches_a_hand_computed_case():
    # Dims (mu=1, var=1) and (mu=2, var=4): -1/2 [(1+0-1-1) + (1+ln4-4-4)] = 4 - ln 2.
    mu = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    # Summed over dims, averaged over the batch of two (the second sample contributes 0).
    assert kl_divergence(mu, logvar).item() == pytest.approx((4 - math.log(2)) / 2, rel=1e-6)


def test_loss_terms_are_returned_separately():
    torch.manual_seed(0)
    recon, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    mu, logvar = torch.randn(2, 5), torch.randn(2, 5)
    losses = vae_loss(recon, target, mu, logvar, kl_weight=0.25)
    assert isinstance(losses, VAELoss)
    assert losses.recon.item() == pytest.approx(((recon - target) ** 2).mean().item(), rel=1e-6)
    assert losses.kl.item() == pytest.approx(kl_divergence(mu, logvar).item(), rel=1e-6)
    assert losses.total.item() == pytest.approx(losses.recon.item() + 0.25 * losses.kl.item(), rel=1e-6)


def test_model_shapes_and_range():
    model = VAE(latent_dim=6, channels=4).eval()
    x = torch.rand(3, 3, 64, 64)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (3, 6)
    images = model.decode(torch.randn(5, 6) * 10)
    assert images.shape == (5, 3, 64, 64)
    assert not torch.equal(images[0], images[1])  # each latent decodes to its own image
    assert model.latent_dim == 6


# --- training ------------------------------------------------------------------------


def test_training_lowers_reconstruction_loss(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, "--epochs", "8", "--lr", "3e-3")
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["step"]) == list(range(1, len(log) + 1))
    first, last = log[log["epoch"] == 1]["recon"].mean(), log[log["epoch"] == 8]["recon"].mean()
    assert last < 0.7 * first, (first, last)
    val = log["val_mse"].dropna()
    assert len(val) == 8 and val.iloc[-1] < val.iloc[0]

    model = load_checkpoint(tmp_path / "model.pt", kind="vae")
    assert "optimizers" not in model and model["config"] == {"latent_dim": 16, "channels": 8}
    assert model["best_metric"] == pytest.approx(val.min())
    assert load_checkpoint(tmp_path / "best.pt", kind="vae")["best_metric"] == pytest.approx(val.min())
    assert load_checkpoint(tmp_path / "latest.pt", kind="vae")["step"] == len(log)


def test_resume_continues_from_the_saved_step(tiny_data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(tiny_data, straight, "--dry-run", "--epochs", "2")
    _train(tiny_data, resumed, "--dry-run", "--epochs", "1")
    saved = load_checkpoint(resumed / "latest.pt", kind="vae")
    assert saved["epoch"] == 1
    # A crash in the middle of epoch 2 leaves log rows past the saved step; they are dropped.
    with open(resumed / "log.csv", "a") as f:
        f.write(f"{saved['step'] + 1},2,9.0,9.0,9.0,,\n")
    _train(tiny_data, resumed, "--dry-run", "--epochs", "2")

    log_a, log_b = pd.read_csv(straight / "log.csv"), pd.read_csv(resumed / "log.csv")
    assert list(log_b["step"]) == list(range(1, len(log_b) + 1))
    assert log_b["step"].iloc[-1] > saved["step"]
    pd.testing.assert_frame_equal(log_a, log_b)
    a, b = load_checkpoint(straight / "latest.pt"), load_checkpoint(resumed / "latest.pt")
    assert (a["step"], a["epoch"]) == (b["step"], b["epoch"]) == (log_b["step"].iloc[-1], 2)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


def test_resume_refuses_a_different_model(tiny_run, tiny_data, tmp_path):
    out_dir = tmp_path / "run"
    shutil.copytree(tiny_run, out_dir)
    with pytest.raises(UserError, match="latent-dim"):
        train_vae.main(["--data", str(tiny_data), "--out-dir", str(out_dir), "--dry-run", "--quiet",
                        "--latent-dim", "32", "--channels", "8"])


def test_resume_refuses_another_recipe_but_may_train_longer(tiny_data, tmp_path):
    _train(tiny_data, tmp_path, "--dry-run", "--epochs", "1")
    with pytest.raises(UserError, match=r"other settings \(--kl-weight\)"):
        _train(tiny_data, tmp_path, "--dry-run", "--epochs", "2", "--kl-weight", "1e-3")
    _train(tiny_data, tmp_path, "--dry-run", "--epochs", "2", "--threads", "2")  # how long and how to run may change
    saved = load_checkpoint(tmp_path / "latest.pt", kind="vae")
    assert saved["epoch"] == 2 and saved["recipe"]["epochs"] == 2 and saved["recipe"]["kl_weight"] == 1e-5


def test_missing_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        train_vae.main(["--data", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "out"), "--dry-run"])
    assert not (tmp_path / "out").exists()


# --- figures -------------------------------------------------------------------------


def _plot(tiny_run, data, out_dir, *extra: str) -> None:
    assert plots.main(["vae", "--checkpoint", str(tiny_run / "model.pt"), "--data", str(data),
                       "--out-dir", str(out_dir), "--quiet", *extra]) == 0


def test_plots_write_every_file(tiny_run, tiny_data, tmp_path):
    _plot(tiny_run, tiny_data, tmp_path / "a")
    names = ["fig1_2.png", "table1_3.png", "table1_3.csv", "fig1_4.png", "fig1_5.png"]
    for name in names:
        assert (tmp_path / "a" / name).stat().st_size > 0, name
    table = pd.read_csv(tmp_path / "a" / "table1_3.csv")
    assert len(table) == 10 and table["image_name"].is_unique and (table["mse"] > 0).all()
    test_names = set(pd.read_csv(tiny_data / "face" / "test.csv")["image_name"])
    assert set(table["image_name"]) <= test_names
    assert Image.open(tmp_path / "a" / "fig1_4.png").size == (530, 266)


def test_plots_use_the_validation_split_without_a_test_folder(tiny_run, tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data / "face" / "train", data / "face" / "train")
    shutil.copy(tiny_data / "face" / "train.csv", data / "face" / "train.csv")
    _plot(tiny_run, data, tmp_path / "out", "--attribute", "Smiling")
    assert "validation split" in capsys.readouterr().err
    saved = load_checkpoint(tiny_run / "model.pt")
    table = pd.read_csv(tmp_path / "out" / "table1_3.csv")
    assert set(table["image_name"]) == set(saved["extra"]["val_names"])


def test_plots_reject_an_unknown_attribute(tiny_run, tiny_data, tmp_path):
    with pytest.raises(UserError, match="Male.*Smiling"):
        _plot(tiny_run, tiny_data, tmp_path / "out", "--attribute", "Wearing_Hat")


# --- grader script -------------------------------------------------------------------


def _publish(tiny_run, server, model_dir, damaged: bool = False):
    """Serve vae.pt on loopback and publish its hash into an empty model folder."""
    model_dir.mkdir()
    payload = (tiny_run / "model.pt").read_bytes()
    if damaged:
        payload = payload[: len(payload) // 2]
    (model_dir / "vae.pt").write_bytes(payload)
    fetch.publish(model_dir, ["vae.pt"], base_url=None)
    shutil.move(model_dir / "vae.pt", server.directory / "vae.pt")
    return {"HW3_MODEL_DIR": str(model_dir), "HW3_MODEL_BASE_URL": server.url}


def test_hw3_p1_end_to_end(tiny_run, model_server, tmp_path):
    env = _publish(tiny_run, model_server, tmp_path / "models")
    first, second = tmp_path / "new" / "folder" / "fig1_4.png", tmp_path / "again.png"
    result = run(["bash", "hw3_p1.sh", str(first)], **env)
    assert result.returncode == 0, result.stderr
    with Image.open(first) as image:
        assert image.size == (8 * 64 + 9 * 2, 4 * 64 + 5 * 2) == (530, 266)
        assert image.mode == "RGB"
    (model_server.directory / "vae.pt").unlink()  # the second run must use the verified local copy
    result = run(["bash", "hw3_p1.sh", str(second)], **env)
    assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()


def test_hw3_p1_needs_one_argument():
    result = run(["bash", "hw3_p1.sh"])
    assert result.returncode == 2 and result.stderr.startswith("usage:")


# A download that fails its hash check is fetch.py's own test; here the published file itself is bad.
@pytest.mark.parametrize("case", ["damaged checkpoint", "unwritable output"])
def test_hw3_p1_fails_cleanly(case, tiny_run, model_server, tmp_path):
    env = _publish(tiny_run, model_server, tmp_path / "models", damaged=case == "damaged checkpoint")
    out = tmp_path / "out.png"
    if case == "unwritable output":
        (tmp_path / "a_file").write_text("not a folder")
        out = tmp_path / "a_file" / "out.png"
    result = run(["bash", "hw3_p1.sh", str(out)], **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".out.png.*"))
