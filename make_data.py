"""Build ``hw3_data`` from the public originals: USPS, SVHN, MNIST with BSDS500 (MNIST-M), CelebA.

``python3 make_data.py --out hw3_data`` (``make data``) writes the assignment's layout::

    face/train/*.png  + train.csv   40,000 64x64 RGB   CelebA "train" partition, image_name + 13 attributes
    face/test/*.png   + test.csv     2,621 64x64 RGB   CelebA "test" partition (FID, the VAE figures)
    digits/usps/{train,test}         7,291 / 2,007     28x28 L     USPS (LIBSVM's usps.bz2, usps.t.bz2)
    digits/svhn/{train,test}        73,257 / 26,032    28x28 RGB   SVHN cropped digits; its label 10 is the digit 0
    digits/mnistm/{train,test}      60,000 / 10,000    28x28 RGB   MNIST blended with BSDS500 patches
    digits/mnist/{train,test}       60,000 / 10,000    28x28 L     the same MNIST digits unblended (the studies' pair)
    make_data.json                  what was built, from which files; written last

How each part is made:

- usps, svhn, mnist: the whole splits of the originals, read by torchvision's parsers and
  resized to 28x28 with PIL's bilinear filter (USPS is 16x16, SVHN 32x32).
- mnistm: the recipe of Ganin & Lempitsky, "Unsupervised Domain Adaptation by
  Backpropagation", ICML 2015 (https://arxiv.org/abs/1409.7495), section 5: each MNIST digit
  is blended with a random 28x28 patch of a random BSDS500 photograph (all 500 of
  ``BSR_bsds500.tgz``) as |patch - digit| per channel. Seeded, so it is the same on every
  run, but not the pixels of Ganin's published MNIST-M (his patches are not public).
- face: the course's subset of CelebA is not public, so this is a re-creation: CelebA's
  aligned 178x218 images, centre-cropped to 140x140 and resized to 64x64 (Lanczos); 40,000
  drawn with a fixed seed from CelebA's own train partition and 2,621 from its test
  partition, named 00000.png on in CelebA's order; the 13 attributes in the assignment's
  column order, CelebA's -1/1 written as 0.0/1.0.

Downloads go to ``--downloads`` (default: ``<out>.downloads`` beside ``--out``) and are kept,
so a rerun takes up where the last one stopped. The URLs and MD5 checksums are
torchvision's (``torchvision.datasets.USPS``, ``SVHN``, ``MNIST``, ``CelebA``); the transfer is
done by wget, which resumes a cut-off file and times out, where torchvision's
``download_url`` does neither. BSDS500 publishes no checksum: its archive is checked by
holding its 500 photographs. CelebA is served from Google Drive (through gdown, as
torchvision does), which often refuses; the error then says where to put the files by hand,
and the same command picks them up.

Each domain is converted in a temporary folder and renamed into ``<out>.partial`` when
complete and checked; when all are there, the whole tree is checked again (counts, image
sizes and modes, the CSVs), ``make_data.json`` is written and ``<out>.partial`` is renamed to
``--out``. So ``--out`` appears only complete, and a run cut off at any point leaves no folder
under a domain's name that is not complete. The same files and seed give the same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from hw3.common import UserError, cli, progress, write_json
from datasets import DIGIT_SIZE as DIGIT, FACE_SIZE as FACE
from demo_data import PNG_OPTIONS
from hw3.domains import part_folder

# (train, test) images per part: the assignment's counts. The face test set has the size of the
# course's held-out faces (2,621).
FULL_SIZES = {"usps": (7291, 2007), "svhn": (73257, 26032), "mnist": (60000, 10000), "mnistm": (60000, 10000),
              "face": (40000, 2621)}
PARTS = tuple(FULL_SIZES)  # the build order: small downloads first, CelebA (1.4 GB) last
# Where each part lives in the tree, and its images' mode and side.
FOLDERS = {part: part_folder(part) for part in PARTS}
MODES = {"usps": ("L", DIGIT), "svhn": ("RGB", DIGIT), "mnist": ("L", DIGIT), "mnistm": ("RGB", DIGIT),
         "face": ("RGB", FACE)}
FACE_ATTRIBUTES = ("Bangs", "Big_Lips", "Black_Hair", "Blond_Hair", "Brown_Hair", "Heavy_Makeup", "High_Cheekbones",
                   "Male", "Mouth_Slightly_Open", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Lipstick")
CELEBA_SIZE = (178, 218)  # the aligned images' (width, height)
FACE_CROP = (19, 39, 159, 179)  # a centred 140x140 box (torchvision's CenterCrop(140) of 178x218)
CELEBA_PARTITIONS = {"train": "0", "test": "2"}  # list_eval_partition.txt: 0 train, 1 val, 2 test
BSDS_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
BSDS_IMAGES = re.compile(r"BSR/BSDS500/data/images/(train|val|test)/[^/]+\.jpg")
BSDS_PHOTOS = 500
CELEBA_HOME = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
MANIFEST = "make_data.json"
VERSION = 1  # of the recipe: a change here gives other bytes, so an older tree is not taken for this one
WGET_ERRORS = {3: "cannot write the file (disk full or not writable)", 4: "network failure (no connection?)",
               5: "SSL verification failed", 6: "authentication needed", 7: "protocol error",
               8: "the server refused it (HTTP error)"}


@dataclasses.dataclass(frozen=True)
class Source:
    """One original file: its name in the downloads folder, where it is served, its published MD5."""

    name: str
    urls: tuple[str, ...] = ()
    md5: str | None = None  # None: no published checksum (BSDS500)
    gdrive: str | None = None  # a Google Drive file id (CelebA)


def sources(mirror: str | None = None, checksums: dict[str, str] | None = None) -> dict[str, Source]:
    """Every original file, from torchvision's tables; ``mirror`` serves them all as ``MIRROR/NAME``.

    ``checksums`` (``{name: md5}``) replaces the published MD5s, for a mirror of other files.
    """
    from torchvision.datasets import MNIST, SVHN, USPS, CelebA

    table = [Source(name, (url,), md5) for url, name, md5 in USPS.split_list.values()]
    table += [Source(SVHN.split_list[s][1], (SVHN.split_list[s][0],), SVHN.split_list[s][2]) for s in ("train", "test")]
    table += [Source(name, tuple(m + name for m in MNIST.mirrors), md5) for name, md5 in MNIST.resources]
    table.append(Source("BSR_bsds500.tgz", (BSDS_URL,)))
    celeba = ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt")
    table += [Source(name, (), md5, gdrive=file_id) for file_id, md5, name in CelebA.file_list if name in celeba]
    out = {}
    for source in table:
        if mirror:
            source = dataclasses.replace(source, urls=(f"{mirror.rstrip('/')}/{source.name}",), gdrive=None)
        if checksums and source.name in checksums:
            source = dataclasses.replace(source, md5=checksums[source.name])
        out[source.name] = source
    return out


NEEDS = {"usps": ("usps.bz2", "usps.t.bz2"), "svhn": ("train_32x32.mat", "test_32x32.mat"),
         "mnist": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                   "t10k-labels-idx1-ubyte.gz"),
         "face": ("list_eval_partition.txt", "list_attr_celeba.txt", "img_align_celeba.zip")}
NEEDS["mnistm"] = NEEDS["mnist"] + ("BSR_bsds500.tgz",)


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """``md5sum``'s output (``<md5>  <name>`` per line) as ``{name: md5}``."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise UserError(f"cannot read --checksums {path}: {err.strerror or err}") from None
    table = {}
    for number, line in enumerate(lines, start=1):
        match = re.fullmatch(r"([0-9a-fA-F]{32}) [ *]?(\S+)", line.strip())
        if line.strip() and not match:
            raise UserError(f"--checksums {path}, line {number}: expected '<md5>  <file name>'")
        if match:
            table[match[2]] = match[1].lower()
    return table


