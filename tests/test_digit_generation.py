"""Problem 5: the ACGAN and the conditional DDPM, the 1000-image generator and scorer, hw3_p5.sh."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from hw3 import checkpoints, ddpm, digitnet
import fetch
import gan
import fidelity
import generate_digits
import plots
import train_ddpm
import train_gan
import train_uda
from hw3.common import UserError
from datasets import EndlessBatches, load_digits
from helpers import run
from hw3.training import ema_of, load_checkpoint

CPU = torch.device("cpu")
TINY_DDPM = ["--channels", "8", "--timesteps", "20", "--quiet", "--device", "cpu"]
TINY_ACGAN = ["--task", "digits", "--channels", "8", "--z-dim", "16", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def acgan_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("acgan")
    assert train_gan.main(["--data", str(tiny_data), "--out-dir", str(out), "--dry-run", *TINY_ACGAN]) == 0
    return out


@pytest.fixture(scope="module")
def ddpm_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm")
    assert train_ddpm.main(["--data", str(tiny_data), "--out-dir", str(out), "--dry-run", *TINY_DDPM]) == 0
    return out


@pytest.fixture(scope="module")
def classifier(tiny_data, tmp_path_factory):
    """A target-only mnistm digit classifier (a uda model.pt) from a dry run."""
    out = tmp_path_factory.mktemp("classifier")
    assert train_uda.main(["--data", str(tiny_data), "--source", "usps", "--target", "mnistm", "--method",
                           "target-only", "--out-dir", str(out), "--dry-run", "--quiet", "--device", "cpu"]) == 0
    return out / "model.pt"


# --- the diffusion schedule and sampler: closed forms ---------------------------------------------


def test_alphas_cumprod_is_the_product_of_one_minus_beta():
    schedule = ddpm.DDPMConfig(noise_schedule="linear").schedule()
    betas = np.linspace(1e-4, 0.02, 1000)
    assert np.allclose(schedule.betas.numpy(), betas)
    expected = np.array([math.prod(1 - betas[: t + 1]) for t in (0, 9, 499, 999)])
    assert np.allclose(schedule.alphas_cumprod[[0, 9, 499, 999]].numpy(), expected, rtol=1e-10)
    assert schedule.alphas_cumprod[0] == pytest.approx(1 - 1e-4)
    assert schedule.alphas_cumprod[-1] < 1e-4  # x_T is practically pure noise (Ho et al.: ~4e-5)
    assert (schedule.alphas_cumprod.diff() < 0).all()


def test_the_cosine_schedule_has_nichol_and_dhariwals_alpha_bar():
    schedule = ddpm.DDPMConfig().schedule()  # the default
    t = np.arange(1001) / 1000
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    abar = f[1:] / f[0]  # alpha-bar of steps 1 ... T (eq. 17)
    # Equal wherever no beta reached the cap; the capped ones are the last few, near pure noise.
    uncapped = schedule.betas.numpy() < 0.999
    assert uncapped[:990].all() and not uncapped[-1]
    assert np.allclose(schedule.alphas_cumprod.numpy()[uncapped], abar[uncapped], rtol=1e-10)
    assert schedule.alphas_cumprod[0] > 0.9999 and schedule.alphas_cumprod[-1] < 1e-8
    assert (schedule.alphas_cumprod.diff() < 0).all()
    # Halfway, the cosine schedule has kept more of x_0 than the linear one (its point).
    assert schedule.alphas_cumprod[499] > 5 * ddpm.DDPMConfig(noise_schedule="linear").schedule().alphas_cumprod[499]
    with pytest.raises(ValueError, match="noise schedule"):
        ddpm.DDPMConfig(noise_schedule="quadratic").schedule()


@pytest.mark.parametrize("kind, last", [("linear", 999), ("cosine", 950)])
def test_predict_start_from_noise_inverts_q_sample(kind, last):
    # (the cosine schedule's last steps keep ~1e-9 of x_0: recovering it there multiplies float32 rounding by 1e4)
    schedule = ddpm.DDPMConfig(noise_schedule=kind).schedule()
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1, torch.randn(6, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 100, 500, 900, last])
    xt = schedule.q_sample(x0, t, noise)
    # x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, so each of x_0 and eps follows from x_t and the other.
    abar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = abar.sqrt() * x0.double() + (1 - abar).sqrt() * noise.double()
    assert torch.allclose(xt.double(), expected, atol=1e-6)
    assert torch.allclose(schedule.predict_start_from_noise(xt, t, noise), x0, atol=1e-4)
    assert torch.allclose(schedule.predict_noise_from_start(xt, t, x0), noise, atol=1e-4)
    # An int step is the same step for the whole batch, as the sampler uses it.
    assert torch.equal(schedule.predict_start_from_noise(xt[3:4], 500, noise[3:4]),
                       schedule.predict_start_from_noise(xt[3:4], t[3:4], noise[3:4]))


def test_q_sample_has_the_closed_form_mean_and_variance():
    schedule = ddpm.DDPMConfig().schedule()
    x0 = torch.full((1, 3, 8, 8), 0.6).expand(4000, -1, -1, -1)
    for step in (0, 250, 999):
        t = torch.full((len(x0),), step)
        xt = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(step)))
        abar = schedule.alphas_cumprod[step].item()
        assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.6, abs=0.01)
        assert xt.var().item() == pytest.approx(1 - abar, rel=0.03, abs=1e-5)


class Oracle(nn.Module):
    """A "network" that knows x_0 and returns the exact noise of x_t (or x_0 itself): every sampler must end at x_0."""

    null_class, image_shape = 10, (3, 28, 28)

    def __init__(self, x0: torch.Tensor, schedule: ddpm.Schedule, prediction: str):
        super().__init__()
        self.x0, self.abar, self.prediction = x0, schedule.alphas_cumprod.float(), prediction

    def forward(self, x, t, labels):
        a = self.abar[t].view(-1, 1, 1, 1)
        x0 = self.x0.repeat(len(x) // len(self.x0), 1, 1, 1)  # guidance doubles the batch
        return x0 if self.prediction == "x0" else (x - a.sqrt() * x0) / (1 - a).sqrt()


@pytest.mark.parametrize("steps, eta, prediction", [(10, 0.0, "eps"), (50, 0.0, "eps"), (1000, 1.0, "eps"),
                                                    (10, 0.0, "x0"), (1000, 1.0, "x0")])
def test_sampler_with_an_exact_network_recovers_x0(steps, eta, prediction):
    schedule = ddpm.DDPMConfig().schedule()
    x0 = torch.rand(2, 3, 28, 28) * 1.6 - 0.8
    model = Oracle(x0, schedule, prediction)
    trajectory = []
    out = ddpm.sample(model, schedule, torch.tensor([3, 7]), steps=steps, eta=eta, guidance=2.0,
                      rng=torch.Generator().manual_seed(0), trajectory=trajectory)
    assert torch.allclose(out, x0, atol=1e-3)
    assert len(trajectory) == steps + 1 and trajectory[0][0] == 1000 and trajectory[-1][0] == 0
    assert torch.equal(trajectory[-1][1], out) and trajectory[0][1].std() > 0.9  # x_T is noise


@pytest.mark.parametrize("t, steps, kept", [(119, 25, 3), (999, 25, 25), (10, 25, 2)])
def test_sampler_started_part_way_takes_its_share_of_the_steps(t, steps, kept):
    schedule = ddpm.DDPMConfig().schedule()
    x0 = torch.rand(2, 3, 28, 28) * 1.6 - 0.8
    x_t = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)))
    trajectory = []
    out = ddpm.sample(Oracle(x0, schedule, "eps"), schedule, torch.tensor([3, 7]), steps=steps, guidance=2.0,
                      trajectory=trajectory, start=(t, x_t))
    assert torch.allclose(out, x0, atol=1e-3)
    assert len(trajectory) == kept + 1 and trajectory[0][0] == t + 1 and torch.equal(trajectory[0][1], x_t)


def test_guidance_weight_mixes_conditional_and_unconditional():
    class Const(nn.Module):
        null_class, prediction = 10, "eps"

        def forward(self, x, t, labels):
            return (labels == self.null_class).float().view(-1, 1, 1, 1).expand_as(x)  # 1 unconditional, 0 else

    x, t, y = torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), torch.tensor([1, 2])
    assert torch.equal(ddpm.guided_output(Const(), x, t, y, 0.0), torch.zeros_like(x))
    assert torch.allclose(ddpm.guided_output(Const(), x, t, y, 3.0), torch.full_like(x, -3.0))  # (1+w)*0 - w*1


def test_diffusion_loss_drops_classes_at_the_asked_rate():
    seen = []

    class Spy(nn.Module):
        null_class, prediction = 10, "eps"

        def forward(self, x, t, labels):
            seen.append(labels.clone())
            return torch.zeros_like(x)

    schedule = ddpm.DDPMConfig(timesteps=20).schedule()
    x0 = torch.zeros(4000, 3, 2, 2)
    loss = ddpm.diffusion_loss(Spy(), schedule, x0, torch.zeros(4000, dtype=torch.long), drop_class=0.25,
                               rng=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(1.0, rel=0.05)  # predicting 0 for N(0, 1) noise
    assert (seen[0] == 10).float().mean().item() == pytest.approx(0.25, abs=0.03)
    Spy.prediction = "x0"  # the same zero output is now a guess of x_0 = 0.5 everywhere
    loss = ddpm.diffusion_loss(Spy(), schedule, x0 + 0.5, torch.zeros(4000, dtype=torch.long))
    assert loss.item() == pytest.approx(0.25)


def test_the_image_size_comes_from_the_config_and_old_configs_are_28():
    model = ddpm.DDPMConfig(channels=8, image_size=12, timesteps=20).build()
    images = ddpm.sample(model.eval(), ddpm.DDPMConfig(timesteps=20).schedule(), torch.tensor([1, 2]), steps=2)
    assert model.image_shape == (3, 12, 12) and images.shape == (2, 3, 12, 12)
    with pytest.raises(ValueError, match="multiple of 4"):
        ddpm.DDPMConfig(image_size=30).build()
    # A checkpoint written before the field existed has no image_size: it was of 28x28 digits.
    old = {"channels": 8, "timesteps": 20, "beta_start": 1e-4, "beta_end": 0.02, "num_classes": 10, "patch": 2,
           "prediction": "x0"}
    weights = ddpm.DDPMConfig(**old).build().state_dict()
    model, schedule = ddpm.from_checkpoint({"config": old, "model": weights})
    assert model.image_shape == (3, 28, 28) and schedule.timesteps == 20
    # Nor a noise schedule: it was linear.
    assert torch.allclose(schedule.betas, ddpm.linear_betas(20))


@pytest.mark.parametrize("patch", [1, 2])
def test_unet_maps_digits_to_digits_at_either_patch_size(patch):
    model = ddpm.DDPMConfig(channels=8, patch=patch).build()
    x = torch.randn(3, 3, 28, 28)
    out = model(x, torch.tensor([0, 500, 999]), torch.tensor([1, 2, 10]))
    assert out.shape == x.shape
    assert model.stem.in_channels == 3 * patch * patch
    grid = []
    model.down1.register_forward_hook(lambda module, args, output: grid.append(output.shape[-1]))
    model(x, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert grid == [28 // patch]
    with pytest.raises(ValueError):
        ddpm.UNet(8, patch=4)


# --- one step of each trainer ------------------------------------------------------------------------


def test_one_ddpm_update_changes_the_network(tiny_data):
    args = train_ddpm.build_parser().parse_args(["--data", "unused", "--batch-size", "8", "--steps", "1", *TINY_DDPM])
    train_ddpm.check_args(args)
    recipe = train_ddpm.DDPMRecipe.from_args(args)
    config = ddpm.DDPMConfig(args.channels, args.timesteps, patch=args.patch, prediction=args.prediction)
    model, schedule = config.build(), config.schedule()
    ema = ema_of(model, recipe.ema_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    digits = load_digits(tiny_data, "mnistm")
    data = EndlessBatches(digits.images, digits.labels, batch_size=8, rng=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.named_parameters()}
    row = train_ddpm.ddpm_step(model, schedule, ema, optimizer, data, recipe, CPU)
    assert list(row) == ["loss"] and np.isfinite(row["loss"])
    assert data.state_dict()["position"] == 8
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k]) and "class_emb" not in k]
    assert unchanged == []


def tiny_acgan():
    """The ACGAN's nets, EMA, optimizers, class hook and recipe for batches of 8, seeded."""
    torch.manual_seed(0)
    args = train_gan.build_parser().parse_args(["--data", "unused", "--batch-size", "8", "--steps", "1", *TINY_ACGAN])
    train_gan.check_args(args)
    recipe, config = train_gan.GANRecipe.from_args(args), train_gan.model_config(args)
    assert (args.arch, recipe.loss, recipe.hflip, recipe.domain) == ("acgan", "bce", False, "mnistm")
    generator, discriminator = config.generator(), config.discriminator()
    ema = ema_of(generator, recipe.ema_decay)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    hook = config.class_hook(recipe.class_weight, recipe.fake_class_loss)
    assert isinstance(hook, gan.AuxiliaryClassifier) and hook.columns == ("d_class_acc",)
    return generator, discriminator, ema, opt_g, opt_d, hook, recipe


