"""Problem 2: GAN models and losses, training and resume, FID/IS, fig2_2 and hw3_p2.sh."""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import fetch
import fidelity
import gan
import plots
import train_gan
from hw3.common import UserError
from hw3.training import ema_of, load_checkpoint
from datasets import EndlessBatches, load_faces
from helpers import run

TINY = ["--channels", "8", "--z-dim", "16", "--quiet", "--device", "cpu"]


def train_args(arch: str, loss: str, **overrides) -> argparse.Namespace:
    """The parsed flags of a tiny run, as train_gan.main would see them."""
    args = train_gan.build_parser().parse_args(["--data", "unused", "--arch", arch, "--loss", loss,
                                                "--batch-size", "4", "--steps", "1", *TINY])
    vars(args).update(overrides)
    train_gan.check_args(args)
    return args


def tiny_gan(args: argparse.Namespace, lr: float = 1e-3):
    """Both nets, the EMA, the two optimizers, the class hook and the recipe of ``args``, seeded."""
    torch.manual_seed(0)
    recipe, config = train_gan.GANRecipe.from_args(args), train_gan.model_config(args)
    generator, discriminator = config.generator(), config.discriminator()
    ema = ema_of(generator, recipe.ema_decay)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
    return generator, discriminator, ema, opt_g, opt_d, config.class_hook(recipe.class_weight, recipe.fake_class_loss), recipe


@pytest.fixture(scope="module")
def gan_checkpoint(tiny_data, tmp_path_factory):
    """model.pt of a two-step dry run on the tiny faces."""
    out = tmp_path_factory.mktemp("gan_run")
    assert train_gan.main(["--data", str(tiny_data), "--out-dir", str(out), "--arch", "dcgan",
                           "--loss", "bce", "--dry-run", *TINY]) == 0
    return out / "model.pt"


@pytest.mark.parametrize("arch", ["dcgan", "sagan"])
@pytest.mark.parametrize("loss", gan.LOSSES)
def test_one_training_step_changes_both_nets(tiny_data, arch, loss):
    generator, discriminator, ema, opt_g, opt_d, hook, recipe = tiny_gan(train_args(arch, loss, n_critic=1))
    before_g = {k: v.clone() for k, v in generator.named_parameters()}
    before_d = {k: v.clone() for k, v in discriminator.named_parameters()}
    data = EndlessBatches(load_faces(tiny_data).images, batch_size=4, rng=torch.Generator().manual_seed(0))
    row = train_gan.gan_step(generator, discriminator, ema, opt_g, opt_d, data, recipe, hook, torch.device("cpu"))
    assert list(row) == train_gan.LOG_FIELDS[2:]  # the loop adds step and epoch
    assert all(np.isfinite(row[k]) for k in ("loss_d", "loss_g"))
    assert data.state_dict()["position"] == 4  # one real batch for the one D update
    # Zero gradients by construction: SAGAN's attention starts as the identity (gamma = 0), so its
    # projections get none on step 1; hinge and Wasserstein losses do not change when D's output is shifted.
    exempt = ["query", "key", "value"] + ([f"net.{len(discriminator.net) - 1}.bias"] if loss != "bce" else [])
    for before, net in ((before_g, generator), (before_d, discriminator)):
        unchanged = [k for k, v in net.named_parameters() if torch.equal(v, before[k]) and not any(e in k for e in exempt)]
        assert unchanged == []