def md5_file(path: Path) -> str:
    """The MD5 of a file, read in 1 MiB chunks (what torchvision's tables publish)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(source: Source, folder: Path) -> str:
    if source.name in NEEDS["face"]:
        return (f"download img_align_celeba.zip, list_attr_celeba.txt and list_eval_partition.txt by hand "
                f"(CelebA's Google Drive, linked from {CELEBA_HOME}), put them in {folder}/ and run the same command again")
    return f"put it in {folder}/ by hand (or retry when online) and run the same command again"


def _wget(url: str, part: Path, timeout: int, quiet: bool) -> str | None:
    """Download ``url`` into ``part``, continuing what is there; an error's words, or None."""
    if shutil.which("wget") is None:
        return "wget is not installed"
    show = not quiet and sys.stderr.isatty()
    command = ["wget", "--continue", "--tries=2", "--waitretry=1", f"--timeout={timeout}", "--quiet",
               *(["--show-progress", "--progress=bar:force:noscroll"] if show else []), "-O", str(part), url]
    code = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL).returncode
    return None if code == 0 else f"{WGET_ERRORS.get(code, 'wget failed')} (wget exit {code})"


GDRIVE_TORCHVISION = (0, 17, 1)  # requirements.txt's floor, for the same reason


def _version(text: str) -> tuple[int, ...]:
    """``(0, 16, 0)`` from ``0.16.0+cpu``."""
    return tuple(int(part) for part in re.match(r"\d+(?:\.\d+)*", text).group().split("."))