def test_one_acgan_update_changes_both_nets_and_logs_the_class_head(tiny_data):
    generator, discriminator, ema, opt_g, opt_d, hook, recipe = tiny_acgan()
    digits = load_digits(tiny_data, "mnistm")
    data = EndlessBatches(digits.images, digits.labels, batch_size=8, rng=torch.Generator().manual_seed(0))
    before = {k: v.clone() for net in (generator, discriminator) for k, v in net.named_parameters()}
    row = train_gan.gan_step(generator, discriminator, ema, opt_g, opt_d, data, recipe, hook, CPU)
    assert list(row) == [*train_gan.LOG_FIELDS[2:], "d_class_acc"] and np.isfinite(row["loss_g"])
    for net in (generator, discriminator):
        unchanged = [k for k, v in net.named_parameters() if torch.equal(v, before[k]) and "embed" not in k]
        assert unchanged == []


def test_the_logged_class_accuracy_is_the_class_heads_on_the_real_batch(tiny_data):
    # The class head rigged to answer 3 for every image, on one batch of all 8 digits of which
    # half are labelled 3: its accuracy is exactly 1/2 whatever the order; the real/fake head rigged
    # to call everything real gives real accuracy 1 and fake accuracy 0.
    generator, discriminator, ema, opt_g, opt_d, hook, recipe = tiny_acgan()
    with torch.no_grad():
        discriminator.classifier.weight.zero_()
        discriminator.classifier.bias.fill_(-100.0)[3] = 100.0
        discriminator.adversarial.bias.fill_(100.0)
    images = load_digits(tiny_data, "mnistm").images[:8]
    labels = torch.tensor([3, 3, 3, 3, 0, 1, 2, 4])
    data = EndlessBatches(images, labels, batch_size=8, rng=torch.Generator().manual_seed(0))
    row = train_gan.gan_step(generator, discriminator, ema, opt_g, opt_d, data, recipe, hook, CPU)
    assert (row["d_class_acc"], row["d_real_acc"], row["d_fake_acc"]) == (0.5, 1.0, 0.0)
    # And computed independently from the hook: argmax against the labels.
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    assert hook.metrics(logits, torch.tensor([1, 0, 1, 2])) == {"d_class_acc": 0.5}
    assert gan.Unconditional().metrics(None, None) == {} and gan.Unconditional().columns == ()


