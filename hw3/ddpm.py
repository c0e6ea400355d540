"""Problem 5's conditional diffusion model: a small U-Net, the noise schedule, the loss and the sampler.

- DDPM: Ho et al. 2020, https://arxiv.org/abs/2006.11239. The forward process adds
  Gaussian noise over ``T`` steps; the network learns to predict that noise (the
  simplified loss, eq. 14) or, by default, the clean image x_0 (the parameterisation of
  sec. 3.2). The noise schedule is Nichol & Dhariwal's cosine one by default
  (https://arxiv.org/abs/2102.09672, eq. 17), Ho et al.'s linear betas on request.
- Classifier-free guidance: Ho & Salimans 2022, https://arxiv.org/abs/2207.12598. The
  class is dropped (replaced by a "no class" token) for a share of the training
  batches, and sampling mixes the conditional and unconditional noise predictions.
- DDIM: Song et al. 2021, https://arxiv.org/abs/2010.02502. One sampler covers both:
  ``eta = 1`` over all ``T`` steps is DDPM's ancestral sampler (with the posterior
  variance beta-tilde), ``eta = 0`` over a few evenly spaced steps is DDIM's fast,
  deterministic one (eq. 12 and 16).

Images are ``(B, 3, S, S)`` in [-1, 1], ``S = DDPMConfig.image_size`` (28, the digits). The conversions
between the noise and x_0 live on :class:`Schedule`: ``q_sample``, ``predict_start_from_noise`` and
``predict_noise_from_start`` as denoising-diffusion-pytorch names them; ``q_posterior`` is DDIM's
generalised posterior, a DDIM step, which is that library's DDPM posterior only at ``eta = 1`` and
``t_prev = t - 1``. The one reading of the network's output is :func:`model_predictions`. :class:`DiffusionSampler`
gives the network the ACGAN's ``generate(labels, rng)``; the training loop lives in ``train_ddpm.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hw3 import checkpoints


NOISE_SCHEDULES = ("cosine", "linear")  # DDPMConfig.noise_schedule's values


@dataclass(frozen=True)
class DDPMConfig:
    """Everything that shapes the network and the noise schedule; saved whole in every checkpoint."""

    channels: int = 32  # width of the U-Net's first level; 2x below it
    timesteps: int = 1000  # T, as in Ho et al.
    beta_start: float = 1e-4  # Ho et al.'s linear schedule (noise_schedule "linear")
    beta_end: float = 0.02
    num_classes: int = 10
    patch: int = 2  # each 2x2 pixel block becomes 12 channels and the U-Net runs on a 14x14 grid (1: 28x28)
    prediction: str = "x0"  # the network's output: "x0" (the clean image) or "eps" (the noise, Ho et al.)
    image_size: int = 28  # the digits' side
    noise_schedule: str = "cosine"  # Nichol & Dhariwal's, or "linear" (Ho et al.'s; every checkpoint before this field)

    def build(self) -> "UNet":
        return UNet(self.channels, self.num_classes, self.patch, self.prediction, self.image_size)

    def schedule(self) -> "Schedule":
        if self.noise_schedule == "linear":
            return Schedule(linear_betas(self.timesteps, self.beta_start, self.beta_end))
        if self.noise_schedule == "cosine":
            return Schedule(cosine_betas(self.timesteps))
        raise ValueError(f"unknown noise schedule {self.noise_schedule!r}: choose {' or '.join(NOISE_SCHEDULES)}")


# The sampler every caller uses unless told otherwise: 25 deterministic DDIM steps, guidance weight w = 2.
SAMPLE_STEPS = 25
GUIDANCE = 2.0


def from_checkpoint(checkpoint: dict) -> tuple["UNet", "Schedule"]:
    """The sampling network (the EMA weights) of a loaded ``ddpm`` checkpoint, in eval mode, and its schedule."""
    # A checkpoint written before the schedule was a field has none: its schedule was linear.
    config = DDPMConfig(**{"noise_schedule": "linear", **checkpoint["config"]})
    model = config.build()
    model.load_state_dict(checkpoint["model"])
    return model.eval(), config.schedule()


# ---------------------------------------------------------------------------
# The noise schedule and the forward process q(x_t | x_0)
# ---------------------------------------------------------------------------


def linear_betas(timesteps: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """beta_1 ... beta_T, evenly spaced (Ho et al. 2020, sec. 4), float64 ``(T,)``."""
    return torch.linspace(start, end, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """beta_1 ... beta_T of Nichol & Dhariwal's cosine schedule (2021, eq. 17), float64 ``(T,)``.

    alpha-bar(t) = f(t) / f(0) with f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2): it falls
    slowly at both ends, where the linear schedule spends many steps near x_0 or near pure
    noise, and each beta is capped at ``max_beta`` so the last step stays finite.
    """
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]  # alpha-bar of steps 0 ... T
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(max=max_beta)


class Schedule(nn.Module):
    """The quantities of a beta schedule that training and sampling need, indexed by ``t`` in 0 ... T-1.

    ``alphas_cumprod[t]`` is alpha-bar of step ``t + 1`` in the paper's 1-based notation:
    ``prod_{s <= t} (1 - beta_s)``. It and its square roots are kept in float64 (``1 - abar``
    near ``t = 0`` loses most of its digits in float32) and cast to the images' dtype where used.
    They are buffers (not saved: the config rebuilds them), so ``schedule.to(device)`` moves them.
    Every conversion between x_t, x_0 and the noise is a method here, so the loss and the
    sampler share one formula (denoising-diffusion-pytorch's ``GaussianDiffusion`` does the same).
    ``t`` is an int or a ``(B,)`` tensor of steps.
    """

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        alphas_cumprod = torch.cumprod(1.0 - betas.double(), dim=0)
        for name, values in (("betas", betas.double()), ("alphas_cumprod", alphas_cumprod),
                             ("sqrt_alphas_cumprod", alphas_cumprod.sqrt()),
                             ("sqrt_one_minus_alphas_cumprod", (1.0 - alphas_cumprod).sqrt())):
            self.register_buffer(name, values, persistent=False)  # each (T,)
        self.timesteps = len(betas)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """A draw of ``x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` (Ho et al., eq. 4)."""
        return _at(self.sqrt_alphas_cumprod, t, x0) * x0 + _at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def predict_start_from_noise(self, x_t: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """The x_0 that ``noise`` and ``x_t`` imply: ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` (eq. 4)."""
        return (x_t - _at(self.sqrt_one_minus_alphas_cumprod, t, x_t) * noise) / _at(self.sqrt_alphas_cumprod, t, x_t)

    def predict_noise_from_start(self, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
        """The noise that ``x0`` and ``x_t`` imply: ``(x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)`` (eq. 4)."""
        return (x_t - _at(self.sqrt_alphas_cumprod, t, x_t) * x0) / _at(self.sqrt_one_minus_alphas_cumprod, t, x_t)

    def q_posterior(self, x0: torch.Tensor, noise: torch.Tensor, t: int, t_prev: int | None,
                    eta: float) -> tuple[torch.Tensor, float]:
        """Mean and standard deviation of ``x_{t_prev}`` given ``x_0`` and the noise in ``x_t``: DDIM's
        generalised posterior (Song et al. 2021, eq. 12 and 16). ``t_prev = None`` is the end (abar = 1).

        ``eta = 1`` with ``t_prev = t - 1`` is DDPM's q(x_{t-1} | x_t, x_0), variance beta-tilde;
        ``eta = 0`` is the deterministic DDIM step.
        """
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[t_prev] if t_prev is not None else torch.ones_like(a_t)
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        direction = (1 - a_prev - sigma**2).clamp_min(0).sqrt()
        return a_prev.sqrt().item() * x0 + direction.item() * noise, sigma.item()


def _at(values: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """``values[t]`` in ``x``'s dtype and device, shaped ``(B, 1, 1, 1)`` to scale a batch ``x`` ``(B, C, H, W)``."""
    return values.to(x.device)[t].to(x.dtype).view(-1, *[1] * (x.dim() - 1))


def training_target(prediction: str, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What a network of ``prediction`` ("x0" or "eps") is trained to output for ``x_t = q_sample(x0, t, noise)``."""
    return noise if prediction == "eps" else x0


def model_predictions(model: nn.Module, schedule: Schedule, x_t: torch.Tensor, t: int, labels: torch.Tensor,
                      guidance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The guided network's x_0 (clipped to [-1, 1], as Ho et al.'s code does) and the noise consistent with it.

    The inverse of :func:`training_target`: the one place that reads the network's output.
    """
    out = guided_output(model, x_t, torch.full_like(labels, t), labels, guidance)
    x0 = out if model.prediction == "x0" else schedule.predict_start_from_noise(x_t, t, out)
    x0 = x0.clamp(-1, 1)
    return x0, schedule.predict_noise_from_start(x_t, t, x0)


def diffusion_loss(model: nn.Module, schedule: Schedule, x0: torch.Tensor, labels: torch.Tensor,
                   drop_class: float = 0.1, rng: torch.Generator | None = None) -> torch.Tensor:
    """Ho et al.'s simple loss ``E ||eps - eps_theta(x_t, t, y)||^2`` (eq. 14) for a batch ``x0`` in [-1, 1].

    An ``x0``-predicting network is trained on ``E ||x_0 - x_theta(x_t, t, y)||^2`` instead, the
    parameterisation Ho et al. discuss in sec. 3.2. ``t`` is uniform over the T steps. A
    ``drop_class`` share of the labels becomes the "no class" token, so one network also
    learns the unconditional model that classifier-free guidance needs (Ho & Salimans 2022,
    Algorithm 1).
    """
    b, device = len(x0), x0.device
    t = torch.randint(0, schedule.timesteps, (b,), generator=rng).to(device)  # (B,)
    noise = torch.randn(x0.shape, generator=rng).to(device)  # (B, 3, H, W)
    dropped = torch.rand(b, generator=rng).to(device) < drop_class
    labels = torch.where(dropped, torch.full_like(labels, model.null_class), labels)
    predicted = model(schedule.q_sample(x0, t, noise), t, labels)
    return F.mse_loss(predicted.float(), training_target(model.prediction, x0, noise))


# ---------------------------------------------------------------------------
# The network: a small U-Net conditioned on the time step and the class
# ---------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of integer steps ``(B,)`` -> ``(B, dim)`` (Ho et al., app. B)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the step/class embedding added in between, and a residual path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """Noisy images ``(B, 3, 28, 28)``, steps ``(B,)`` and classes ``(B,)`` -> ``(B, 3, 28, 28)``: the noise or x_0.

    Three resolutions, 28 -> 14 -> 7 and back, one residual block each way with skip
    connections, in the spirit of Ho et al.'s U-Net without its attention layers (at 7x7
    they cost more on a CPU than they bring). With ``patch = 2`` (the default) the image is
    first folded into a 14x14 grid of 2x2 blocks, 12 channels, as a vision transformer cuts
    patches, at a quarter of the cost per channel. The U-Net then has two resolutions,
    14 -> 7, and its middle block stays at 7x7, between 3x3 convolutions where the 28x28
    U-Net down- and upsamples. Class ``num_classes`` means "no class"; ``prediction`` says
    what the output is. ``image_size`` (28 above) is the side it is trained on and that
    :func:`sample` draws; the convolutions work at any multiple of 4.
    """

    def __init__(self, channels: int = 32, num_classes: int = 10, patch: int = 2, prediction: str = "x0",
                 image_size: int = 28):
        super().__init__()
        if patch not in (1, 2) or prediction not in ("eps", "x0"):
            raise ValueError(f"patch must be 1 or 2 and prediction eps or x0, not {patch!r}, {prediction!r}")
        if image_size < 4 or image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (the U-Net halves it twice), not {image_size!r}")
        c, emb_dim, folded = channels, 4 * channels, 3 * patch * patch
        self.channels, self.null_class, self.patch, self.prediction = c, num_classes, patch, prediction
        self.image_shape = (3, image_size, image_size)  # what it was trained on, and what the sampler draws
        self.time_mlp = nn.Sequential(nn.Linear(c, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim)
        self.stem = nn.Conv2d(folded, c, 3, padding=1)
        self.down1 = ResBlock(c, c, emb_dim)  # 28x28 (14x14 folded)
        self.pool1 = nn.Conv2d(c, c, 4, 2, 1)  # -> 14x14 (7x7)
        self.down2 = ResBlock(c, 2 * c, emb_dim)
        deeper = patch == 1  # the 28x28 U-Net halves once more; the folded one is at 7x7 already
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 4, 2, 1) if deeper else nn.Conv2d(2 * c, 2 * c, 3, 1, 1)  # -> 7x7
        self.mid = ResBlock(2 * c, 2 * c, emb_dim)
        self.up2 = nn.ConvTranspose2d(2 * c, 2 * c, 4, 2, 1) if deeper else nn.Conv2d(2 * c, 2 * c, 3, 1, 1)
        self.dec2 = ResBlock(4 * c, 2 * c, emb_dim)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 4, 2, 1)  # -> 28x28 (14x14)
        self.dec1 = ResBlock(2 * c, c, emb_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, folded, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels)) + self.class_emb(labels)  # (B, 4c)
        h1 = self.down1(self.stem(F.pixel_unshuffle(x, self.patch)), emb)  # (B, c, 28, 28); 14x14 folded
        h2 = self.down2(self.pool1(h1), emb)  # (B, 2c, 14, 14)
        h = self.mid(self.pool2(h2), emb)  # (B, 2c, 7, 7)
        h = self.dec2(torch.cat([self.up2(h), h2], dim=1), emb)  # (B, 2c, 14, 14)
        h = self.dec1(torch.cat([self.up1(h), h1], dim=1), emb)  # (B, c, 28, 28)
        return F.pixel_shuffle(self.out(h), self.patch)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def guided_output(model: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                  guidance: float) -> torch.Tensor:
    """``(1 + w) eps(x, y) - w eps(x, no class)`` (Ho & Salimans 2022, eq. 6); ``w = 0`` is plain conditional.

    The same mix of an ``x0``-predicting network's outputs is the same guidance: at fixed
    ``x_t`` and ``t`` the noise is an affine function of x_0 whose weights sum to one.
    """
    if guidance == 0:
        return model(x, t, labels).float()
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, model.null_class)]))
    conditional, unconditional = both.float().chunk(2)
    return (1 + guidance) * conditional - guidance * unconditional


@torch.no_grad()
def sample(model: nn.Module, schedule: Schedule, labels: torch.Tensor, steps: int = SAMPLE_STEPS,
           eta: float = 0.0, guidance: float = GUIDANCE, rng: torch.Generator | None = None,
           trajectory: list | None = None, start: tuple[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Images ``(B, *model.image_shape)`` in [-1, 1] of the classes ``labels`` ``(B,)``, by the DDIM update.

    ``steps`` evenly spaced steps from T down to 1; with ``steps = T`` and ``eta = 1`` this is
    DDPM's ancestral sampler. Noise comes from ``rng`` on the CPU, so a seed gives the same
    images on any device. Each step predicts ``x_0``, clips it to [-1, 1] as Ho et al.'s code
    does, and moves to the previous kept step (Song et al., eq. 12, sigma of eq. 16). When
    ``trajectory`` is a list, ``(t, x_t)`` of every kept step is appended to it (CPU copies,
    ``t`` in the paper's 1-based count: ``x_T`` first, then down to ``(0, x_0)``, the result).

    ``start = (t, x_t)`` begins at step ``t`` (0-based, as :meth:`Schedule.q_sample`'s) from
    the given ``x_t`` instead of pure noise at T, over the same spacing's share of the steps
    (at least 2): how much of the real images a network keeps when it denoises them from
    ``t`` (``benchmarks/ddpm_partial_noise.py``).
    """
    device = labels.device
    if start is None:
        first = schedule.timesteps - 1
        x = torch.randn((len(labels), *model.image_shape), generator=rng).to(device)
    else:
        first, x = start[0], start[1].to(device)
        steps = max(2, round(steps * (first + 1) / schedule.timesteps))
    times = torch.linspace(first, 0, steps).round().long().unique_consecutive().tolist()
    for i, t in enumerate(times):
        if trajectory is not None:
            trajectory.append((t + 1, x.float().cpu()))
        x0, eps = model_predictions(model, schedule, x, t, labels, guidance)
        x, sigma = schedule.q_posterior(x0, eps, t, times[i + 1] if i + 1 < len(times) else None, eta)
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=rng).to(device)
    if trajectory is not None:
        trajectory.append((0, x.float().cpu()))
    return x