def _gdrive(source: Source, part: Path) -> str | None:
    """Download a Google Drive file with torchvision's helper (which needs gdown); an error's words, or None."""
    try:
        import gdown  # noqa: F401  (torchvision imports it itself; asked first for a clear message)
    except ImportError:
        return "Google Drive downloads need gdown (pip install gdown)"
    import torchvision
    from torchvision.datasets.utils import download_file_from_google_drive

    if _version(torchvision.__version__) < GDRIVE_TORCHVISION:  # older ones save a page that fails the MD5
        return (f"Google Drive downloads need torchvision {'.'.join(map(str, GDRIVE_TORCHVISION))} or newer "
                f"(this is {torchvision.__version__}; pytorch/vision#8204)")

    part.unlink(missing_ok=True)  # the helper neither resumes nor checks a file already there
    try:
        download_file_from_google_drive(source.gdrive, part.parent, part.name)
    except Exception as err:  # gdown's refusals (quota, permission, a changed page) have no common class
        return f"Google Drive refused it ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
    return None


def _bsds_count(archive: Path) -> int:
    """How many BSDS500 photographs (``BSR/BSDS500/data/images/*/*.jpg``) ``archive`` lists."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return sum(1 for m in tar.getmembers() if m.isfile() and BSDS_IMAGES.fullmatch(m.name))
    except (tarfile.TarError, OSError, EOFError):
        return 0


def verify(source: Source, path: Path) -> str | None:
    """What is wrong with a copy of ``source``, or None: its MD5, or (BSDS500, which publishes none) its content."""
    if source.md5:
        got = md5_file(path)
        return None if got == source.md5 else f"MD5 {got}, expected {source.md5}"
    if source.name == "BSR_bsds500.tgz":
        found = _bsds_count(path)
        return None if found == BSDS_PHOTOS else f"{found} BSDS500 photographs, {BSDS_PHOTOS} expected"
    return None


def fetch(source: Source, folder: Path, timeout: int = 20, quiet: bool = False) -> Path:
    """A checked copy of ``source`` in ``folder``: the one there, or one downloaded into ``NAME.part`` and renamed.

    A cut-off download stays as ``NAME.part`` and is continued next time; a finished one that
    fails :func:`verify` is deleted. A file put there by hand is used when it passes.
    """
    target = folder / source.name
    if target.is_file():
        problem = verify(source, target)
        if problem:
            raise UserError(f"{target} is not the published file ({problem}): delete it and run again")
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {folder}: {err.strerror or err}") from None
    part = folder / f"{source.name}.part"
    if not source.urls and not source.gdrive:
        raise UserError(f"{source.name} has no download address: {_by_hand(source, folder)}")
    errors = []
    for url in source.urls or [f"Google Drive id {source.gdrive}"]:
        error = _gdrive(source, part) if not source.urls else _wget(url, part, timeout, quiet)
        if error is None and not part.is_file():
            error = "nothing arrived"
        if error is None:
            break
        errors.append(f"{url}: {error}")
    else:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()  # nothing arrived: leave nothing behind
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
        raise UserError(f"cannot download {source.name} from {'; '.join(errors)}; {_by_hand(source, folder)}")
    problem = verify(source, part)
    if problem:
        part.unlink()
        raise UserError(f"downloaded {source.name} is damaged ({problem}); deleted, run again to download it afresh")
    os.replace(part, target)
    return target


# --- Conversion: each writes one part's train/test folders and CSVs under ``out`` -------------------

def _write_split(folder: Path, images: Iterable[Image.Image], rows: Sequence[str], header: str, first: int = 0,
                 quiet: bool = False, desc: str = "") -> None:
    """``images`` as ``folder/NNNNN.png`` from ``first`` on, and ``folder.csv`` with ``header`` and ``rows`` (one per image)."""
    folder.mkdir(parents=True)
    names = [f"{first + i:05d}.png" for i in range(len(rows))]
    for image, name in zip(progress(images, quiet, desc=desc, total=len(rows), leave=False), names):
        image.save(folder / name, **PNG_OPTIONS)
    (folder.parent / f"{folder.name}.csv").write_text(
        header + "\n" + "".join(f"{name},{row}\n" for name, row in zip(names, rows)))


def _take(images: np.ndarray, labels: np.ndarray, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images and labels; fewer in the source is an error (a truncated or other file)."""
    if len(images) < n:
        raise UserError(f"{what} holds {len(images)} images, {n} expected")
    return images[:n], np.asarray(labels[:n], dtype=int)


