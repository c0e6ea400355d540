"""Problem 5: generate 100 digits of each class and score them with a digit classifier.

    python3 generate_digits.py --checkpoint runs/ddpm/model.pt --out-dir out/ \\
        --classifier runs/uda/target-only_usps-mnistm/model.pt --json out.json

The checkpoint is an ACGAN (``train_gan.py --task digits``, kind ``acgan``) or a conditional
DDPM (``train_ddpm.py``, kind ``ddpm``). The 1000 images are written as
``<digit>_<nnn>.png`` (``0_001.png`` ... ``9_100.png``) into a new folder, which appears
whole or not at all. All noise comes from one seeded CPU generator and the network
runs with deterministic kernels, so the same checkpoint and seed give the same bytes.
This is what ``hw3_p5.sh`` runs.

Scoring (``--classifier``): a digit classifier, a ``uda`` model trained with
``train_uda.py --method target-only`` on the same domain, labels every image; the
accuracy against the asked class, per digit and overall, goes to ``--json``. With
``--inception-weights`` and ``--real`` (the domain's test folder) FID is added, by
``fidelity.py``'s code.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

import dann  # noqa: F401  (registers its method)
import gan  # noqa: F401  (registers the acgan checkpoint kind)
import swd  # noqa: F401  (registers its method)
from hw3 import ddpm
from hw3.common import UserError, add_runtime_args, autocast, cli, precision_used, runtime, write_json
from datasets import DIGIT_SIZE, load_folder
from hw3.digitnet import NUM_CLASSES, predict_labels
from hw3.images import check_new_folder, deterministic, write_folder
from hw3.checkpoints import CLASSIFIERS, DIGIT_GENERATORS, load_model

NAME = re.compile(r"^(\d)_\d+\.png$")


def load_generator(path: str | Path, device: torch.device | str = "cpu", steps: int = ddpm.SAMPLE_STEPS,
                   eta: float = 0.0, guidance: float = ddpm.GUIDANCE):
    """The class-conditional generator of an ACGAN or DDPM checkpoint: an object with ``generate(labels, rng)``."""
    return load_model(path, DIGIT_GENERATORS, device, steps=steps, eta=eta, guidance=guidance)[0]


def generate(generator, n_per_class: int = 100, seed: int = 0, batch_size: int = 100,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[str]]:
    """``n_per_class`` digits of each class, ``(10 n, 3, 28, 28)`` in [0, 1] on the CPU, and their file names."""
    labels = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)  # 0 ... 0 1 ... 9
    rng = torch.Generator().manual_seed(seed)
    with deterministic(), torch.no_grad(), autocast(torch.device(device)):  # fp32 unless --precision bf16
        images = torch.cat([generator.generate(chunk.to(device), rng).float().cpu()
                            for chunk in labels.split(batch_size)])
    names = [f"{label}_{i % n_per_class + 1:03d}.png" for i, label in enumerate(labels.tolist())]
    return images, names


def load_named_digits(folder: str | Path):
    """The ``<digit>_<nnn>.png`` images of ``folder`` (an ImageSet) and the digit each name asks for ``(N,)``."""
    data = load_folder(folder, DIGIT_SIZE)
    matches = [NAME.match(name) for name in data.names]
    if not data.names or not all(matches):
        raise UserError(f"{folder} must hold only images named <digit>_<nnn>.png")
    return data, torch.tensor([int(m.group(1)) for m in matches])


def score(folder: str | Path, classifier: str | Path, device: torch.device | str = "cpu") -> dict:
    """Accuracy of ``classifier`` on the ``<digit>_<nnn>.png`` images of ``folder``, per digit and overall."""
    data, asked = load_named_digits(folder)
    model, _ = load_model(classifier, CLASSIFIERS, device)
    right = (predict_labels(model, data.images, device) == asked).float()
    per_digit = {str(d): right[asked == d].mean().item() for d in range(NUM_CLASSES) if (asked == d).any()}
    return {"accuracy": right.mean().item(), "per_digit": per_digit, "n_images": len(right),
            "classifier": str(classifier)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Generate 100 digits per class and score them.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="an acgan (gan) or ddpm model.pt")
    parser.add_argument("--out-dir", required=True, type=Path, help="new or empty folder for the 1000 PNGs")
    parser.add_argument("--n-per-class", type=int, default=100, help="images of each digit")
    parser.add_argument("--seed", type=int, default=0, help="seed of all the noise")
    parser.add_argument("--batch-size", type=int, default=100, help="images per forward pass (DDPM: twice that with guidance)")
    parser.add_argument("--sample-steps", type=int, default=ddpm.SAMPLE_STEPS, help="DDPM: DDIM steps (T with --eta 1: DDPM's sampler)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDPM: 0 deterministic DDIM, 1 ancestral")
    parser.add_argument("--guidance", type=float, default=ddpm.GUIDANCE, help="DDPM: classifier-free guidance weight w")
    parser.add_argument("--classifier", type=Path, default=None, help="a target-only uda model.pt: score the images")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    parser.add_argument("--real", type=Path, default=None, help="the domain's test folder: add FID and KID")
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="with --real: FID/KID from torch-fidelity's Inception and these weights, not the TF TorchScript")
    parser.add_argument("--max-images", type=int, default=None, help="with --real: score a seeded subset of each folder")
    add_runtime_args(parser, precision="fp32")  # fp32: the same 1000 files on any machine
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    device = runtime(args)
    if args.n_per_class < 1 or args.batch_size < 1 or args.sample_steps < 1:
        raise UserError("--n-per-class, --batch-size and --sample-steps must be at least 1")
    if args.real is None and (args.inception_weights is not None or args.max_images is not None):
        raise UserError("--inception-weights and --max-images score against --real: give it too")
    check_new_folder(args.out_dir)
    generator = load_generator(args.checkpoint, device, args.sample_steps, args.eta, args.guidance)
    images, names = generate(generator, args.n_per_class, args.seed, args.batch_size, device)
    write_folder(images, names, args.out_dir)
    print(f"wrote {len(names)} images to {args.out_dir}")
    result = {"precision": precision_used(device)}  # what generation ran in
    if args.classifier is not None:
        result = score(args.out_dir, args.classifier, device)
        print(f"classifier accuracy {100 * result['accuracy']:.1f} % on {result['n_images']} images")
    if args.real is not None:
        import fidelity

        fid = fidelity.score(args.out_dir, args.real, args.inception_weights, str(device), size=DIGIT_SIZE,
                             max_images=args.max_images)
        result.update({k: fid[k] for k in ("fid", "kid_mean", "kid_std", "n_generated", "n_real", "network")})
        print(f"FID {fid['fid']:.3f}, KID {fid['kid_mean']:.4f} against {args.real} "
              f"({fid['n_generated']} vs {fid['n_real']} images)")
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    cli(main)
