"""FID and Inception Score of generated faces (Problem 2's quality numbers).

    python3 fidelity.py generate --checkpoint runs/gan/model.pt --out-dir runs/gan/fake --n 1000 --seed 0
    python3 fidelity.py score --generated runs/gan/fake --real hw3_data/face/test \\
        --inception-weights weights-inception-2015-12-05-6726825d.pth --json runs/gan/fidelity.json

``score`` runs torch-fidelity's InceptionV3 (the TensorFlow FID network ported
to PyTorch) from a local weights file, because these machines cannot download
it, and torch-fidelity's Inception Score. :func:`frechet_distance` is FID's
maths on its own, checked against closed-form cases and against
torch-fidelity's implementation in the tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from common import UserError, add_runtime_args, batched, cli, resolve_device, runtime, write_json
from training import load_checkpoint
from datasets import FACE_SIZE, load_folder
from images import check_new_folder, write_folder

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``
    (Dowson & Landau 1982; FID: Heusel et al. 2017, https://arxiv.org/abs/1706.08500).
    ``sigma1 sigma2`` has the same eigenvalues as the symmetric
    ``A sigma2 A`` with ``A = sigma1^(1/2)``, so the trace term comes from two
    symmetric eigen-decompositions: exact for covariance matrices, and much
    faster at 2048 dimensions than the general eigen-solver (seconds, not a
    minute). Eigenvalues that rounding pushes below 0 are clipped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes do not match: mu {mu1.shape} {mu2.shape}, sigma {sigma1.shape} {sigma2.shape}")
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # sigma1^(1/2), symmetric
    middle = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def inception_features(extractor, images: torch.Tensor, device: torch.device, batch_size: int = 64):
    """Pool (2048-d, for FID) features and unbiased logits (1008, for IS) of uint8 ``(N, 3, H, W)`` images."""
    pools, logits = batched(extractor, images, batch_size, device)
    return pools.double(), logits.double()  # (N, 2048), (N, 1008)


def generate(checkpoint: str | Path, out_dir: str | Path, n: int = 1000, seed: int = 0, batch_size: int = 100,
             device: str = "auto") -> Path:
    """Write ``n`` faces of a gan checkpoint's EMA generator as ``00000.png ...`` into a new folder.

    The noise comes from a seeded CPU generator (same ``seed``, same faces); the
    batches run on ``device``; the folder appears whole or not at all.
    """
    from sample import load_sampler

    check_new_folder(out_dir)
    if n < 1 or batch_size < 1:
        raise UserError("--n and --batch-size must be at least 1")
    load_checkpoint(checkpoint, kind="gan")  # a clear error for a VAE or damaged file, before any work
    generator = load_sampler(checkpoint, resolve_device(device))
    noise = torch.randn(n, generator.latent_dim, generator=torch.Generator().manual_seed(seed))  # (n, z_dim)
    images = batched(generator.decode, noise, batch_size, resolve_device(device))  # (n, 3, 64, 64) in [0, 1]
    return write_folder(images, [f"{i:05d}.png" for i in range(n)], out_dir)


def check_inception_weights(path: str | Path | None) -> Path:
    """The local Inception weights file, or a UserError that says which file and where to get it."""
    if path is None or not Path(path).is_file():
        where = f"{path} does not exist" if path else "no --inception-weights given"
        raise UserError(f"{where}: FID/IS need torch-fidelity's Inception weights {INCEPTION_FILE}; "
                        f"download it on a machine with internet from {INCEPTION_URL} and pass its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a state dict
        raise UserError(f"{path} is not a PyTorch state dict ({type(err).__name__}); expected {INCEPTION_FILE}") from None
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048):
        raise UserError(f"{path} does not hold torch-fidelity's InceptionV3 weights; expected {INCEPTION_FILE}")
    return Path(path)


def score(generated: str | Path, real: str | Path, inception_weights: str | Path, device: str = "auto",
          batch_size: int = 64, isc_splits: int = 10) -> dict:
    """FID between the ``generated`` and ``real`` folders and IS of ``generated``.

    Both folders are decoded as 64x64 RGB by the data module (so any folder of
    images works); torch-fidelity's InceptionV3 upsamples them to 299x299 as
    TensorFlow did and gives the 2048-d pool features (FID, via
    :func:`frechet_distance`) and the logits (IS, torch-fidelity's own
    function with its default 10 splits and shuffle seed).
    Returns ``{"fid", "is_mean", "is_std", "n_generated", "n_real"}``.
    """
    from torch_fidelity import FeatureExtractorInceptionV3
    from torch_fidelity.metric_isc import isc_features_to_metric

    weights = check_inception_weights(inception_weights)
    fake, true = load_folder(generated, FACE_SIZE).images, load_folder(real, FACE_SIZE).images
    if len(fake) < isc_splits:
        raise UserError(f"{generated} has {len(fake)} image(s); IS needs at least --isc-splits ({isc_splits})")
    dev = resolve_device(device)
    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(weights)).to(dev)
    fake_pool, fake_logits = inception_features(extractor, fake, dev, batch_size)
    real_pool = inception_features(extractor, true, dev, batch_size)[0]
    fid = frechet_distance(fake_pool.mean(0).numpy(), np.cov(fake_pool.numpy(), rowvar=False),
                           real_pool.mean(0).numpy(), np.cov(real_pool.numpy(), rowvar=False))
    isc = isc_features_to_metric(fake_logits, splits=isc_splits)
    return {"fid": max(fid, 0.0),  # rounding can give -1e-9 for identical sets
            "is_mean": float(isc["inception_score_mean"]), "is_std": float(isc["inception_score_std"]),
            "n_generated": len(fake), "n_real": len(true)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate faces and score them with FID and IS.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write N generated faces as PNGs into a new folder",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gen.add_argument("--checkpoint", required=True, type=Path, help="a gan model.pt (its EMA generator is used)")
    gen.add_argument("--out-dir", required=True, type=Path, help="new or empty folder for the PNGs")
    gen.add_argument("--n", type=int, default=1000, help="number of faces")
    gen.add_argument("--seed", type=int, default=0, help="seed of the noise")
    gen.add_argument("--batch-size", type=int, default=100)
    add_runtime_args(gen)
    sc = commands.add_parser("score", help="FID against a real folder and IS of the generated one",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sc.add_argument("--generated", required=True, type=Path, help="folder of generated images")
    sc.add_argument("--real", required=True, type=Path, help="folder of real images, e.g. hw3_data/face/test")
    sc.add_argument("--inception-weights", type=Path, default=None, help=f"local copy of {INCEPTION_FILE}")
    sc.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    sc.add_argument("--batch-size", type=int, default=64)
    sc.add_argument("--isc-splits", type=int, default=10, help="splits of the generated set for IS's std")
    add_runtime_args(sc)
    args = parser.parse_args(argv)
    runtime(args)  # the thread policy; each command resolves --device itself
    if args.command == "generate":
        out = generate(args.checkpoint, args.out_dir, args.n, args.seed, args.batch_size, args.device)
        print(f"wrote {args.n} images to {out}")
        return 0
    result = score(args.generated, args.real, args.inception_weights, args.device, args.batch_size, args.isc_splits)
    print(f"FID {result['fid']:.3f}  IS {result['is_mean']:.3f} +- {result['is_std']:.3f}  "
          f"({result['n_generated']} generated vs {result['n_real']} real)")
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    cli(main)