def _write_digits(out: Path, part: str, splits: dict, quiet: bool) -> None:
    """``splits``: {split: (images (N, H, W) or (N, H, W, 3) uint8, labels (N,))}, resized to 28x28."""
    for split, (images, labels) in splits.items():
        pictures = (Image.fromarray(image).resize((DIGIT, DIGIT), Image.BILINEAR) for image in images)
        _write_split(out / split, pictures, [str(int(y)) for y in labels], "image_name,label",
                     quiet=quiet, desc=f"{part}/{split}")


def convert_usps(files: dict[str, Path], out: Path, sizes: dict, seed: int, quiet: bool) -> None:
    """USPS's 16x16 digits (torchvision's parser of the LIBSVM files: labels 1-10 become 0-9)."""
    from torchvision.datasets import USPS

    splits = {}
    for split, train in (("train", True), ("test", False)):
        data = USPS(str(files["usps.bz2"].parent), train=train)
        splits[split] = _take(data.data, data.targets, sizes["usps"][split == "test"], f"USPS {split}")
    _write_digits(out, "usps", splits, quiet)


def convert_svhn(files: dict[str, Path], out: Path, sizes: dict, seed: int, quiet: bool) -> None:
    """SVHN's 32x32 cropped digits (torchvision's parser of the .mat files: its label 10 is the digit 0)."""
    from torchvision.datasets import SVHN

    class Checked(SVHN):
        def _check_integrity(self) -> bool:
            return True  # fetch() checked the MD5 against the table in use (a mirror's may differ)

    splits = {}
    for split in ("train", "test"):
        data = Checked(str(files[f"{split}_32x32.mat"].parent), split=split)
        images = data.data.transpose(0, 2, 3, 1)  # (N, 3, 32, 32) -> (N, 32, 32, 3)
        splits[split] = _take(images, data.labels, sizes["svhn"][split == "test"], f"SVHN {split}")
    _write_digits(out, "svhn", splits, quiet)


def _mnist(files: dict[str, Path], sizes: tuple[int, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST's (images (N, 28, 28), labels) per split, by torchvision's idx readers."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    splits = {}
    with tempfile.TemporaryDirectory() as tmp:
        for split, prefix in (("train", "train"), ("test", "t10k")):
            arrays = []
            for kind in ("images-idx3", "labels-idx1"):
                raw = Path(tmp) / f"{prefix}-{kind}-ubyte"
                with gzip.open(files[f"{raw.name}.gz"]) as src, open(raw, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                arrays.append((read_image_file if kind.startswith("images") else read_label_file)(str(raw)).numpy())
            splits[split] = _take(*arrays, sizes[split == "test"], f"MNIST {split}")
    return splits


def convert_mnist(files: dict[str, Path], out: Path, sizes: dict, seed: int, quiet: bool) -> None:
    """MNIST's digits as they are (28x28 grayscale), in the splits mnistm is blended from."""
    _write_digits(out, "mnist", _mnist(files, sizes["mnist"]), quiet)


def bsds_photos(archive: Path) -> list[np.ndarray]:
    """The JPEGs of ``BSR_bsds500.tgz`` (images/{train,val,test}), sorted by path, uint8 (H, W, 3)."""
    photos = []
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and BSDS_IMAGES.fullmatch(m.name)),
                         key=lambda m: m.name)
        for member in members:
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                photos.append(np.asarray(image.convert("RGB")))
    if not photos:
        raise UserError(f"{archive} holds no BSDS500 photographs (BSR/BSDS500/data/images/*/*.jpg)")
    small = [p.shape for p in photos if min(p.shape[:2]) < DIGIT]
    if small:
        raise UserError(f"{archive} has a photograph smaller than {DIGIT}x{DIGIT}: {small[0]}")
    return photos


def blend(digits: np.ndarray, photos: list[np.ndarray], rng: np.random.Generator) -> Iterable[np.ndarray]:
    """MNIST-M: each digit ``(28, 28)`` as |patch - digit| with a random 28x28 patch of a random photograph.

    Ganin & Lempitsky, ICML 2015, section 5 (https://arxiv.org/abs/1409.7495). Yields uint8 (28, 28, 3).
    """
    for digit in digits:
        photo = photos[rng.integers(len(photos))]
        y = rng.integers(photo.shape[0] - DIGIT + 1)
        x = rng.integers(photo.shape[1] - DIGIT + 1)
        patch = photo[y:y + DIGIT, x:x + DIGIT].astype(np.int16)
        yield np.abs(patch - digit[..., None].astype(np.int16)).astype(np.uint8)


def convert_mnistm(files: dict[str, Path], out: Path, sizes: dict, seed: int, quiet: bool) -> None:
    """MNIST-M from MNIST and BSDS500: the train digits first, then the test digits, from one seeded stream."""
    splits = _mnist(files, sizes["mnistm"])
    photos = bsds_photos(files["BSR_bsds500.tgz"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, PARTS.index("mnistm")]))
    for split, (digits, labels) in splits.items():
        # Drawn in this order, train then test, so each image's patch is fixed by the seed.
        _write_digits(out, "mnistm", {split: (np.stack(list(blend(digits, photos, rng))), labels)}, quiet)