@pytest.mark.parametrize("arch", ["dcgan", "sagan"])
@pytest.mark.parametrize("loss", ["bce", "hinge"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_logged_accuracies_are_those_of_the_discriminator(tiny_data, arch, loss, sign):
    # D's last bias at +100 calls every image real: real accuracy 1, fake accuracy 0; at -100 the reverse.
    generator, discriminator, ema, opt_g, opt_d, hook, recipe = tiny_gan(train_args(arch, loss, n_critic=2))
    with torch.no_grad():
        discriminator.net[-1].bias.fill_(100.0 * sign)
    data = EndlessBatches(load_faces(tiny_data).images, batch_size=4, rng=torch.Generator().manual_seed(0))
    row = train_gan.gan_step(generator, discriminator, ema, opt_g, opt_d, data, recipe, hook, torch.device("cpu"))
    assert (row["d_real_acc"], row["d_fake_acc"]) == ((1.0, 0.0) if sign > 0 else (0.0, 1.0))
    assert data.state_dict()["position"] == 8  # n_critic = 2 real batches


def test_discriminator_accuracy_on_closed_form_scores():
    real, fake = torch.tensor([3.0, -1.0, 2.0, 0.5]), torch.tensor([0.0, -2.0, 0.5, 2.0])
    assert gan.discriminator_accuracy("bce", real, fake) == (0.75, 0.5)  # boundary 0; fake 0.0 counts as fake
    assert gan.discriminator_accuracy("hinge", real, fake) == (0.75, 0.5)
    # A critic's boundary is the midpoint of the means, (1.125 + 0.125) / 2 = 0.625.
    assert gan.discriminator_accuracy("wgan-gp", real, fake) == (0.5, 0.75)


def test_face_nets_refuse_the_acgan_arch():
    for build in (lambda: gan.Generator(16, "acgan"), lambda: gan.Discriminator("acgan")):
        with pytest.raises(ValueError, match="ConditionalGenerator|AuxiliaryDiscriminator"):
            build()
    with pytest.raises(ValueError, match="unknown arch"):
        gan.Generator(16, "stylegan")
    assert isinstance(gan.GANConfig(16, "acgan", 8).generator(), gan.ConditionalGenerator)


def test_losses_on_closed_form_logits():
    real, fake = torch.tensor([2.0, 3.0]), torch.tensor([-2.0, -1.0])
    assert gan.discriminator_loss("hinge", real, fake).item() == 0.0
    assert gan.discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-4.0)
    assert gan.generator_loss("hinge", fake).item() == pytest.approx(1.5)
    plain = gan.discriminator_loss("bce", real, fake)
    smoothed = gan.discriminator_loss("bce", real, fake, label_smoothing=0.1)
    assert smoothed > plain  # confident real logits are penalised once the target is 0.9
    # Non-saturating G loss: -log sigmoid(fake).
    assert gan.generator_loss("bce", fake).item() == pytest.approx(-torch.nn.functional.logsigmoid(fake).mean().item())


def test_gradient_penalty_is_nonzero_differentiable_and_exact_for_a_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    critic = gan.Discriminator("dcgan", channels=8, norm="instance")
    penalty = gan.gradient_penalty(critic, real, fake)
    assert penalty.item() > 0 and torch.isfinite(penalty)
    penalty.backward()
    grads = [p.grad for p in critic.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    # D(x) = w . x with ||w|| = 2 has gradient norm 2 everywhere: penalty (2 - 1)^2 = 1.
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 1, bias=False))
    with torch.no_grad():
        linear[1].weight.copy_(torch.randn_like(linear[1].weight)).mul_(2 / linear[1].weight.norm())
    assert gan.gradient_penalty(linear, real, fake).item() == pytest.approx(1.0, rel=1e-4)


def test_spectral_norm_keeps_largest_singular_value_near_one():
    torch.manual_seed(0)
    for net in (gan.Generator(16, "sagan", channels=8), gan.Discriminator("sagan", channels=8, norm="none")):
        net.train()
        x = torch.randn(4, 16) if isinstance(net, gan.Generator) else torch.rand(4, 3, 64, 64)
        for _ in range(3):
            net(x)
        convs = [m for m in net.modules() if hasattr(m, "parametrizations")]
        assert len(convs) >= 8  # every convolution, attention included
        for conv in convs:
            dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
            matrix = conv.weight.detach().movedim(dim, 0).flatten(1)
            assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=0.05)
    plain = gan.Discriminator("dcgan", channels=8)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())


