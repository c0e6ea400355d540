"""Label-free selection scores on closed-form cases, and the digit augmentations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hw3 import augment, selection


def test_entropy_and_information_maximisation_closed_forms():
    uniform = torch.full((4, 10), 0.1)
    one_hot = torch.eye(10)  # confident and balanced
    collapsed = torch.zeros(10, 10)
    collapsed[:, 3] = 1  # confident, one class only
    assert selection.mean_entropy(uniform) == pytest.approx(math.log(10))
    assert selection.mean_entropy(one_hot) == pytest.approx(0.0, abs=1e-6)
    assert selection.information_maximization(one_hot) == pytest.approx(math.log(10), rel=1e-5)
    assert selection.information_maximization(uniform) == pytest.approx(0.0, abs=1e-6)
    assert selection.information_maximization(collapsed) == pytest.approx(0.0, abs=1e-6)


def test_default_selection_never_keeps_a_collapsed_evaluation():
    """A run whose last evaluation has collapsed onto one class, more confidently than the healthy one before it."""
    labels = torch.arange(200) % 10
    healthy = torch.full((200, 10), 0.3 / 9).scatter(1, labels[:, None], 0.7)  # right and unsure, all classes
    collapsed = torch.full((200, 10), 0.01 / 9)
    collapsed[:, 3] = 0.99
    scores = {name: [fn(healthy), fn(collapsed)] for name, fn in
              (("entropy", selection.mean_entropy), ("info_max", selection.information_maximization))}
    assert selection.pick(scores["entropy"], "entropy") == 1  # lowest entropy: the collapsed one
    assert selection.pick(scores["info_max"], "info_max") == 0  # the default keeps the healthy one


def test_snd_is_higher_for_tight_clusters():
    rng = torch.Generator().manual_seed(0)
    clustered = torch.eye(10).repeat_interleave(20, dim=0)  # 10 tight clusters of 20
    scattered = torch.rand(200, 10, generator=rng).softmax(dim=1) ** 8
    scattered = scattered / scattered.sum(1, keepdim=True)
    # Each sample of a tight cluster spreads its similarity evenly over its 19 neighbours: entropy log 19.
    assert selection.soft_neighborhood_density(clustered) == pytest.approx(math.log(19), rel=1e-3)
    assert selection.soft_neighborhood_density(clustered) > selection.soft_neighborhood_density(scattered)


def test_dev_reduces_to_the_mean_loss_with_unit_weights_and_uses_the_control_variate():
    losses = np.array([0.5, 1.0, 2.0, 0.1])
    assert selection.deep_embedded_validation(np.ones(4), losses) == pytest.approx(losses.mean())
    # A constant loss, weights of mean 1.25 (not 1): the weighted mean alone says 0.875, and only the
    # control variate (eta = -0.7 here) brings it back to the loss, 0.7.
    weights = np.array([0.5, 1.0, 2.0, 1.5])
    value = selection.deep_embedded_validation(weights, np.full(4, 0.7))
    assert value == pytest.approx(0.7) and (weights * 0.7).mean() == pytest.approx(0.875)


def test_density_ratio_favours_target_like_points():
    rng = np.random.default_rng(0)
    source, target = rng.normal(0, 1, (300, 2)), rng.normal(2, 1, (300, 2))
    w = selection.density_ratio(source, target, np.array([[2.0, 2.0], [-2.0, -2.0]]))
    assert w[0] > 10 > 0.1 > w[1]


def test_pick_follows_each_criterion_direction():
    values = [0.2, 0.9, 0.5]
    assert selection.pick(values, "source_val_acc") == 1
    assert selection.pick(values, "entropy") == 0
    assert selection.pick(values, "last") == 2


def test_training_and_the_study_keep_the_same_evaluation():
    """train_uda.py keeps an evaluation as the scores come (selection.keeps); the study picks from the whole
    log (selection.pick): both keep the first of ties, and the last for ``last``."""
    values = [0.5, 0.7, 0.7, 0.6, 0.7]
    for choice in ("source_val_acc", "entropy", "last"):
        best, kept = None, None
        for i, value in enumerate(values):  # what train_uda.py's checkpoint() does
            if selection.keeps(best, value, choice):
                best, kept = (None if choice == "last" else value), i
        assert kept == selection.pick(values, choice)
    assert selection.pick(values, "source_val_acc") == 1 and selection.pick(values, "entropy") == 0


def test_last_is_a_choice_not_a_logged_score():
    assert "last" not in selection.CRITERIA
    assert selection.CHOICES == (*selection.CRITERIA, "last")
    assert selection.pick([float("nan")] * 4, "last") == 3  # only the number of evaluations matters


def test_augmentations_keep_shape_range_and_are_seeded():
    x = torch.rand(6, 3, 28, 28)
    torch.manual_seed(0)
    a = augment.augment_source(x)
    torch.manual_seed(0)
    assert torch.equal(a, augment.augment_source(x)) and a.shape == x.shape
    strong = augment.augment_strong(x)
    assert strong.shape == x.shape and not torch.equal(strong, x)
    same = augment.random_affine(x, degrees=0.0, scale=0.0, shift=0.0)
    assert torch.allclose(same, x, atol=1e-5)  # the identity transform resamples exactly
    coloured = augment.random_colours(torch.zeros(50, 3, 28, 28), invert=0.0)
    assert coloured.min() >= 0 and coloured.max() <= 1 and coloured.std(dim=(0, 2, 3)).min() > 0


def _bars(heights: list[int], bright: bool = True, size: int = 28) -> torch.Tensor:
    """Grey images with one vertical bar of each height (in pixels), centred, bright on dark or dark on bright."""
    x = torch.zeros(len(heights), 3, size, size)
    for i, h in enumerate(heights):
        top = (size - h) // 2
        x[i, :, top:top + h, 12:16] = 1.0
    return x if bright else 1 - x


def test_digit_measures_find_height_polarity_and_colour():
    height, bright, colourful, quiet = augment.digit_measures(_bars([10, 20]))
    assert torch.allclose(height, torch.tensor([9 / 28, 19 / 28]), atol=1.5 / 28)  # rows of the central 90 %
    assert bright.tolist() == [True, True] and colourful.max() == 0 and quiet.all()
    _, bright, _, _ = augment.digit_measures(_bars([10, 20], bright=False))
    assert bright.tolist() == [False, False]
    red = _bars([10]) * torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert augment.digit_measures(red)[2].item() > augment.DigitLook.COLOURFUL


def test_measured_augment_covers_the_target_look():
    """Tall bright grey source digits, short dark target digits: the source is shrunk, inverted, and stays grey."""
    source = augment.DigitLook.measure((_bars([24] * 40) * 255).to(torch.uint8))
    target = augment.DigitLook.measure((_bars([12] * 40, bright=False) * 255).to(torch.uint8))
    assert target.bright == 0.0 and not target.colour and source.height[1] > target.height[1]
    plan = augment.MeasuredAugment.between(source, target)
    assert plan.zoom[0] < augment.FALLBACK_ZOOM[0] and plan.zoom[1] < 1  # shifted to shrink
    assert plan.invert_bright == 1.0 and plan.invert_dark == 0.0
    same = augment.MeasuredAugment.between(target, target)
    assert same.zoom == pytest.approx(augment.FALLBACK_ZOOM, abs=1e-4)  # no size gap: the fixed range
    torch.manual_seed(0)
    out = plan(_bars([24] * 16))
    height, bright, _, _ = augment.digit_measures(out)
    assert not bright.any()  # all inverted
    assert height.max() < 22 / 28  # all shrunk
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])  # a grey target stays grey
    colour = augment.MeasuredAugment.between(source, augment.DigitLook((0.4, 0.5, 0.6), 0.5, True))
    assert colour(_bars([24] * 16)).std(1).mean() > 0.02