def _celeba_table(path: Path, what: str) -> tuple[list[str], dict[str, list[str]]]:
    """A CelebA list file: (header, {image: fields}); list_attr_celeba.txt starts with a count and the names."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    header: list[str] = []
    if what == "attributes":
        if len(lines) < 2:
            raise UserError(f"{path} is not CelebA's attribute list (too short)")
        header, lines = lines[1].split(), lines[2:]
    rows = {}
    for line in lines:
        fields = line.split()
        if fields:
            rows[fields[0]] = fields[1:]
    return header, rows


def select_faces(partitions: dict[str, list[str]], sizes: tuple[int, int], seed: int) -> dict[str, list[str]]:
    """CelebA image names per split: a seeded draw from CelebA's own partition, kept in CelebA's order."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, PARTS.index("face")]))
    chosen = {}
    for split, n in zip(("train", "test"), sizes):
        pool = sorted(name for name, fields in partitions.items() if fields and fields[0] == CELEBA_PARTITIONS[split])
        if len(pool) < n:
            raise UserError(f"CelebA's {split} partition holds {len(pool)} images, {n} asked for")
        chosen[split] = [pool[i] for i in np.sort(rng.choice(len(pool), size=n, replace=False))]
    return chosen


def crop_face(image: Image.Image) -> Image.Image:
    """An aligned CelebA image (178x218) centre-cropped to 140x140 and resized to 64x64 RGB."""
    if image.size != CELEBA_SIZE:
        raise UserError(f"a CelebA aligned image is {image.size[0]}x{image.size[1]}, "
                        f"{CELEBA_SIZE[0]}x{CELEBA_SIZE[1]} expected")
    return image.convert("RGB").crop(FACE_CROP).resize((FACE, FACE), Image.LANCZOS)


def convert_faces(files: dict[str, Path], out: Path, sizes: dict, seed: int, quiet: bool) -> None:
    """face/{train,test}: the selected CelebA faces, read straight from the zip, with the 13 attributes."""
    _, partitions = _celeba_table(files["list_eval_partition.txt"], "partitions")
    header, attributes = _celeba_table(files["list_attr_celeba.txt"], "attributes")
    missing = [a for a in FACE_ATTRIBUTES if a not in header]
    if missing:
        raise UserError(f"{files['list_attr_celeba.txt']} lacks the attribute(s) {', '.join(missing)}")
    columns = [header.index(a) for a in FACE_ATTRIBUTES]
    chosen = select_faces(partitions, sizes["face"], seed)
    try:
        archive = zipfile.ZipFile(files["img_align_celeba.zip"])
    except zipfile.BadZipFile as err:
        raise UserError(f"{files['img_align_celeba.zip']} is not a zip file ({err}): delete it and run again") from None
    first = 0  # names run on across splits, as in the assignment (00000.png, 00001.png, ...)
    with archive:
        for split, names in chosen.items():
            def faces(names=names):
                for name in names:
                    try:
                        data = archive.read(f"img_align_celeba/{name}")
                    except KeyError:
                        raise UserError(f"{files['img_align_celeba.zip']} lacks img_align_celeba/{name}") from None
                    with Image.open(io.BytesIO(data)) as image:
                        yield crop_face(image)

            rows = []
            for name in names:
                fields = attributes.get(name)
                if fields is None or len(fields) != len(header):
                    raise UserError(f"{files['list_attr_celeba.txt']} has no full row for {name}")
                rows.append(",".join("1.0" if fields[c] == "1" else "0.0" for c in columns))
            _write_split(out / split, faces(), rows, "image_name," + ",".join(FACE_ATTRIBUTES), first=first,
                         quiet=quiet, desc=f"face/{split}")
            first += len(names)