def test_dry_run_writes_log_samples_and_checkpoints(gan_checkpoint):
    out = gan_checkpoint.parent
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["step"] for r in rows] == ["1", "2"]
    assert set(train_gan.LOG_FIELDS) == set(rows[0])
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000001.png", "step_000002.png"]
    model = load_checkpoint(gan_checkpoint, kind="gan")
    assert "optimizers" not in model and model["step"] == 2
    assert model["config"] == {"z_dim": 16, "arch": "dcgan", "channels": 8, "d_norm": "batch"}
    # The recipe is the checked flags after --dry-run, field by field: no paths, device or quiet.
    recipe = model["recipe"]
    assert (recipe["task"], recipe["domain"], recipe["loss"], recipe["steps"], recipe["sample_every"]) == \
        ("faces", None, "bce", 2, 1)
    assert recipe["batch_size"] == 8 and tuple(recipe["betas_g"]) == (0.0, 0.9) and recipe["n_critic"] == 1
    assert not {"data", "out_dir", "device", "threads", "quiet", "restart", "dry_run"} & set(recipe)
    generator = gan.from_checkpoint(model)  # the EMA weights, ready to sample
    assert not generator.training and generator(torch.randn(2, 16)).shape == (2, 3, 64, 64)


def test_resume_continues_from_latest(tiny_data, tmp_path, capsys):
    common = ["--data", str(tiny_data), "--out-dir", str(tmp_path), "--arch", "dcgan", "--loss", "hinge",
              "--batch-size", "4", "--sample-every", "2", *TINY]
    assert train_gan.main([*common, "--steps", "2"]) == 0
    first = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert train_gan.main([*common, "--steps", "3"]) == 0
    assert "resuming" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[:2] == first
    latest = load_checkpoint(tmp_path / "latest.pt", kind="gan")
    assert latest["step"] == 3
    # Adam counts its own steps: 3 means the optimizer state was carried over, not restarted.
    assert next(iter(latest["optimizers"]["g"]["state"].values()))["step"].item() == 3
    with pytest.raises(UserError, match="new --out-dir"):
        train_gan.main([*common, "--steps", "4", "--arch", "sagan"])


def test_resume_refuses_a_changed_recipe_and_accepts_a_longer_run(tiny_data, tmp_path):
    common = ["--data", str(tiny_data), "--out-dir", str(tmp_path), "--arch", "dcgan", "--loss", "hinge",
              "--batch-size", "4", *TINY]
    assert train_gan.main([*common, "--steps", "1", "--sample-every", "1"]) == 0
    for changed, flag in ((["--lr-g", "1e-3"], "--lr-g"), (["--betas-d", "0.5", "0.9"], "--betas-d"),
                          (["--seed", "1"], "--seed")):
        with pytest.raises(UserError) as refused:
            train_gan.main([*common, "--steps", "2", *changed])
        message = str(refused.value)
        assert len(message.splitlines()) == 1 and flag in message and "--steps" not in message
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 1  # refused before any update
    # --steps and --sample-every are RESUMABLE: a longer run with other grids goes on.
    assert train_gan.main([*common, "--steps", "3", "--sample-every", "2"]) == 0
    latest = load_checkpoint(tmp_path / "latest.pt")
    assert latest["step"] == 3 and (latest["recipe"]["steps"], latest["recipe"]["sample_every"]) == (3, 2)
    result = run(["python3", "train_gan.py", *common, "--steps", "4", "--lr-d", "1e-3"])
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "--lr-d" in result.stderr


@pytest.mark.parametrize("flags", [["--arch", "dcgan", "--loss", "wgan-gp", "--n-critic", "2"],
                                   ["--arch", "sagan", "--loss", "bce"]])