class DiffusionSampler:
    """A DDPM network and its schedule behind the ACGAN's ``generate(labels, rng)``: digits in [0, 1].

    ``steps``/``eta``: see :func:`sample` (25 DDIM steps by default; ``steps = T``
    with ``eta = 1`` is DDPM's own sampler); ``guidance`` is the classifier-free weight w.
    """

    def __init__(self, model, schedule, steps: int = SAMPLE_STEPS, eta: float = 0.0, guidance: float = GUIDANCE):
        self.model, self.schedule, self.steps, self.eta, self.guidance = model, schedule, steps, eta, guidance

    def to(self, device) -> "DiffusionSampler":
        self.model.to(device)
        self.schedule.to(device)
        return self

    def generate(self, labels: torch.Tensor, rng: torch.Generator | None = None,
                 trajectory: list | None = None) -> torch.Tensor:
        x = sample(self.model, self.schedule, labels, self.steps, self.eta, self.guidance, rng, trajectory)
        return (x + 1) / 2


def from_checkpoint_sampler(checkpoint: dict, steps: int | None = None, eta: float = 0.0,
                            guidance: float | None = None) -> DiffusionSampler:
    """The sampler of a loaded ``ddpm`` checkpoint: ``steps`` (default :data:`SAMPLE_STEPS`), DDIM's
    ``eta`` and the guidance weight (default :data:`GUIDANCE`); what :func:`checkpoints.load_model` gives."""
    model, schedule = from_checkpoint(checkpoint)
    return DiffusionSampler(model, schedule, steps or SAMPLE_STEPS, eta, GUIDANCE if guidance is None else guidance)


checkpoints.register((checkpoints.DDPM,), from_checkpoint_sampler, options=("steps", "eta", "guidance"))
