"""The pipeline's plan: the inputs ``pipeline.py`` resolves from its flags, and the folders each stage
reads and writes, so every stage module takes one :class:`Plan`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hw3 import artifacts, checkpoints, uda
from hw3.domains import DIGITS_DOMAIN, SCENARIOS

# Images FID/KID score: generated faces per model, and digits per folder (None: all). Inception costs
# about 0.2 s an image on one CPU core, so the demo scores fewer and says how many (the report does too).
FID_IMAGES = {"demo": (50, 60), "full": (1000, None), "quick": (12, 12)}


@dataclass
class Plan:
    """The run's inputs, resolved from the flags: what every stage reads, and where it writes."""

    data: Path  # the hw3_data tree (given, or the demo data just built)
    runs: Path
    out: Path  # the report folder
    model_dir: Path  # where the models are published
    profile: str
    settings: dict[str, list[str]]  # pipeline.py's DEMO_ARGS or FULL_ARGS
    train_args: list[str]  # what every training run gets: --device, --quiet, --dry-run, --restart
    jobs: int
    device: str
    attribute: str  # the face attribute of the VAE t-SNE
    inception_weights: Path | None
    fid_images: tuple[int, int | None] = FID_IMAGES["demo"]  # generated faces per model; digits per folder

    @property
    def vae_dir(self) -> Path:
        return self.runs / checkpoints.VAE

    @property
    def gan_dir(self) -> Path:
        return self.runs / checkpoints.GAN

    @property
    def uda_root(self) -> Path:
        return self.runs / artifacts.UDA_RUNS

    def uda_run(self, method: str, source: str, target: str) -> Path:
        return self.uda_root / uda.run_name(method, source, target)

    def digit_dir(self, name: str) -> Path:
        """The run folder of a Problem 5 model (``acgan`` or ``ddpm``)."""
        return self.runs / name

    @property
    def digit_classifier(self) -> Path:
        """The target-only classifier of the digits' domain, which scores the generated digits."""
        source = next(s for s, t in SCENARIOS if t == DIGITS_DOMAIN)
        return self.uda_run(uda.UPPER_BOUND, source, DIGITS_DOMAIN) / artifacts.MODEL
