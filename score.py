"""Accuracy of a prediction CSV against a ground-truth CSV, as the homework's grader scores it.

    python3 score.py PRED.csv TRUTH.csv

Both files have the columns ``image_name,label``. Rows are matched by
``image_name`` and labels are compared as written (the text ``3`` matches
``3``, not ``3.0``). An image predicted but absent from the ground truth, an
image of the ground truth without a prediction, or an image listed twice is
an error, not a silent miss.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from hw3.common import UserError, cli


def read_labels(path) -> dict[str, str]:
    """``image_name -> label`` (both as text) from a CSV with those two columns."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            fields = set(rows[0].keys()) if rows else set()
    except FileNotFoundError:
        raise UserError(f"CSV not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not rows:
        raise UserError(f"{path} has no rows")
    if not {"image_name", "label"} <= fields:
        raise UserError(f"{path} must have the columns image_name,label")
    labels: dict[str, str] = {}
    for row in rows:
        name = row["image_name"]
        if name in labels:
            raise UserError(f"{path} lists {name} twice")
        labels[name] = (row["label"] or "").strip()
    return labels


def accuracy(predictions: dict[str, str], truth: dict[str, str]) -> float:
    """Fraction of images whose predicted label equals the true one, compared as text."""
    unknown = sorted(set(predictions) - set(truth))
    if unknown:
        raise UserError(f"{len(unknown)} predicted image(s) are not in the ground truth, first {unknown[0]}")
    missing = sorted(set(truth) - set(predictions))
    if missing:
        raise UserError(f"{len(missing)} image(s) of the ground truth have no prediction, first {missing[0]}")
    return sum(predictions[name] == label for name, label in truth.items()) / len(truth)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("predictions", help="CSV written by predict.py (or hw3_p3.sh / hw3_p4.sh)")
    parser.add_argument("truth", help="ground-truth CSV, e.g. hw3_data/digits/mnistm/test.csv")
    args = parser.parse_args(argv)
    acc = accuracy(read_labels(args.predictions), read_labels(args.truth))
    print(f"accuracy: {acc:.4f}")
    return 0


if __name__ == "__main__":
    cli(main)
