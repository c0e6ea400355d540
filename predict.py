"""Predict digit labels for every image of a folder with a trained UDA model.

    python3 predict.py --checkpoint runs/uda/dann_usps-mnistm/model.pt --img-dir DIR --out pred.csv
    python3 predict.py --method dann --target mnistm --img-dir DIR --out pred.csv

writes ``image_name,label`` (one row per image, sorted by name, integer
labels), atomically. Any model of ``train_uda.py`` works (source-only, DANN,
SWD+, ADDA, target-only): each is a :class:`digitnet.DigitNet` with its inference
contract, ``forward(x)`` -> log-probabilities ``(B, 10)``.

With ``--method`` instead of ``--checkpoint`` it uses the published model of that
method adapted to ``--target`` (the assignment's scenarios: mnistm <- usps,
svhn <- mnistm, usps <- svhn), fetched and verified by :mod:`fetch`. That is
what ``hw3_p3.sh`` (DANN) and ``hw3_p4.sh`` (SWD) do.
"""

from __future__ import annotations

import argparse
import csv

import torch

import dann  # noqa: F401  (registers its method)
import swd  # noqa: F401  (registers its method)
from hw3 import digitnet, uda
from hw3.checkpoints import CLASSIFIERS, load_model
from hw3.common import UserError, add_runtime_args, atomic_path, cli, runtime
from datasets import DIGIT_SIZE, list_images, load_folder


def write_predictions(path, names: list[str], labels: torch.Tensor) -> None:
    """Write ``image_name,label`` rows atomically, in the order given, with Unix line ends."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["image_name", "label"])
            writer.writerows(zip(names, labels.tolist()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a model.pt written by train_uda.py")
    model.add_argument("--method", choices=sorted(uda.GRADED_METHODS),
                       help="the published model of this method for --target (fetched and verified)")
    parser.add_argument("--img-dir", required=True, help="folder of digit images (.png/.jpg)")
    parser.add_argument("--out", required=True, help="CSV to write: image_name,label")
    parser.add_argument("--target", default=None,
                        help="target domain (mnistm, svhn, usps): picks the --method model; "
                             "with --checkpoint, refuses one adapted to another domain")
    parser.add_argument("--batch-size", type=int, default=512,
                        help="images per forward pass (512 was the fastest on a 2-core CPU, 256-1024 measured)")
    # fp32: the same predictions on any machine; all cores: the grader runs this script alone.
    add_runtime_args(parser, precision="fp32", threads=0)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    device = runtime(args)
    checkpoint_path = args.checkpoint
    if args.method is not None:
        if args.target is None:
            raise UserError("--method needs --target: the domain the model was adapted to")
        name = uda.published_model(args.method, args.target)
        list_images(args.img_dir)  # a missing or empty folder fails before any download
        from fetch import ensure

        checkpoint_path = ensure(name)
    model, checkpoint = load_model(checkpoint_path, CLASSIFIERS, device)
    adapted_to = checkpoint["run"].get("target")
    if args.target is not None and adapted_to != args.target:
        raise UserError(f"{checkpoint_path} was adapted to {adapted_to!r}, not {args.target!r}")
    # Decoding first and then the network on all cores beat overlapping the two on 2 cores: the
    # network's threads wait for each other when decoding processes take their cores.
    data = load_folder(args.img_dir, DIGIT_SIZE)
    labels = digitnet.predict_labels(model, data.images, device, args.batch_size)
    write_predictions(args.out, data.names, labels)
    return 0


if __name__ == "__main__":
    cli(main)