def test_a_stopped_and_resumed_run_ends_with_the_weights_of_one_never_stopped(tiny_data, tmp_path, flags):
    common = ["--data", str(tiny_data), "--batch-size", "4", "--sample-every", "3", *flags, *TINY]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert train_gan.main([*common, "--out-dir", str(straight), "--steps", "4"]) == 0
    assert train_gan.main([*common, "--out-dir", str(stopped), "--steps", "2"]) == 0
    assert train_gan.main([*common, "--out-dir", str(stopped), "--steps", "4"]) == 0
    a, b = load_checkpoint(straight / "latest.pt"), load_checkpoint(stopped / "latest.pt")
    assert a["step"] == b["step"] == 4
    for name in ("generator", "discriminator", "ema"):
        assert all(torch.equal(a["modules"][name][k], b["modules"][name][k]) for k in a["modules"][name])
    assert open(straight / "log.csv").read() == open(stopped / "log.csv").read()


def test_bad_flags_are_user_errors(tiny_data, tmp_path):
    with pytest.raises(UserError, match="label-smoothing"):
        train_gan.main(["--data", str(tiny_data), "--out-dir", str(tmp_path), "--loss", "hinge",
                        "--label-smoothing", "0.1", "--dry-run", *TINY])
    with pytest.raises(UserError, match="bce or hinge"):
        train_gan.main(["--data", str(tiny_data), "--out-dir", str(tmp_path), "--task", "digits",
                        "--loss", "wgan-gp", "--dry-run", *TINY])
    help_text = " ".join(train_gan.build_parser().format_help().split())
    assert re.search(r"--batch-size BATCH_SIZE [^-]+ \(default: 64\)", help_text)
    result = run(["python3", "train_gan.py", "--data", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "o"), "--dry-run"])
    assert result.returncode == 2 and result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_frechet_distance_closed_form_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(16, 16))
    sigma = a @ a.T + 0.1 * np.eye(16)
    mu = rng.normal(size=16)
    assert fidelity.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    shift = rng.normal(size=16)
    assert fidelity.frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(shift @ shift, rel=1e-8)
    # Diagonal covariances commute: the trace term is sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = rng.uniform(0.5, 2, 16), rng.uniform(0.5, 2, 16)
    expected = ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert fidelity.frechet_distance(mu, np.diag(s1), mu, np.diag(s2)) == pytest.approx(expected, rel=1e-8)
    # A general pair agrees with torch-fidelity's own formula.
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    b = rng.normal(size=(16, 16))
    other = b @ b.T
    ours = fidelity.frechet_distance(mu, sigma, mu + shift, other)
    theirs = fid_statistics_to_metric({"mu": mu, "sigma": sigma}, {"mu": mu + shift, "sigma": other}, False)
    assert ours == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)


@pytest.mark.parametrize("sizes", [(24, 30), (10, 40)])
def test_fid_from_features_is_the_frechet_distance_of_their_statistics(sizes):
    """Fewer images than dimensions take the low-rank route (singular values of A1 A2^T); it gives the same FID.

    The eigen-decomposition route loses about 1e-8 of it on such rank-deficient covariances (the
    low-rank one agrees with 40-digit arithmetic to 1e-13), hence the tolerance.
    """
    rng = np.random.default_rng(0)
    fake = torch.from_numpy(rng.normal(size=(sizes[0], 48)) * 2 + 0.3)
    real = torch.from_numpy(rng.normal(size=(sizes[1], 48)) ** 2)
    expected = fidelity.frechet_distance(*fidelity.feature_statistics(fake), *fidelity.feature_statistics(real))
    assert fidelity.fid_from_features(fake, real) == pytest.approx(expected, rel=1e-6)
    assert fidelity.fid_from_features(fake, fake) == pytest.approx(0.0, abs=1e-9)