CONVERTERS: dict[str, Callable] = {"usps": convert_usps, "svhn": convert_svhn, "mnist": convert_mnist,
                                   "mnistm": convert_mnistm, "face": convert_faces}


# --- Checks ------------------------------------------------------------------------------------------

def check_part(folder: Path, part: str, sizes: tuple[int, int], quiet: bool = True) -> list[str]:
    """What is wrong with one part's folder: missing files, counts, image sizes and modes, CSV rows."""
    mode, side = MODES[part]
    problems = []
    for split, n in zip(("train", "test"), sizes):
        images, table = folder / split, folder / f"{split}.csv"
        where = f"{FOLDERS[part]}/{split}"
        if not images.is_dir() or not table.is_file():
            problems.append(f"{where} or its CSV is missing")
            continue
        names = sorted(p.name for p in images.iterdir())
        lines = table.read_text().splitlines()
        header = "image_name," + (",".join(FACE_ATTRIBUTES) if part == "face" else "label")
        if len(names) != n:
            problems.append(f"{where} holds {len(names)} files, {n} expected")
        if not lines or lines[0] != header:
            problems.append(f"{where}.csv does not start with {header}")
        rows = [line.split(",") for line in lines[1:]]
        if sorted(r[0] for r in rows) != names:
            problems.append(f"{where}.csv does not list exactly the images of {where}")
        good = {"1.0", "0.0"} if part == "face" else {str(d) for d in range(10)}
        if any(len(r) != len(header.split(",")) or not set(r[1:]) <= good for r in rows):
            problems.append(f"{where}.csv has a malformed row")
        for name in progress(names, quiet, desc=f"check {where}", leave=False):
            try:
                with Image.open(images / name) as image:
                    if image.format != "PNG" or image.mode != mode or image.size != (side, side):
                        problems.append(f"{where}/{name} is {image.format} {image.mode} {image.size[0]}x{image.size[1]}, "
                                        f"PNG {mode} {side}x{side} expected")
                        break
            except OSError as err:
                problems.append(f"{where}/{name} cannot be read: {err}")
                break
    return problems


def check_tree(root: Path, sizes: dict, quiet: bool = True) -> list[str]:
    """:func:`check_part` over every part of ``root``."""
    return [p for part in PARTS for p in check_part(root / FOLDERS[part], part, sizes[part], quiet)]


# --- The build ---------------------------------------------------------------------------------------

def _settings(sizes: dict, seed: int, table: dict[str, Source]) -> dict:
    return {"version": VERSION, "seed": seed, "sizes": {part: list(sizes[part]) for part in PARTS},
            "md5": {name: source.md5 for name, source in sorted(table.items())}}


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _start_staging(staging: Path, settings: dict) -> None:
    """``staging`` ready for this build: kept when an earlier run of the same settings left it, else new."""
    earlier = _read_manifest(staging) if staging.is_dir() else None
    if staging.exists() and (earlier is None or earlier.get("settings") != settings):
        if earlier is None and any(staging.iterdir()):
            raise UserError(f"{staging} exists and was not left by this script: remove it or choose another --out")
        shutil.rmtree(staging)  # an earlier build with other settings (sizes, seed, files)
    staging.mkdir(parents=True, exist_ok=True)
    for stale in staging.glob(".tmp-*"):  # a conversion cut off by a kill
        shutil.rmtree(stale, ignore_errors=True)
    write_json(staging / MANIFEST, {"complete": False, "settings": settings})


