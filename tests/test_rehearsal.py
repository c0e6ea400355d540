"""benchmarks/rehearsal.py: the real-size tree it repeats from small images, and its memory sampler."""

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import rehearsal  # noqa: E402
from make_data import FACE_ATTRIBUTES  # noqa: E402


def test_varied_copies_differ_from_the_original_and_from_each_other():
    image = Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28) % 200 + 20, "L")
    copies = [np.asarray(rehearsal.varied(image, k)) for k in range(4)]
    assert np.array_equal(copies[0], np.asarray(image))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(copies[i], copies[j])
    assert rehearsal.varied(image, 5).size == image.size and rehearsal.varied(image, 5).mode == "L"


def test_expand_split_repeats_images_and_labels_to_the_count(tiny_data, tmp_path):
    small = tiny_data / "digits" / "usps"
    originals = sorted(p.name for p in (small / "train").iterdir())
    count = 2 * len(originals) + 3
    rehearsal.expand_split(small, tmp_path / "usps", "train", count, header_rows=False)
    rows = (tmp_path / "usps" / "train.csv").read_text().splitlines()
    labels = dict(row.split(",") for row in (small / "train.csv").read_text().splitlines()[1:])
    assert rows[0] == "image_name,label" and len(rows) == count + 1
    assert len(list((tmp_path / "usps" / "train").iterdir())) == count
    for i, row in enumerate(rows[1:]):
        name, label = row.split(",")
        assert name == f"{i:05d}.png" and label == labels[originals[i % len(originals)]]
    first, again = (np.asarray(Image.open(tmp_path / "usps" / "train" / f"{i:05d}.png"))
                    for i in (0, len(originals)))
    assert first.shape == again.shape and not np.array_equal(first, again)


def test_expanded_faces_carry_the_assignments_attributes(tiny_data, tmp_path):
    rehearsal.expand_split(tiny_data / "face", tmp_path / "face", "train", 7, header_rows=True)
    rows = (tmp_path / "face" / "train.csv").read_text().splitlines()
    assert rows[0].split(",") == ["image_name", *FACE_ATTRIBUTES] and len(rows) == 8
    assert all(set(r.split(",")[1:]) <= {"0.0", "1.0"} for r in rows[1:])


def test_tree_rss_counts_this_process():
    assert rehearsal.tree_rss(os.getpid()) > 10 * 2**20