def test_generate_and_score_through_the_real_inception_path(gan_checkpoint, tiny_data, random_inception, tmp_path):
    fake = tmp_path / "fake"
    assert fidelity.main(["generate", "--checkpoint", str(gan_checkpoint), "--out-dir", str(fake), "--n", "4",
                          "--batch-size", "3", "--device", "cpu"]) == 0
    again = fidelity.generate(gan_checkpoint, tmp_path / "again", n=4, seed=0, device="cpu")
    names = sorted(p.name for p in fake.iterdir())
    assert names == ["00000.png", "00001.png", "00002.png", "00003.png"]
    assert all((fake / n).read_bytes() == (again / n).read_bytes() for n in names)
    with pytest.raises(UserError, match="not an empty folder"):
        fidelity.generate(gan_checkpoint, fake, n=4, device="cpu")

    real = tmp_path / "real"
    real.mkdir()
    for path in sorted((tiny_data / "face" / "test").iterdir())[:4]:
        shutil.copy(path, real / path.name)
    report = tmp_path / "fid.json"
    assert fidelity.main(["score", "--generated", str(fake), "--real", str(real), "--inception-weights",
                          str(random_inception), "--isc-splits", "2", "--device", "cpu", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["n_generated"] == 4 and result["n_real"] == 4
    assert np.isfinite(result["fid"]) and result["fid"] > 1.0
    assert result["is_mean"] >= 1.0 and np.isfinite(result["is_std"])
    same = fidelity.score(real, real, random_inception, device="cpu", isc_splits=2)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)


def test_score_with_missing_inception_weights_names_the_file(tmp_path, gan_checkpoint, tiny_data):
    faces = str(tiny_data / "face" / "test")
    result = run(["python3", "fidelity.py", "score", "--generated", faces, "--real", faces,
                  "--inception-weights", str(tmp_path / "missing.pth"), "--json", str(tmp_path / "out.json")])
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert fidelity.INCEPTION_FILE in result.stderr and fidelity.INCEPTION_URL in result.stderr
    assert not (tmp_path / "out.json").exists()
    for weights in (tmp_path / "missing.pth", gan_checkpoint):  # absent, and a file that is not Inception's
        with pytest.raises(UserError, match=fidelity.INCEPTION_FILE):
            fidelity.check_inception_weights(weights)


def test_hw3_p2_end_to_end_on_loopback(gan_checkpoint, model_server, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(gan_checkpoint, models / "gan.pt")
    fetch.publish(models, ["gan.pt"], model_server.url)
    shutil.move(models / "gan.pt", model_server.directory / "gan.pt")  # the script must download it
    env = {"HW3_MODEL_DIR": str(models), "HW3_MODEL_BASE_URL": model_server.url}
    first, second = tmp_path / "a" / "fig2_2.png", tmp_path / "b.png"
    for out in (first, second):
        result = run(["bash", "hw3_p2.sh", str(out)], **env)
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    from PIL import Image

    assert Image.open(first).size == (8 * 66 + 2, 4 * 66 + 2)  # 4x8 faces of 64 px with 2 px gaps
    # plots.py draws the same fig2_2 from the same checkpoint.
    assert plots.main(["gan", "--checkpoint", str(models / "gan.pt"), "--out-dir", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "fig2_2.png").read_bytes() == first.read_bytes()

    usage = run(["bash", "hw3_p2.sh"], **env)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_plots_gan_curves_and_side_by_side(gan_checkpoint, tmp_path):
    log = gan_checkpoint.parent / "log.csv"
    # Any sample.py checkpoint fills the VAE panel; a second GAN checkpoint stands in for the VAE here.
    assert plots.main(["gan", "--checkpoint", str(gan_checkpoint), "--log", str(log),
                       "--vae-checkpoint", str(gan_checkpoint), "--out-dir", str(tmp_path), "--smooth", "2"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"fig2_2.png", "fig2_losses.png", "fig2_vae_vs_gan.png"}
    # Without --log, the log beside the checkpoint draws the curves.
    assert plots.main(["gan", "--checkpoint", str(gan_checkpoint), "--out-dir", str(tmp_path / "beside")]) == 0
    assert (tmp_path / "beside" / "fig2_losses.png").is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("step,loss\n1,0.5\n")
    with pytest.raises(UserError, match="not a train_gan.py log"):
        plots.main(["gan", "--checkpoint", str(gan_checkpoint), "--log", str(bad), "--out-dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