def test_acgan_shapes_and_the_class_loss():
    generator, discriminator = gan.GANConfig(16, "acgan", 8).generator(), gan.GANConfig(16, "acgan", 8).discriminator()
    fake = generator(torch.randn(1, 16).expand(5, 16), torch.arange(5))  # one noise, five classes
    adversarial, logits = discriminator(fake)
    assert fake.shape == (5, 3, 28, 28) and not torch.allclose(fake[0], fake[1])  # the class changes the image
    assert adversarial.shape == (5,) and logits.shape == (5, 10)
    confident = torch.full((2, 10), -20.0)
    confident[0, 3] = confident[1, 7] = 20.0
    assert gan.class_loss(confident, torch.tensor([3, 7])).item() < 1e-6
    assert gan.class_loss(torch.zeros(2, 10), torch.tensor([3, 7])).item() == pytest.approx(math.log(10))


def test_without_the_fake_class_loss_d_learns_classes_from_real_digits_only():
    right, wrong = torch.full((2, 10), -20.0), torch.zeros(2, 10)
    right[0, 3] = right[1, 7] = 20.0
    labels = torch.tensor([3, 7])
    both, real_only = gan.AuxiliaryClassifier(2.0), gan.AuxiliaryClassifier(2.0, fake_class_loss=False)
    assert both.d_term(right, labels, wrong, labels).item() == pytest.approx(2 * math.log(10), rel=1e-4)
    assert real_only.d_term(right, labels, wrong, labels).item() < 1e-5
    assert real_only.d_term(wrong, labels, right, labels).item() == pytest.approx(2 * math.log(10), rel=1e-4)
    assert real_only.g_term(wrong, labels).item() == pytest.approx(both.g_term(wrong, labels).item())
    for flags, expected in (([], False), (["--fake-class-loss"], True)):  # real digits only, unless asked
        args = train_gan.build_parser().parse_args(["--data", "unused", *flags, *TINY_ACGAN])
        train_gan.check_args(args)
        hook = train_gan.model_config(args).class_hook(1.0, train_gan.GANRecipe.from_args(args).fake_class_loss)
        assert hook.fake_class_loss is expected


