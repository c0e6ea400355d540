"""The assignment's data tree, digit domains and adaptation scenarios: the names the data module,
the data builders, the domain-adaptation family and the report all share (``datasets.py``
re-exports them)."""

from __future__ import annotations

import os
from pathlib import Path

# The assignment's three domains, plus "mnist": the grayscale digits the built-in mnistm is
# blended from (mnist -> mnistm is the DANN paper's classic pair, used to study the methods).
DOMAINS = ("usps", "mnistm", "svhn", "mnist")
# (source, target) pairs of the assignment, in the order of its table: the graded models.
SCENARIOS = (("usps", "mnistm"), ("mnistm", "svhn"), ("svhn", "usps"))
DIGITS_DOMAIN = "mnistm"  # the domain Problem 5 generates (the later years' reports: MNIST-M)

# The tree (hw3_data): the faces in face/<split>/ with face/<split>.csv, each digit domain in
# digits/<domain>/<split>/ with digits/<domain>/<split>.csv; the splits are train and test.
FACES = "face"  # the faces' part of the tree; every other part is a digit domain
SPLITS = ("train", "test")


def part_folder(part: str) -> str:
    """Where a part (``face`` or a digit domain) lives under the tree's root: ``face``, ``digits/usps``."""
    return FACES if part == FACES else f"digits/{part}"


def split_folder(root: str | os.PathLike, part: str, split: str) -> Path:
    """The images of one split of one part: ``root/digits/usps/train``."""
    return Path(root) / part_folder(part) / split


def split_table(root: str | os.PathLike, part: str, split: str) -> Path:
    """The CSV of one split of one part (image names and labels or attributes): ``root/digits/usps/train.csv``."""
    return Path(root) / part_folder(part) / f"{split}.csv"
