"""The measured digit look against known truth: the same handwritten digits on every kind of background."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import digit_look  # noqa: E402
from hw3 import augment  # noqa: E402


@pytest.fixture(scope="module")
def measured():
    return digit_look.measure_all(n=400, seed=0)


def test_flat_backgrounds_are_read_exactly(measured):
    truth, rows = measured
    flat = next(r for r in rows if r["kind"] == "flat")
    assert flat["look"].quiet == 1.0 and digit_look.height_error(flat["look"], truth) == 0
    assert flat["look"].bright == pytest.approx(flat["true_bright"], abs=0.01)


def test_height_is_right_wherever_it_is_read(measured):
    """Over every background but the known misses, the 10/50/90 % heights are within two rows, or not read."""
    truth, rows = measured
    for row in rows:
        error = digit_look.height_error(row["look"], truth)
        if row["kind"] in digit_look.KNOWN_MISSES:
            assert error is not None and error > digit_look.HEIGHT_TOLERANCE, row["kind"]  # still a miss: say so
        elif error is not None:
            assert error <= digit_look.HEIGHT_TOLERANCE, row["kind"]


def test_polarity_is_right_wherever_it_is_read(measured):
    truth, rows = measured
    for row in rows:
        bright = row["look"].bright
        if bright is not None and row["kind"] not in digit_look.KNOWN_MISSES:
            assert abs(bright - row["true_bright"]) <= digit_look.POLARITY_TOLERANCE, row["kind"]


def test_busy_textures_are_not_read(measured):
    """Over grass and gravel no frame is quiet: nothing is read, and the augmentation uses its fixed ranges."""
    truth, rows = measured
    for kind in ("diff/grass", "diff/gravel"):
        look = next(r["look"] for r in rows if r["kind"] == kind)
        assert look.height is None and look.bright is None and look.quiet < 0.05
        plan = augment.MeasuredAugment.between(truth, look)
        assert plan.zoom == pytest.approx(augment.FALLBACK_ZOOM, abs=1e-4) and plan.invert_bright == plan.invert_dark == 0.5
    # Where the height is read right, the same digits get the fixed range's width, centred near no zoom.
    read = next(r["look"] for r in rows if r["kind"] == "diff/dev photos")
    low, high = augment.MeasuredAugment.between(truth, read).zoom
    assert high / low == pytest.approx(1.5 ** 2, rel=1e-3) and 0.95 < (low * high) ** 0.5 < 1.05


def test_a_digit_reaching_the_frame_keeps_it_quiet():
    """USPS's digits fill the frame: the ink in the frame is left out of its quietness."""
    x = torch.zeros(1, 3, 28, 28)
    x[..., 0:28, 12:16] = 1.0  # a bar from the top edge to the bottom edge
    _, ink, distance, top = augment._ink(x)
    quiet = augment._quiet_frame(ink, distance, top)
    assert quiet.item() and ink[0, :, 12:16].all()
    noise = torch.rand(1, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    assert not augment.digit_measures(noise)[3].item()  # a frame of noise is not