def test_task_and_arch_must_agree(tiny_data, tmp_path):
    with pytest.raises(UserError, match="--task digits"):
        train_gan.main(["--data", str(tiny_data), "--out-dir", str(tmp_path), "--arch", "acgan", "--dry-run", "--quiet"])
    with pytest.raises(UserError, match="--task digits"):
        train_gan.main(["--data", str(tiny_data), "--out-dir", str(tmp_path), "--task", "digits", "--arch", "dcgan",
                        "--dry-run", "--quiet"])
    with pytest.raises(UserError, match="multiple of 8"):
        train_ddpm.main(["--data", str(tiny_data), "--out-dir", str(tmp_path), "--channels", "12", "--dry-run"])


def test_parsers_hold_the_documented_defaults():
    ddpm_parser = train_ddpm.build_parser()
    assert (ddpm_parser.get_default("batch_size"), ddpm_parser.get_default("steps")) == (64, 6000)
    assert ddpm_parser.get_default("ema_decay") == 0.999
    assert generate_digits.build_parser().get_default("n_per_class") == 100


def test_ddpm_dry_run_is_a_narrow_unet_and_still_checks_the_width():
    args = train_ddpm.build_parser().parse_args(["--data", "unused", "--dry-run"])
    train_ddpm.check_args(args)
    assert (args.channels, args.steps, args.batch_size) == (8, 2, 8)  # 1000 digits in seconds, not a minute
    assert train_ddpm.build_parser().get_default("channels") == 32


