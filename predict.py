"""Predict digit labels for every image of a folder with a trained UDA model.

    python3 predict.py --checkpoint runs/uda/dann_usps-mnistm/model.pt --img-dir DIR --out pred.csv
    python3 predict.py --method dann --target mnistm --img-dir DIR --out pred.csv

writes ``image_name,label`` (one row per image, sorted by name, integer
labels), atomically. Any model of ``train_uda.py`` works (source-only, DANN,
SWD, target-only): they share one inference interface, ``forward(x)`` ->
log-probabilities ``(B, 10)``.

With ``--method`` instead of ``--checkpoint`` it uses the published model of that
method adapted to ``--target`` (the assignment's scenarios: mnistm <- usps,
svhn <- mnistm, usps <- svhn), fetched and verified by :mod:`fetch`. That is
what ``hw3_p3.sh`` (DANN) and ``hw3_p4.sh`` (SWD) do.
"""

from __future__ import annotations

import argparse
import csv

import torch
import torch.nn as nn

from common import UserError, atomic_path, cli, load_checkpoint, resolve_device
from datasets import DIGIT_SIZE, SCENARIOS, list_images, load_folder, to_float

METHODS = ("source-only", "dann", "swd", "target-only")
GRADED_METHODS = ("dann", "swd")  # Problem 3 and Problem 4
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


def published_model(method: str, target: str) -> str:
    """File name of the published ``method`` model adapted to ``target``, e.g. ``dann_usps-mnistm.pt``."""
    sources = {t: s for s, t in SCENARIOS}
    if target not in sources:
        raise UserError(f"unknown target domain {target!r}: choose {', '.join(sources)}")
    return f"{method}_{sources[target]}-{target}.pt"


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
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a model.pt written by train_uda.py")
    model.add_argument("--method", choices=sorted(GRADED_METHODS),
                       help="the published model of this method for --target (fetched and verified)")
    parser.add_argument("--img-dir", required=True, help="folder of digit images (.png/.jpg)")
    parser.add_argument("--out", required=True, help="CSV to write: image_name,label")
    parser.add_argument("--target", default=None,
                        help="target domain (mnistm, svhn, usps): picks the --method model; "
                             "with --checkpoint, refuses one adapted to another domain")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch; 0: torch's default (one is fastest on a small CPU)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    checkpoint_path = args.checkpoint
    if args.method is not None:
        if args.target is None:
            raise UserError("--method needs --target: the domain the model was adapted to")
        name = published_model(args.method, args.target)
        list_images(args.img_dir)  # a missing or empty folder fails before any download
        from fetch import ensure

        checkpoint_path = ensure(name)
    device = resolve_device(args.device)
    model, checkpoint = load_model(checkpoint_path, device)
    if args.target is not None and checkpoint.get("target") != args.target:
        raise UserError(f"{checkpoint_path} was adapted to {checkpoint.get('target')!r}, not {args.target!r}")
    data = load_folder(args.img_dir, DIGIT_SIZE)
    labels = predict_labels(model, data.images, device, args.batch_size)
    write_predictions(args.out, data.names, labels)
    return 0


if __name__ == "__main__":
    cli(main)
