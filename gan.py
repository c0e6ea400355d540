"""Problem 2's GAN (DCGAN or SAGAN, 64x64 faces) and Problem 5's ACGAN (28x28 digits), and their losses.

One module with options instead of copies:

- ``arch="dcgan"``: Radford et al. 2015, https://arxiv.org/abs/1511.06434
  (strided convolutions, batch norm in G, LeakyReLU in D).
- ``arch="sagan"``: Zhang et al. 2018, https://arxiv.org/abs/1805.08318
  (the same stacks with spectral norm on every convolution of both nets and a
  self-attention block at 32x32 in both).
- ``arch="acgan"``: Odena et al. 2017, https://arxiv.org/abs/1610.09585, for
  class-conditional digits: the generator takes a class with the noise, and the
  discriminator has a second head that classifies (:class:`ConditionalGenerator`,
  :class:`AuxiliaryDiscriminator`, :func:`class_loss`).

Losses are plain functions of the discriminator's logits: non-saturating BCE
with optional one-sided label smoothing, hinge, and Wasserstein with gradient
penalty. What the classes add to a training step (labels for the generator, the
class loss, the class head's accuracy) is one hook object, :class:`AuxiliaryClassifier`
for the ACGAN and :class:`Unconditional` (which adds nothing) for the face GANs, that
:meth:`GANConfig.class_hook` picks. The training steps live in ``train_gan.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from hw3 import checkpoints
from hw3.digitnet import NUM_CLASSES

ARCHS = ("dcgan", "sagan", "acgan")
FACE_ARCHS = ("dcgan", "sagan")  # the 64x64 face nets; acgan is ConditionalGenerator/AuxiliaryDiscriminator
LOSSES = ("bce", "hinge", "wgan-gp")
NORMS = ("batch", "instance", "none")


@dataclass(frozen=True)
class GANConfig:
    """Everything that shapes both networks; saved whole in every checkpoint."""

    z_dim: int = 128
    arch: str = "dcgan"
    channels: int = 64  # base width of both nets
    d_norm: str = "batch"  # see Discriminator; norm_for() gives the usual choice

    @staticmethod
    def norm_for(arch: str, loss: str) -> str:
        """SAGAN's spectral norm needs no other; WGAN-GP's per-sample penalty forbids batch norm."""
        return "none" if arch == "sagan" else "instance" if loss == "wgan-gp" else "batch"

    def generator(self) -> "Generator | ConditionalGenerator":
        if self.arch == "acgan":
            return ConditionalGenerator(self.z_dim, self.channels)
        return Generator(self.z_dim, self.arch, self.channels)

    def discriminator(self) -> "Discriminator | AuxiliaryDiscriminator":
        if self.arch == "acgan":
            return AuxiliaryDiscriminator(self.channels)
        return Discriminator(self.arch, self.channels, self.d_norm)

    def class_hook(self, weight: float, fake_class_loss: bool) -> "Unconditional | AuxiliaryClassifier":
        """What the classes add to a training step: ACGAN's class loss (weighted ``weight``), or nothing.
        Both come from the trainer's recipe, which holds their defaults."""
        if self.arch == "acgan":
            return AuxiliaryClassifier(weight, fake_class_loss)
        return Unconditional()


def from_checkpoint(checkpoint: dict) -> "Generator | ConditionalGenerator":
    """The sampling generator (the EMA weights) of a loaded ``gan`` checkpoint, in eval mode."""
    generator = GANConfig(**checkpoint["config"]).generator()
    generator.load_state_dict(checkpoint["model"])
    return generator.eval()


checkpoints.register((checkpoints.GAN, checkpoints.ACGAN), from_checkpoint)  # the face GAN and Problem 5's ACGAN


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


def _check_face_arch(arch: str, face_class: str, acgan_class: str) -> None:
    if arch == "acgan":
        raise ValueError(f"{face_class} builds the 64x64 face nets (dcgan, sagan); the acgan is {acgan_class}, "
                         "or GANConfig(arch='acgan') builds both")
    _check("arch", arch, FACE_ARCHS)