def test_ddpm_dry_run_outputs_and_resume(ddpm_run, tiny_data, capsys):
    assert {p.name for p in ddpm_run.iterdir()} >= {"latest.pt", "model.pt", "log.csv", "samples"}
    model = load_checkpoint(ddpm_run / "model.pt", kind="ddpm")
    assert model["config"] == {"channels": 8, "timesteps": 20, "beta_start": 1e-4, "beta_end": 0.02, "num_classes": 10,
                               "patch": 2, "prediction": "x0", "image_size": 28, "noise_schedule": "cosine"}
    assert "optimizers" not in model and model["step"] == 2
    assert model["recipe"] == {"domain": "mnistm", "steps": 2, "batch_size": 8, "lr": 2e-3, "grad_clip": 1.0,
                               "drop_class": 0.1, "ema_decay": 0.999, "sample_every": 1, "sample_steps": 2,
                               "guidance": ddpm.GUIDANCE, "seed": 0}
    assert train_ddpm.main(["--data", str(tiny_data), "--out-dir", str(ddpm_run), "--dry-run", *TINY_DDPM]) == 0
    assert "nothing to train" in capsys.readouterr().out


def test_ddpm_resume_refuses_a_changed_recipe_and_ends_as_a_run_never_stopped(tiny_data, tmp_path):
    common = ["--data", str(tiny_data), "--batch-size", "8", "--sample-every", "3", "--sample-steps", "2", *TINY_DDPM]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert train_ddpm.main([*common, "--out-dir", str(straight), "--steps", "4"]) == 0
    assert train_ddpm.main([*common, "--out-dir", str(stopped), "--steps", "2"]) == 0
    for changed, flag in ((["--lr", "1e-3"], "--lr"), (["--drop-class", "0.2"], "--drop-class"),
                          (["--domain", "usps"], "--domain")):
        with pytest.raises(UserError) as refused:
            train_ddpm.main([*common, "--out-dir", str(stopped), "--steps", "4", *changed])
        assert len(str(refused.value).splitlines()) == 1 and flag in str(refused.value)
    # RESUMABLE: a longer run, drawing its grids with another guidance weight, goes on.
    assert train_ddpm.main([*common, "--out-dir", str(stopped), "--steps", "4", "--guidance", "1"]) == 0
    a, b = load_checkpoint(straight / "latest.pt"), load_checkpoint(stopped / "latest.pt")
    assert a["step"] == b["step"] == 4 and b["recipe"]["guidance"] == 1.0
    for name in ("model", "ema"):
        assert all(torch.equal(a["modules"][name][k], b["modules"][name][k]) for k in a["modules"][name])
    assert open(straight / "log.csv").read() == open(stopped / "log.csv").read()


