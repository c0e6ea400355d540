"""The built-in demo data: layout, loadability, determinism and safe writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import datasets
import demo_data
from hw3.common import UserError
from helpers import run

SMALL = {"face": (20, 10), "usps": (40, 20), "mnistm": (40, 20), "svhn": (40, 20)}
COUNTS = {**SMALL, "mnist": SMALL["mnistm"]}  # mnist holds mnistm's digits, unblended


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    return demo_data.build(tmp_path_factory.mktemp("demo") / "data", seed=0, sizes=SMALL)


def parts(root: Path):
    yield "face", root / "face", SMALL["face"]
    for domain in datasets.DOMAINS:
        yield domain, root / "digits" / domain, COUNTS[domain]


def test_layout_counts_and_csvs_match_folders(small_tree):
    assert sorted(p.name for p in small_tree.iterdir()) == ["digits", "face"]
    assert sorted(p.name for p in (small_tree / "digits").iterdir()) == sorted(datasets.DOMAINS)
    for name, folder, (n_train, n_test) in parts(small_tree):
        assert sorted(p.name for p in folder.iterdir()) == ["test", "test.csv", "train", "train.csv"]
        for split, n in (("train", n_train), ("test", n_test)):
            files = sorted(p.name for p in (folder / split).iterdir())
            table = pd.read_csv(folder / f"{split}.csv")
            assert len(files) == n, (name, split)
            assert sorted(table["image_name"]) == files
            assert list(table.columns) == (["image_name", "Is_Face"] if name == "face" else ["image_name", "label"])
            assert all(f.endswith(".png") and len(f) == 9 for f in files)
    # Face names run on across splits, as in the assignment; digit names restart per split.
    assert sorted(p.name for p in (small_tree / "face" / "test").iterdir())[0] == f"{SMALL['face'][0]:05d}.png"
    assert sorted(p.name for p in (small_tree / "digits" / "svhn" / "test").iterdir())[0] == "00000.png"


def test_datasets_loads_every_split(small_tree):
    for split in ("train", "test"):
        faces = datasets.load_faces(small_tree, split)
        assert faces.images.shape == (len(faces), 3, 64, 64) and faces.images.dtype == torch.uint8
        assert list(faces.attributes.columns) == ["Is_Face"]
        assert set(faces.attributes["Is_Face"]) == {0.0, 1.0}  # stratified: both kinds in each split
        for domain in datasets.DOMAINS:
            digits = datasets.load_digits(small_tree, domain, split)
            assert digits.images.shape == (len(digits), 3, 28, 28)
            assert sorted(set(digits.labels.tolist())) == list(range(10)), (domain, split)
            assert digits.images.float().std() > 20, (domain, split)  # not blank


def test_image_modes_and_sizes(small_tree):
    expected = {"face": ("RGB", (64, 64)), "usps": ("L", (28, 28)), "mnistm": ("RGB", (28, 28)), "svhn": ("RGB", (28, 28)),
                "mnist": ("L", (28, 28))}
    for name, folder, _ in parts(small_tree):
        for path in sorted((folder / "train").iterdir())[:5]:
            with Image.open(path) as image:
                assert (image.mode, image.size) == expected[name], path
    with Image.open(small_tree / "face" / "train" / "00000.png") as image:
        rgb = np.asarray(image)
    assert np.array_equal(rgb[..., 0], rgb[..., 1])  # lfw_subset is grayscale, replicated to RGB


def test_face_labels_follow_the_documented_order(small_tree):
    # lfw_subset: the first 100 images are faces. Match written faces back to their source rows.
    import skimage.data

    source = skimage.data.lfw_subset()
    table = pd.read_csv(small_tree / "face" / "train.csv")
    for name, is_face in zip(table["image_name"][:6], table["Is_Face"][:6]):
        with Image.open(small_tree / "face" / "train" / name) as image:
            small = np.asarray(image.convert("L").resize((25, 25), Image.BICUBIC), dtype=float) / 255
        nearest = int(np.argmin(((source - small) ** 2).sum((1, 2))))
        assert is_face == float(nearest < 100), name


def test_same_seed_same_bytes_other_seed_differs(small_tree, tmp_path):
    again = demo_data.build(tmp_path / "again", seed=0, sizes=SMALL)
    assert tree_hash(again) == tree_hash(small_tree)
    other = demo_data.build(tmp_path / "other", seed=1, sizes=SMALL)
    assert tree_hash(other) != tree_hash(small_tree)


def test_default_sizes_fit_their_sources():
    demo_data._check_sizes(demo_data.DEFAULT_SIZES["dev"])  # raises when a default exceeds its source
    _, labels = demo_data._mnist_halves()[0]
    train, test = demo_data._split(labels, *demo_data.DEFAULT_SIZES["dev"]["mnistm"], np.random.default_rng(0))
    assert len(set(train) | set(test)) == len(train) + len(test)  # disjoint
    assert np.bincount(labels[test], minlength=10).tolist() == [len(test) // 10] * 10  # stratified


def test_cli_refuses_a_non_empty_folder(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run(["python3", "demo_data.py", "--out", str(out), "--quiet"])
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "--force" in result.stderr
    with pytest.raises(UserError, match="notes.txt"):  # --force never deletes other files
        demo_data.main(["--out", str(out), "--force", "--quiet"])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left behind


def test_force_replaces_an_earlier_tree(small_tree, tmp_path):
    out = tmp_path / "data"
    demo_data.build(out, seed=1, sizes=SMALL)
    with pytest.raises(UserError, match="not empty"):
        demo_data.build(out, seed=0, sizes=SMALL)
    demo_data.build(out, seed=0, sizes=SMALL, force=True)
    assert tree_hash(out) == tree_hash(small_tree)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_failure_leaves_no_tree(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo_data, "build_svhn", broken)
    with pytest.raises(RuntimeError):
        demo_data.build(tmp_path / "data", sizes=SMALL)
    assert list(tmp_path.iterdir()) == []


def test_bad_sizes_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="only 2500"):
        demo_data.build(tmp_path / "a", sizes={"usps": (2100, 500)})
    with pytest.raises(UserError, match="at least 10"):
        demo_data.build(tmp_path / "b", sizes={"svhn": (100, 5)})
    with pytest.raises(UserError, match="--seed -1"):
        demo_data.build(tmp_path / "d", seed=-1, sizes=SMALL)
    with pytest.raises(UserError, match="--mnistm 2400 200"):
        demo_data.main(["--out", str(tmp_path / "c"), "--mnistm", "2400", "200", "--quiet"])
    with pytest.raises(UserError, match="unknown variant"):
        demo_data.build(tmp_path / "e", sizes=SMALL, variant="test")
    assert list(tmp_path.iterdir()) == []


def test_mnist_is_mnistm_without_the_photographs(small_tree):
    for split in ("train", "test"):
        plain, blended = (datasets.load_digits(small_tree, d, split) for d in ("mnist", "mnistm"))
        assert torch.equal(plain.labels, blended.labels)
        # MNIST-M pixels are |patch - digit|: where the digit is full white, the blend is 255 - patch <= 255.
        ink = plain.images[:, 0] == 255  # (N, 28, 28)
        assert ink.any() and not torch.equal(plain.images, blended.images)


@pytest.fixture(scope="module")
def heldout_tree(tmp_path_factory):
    return demo_data.build(tmp_path_factory.mktemp("heldout") / "data", seed=0, sizes=SMALL, variant="heldout")


def _pixels(root: Path, domain: str) -> set[bytes]:
    """Every train and test digit of ``domain`` as bytes of its first channel, for finding shared images."""
    images = [datasets.load_digits(root, domain, split).images[:, 0] for split in ("train", "test")]
    return {image.numpy().tobytes() for image in torch.cat(images)}


def test_mnist_halves_are_disjoint_and_balanced():
    pixels, labels = demo_data._mnist()
    halves = demo_data._mnist_halves()
    assert [len(x) for x, _ in halves] == [len(labels) // 2] * 2
    assert all(np.bincount(y).tolist() == [len(labels) // 20] * 10 for _, y in halves)
    assert not {x.tobytes() for x in halves[0][0]} & {x.tobytes() for x in halves[1][0]}


def test_usps_like_digits_fill_the_frame_and_mnist_does_not(small_tree):
    """USPS digits are size-normalised to fill 16x16 (then 28x28); MNIST's sit in a 20x20 box."""
    def ink_extent(domain):  # per image, the larger side of the box holding pixels >= 64
        ink = datasets.load_digits(small_tree, domain, "train").images[:, 0] >= 64  # (N, 28, 28)
        rows, cols = ink.any(2), ink.any(1)
        span = lambda m: m.shape[1] - m.int().argmax(1) - m.flip(1).int().argmax(1)  # noqa: E731
        return torch.maximum(span(rows), span(cols)).float()

    usps, mnist = ink_extent("usps"), ink_extent("mnist")
    assert usps.median() >= 25 and mnist.median() <= 21


