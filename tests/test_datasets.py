import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import datasets
from hw3.common import UserError


@pytest.fixture
def tree(tiny_data, tmp_path):
    """A private copy of the tiny tree that a test may change."""
    return shutil.copytree(tiny_data, tmp_path / "hw3_data")


def test_faces_load_as_uint8_with_aligned_attributes(tiny_data):
    faces = datasets.load_faces(tiny_data, "train")
    assert faces.images.shape == (24, 3, 64, 64) and faces.images.dtype == torch.uint8
    assert faces.names == sorted(faces.names)
    table = pd.read_csv(tiny_data / "face" / "train.csv").set_index("image_name")
    name = faces.names[5]
    assert faces.attributes.iloc[5].tolist() == table.loc[name].tolist()
    png = np.asarray(Image.open(tiny_data / "face" / "train" / name)).transpose(2, 0, 1)
    assert np.array_equal(faces.images[5].numpy(), png)


def test_digits_are_3x28x28_with_labels_and_grayscale_replicated(tiny_data):
    for domain in datasets.DOMAINS:
        digits = datasets.load_digits(tiny_data, domain, "test")
        assert digits.images.shape == (20, 3, 28, 28)
        assert digits.labels.dtype == torch.int64
        assert sorted(set(digits.labels.tolist())) == list(range(10))
    usps = datasets.load_digits(tiny_data, "usps", "train").images
    assert torch.equal(usps[:, 0], usps[:, 1]) and torch.equal(usps[:, 1], usps[:, 2])


def test_odd_sized_images_are_resized_and_other_files_ignored(tree):
    folder = tree / "digits" / "svhn" / "test"
    Image.new("RGB", (32, 40), (255, 0, 0)).save(folder / "00000.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    digits = datasets.load_digits(tree, "svhn", "test")
    assert digits.images.shape == (20, 3, 28, 28)
    assert digits.images[0, 0].min() == 255 and digits.images[0, 1].max() == 0


def test_bare_folder_keeps_sorted_names(tiny_data):
    data = datasets.load_folder(tiny_data / "digits" / "mnistm" / "test")
    assert data.names == [f"{i:05d}.png" for i in range(20)]
    assert data.labels is None and data.images.shape == (20, 3, 28, 28)


def test_second_load_comes_from_cache(tiny_data, monkeypatch):
    first = datasets.load_folder(tiny_data / "digits" / "usps" / "train")

    def no_decoding(*args):
        raise AssertionError("decoded again although the folder did not change")

    monkeypatch.setattr(datasets, "_decode", no_decoding)
    second = datasets.load_folder(tiny_data / "digits" / "usps" / "train")
    assert torch.equal(first.images, second.images)
    # The same memory layout too: a channels-last copy would run other conv kernels and round differently.
    assert first.images.is_contiguous() and second.images.is_contiguous()


def test_changed_folder_is_never_served_stale(tree):
    folder = tree / "digits" / "mnistm" / "test"
    before = datasets.load_folder(folder).images
    Image.new("RGB", (28, 28), (7, 8, 9)).save(folder / "00003.png")
    after = datasets.load_folder(folder)
    assert after.images[3, :, 0, 0].tolist() == [7, 8, 9]
    assert torch.equal(after.images[2], before[2])
    Image.new("RGB", (28, 28)).save(folder / "99999.png")
    assert len(datasets.load_folder(folder)) == 21


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda t: shutil.rmtree(t / "digits" / "usps" / "train"), "image folder not found"),
        (lambda t: [p.unlink() for p in (t / "digits" / "usps" / "train").glob("*.png")], "no images"),
        (lambda t: (t / "digits" / "usps" / "train.csv").unlink(), "label file not found"),
        (lambda t: (t / "digits" / "usps" / "train" / "00004.png").unlink(), "missing from"),
        (lambda t: Image.new("L", (28, 28)).save(t / "digits" / "usps" / "train" / "extra.png"), "not listed in"),
        (lambda t: (t / "digits" / "usps" / "train" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"), "cannot decode"),
        (lambda t: (t / "digits" / "usps" / "train" / "00002.png").write_bytes(
            (t / "digits" / "usps" / "train" / "00002.png").read_bytes()[:60]), "cannot decode"),
        (lambda t: (t / "digits" / "usps" / "train.csv").write_text(
            (t / "digits" / "usps" / "train.csv").read_text().replace("00000.png,0", "00000.png,ten")), "not an integer"),
        (lambda t: (t / "digits" / "usps" / "train.csv").write_text("name,label\n00000.png,1\n"), "lacks column"),
    ],
    ids=["missing-folder", "empty-folder", "missing-csv", "csv-names-absent-image", "image-not-in-csv",
         "corrupt-png", "truncated-png", "bad-label", "bad-header"],
)
def test_bad_digit_input_is_one_clear_error(tree, break_it, message):
    break_it(tree)
    with pytest.raises(UserError, match=message) as err:
        datasets.load_digits(tree, "usps", "train")
    assert "\n" not in str(err.value)


def test_unknown_domain_is_rejected(tiny_data):
    with pytest.raises(UserError, match="unknown domain 'cifar10'"):
        datasets.load_digits(tiny_data, "cifar10", "train")


def test_face_csv_mismatch_is_rejected(tree):
    (tree / "face" / "test" / "00030.png").unlink()
    with pytest.raises(UserError, match="missing from"):
        datasets.load_faces(tree, "test")


def test_split_is_seeded_disjoint_and_stratified(tiny_data):
    digits = datasets.load_digits(tiny_data, "svhn", "train")
    train, val = datasets.train_val_split(digits, 0.25, seed=3)
    again, _ = datasets.train_val_split(digits, 0.25, seed=3)
    other, _ = datasets.train_val_split(digits, 0.25, seed=4)
    assert train.names == again.names and train.names != other.names
    assert not set(train.names) & set(val.names)
    assert len(train) + len(val) == len(digits) == 40
    assert sorted(val.labels.tolist()) == list(range(10))  # one of each class in 10 validation images


def test_endless_batches_cover_every_item_once_a_pass_and_reshuffle():
    x = torch.arange(10)
    stream = datasets.EndlessBatches(x, batch_size=5, rng=torch.Generator().manual_seed(0))
    passes = [torch.cat([next(stream)[0], next(stream)[0]]) for _ in range(3)]
    assert all(sorted(p.tolist()) == list(range(10)) for p in passes)
    assert not torch.equal(passes[0], passes[1]) or not torch.equal(passes[1], passes[2])


def test_endless_batches_resume_mid_pass_exactly():
    x = torch.arange(10)
    stream = datasets.EndlessBatches(x, batch_size=3, rng=torch.Generator().manual_seed(0))
    next(stream)
    saved = stream.state_dict()
    torch.rand(5, generator=stream.rng)  # an augmentation drawing from the same generator
    expected = [next(stream)[0].tolist() for _ in range(6)]
    resumed = datasets.EndlessBatches(x, batch_size=3, rng=torch.Generator().manual_seed(99))
    resumed.load_state_dict(saved)
    torch.rand(5, generator=resumed.rng)
    assert [next(resumed)[0].tolist() for _ in range(6)] == expected


def test_random_hflip_flips_some_images_exactly():
    images = torch.arange(2 * 64 * 3 * 4 * 4).reshape(128, 3, 4, 4)
    out = datasets.random_hflip(images, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 30 < sum(flipped) < 98