# --- the 1000 images: determinism, names, scores ---------------------------------------------------


@pytest.mark.parametrize("which", ["acgan", "ddpm"])
def test_the_1000_images_are_the_same_bytes_twice(which, acgan_run, ddpm_run, tmp_path):
    checkpoint = (acgan_run if which == "acgan" else ddpm_run) / "model.pt"
    for out in ("a", "b"):
        assert generate_digits.main(["--checkpoint", str(checkpoint), "--out-dir", str(tmp_path / out),
                                     "--sample-steps", "2", "--device", "cpu"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 1000 and names[0] == "0_001.png" and names[-1] == "9_100.png"
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)


def test_score_counts_the_asked_class(acgan_run, classifier, tmp_path):
    out, report = tmp_path / "digits", tmp_path / "score.json"
    assert generate_digits.main(["--checkpoint", str(acgan_run / "model.pt"), "--out-dir", str(out),
                                 "--n-per-class", "3", "--classifier", str(classifier), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["n_images"] == 30 and set(result["per_digit"]) == {str(d) for d in range(10)}
    assert result["accuracy"] == pytest.approx(np.mean(list(result["per_digit"].values())))
    # The same images renamed to the classes the classifier predicts score 100 %.
    from datasets import load_folder

    model, _ = checkpoints.load_model(classifier, checkpoints.CLASSIFIERS)
    predicted = digitnet.predict_labels(model, load_folder(out).images, CPU).tolist()
    relabelled = tmp_path / "relabelled"
    relabelled.mkdir()
    for i, (name, label) in enumerate(zip(sorted(p.name for p in out.iterdir()), predicted)):
        shutil.copy(out / name, relabelled / f"{label}_{i:03d}.png")
    assert generate_digits.score(relabelled, classifier)["accuracy"] == 1.0
    (relabelled / "stray.png").write_bytes((out / "0_001.png").read_bytes())
    with pytest.raises(UserError, match="<digit>_<nnn>.png"):
        generate_digits.score(relabelled, classifier)


def test_fid_against_the_test_digits_goes_through_fidelity(acgan_run, tiny_data, random_inception, tmp_path):
    report = tmp_path / "fid.json"
    real = str(tiny_data / "digits" / "mnistm" / "test")
    assert generate_digits.main(["--checkpoint", str(acgan_run / "model.pt"), "--out-dir", str(tmp_path / "gen"),
                                 "--n-per-class", "1", "--real", real,
                                 "--inception-weights", str(random_inception), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert np.isfinite(result["fid"]) and result["n_generated"] == 10 and result["network"].startswith("TF FID")
    # With no weights: the TorchScript TF Inception, on a seeded subset of each folder.
    assert generate_digits.main(["--checkpoint", str(acgan_run / "model.pt"), "--out-dir", str(tmp_path / "tf"),
                                 "--n-per-class", "1", "--real", real, "--max-images", "6",
                                 "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["network"] == fidelity.TF_INCEPTION and result["n_generated"] == result["n_real"] == 6
    with pytest.raises(UserError, match="give it too"):
        generate_digits.main(["--checkpoint", str(acgan_run / "model.pt"), "--out-dir", str(tmp_path / "x"),
                              "--inception-weights", str(random_inception)])


def test_each_kind_loads_through_one_table(acgan_run, ddpm_run, classifier, tmp_path):
    """hw3/checkpoints.py: the ACGAN is a kind of its own; a script refuses another role's kind and weights that do not fit."""
    import sample
    from hw3 import checkpoints, training

    assert set(checkpoints.LOADERS) == {*checkpoints.FACE_SAMPLERS, *checkpoints.DIGIT_GENERATORS, *checkpoints.CLASSIFIERS}
    kinds = {name: training.load_checkpoint(path)["kind"]
             for name, path in (("acgan", acgan_run / "model.pt"), ("ddpm", ddpm_run / "model.pt"), ("uda", classifier))}
    assert kinds == {"acgan": "acgan", "ddpm": "ddpm", "uda": "uda"}
    assert hasattr(generate_digits.load_generator(acgan_run / "model.pt"), "generate")
    sampler = generate_digits.load_generator(ddpm_run / "model.pt", steps=3, guidance=0.5)
    assert (sampler.steps, sampler.guidance) == (3, 0.5)  # the ddpm's options reach its loader
    with pytest.raises(UserError, match="expected vae or gan"):
        sample.load_sampler(acgan_run / "model.pt")  # an ACGAN draws digits, not faces
    broken = training.load_checkpoint(classifier)
    broken["model"] = {k: v[..., :1] if v.dim() > 1 else v for k, v in broken["model"].items()}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(UserError, match="does not fit its model"):
        checkpoints.load_model(tmp_path / "broken.pt", checkpoints.CLASSIFIERS)


def test_generator_refuses_other_checkpoints(classifier, tmp_path):
    with pytest.raises(UserError, match="expected acgan or ddpm"):
        generate_digits.load_generator(classifier)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="damaged"):
        generate_digits.load_generator(damaged)


def test_plots_digits_draws_grids_reverse_process_and_curves(acgan_run, ddpm_run, tmp_path):
    assert plots.main(["digits", "--acgan", str(acgan_run / "model.pt"), "--ddpm", str(ddpm_run / "model.pt"),
                       "--acgan-log", str(acgan_run / "log.csv"), "--ddpm-log", str(ddpm_run / "log.csv"),
                       "--out-dir", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"fig5_acgan_grid.png", "fig5_ddpm_grid.png",
                                                    "fig5_reverse.png", "fig5_curves.png"}
    from PIL import Image

    assert Image.open(tmp_path / "fig5_acgan_grid.png").size == (10 * 30 + 2, 10 * 30 + 2)  # 28 px + 2 px gaps
    with pytest.raises(UserError, match="not a train_ddpm.py log"):
        plots.main(["digits", "--ddpm", str(ddpm_run / "model.pt"), "--ddpm-log", str(acgan_run / "log.csv"),
                    "--out-dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


# --- hw3_p5.sh, as the grader runs it ----------------------------------------------------------------


@pytest.fixture
def published_digits(acgan_run, model_server, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(acgan_run / "model.pt", models / "digits.pt")
    fetch.publish(models, ["digits.pt"], model_server.url)
    shutil.move(models / "digits.pt", model_server.directory / "digits.pt")  # the script must download it
    return {"HW3_MODEL_DIR": str(models), "HW3_MODEL_BASE_URL": model_server.url}


def test_hw3_p5_end_to_end_on_loopback(published_digits, tmp_path):
    first, second = tmp_path / "a" / "out", tmp_path / "b"
    for out in (first, second):
        result = run(["bash", "hw3_p5.sh", str(out)], **published_digits)
        assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in first.iterdir())
    assert len(names) == 1000 and names[:2] == ["0_001.png", "0_002.png"]
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_hw3_p5_bad_inputs_are_one_line_and_write_nothing(published_digits, model_server, tmp_path):
    usage = run(["bash", "hw3_p5.sh"], **published_digits)
    assert usage.returncode == 2 and "usage" in usage.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    taken = run(["bash", "hw3_p5.sh", str(full)], **published_digits)
    assert taken.returncode != 0 and "not an empty folder" in taken.stderr
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    blocked = tmp_path / "file"
    blocked.write_text("x")
    unwritable = run(["bash", "hw3_p5.sh", str(blocked / "out")], **published_digits)
    assert unwritable.returncode != 0 and len(unwritable.stderr.strip().splitlines()) == 1
    (model_server.directory / "digits.pt").write_bytes(b"damaged on the server")
    (tmp_path / "models" / "digits.pt").unlink()  # downloaded by the runs above
    damaged = run(["bash", "hw3_p5.sh", str(tmp_path / "new")], **published_digits)
    assert damaged.returncode != 0 and "sha-256" in damaged.stderr.lower()
    assert not (tmp_path / "new").exists()


def test_q_posterior_at_eta_1_is_ddpms_posterior():
    """Song et al.'s posterior with eta = 1 between consecutive steps is Ho et al.'s q(x_{t-1} | x_t, x_0), eq. 7."""
    schedule = ddpm.DDPMConfig().schedule()
    x0, x_t = torch.randn(2, 3, 4, 4, dtype=torch.float64).clamp(-1, 1), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for t in (1, 500, 999):
        abar, abar_prev, beta = (schedule.alphas_cumprod[t], schedule.alphas_cumprod[t - 1], schedule.betas[t])
        noise = schedule.predict_noise_from_start(x_t, t, x0)
        mean, sigma = schedule.q_posterior(x0, noise, t, t - 1, eta=1.0)
        expected = (abar_prev.sqrt() * beta / (1 - abar)) * x0 + ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)) * x_t
        assert torch.allclose(mean, expected, atol=1e-9)
        assert sigma == pytest.approx(((1 - abar_prev) / (1 - abar) * beta).sqrt().item(), rel=1e-9)
    end, sigma = schedule.q_posterior(x0, noise, 0, None, eta=1.0)
    assert sigma == 0 and torch.allclose(end, x0)  # the last step lands on x_0
    assert not list(schedule.state_dict())  # buffers that the config rebuilds, never saved
