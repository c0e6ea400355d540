"""Predict digit labels for every image of a folder with a trained UDA model.

    python3 predict.py --checkpoint checkpoints/dann_usps-mnistm.pt --img-dir DIR --out pred.csv

writes ``image_name,label`` (one row per image, sorted by name, integer
labels), atomically. Any model of ``train_uda.py`` works (source-only, DANN,
SWD, target-only): they share one inference interface, ``forward(x)`` ->
log-probabilities ``(B, 10)``.
"""

from __future__ import annotations

import argparse
import csv

import torch
import torch.nn as nn

from common import UserError, atomic_path, cli, load_checkpoint, resolve_device
from datasets import DIGIT_SIZE, DOMAINS, load_folder, to_float

METHODS = ("source-only", "dann", "swd", "target-only")
CHECKPOINT_KIND = "uda"


def build_model(method: str, config: dict) -> nn.Module:
    """The network of ``method`` from its config (the keyword arguments of its class)."""
    if method == "swd":
        from swd import SWDNet

        return SWDNet(**config)
    if method in METHODS:
        from dann import DANN

        return DANN(**config)
    raise UserError(f"unknown UDA method {method!r}: choose one of {', '.join(METHODS)}")


def load_model(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a ``uda`` checkpoint in eval mode; return it with the checkpoint dict."""
    checkpoint = load_checkpoint(path, kind=CHECKPOINT_KIND)
    model = build_model(checkpoint["method"], checkpoint["config"]["model"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise UserError(f"checkpoint {path} does not match its {checkpoint['method']} model: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), checkpoint


@torch.no_grad()
def predict_labels(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    """Argmax class of uint8 images ``(N, 3, 28, 28)``, batched; returns ``(N,)`` int64 on the CPU."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size].to(device, non_blocking=True))
        out.append(model(x).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def write_predictions(path, names: list[str], labels: torch.Tensor) -> None:
    """Write ``image_name,label`` rows atomically, in the order given."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image_name", "label"])
            writer.writerows(zip(names, labels.tolist()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a model.pt written by train_uda.py")
    parser.add_argument("--img-dir", required=True, help="folder of digit images (.png/.jpg)")
    parser.add_argument("--out", required=True, help="CSV to write: image_name,label")
    parser.add_argument("--target", choices=DOMAINS, default=None,
                        help="refuse a checkpoint whose target domain is another one")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch; 0: torch's default (one is fastest on a small CPU)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, checkpoint = load_model(args.checkpoint, device)
    if args.target is not None and checkpoint.get("target") != args.target:
        raise UserError(f"{args.checkpoint} was adapted to {checkpoint.get('target')!r}, not {args.target!r}")
    data = load_folder(args.img_dir, DIGIT_SIZE)
    labels = predict_labels(model, data.images, device, args.batch_size)
    write_predictions(args.out, data.names, labels)
    return 0


if __name__ == "__main__":
    cli(main)
