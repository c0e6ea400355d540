"""Where a DDPM's FID is lost: real digits noised to step t, denoised by the network, scored against the test digits.

    python3 benchmarks/digit_generation.py --dev demo_data --splits dev --models ddpm --out runs/p5
    python3 benchmarks/ddpm_partial_noise.py --checkpoint runs/p5/dev/ddpm/model.pt \\
        --real runs/p5/dev/real_train --test demo_data/digits/mnistm/test --out runs/p5/dev/partial

A sampler that starts from pure noise at T makes every image; one that starts from a real
train digit noised to a small t only has to take that noise away, and a perfect network would
give back the digit itself, so its FID would be the real-digit floor. Each ``--t`` here noises
the ``--real`` digits (``<digit>_<nnn>.png``, 100 per class: the floor folder that
``digit_generation.py`` writes) to step t (``Schedule.q_sample``, seed 0), denoises them with the
checkpoint's EMA network under its own labels (``ddpm.sample`` with ``start``: the same DDIM
spacing and guidance as the generated digits, over t's share of the steps), and scores FID and
KID against ``--test`` (``fidelity.py``, the TF FID Inception). The FID that a small t already
adds to the floor is lost to the last denoising steps alone, whatever comes before them.
Finished folders are skipped. Writes ``--report`` (markdown) and its ``.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import fidelity  # noqa: E402
from datasets import DIGIT_SIZE, ImageSet, to_float  # noqa: E402
from generate_digits import load_generator, load_named_digits  # noqa: E402
from hw3 import ddpm  # noqa: E402
from hw3.common import UserError, atomic_path, cli, command_line, markdown_table, write_json, write_text  # noqa: E402
from hw3.images import write_folder  # noqa: E402


def denoise_real(model, schedule: ddpm.Schedule, digits: ImageSet, labels: torch.Tensor, t: int, out_dir: Path,
                 guidance: float, steps: int = ddpm.SAMPLE_STEPS, seed: int = 0, batch_size: int = 100) -> Path:
    """``digits`` (of classes ``labels``) noised to step ``t`` and denoised by ``model``, written to ``out_dir``
    under their own names."""
    x0 = to_float(digits.images) * 2 - 1  # (N, 3, 28, 28) in [-1, 1]
    x_t = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))).float()
    out = [ddpm.sample(model, schedule, labels[i:i + batch_size], steps, guidance=guidance,
                       start=(t, x_t[i:i + batch_size])) for i in range(0, len(x0), batch_size)]
    return write_folder((torch.cat(out) + 1) / 2, digits.names, out_dir)


def fid_of(images: Path, test: Path) -> dict:
    """FID/KID of ``images`` against ``test``, kept beside the folder as ``<folder>.fid.json``."""
    path = images.with_suffix(".fid.json")
    if path.is_file():
        return json.loads(path.read_text())
    scores = fidelity.score(images, test, size=DIGIT_SIZE)
    write_json(path, scores)
    return scores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="a train_ddpm.py model.pt")
    parser.add_argument("--real", required=True, type=Path, help="real train digits named <digit>_<nnn>.png")
    parser.add_argument("--test", required=True, type=Path, help="the domain's test folder (FID's reference)")
    parser.add_argument("--out", required=True, type=Path, help="image folders (skipped when done)")
    parser.add_argument("--t", type=int, nargs="+", default=[40, 100, 250, 600, 999],
                        help="the steps (0-based) to noise to; 999 is the whole reverse process")
    parser.add_argument("--guidance", type=float, default=ddpm.GUIDANCE, help="classifier-free guidance weight w")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--report", type=Path, default=Path("benchmarks/ddpm_partial_noise.md"))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    digits, labels = load_named_digits(args.real)  # decoded once for every t
    sampler = load_generator(args.checkpoint)  # one clear line for a missing or damaged checkpoint
    if not isinstance(sampler, ddpm.DiffusionSampler):
        raise UserError(f"{args.checkpoint} is not a DDPM checkpoint")
    model, schedule = sampler.model, sampler.schedule
    bad = [t for t in args.t if not 0 <= t < schedule.timesteps]
    if bad:
        raise UserError(f"--t {bad[0]} is outside 0 ... {schedule.timesteps - 1}")
    floor = fid_of(args.real, args.test)["fid"]
    rows = [{"t": 0, "abar": 1.0, "noise_sd": 0.0, "fid": floor, "kid": None}]
    for t in sorted(args.t):
        images = args.out / f"t{t:04d}_w{args.guidance:g}"
        if not images.is_dir():
            denoise_real(model, schedule, digits, labels, t, images, args.guidance)
        scores = fid_of(images, args.test)
        abar = schedule.alphas_cumprod[t].item()
        rows.append({"t": t + 1, "abar": abar, "noise_sd": (1 - abar) ** 0.5, "fid": scores["fid"],
                     "kid": scores["kid_mean"]})
        print(f"t = {t + 1}: FID {scores['fid']:.1f}", flush=True)
    with atomic_path(args.report.with_suffix(".csv")) as tmp:
        pd.DataFrame(rows).assign(fid_over_floor=[r["fid"] / floor for r in rows]).to_csv(tmp, index=False)
    header = ["denoised from t", "abar_t", "noise sd", "FID", "FID / floor", "KID"]
    lines = [["(the real digits themselves: the floor)", "1", "0", f"{floor:.1f}", "1.00x", ""]]
    lines += [[r["t"], f"{r['abar']:.3f}", f"{r['noise_sd']:.3f}", f"{r['fid']:.1f}", f"{r['fid'] / floor:.2f}x",
               f"{r['kid']:.4f}"] for r in rows[1:]]
    text = (f"`{command_line('benchmarks/ddpm_partial_noise.py', argv)}`.\n\n"
            f"{len(digits.names)} real train digits noised to step t (1-based, as the "
            f"paper counts; noise sd on the [-1, 1] pixel scale), denoised by the checkpoint's network at "
            f"w = {args.guidance:g} (DDIM, t's share of {ddpm.SAMPLE_STEPS} steps over T), FID and KID against "
            f"the test digits. t = {schedule.timesteps} starts from noise: it is how the generated digits are made.\n\n"
            + markdown_table(header, lines))
    write_text(args.report, text)
    print(text)
    return 0


if __name__ == "__main__":
    cli(main)