def test_deslant_makes_a_slanted_stroke_upright():
    stroke = np.zeros((28, 28), np.uint8)
    for y in range(4, 24):  # a bar leaning right: x grows as y falls
        stroke[y, 8 + (24 - y) // 2: 11 + (24 - y) // 2] = 255
    upright = demo_data.deslant(stroke)
    columns = lambda image: np.flatnonzero(image.max(0) >= 128)  # noqa: E731
    assert len(columns(upright)) <= 5 < len(columns(stroke))


def test_usps_and_mnist_come_from_different_halves(small_tree, heldout_tree):
    """Within a tree no handwriting sample is in both usps and mnist/mnistm; the held-out tree's is another corpus."""
    halves = [pixels for pixels, _ in demo_data._mnist_halves()]
    assert _pixels(small_tree, "mnist") <= {x.tobytes() for x in halves[0]}
    assert _pixels(small_tree, "usps") <= {np.asarray(demo_data.usps_like(x)).tobytes() for x in halves[1]}
    (usps_digits, _), (mnist_digits, _) = demo_data._optdigits_halves()
    assert _pixels(heldout_tree, "usps") <= {np.asarray(demo_data.optdigits_usps_like(x)).tobytes() for x in usps_digits}
    # mnist-like digits: each is one of the other half's at some stroke width (drawn per digit).
    widths = np.linspace(0.25, 0.55, 4)
    for image in datasets.load_digits(heldout_tree, "mnist", "train").images[:5, 0].numpy():
        closest = min(np.abs(demo_data.optdigits_mnist_like(x, w).astype(int) - image).max()
                      for x in mnist_digits for w in widths)
        assert closest <= 64  # within a quarter of the range of the nearest drawn width


def test_optdigits_halves_are_disjoint_and_balanced():
    halves = demo_data._optdigits_halves()
    assert [len(y) for _, y in halves] == [901, 896]
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    assert np.bincount(halves[0][1]).tolist() == (-(-per_class // 2)).tolist()  # each class split in two
    assert np.bincount(halves[1][1]).tolist() == (per_class // 2).tolist()
    assert not {x.tobytes() for x in halves[0][0]} & {x.tobytes() for x in halves[1][0]}
    assert {x.dtype for x, _ in halves} == {np.dtype(np.uint8)} and max(x.max() for x, _ in halves) == 255
    demo_data._check_sizes(demo_data.DEFAULT_SIZES["heldout"], "heldout")


def test_mnist_like_stroke_width_follows_the_level():
    """A higher soft-threshold level gives a thinner stroke, centred by its centre of mass in a 20x20 box."""
    (digits, _), _ = demo_data._optdigits_halves()
    thick, thin = (demo_data.optdigits_mnist_like(digits[0], level) for level in (0.25, 0.55))
    assert (thin > 127).sum() < (thick > 127).sum()
    ys, xs = np.nonzero(thick)
    assert np.ptp(ys) < 20 and np.ptp(xs) < 20
    assert abs(np.average(ys, weights=thick[ys, xs]) - 13.5) <= 1.5


def test_heldout_blend_and_backgrounds_are_not_the_dev_ones():
    rng = np.random.default_rng(0)
    patch = np.full((28, 28, 3), 200, np.uint8)
    digit = np.zeros((28, 28), np.uint8)
    digit[10:18, 12:16] = 255
    painted = demo_data.painted_blend(patch, digit, rng)
    assert (painted[0, 0] == 200).all()  # the background stays where there is no ink
    assert abs(int(painted[14, 14].astype(int) @ [299, 587, 114]) // 1000 - 200) >= 60  # contrasting ink
    assert not np.array_equal(painted, demo_data.difference_blend(patch, digit, rng))
    plate = np.asarray(demo_data.gradient_plate(demo_data._photos_named(demo_data.TEXTURES), 56, rng))
    assert plate.shape == (56, 56, 3)


def test_heldout_variant_differs_in_every_digit_domain(small_tree, heldout_tree):
    for domain in ("usps", "mnistm", "svhn", "mnist"):
        assert not _pixels(small_tree, domain) & _pixels(heldout_tree, domain), domain
    assert tree_hash(heldout_tree / "face") == tree_hash(small_tree / "face")  # faces are not part of the study


def test_held_out_fonts_are_the_computer_modern_faces_this_matplotlib_ships():
    fonts = demo_data.held_out_fonts()
    assert {"cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf"} <= set(fonts) <= set(demo_data.FONTS["heldout"])


@pytest.mark.parametrize("variant", demo_data.VARIANTS)
def test_busy_trees_blend_the_same_digits_over_busier_textures_and_draw_svhn_in_other_fonts(small_tree, heldout_tree,
                                                                                         tmp_path, variant):
    plain = {"dev": small_tree, "heldout": heldout_tree}[variant]
    busy = demo_data.build(tmp_path / "busy", seed=0, sizes=SMALL, variant=variant, busy=True)
    assert tree_hash(busy / "digits" / "mnist") == tree_hash(plain / "digits" / "mnist")  # the same digits
    assert tree_hash(busy / "digits" / "usps") == tree_hash(plain / "digits" / "usps")

    def busyness(domain_root: Path) -> float:  # mean |horizontal gradient| of the train images
        images = datasets.load_digits(domain_root.parent.parent, domain_root.name, "train").images.float().mean(1)
        return (images[..., 1:] - images[..., :-1]).abs().mean().item()

    assert busyness(busy / "digits" / "mnistm") > busyness(plain / "digits" / "mnistm")
    svhn_changed = tree_hash(busy / "digits" / "svhn") != tree_hash(plain / "digits" / "svhn")
    assert svhn_changed == (variant == "dev")  # many fonts in dev; the held-out tree keeps its own
    assert not set(demo_data.MANY_FONTS) & set(demo_data.FONTS["heldout"])