def build(out: str | os.PathLike, downloads: str | os.PathLike | None = None, sizes: dict | None = None,
          seed: int = 0, mirror: str | None = None, checksums: dict[str, str] | None = None, timeout: int = 20,
          quiet: bool = False) -> Path:
    """Download what is missing, convert each part, check the tree and rename it to ``out``; return ``out``.

    ``sizes`` overrides entries of :data:`FULL_SIZES` (``{part: (train, test)}``); ``mirror`` and
    ``checksums`` as in :func:`sources`. A complete ``out`` of the same settings is checked and kept.
    """
    out = Path(out)
    downloads = Path(downloads) if downloads else out.with_name(out.name + ".downloads")
    sizes = {**FULL_SIZES, **(sizes or {})}
    if set(sizes) != set(PARTS) or any(n < 1 for pair in sizes.values() for n in pair):
        raise UserError(f"sizes must give every part of {', '.join(PARTS)} at least one image per split")
    table = sources(mirror, checksums)
    settings = _settings(sizes, seed, table)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        earlier = _read_manifest(out) if out.is_dir() else None
        if not earlier or earlier.get("settings") != settings or not earlier.get("complete"):
            raise UserError(f"{out} exists and is not a tree this script built with these settings: "
                            "remove it or choose another --out")
        problems = check_tree(out, sizes, quiet)
        if problems:
            raise UserError(f"{out} is damaged: {problems[0]} (remove it and run again)")
        return out
    staging = out.with_name(out.name + ".partial")
    try:
        if staging.exists():
            _start_staging(staging, settings)  # an earlier run's: kept if its settings are these
        for part in PARTS:
            final = staging / FOLDERS[part]
            if final.is_dir():
                continue  # converted and checked by an earlier run: parts are renamed into place only then
            files = {name: fetch(table[name], downloads, timeout, quiet) for name in NEEDS[part]}
            if not staging.exists():
                _start_staging(staging, settings)  # only once there is something to convert
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{part}-", dir=staging))
            try:
                CONVERTERS[part](files, tmp / part, sizes, seed, quiet)
                problems = check_part(tmp / part, part, sizes[part], quiet)
                if problems:
                    raise UserError(f"the converted {part} is not as expected: {problems[0]}")
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / part, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        problems = check_tree(staging, sizes, quiet)
        if problems:
            raise UserError(f"{staging} is not complete: {problems[0]}")
        counts = {FOLDERS[part]: dict(zip(("train", "test"), sizes[part])) for part in PARTS}
        # The settings name the original files by MD5, not URL, so a mirror gives the same bytes.
        write_json(staging / MANIFEST, {"complete": True, "settings": settings, "images": counts})
        if out.is_dir():
            out.rmdir()  # empty: checked above
        os.replace(staging, out)
    except OSError as err:  # a full disk, a folder that cannot be written
        where = f" {err.filename}" if err.filename else ""
        raise UserError(f"cannot write{where}: {err.strerror or err}") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="hw3_data", help="the tree to write (absent or empty)")
    parser.add_argument("--downloads", default=None, help="where the original files go and stay (None: OUT.downloads)")
    parser.add_argument("--mirror", default=None, help="a base URL serving every original file as URL/NAME")
    parser.add_argument("--checksums", default=None,
                        help="md5sum-style file ('<md5>  <name>' per line) replacing the published MD5s")
    parser.add_argument("--seed", type=int, default=0, help="draws the faces and the MNIST-M patches")
    parser.add_argument("--timeout", type=int, default=20, help="seconds a download may stall before it fails")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    for part, (n_train, n_test) in FULL_SIZES.items():
        parser.add_argument(f"--{part}", type=int, nargs=2, metavar=("TRAIN", "TEST"), default=[n_train, n_test],
                            help=f"{part} images per split: " + ("a seeded draw from CelebA's partitions" if part == "face"
                                                                else "the first of the original's"))
    args = parser.parse_args(argv)
    sizes = {part: tuple(getattr(args, part)) for part in FULL_SIZES}
    checksums = read_checksums(args.checksums) if args.checksums else None
    start = time.perf_counter()
    existed = os.path.isdir(args.out) and any(os.scandir(args.out))
    out = build(args.out, args.downloads, sizes, args.seed, args.mirror, checksums, args.timeout, args.quiet)
    if not args.quiet:
        summary = ", ".join(f"{part} {a}/{b}" for part, (a, b) in sizes.items())
        done = "is complete and checked" if existed else f"written in {time.perf_counter() - start:.0f} s"
        print(f"{out} {done} (train/test: {summary})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli(main)