class SelfAttention(nn.Module):
    """SAGAN's self-attention over all positions of a feature map (Zhang et al. 2018, eq. 1-3).

    ``y = x + gamma * softmax(f(x)^T g(x)) h(x)``; ``gamma`` starts at 0 so the
    block begins as the identity and the nets learn how much attention to use.
    """

    def __init__(self, channels: int, sn: bool = True):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = _conv(nn.Conv2d(channels, inner, 1), sn)
        self.key = _conv(nn.Conv2d(channels, inner, 1), sn)
        self.value = _conv(nn.Conv2d(channels, channels, 1), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (B, C/8, N), N = H*W
        k = self.key(x).flatten(2)  # (B, C/8, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        attention = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N, N): row i attends over all j
        out = (v @ attention.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class Generator(nn.Module):
    """Noise ``(B, z_dim)`` to faces ``(B, 3, 64, 64)`` in [-1, 1].

    Four transposed-convolution stages double the size from 4x4; ``channels`` is
    the width of the last hidden stage (the first has ``8 * channels``). SAGAN
    adds spectral norm to every convolution and self-attention at 32x32. ``arch`` is
    ``dcgan`` or ``sagan``; the ACGAN is :class:`ConditionalGenerator` (or
    ``GANConfig(arch="acgan").generator()``).
    """

    def __init__(self, z_dim: int = 128, arch: str = "dcgan", channels: int = 64):
        super().__init__()
        _check_face_arch(arch, "Generator", "ConditionalGenerator")
        self.z_dim, self.arch, self.channels = z_dim, arch, channels
        sn = arch == "sagan"
        c = channels

        def wrap(conv: nn.Module) -> nn.Module:
            return _conv(conv, sn)

        def up(c_in: int, c_out: int, first: bool = False) -> nn.Sequential:
            conv = nn.ConvTranspose2d(c_in, c_out, 4, 1 if first else 2, 0 if first else 1, bias=False)
            return nn.Sequential(wrap(conv), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        layers = [
            up(z_dim, 8 * c, first=True),  # (B, 8c, 4, 4)
            up(8 * c, 4 * c),  # (B, 4c, 8, 8)
            up(4 * c, 2 * c),  # (B, 2c, 16, 16)
            up(2 * c, c),  # (B, c, 32, 32)
        ]
        if sn:
            layers.append(SelfAttention(c))
        layers += [wrap(nn.ConvTranspose2d(c, 3, 4, 2, 1)), nn.Tanh()]  # (B, 3, 64, 64)
        self.net = nn.Sequential(*layers)
        self.apply(_init_norm)

    @property
    def latent_dim(self) -> int:
        return self.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(len(z), self.z_dim, 1, 1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Faces in [0, 1] (the VAE's range), for sampling and saving."""
        return (self(z) + 1) / 2


class Discriminator(nn.Module):
    """Faces ``(B, 3, 64, 64)`` in [-1, 1] to one logit (or critic score) each, ``(B,)``.

    ``norm`` is the normalisation after the inner convolutions: batch norm for a
    DCGAN with BCE or hinge loss, ``instance`` for WGAN-GP (the gradient penalty
    is per sample, which batch norm would mix, Gulrajani et al. 2017, sec. 4),
    ``none`` for SAGAN, whose spectral norm already bounds each layer.
    """

    def __init__(self, arch: str = "dcgan", channels: int = 64, norm: str = "batch"):
        super().__init__()
        _check_face_arch(arch, "Discriminator", "AuxiliaryDiscriminator")
        _check("norm", norm, NORMS)
        self.arch, self.channels, self.norm = arch, channels, norm
        sn = arch == "sagan"
        c = channels

        def wrap(conv: nn.Module) -> nn.Module:
            return _conv(conv, sn)

        def down(c_in: int, c_out: int) -> nn.Sequential:
            layers = [wrap(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"))]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif norm == "instance":
                layers.append(nn.InstanceNorm2d(c_out, affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return nn.Sequential(*layers)

        layers = [wrap(nn.Conv2d(3, c, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]  # (B, c, 32, 32)
        if sn:
            layers.append(SelfAttention(c))
        layers += [
            down(c, 2 * c),  # (B, 2c, 16, 16)
            down(2 * c, 4 * c),  # (B, 4c, 8, 8)
            down(4 * c, 8 * c),  # (B, 8c, 4, 4)
            wrap(nn.Conv2d(8 * c, 1, 4, 1, 0)),  # (B, 1, 1, 1)
        ]
        self.net = nn.Sequential(*layers)
        self.apply(_init_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class ConditionalGenerator(nn.Module):
    """ACGAN's generator at 28x28: noise ``(B, z_dim)`` and classes ``(B,)`` to digits ``(B, 3, 28, 28)`` in [-1, 1].

    The class enters as a learned embedding multiplied into the noise, then a DCGAN
    stack grows 7x7 -> 14x14 -> 28x28 (``channels`` is the width of the last stage).
    """

    def __init__(self, z_dim: int = 100, channels: int = 64, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.z_dim, c = z_dim, channels
        self.embed = nn.Embedding(num_classes, z_dim)
        self.project = nn.Sequential(nn.Linear(z_dim, 4 * c * 7 * 7, bias=False), nn.BatchNorm1d(4 * c * 7 * 7),
                                     nn.ReLU(inplace=True), nn.Unflatten(1, (4 * c, 7, 7)))  # (B, 4c, 7, 7)
        self.net = nn.Sequential(
            _conv(nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1, bias=False), False), nn.BatchNorm2d(2 * c),
            nn.ReLU(inplace=True),  # (B, 2c, 14, 14)
            _conv(nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False), False), nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),  # (B, c, 28, 28)
            _conv(nn.Conv2d(c, 3, 3, 1, 1), False), nn.Tanh(),
        )
        self.apply(_init_norm)

    @property
    def latent_dim(self) -> int:
        return self.z_dim

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z * self.embed(labels)))

    def generate(self, labels: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Digits of the classes ``labels`` in [0, 1], from N(0, I) noise drawn on the CPU from ``rng``."""
        z = torch.randn(len(labels), self.z_dim, generator=rng).to(labels.device)
        return (self(z, labels) + 1) / 2


class AuxiliaryDiscriminator(nn.Module):
    """ACGAN's discriminator at 28x28: digits ``(B, 3, 28, 28)`` to a real/fake logit ``(B,)`` and class logits ``(B, 10)``.

    A DCGAN stack 28 -> 14 -> 7 -> 4 shared by the two heads (Odena et al., sec. 3).
    """

    def __init__(self, channels: int = 64, num_classes: int = NUM_CLASSES):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            _conv(nn.Conv2d(3, c, 4, 2, 1), False), nn.LeakyReLU(0.2, inplace=True),  # (B, c, 14, 14)
            _conv(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), False), nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2, inplace=True),  # (B, 2c, 7, 7)
            _conv(nn.Conv2d(2 * c, 4 * c, 3, 2, 1, bias=False), False), nn.BatchNorm2d(4 * c),
            nn.LeakyReLU(0.2, inplace=True), nn.Flatten(),  # (B, 4c * 16)
        )
        self.adversarial = nn.Linear(4 * c * 16, 1)
        self.classifier = nn.Linear(4 * c * 16, num_classes)
        self.apply(_init_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return self.adversarial(h).flatten(), self.classifier(h)


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ACGAN's ``L_C = E[-log P(C = c | X)]`` (Odena et al., eq. 2), the cross-entropy of the class head.

    The discriminator minimises it on real and generated digits, and the generator on
    its own, so both push generated digits to look like their class.
    """
    return F.cross_entropy(logits.float(), labels)


class Unconditional:
    """The class hook of a GAN without classes: no labels, no class loss, no extra log column.

    :class:`AuxiliaryClassifier` is the ACGAN's; a training step calls the same methods
    on either, so it has no ``if conditional`` of its own.
    """

    columns: tuple[str, ...] = ()  # what :meth:`metrics` adds to a step's log row

    def draw_labels(self, n: int, device: torch.device | str) -> None:
        return None

    def generate(self, generator: nn.Module, z: torch.Tensor, labels: None) -> torch.Tensor:
        return generator(z)

    def split(self, d_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        """D's output as (real/fake logits ``(B,)`` in float32, class logits: none)."""
        return d_output.float(), None

    def d_term(self, real_logits: None, real_labels: None, fake_logits: None, fake_labels: None) -> float:
        return 0.0

    def g_term(self, fake_logits: None, fake_labels: None) -> float:
        return 0.0

    def metrics(self, real_logits: None, real_labels: None) -> dict[str, float]:
        return {}


@dataclass(frozen=True)
class AuxiliaryClassifier:
    """ACGAN's class hook: the class loss L_C of Odena et al. 2017 (eq. 1-2), weighted ``weight``.

    D minimises ``weight * L_C - L_S`` and G ``weight * L_C`` plus its adversarial loss: the
    generator draws uniform classes, the discriminator's second head learns to classify real
    and generated digits, and the generator to make its digits classified as asked.
    ``metrics`` logs the head's accuracy on the real batch. ``train_gan.py`` turns the class loss
    on generated digits off unless ``--fake-class-loss``: on the development digits that lifted
    the judges' accuracy from 76-78 % to 95-97 % (docs/problem5_digits.md).
    """

    weight: float = 1.0  # the loss weight of L_C (1 in Odena et al.)
    fake_class_loss: bool = True  # D's class head learns from generated digits too (Odena et al.), or real ones only
    num_classes: int = NUM_CLASSES
    columns = ("d_class_acc",)  # a class attribute, not a field

    def draw_labels(self, n: int, device: torch.device | str) -> torch.Tensor:
        """Uniform classes ``(n,)`` for ``n`` generated digits (from torch's global generator)."""
        return torch.randint(0, self.num_classes, (n,), device=device)

    def generate(self, generator: nn.Module, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """:class:`ConditionalGenerator`'s digits of the classes ``labels`` from the noise ``z``."""
        return generator(z, labels)

    def split(self, d_output: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """:class:`AuxiliaryDiscriminator`'s output as float32 real/fake logits ``(B,)``, class logits ``(B, 10)``."""
        adversarial, logits = d_output
        return adversarial.float(), logits.float()

    def d_term(self, real_logits: torch.Tensor, real_labels: torch.Tensor, fake_logits: torch.Tensor,
               fake_labels: torch.Tensor) -> torch.Tensor:
        """What D adds to its loss: ``weight * L_C`` on the real digits, and on the generated ones when
        ``fake_class_loss`` (without it the head is a classifier of real digits only, as Keras's
        ACGAN example came to train it, keras-team/keras PRs #8452 and #8482)."""
        loss = class_loss(real_logits, real_labels)
        if self.fake_class_loss:
            loss = loss + class_loss(fake_logits, fake_labels)
        return self.weight * loss

    def g_term(self, fake_logits: torch.Tensor, fake_labels: torch.Tensor) -> torch.Tensor:
        """What G adds to its loss: ``weight * L_C`` on its digits, for the classes it was asked."""
        return self.weight * class_loss(fake_logits, fake_labels)

    def metrics(self, real_logits: torch.Tensor, real_labels: torch.Tensor) -> dict[str, float]:
        """The class head's accuracy on the real batch, the log's ``d_class_acc``."""
        return {"d_class_acc": (real_logits.argmax(1) == real_labels).float().mean().item()}


def _conv(conv: nn.Module, sn: bool) -> nn.Module:
    """DCGAN's N(0, 0.02) initialisation, then spectral norm when asked.

    Initialising first lets spectral norm's power iteration start from the
    final weights, so sigma(W) is near 1 from the first step.
    """
    nn.init.normal_(conv.weight, 0.0, 0.02)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return spectral_norm(conv) if sn else conv


def _init_norm(module: nn.Module) -> None:
    if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------
# Losses: functions of the discriminator's outputs, each returning a scalar.
# ---------------------------------------------------------------------------


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """D's loss from its outputs on real ``(B,)`` and fake ``(B,)`` images (without WGAN-GP's penalty).

    - ``bce``: Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661,
      ``-log D(x) - log(1 - D(G(z)))``; one-sided label smoothing (real target
      ``1 - label_smoothing``, fake target stays 0) from Salimans et al. 2016,
      https://arxiv.org/abs/1606.03498, sec. 3.4.
    - ``hinge``: Lim & Ye 2017, https://arxiv.org/abs/1705.02894, as used by
      SAGAN: ``relu(1 - D(x)) + relu(1 + D(G(z)))``.
    - ``wgan-gp``: Arjovsky et al. 2017, https://arxiv.org/abs/1701.07875,
      ``D(G(z)) - D(x)``; add :func:`gradient_penalty`.
    """
    _check("loss", kind, LOSSES)
    if kind == "bce":
        target = torch.full_like(real, 1.0 - label_smoothing)
        return F.binary_cross_entropy_with_logits(real, target) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return fake.mean() - real.mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's loss from D's outputs on its images ``(B,)``.

    ``bce`` is the non-saturating ``-log D(G(z))`` (Goodfellow et al. 2014,
    sec. 3); ``hinge`` and ``wgan-gp`` both use ``-D(G(z))`` (Lim & Ye 2017;
    Arjovsky et al. 2017).
    """
    _check("loss", kind, LOSSES)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    return -fake.mean()


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's ``E[(||grad D(x_hat)||_2 - 1)^2]`` on random interpolates of real and fake images.

    Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028, eq. 3 (multiply by
    lambda = 10 outside). The graph is kept so the penalty trains D.
    """
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device, dtype=real.dtype)  # (B, 1, 1, 1)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = discriminator(mixed)  # (B,)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)  # (B, 3, H, W)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def discriminator_accuracy(kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    """Fractions of real and of fake images D puts on the right side of its boundary.

    BCE and hinge separate at 0. A Wasserstein critic has no fixed boundary, so
    it uses the midpoint of the two batches' mean scores.
    """
    threshold = 0.5 * (real.mean() + fake.mean()) if kind == "wgan-gp" else 0.0
    return (real > threshold).float().mean().item(), (fake <= threshold).float().mean().item()
