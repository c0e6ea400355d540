"""The one data module: faces and digits in the assignment's layout, decoded once.

Layout (``root`` is the ``hw3_data`` folder)::

    root/face/train/*.png        64x64 RGB     root/face/train.csv   image_name + 13 attributes
    root/face/test/*.png         (when given)  root/face/test.csv
    root/digits/<domain>/{train,test}/*.png    root/digits/<domain>/{train,test}.csv  image_name,label

Every image comes out as uint8 ``(3, H, W)``: grayscale is replicated to three
channels and other sizes are resized (faces to 64x64, digits to 28x28). A
folder is decoded once and cached as one ``.npy`` array under ``$HW3_CACHE_DIR``
(default ``~/.cache/hw3``); the cache key covers the folder's absolute path and
every image's name, size and modification time, so a changed folder is decoded
again instead of being served stale. Training then draws batches from tensors
(on the GPU when there is one): no PNG is decoded per epoch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd
from PIL import Image, UnidentifiedImageError

from hw3.common import UserError, cores, to_float  # noqa: F401  (to_float: the trainers read it here)
from hw3.domains import DIGITS_DOMAIN, DOMAINS, SCENARIOS  # noqa: F401  (the data module names them too)
from hw3.domains import FACES, split_folder, split_table

FACE_SIZE = 64
DIGIT_SIZE = 28
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_CACHE_VERSION = "1"


@dataclass
class ImageSet:
    """Decoded images with their file names and, when known, labels or attributes."""

    images: torch.Tensor  # (N, 3, H, W) uint8
    names: list[str]
    labels: torch.Tensor | None = None  # (N,) int64, digits only
    attributes: pd.DataFrame | None = None  # (N, 13) float, faces only; row i is names[i]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> "ImageSet":
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return ImageSet(
            images=self.images[index],
            names=[self.names[i] for i in index.tolist()],
            labels=None if self.labels is None else self.labels[index],
            attributes=None if self.attributes is None else self.attributes.iloc[index.numpy()].reset_index(drop=True),
        )


def cache_dir() -> Path:
    return Path(os.environ.get("HW3_CACHE_DIR") or Path.home() / ".cache" / "hw3")


def _scan(folder: Path) -> dict[str, str]:
    """``{name: "size:mtime"}`` of the image files in ``folder`` (one directory read)."""
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                st = entry.stat()
                found[entry.name] = f"{st.st_size}:{st.st_mtime_ns}"
    if not found:
        raise UserError(f"no images (.png/.jpg) in {folder}")
    return found


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image file names in ``folder``, sorted; other files are ignored."""
    return sorted(_scan(Path(folder)))


def _decode(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if img.mode != "RGB":
                img = img.convert("RGB")  # grayscale and palette images become 3 equal channels
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot decode image {path}: {err}") from None


def _cache_key(folder: Path, names: list[str], size: int) -> str:
    """A fingerprint of ``names`` in ``folder`` (path, sizes, modification times) decoded at ``size``."""
    stats = _scan(folder)
    listing = "|".join(f"{name}:{stats.get(name)}" for name in names)
    return hashlib.sha256(f"{_CACHE_VERSION}|{folder.resolve()}|{size}|{listing}".encode()).hexdigest()[:32]


def _decode_chunk(folder: Path, names: list[str], size: int) -> np.ndarray:
    # Each decoded image is an (H, W, C) buffer seen as (C, H, W); stacking keeps that channels-last
    # memory order, which would give convolutions other kernels than the cached (contiguous) copy.
    return np.ascontiguousarray(np.stack([_decode(folder / name, size) for name in names]))


def _decode_all(folder: Path, names: list[str], size: int, chunk: int = 2048) -> np.ndarray:
    """Decode ``names`` as one uint8 ``(n, 3, size, size)`` array, in order, ``chunk`` images a task.

    A small PNG costs about 85 us in PIL, mostly Python around the decoder, so threads only
    fight over the GIL (a pool of 8 threads on 2 cores took 3x a plain loop). Large folders
    are decoded by forked processes, one chunk of names each; small ones in a loop, and so is
    every folder inside a pool worker (a daemon process may not start processes of its own).
    """
    import multiprocessing

    workers = min(cores(), len(names) // chunk)
    if workers < 2 or multiprocessing.current_process().daemon:
        return _decode_chunk(folder, names, size)
    from concurrent.futures import ProcessPoolExecutor

    parts = [names[start:start + chunk] for start in range(0, len(names), chunk)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return np.concatenate(list(pool.map(_decode_chunk, [folder] * len(parts), parts, [size] * len(parts))))


def folder_fingerprint(folder: str | os.PathLike, size: int) -> str:
    """What identifies a folder's images decoded at ``size``: changes when any image is added, removed or rewritten."""
    folder = Path(folder)
    return _cache_key(folder, list_images(folder), size)


def load_cached(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """The array cached at ``path`` (of ``shape`` when given), or None when absent or damaged."""
    if not path.is_file():
        return None
    try:
        array = np.load(path)
    except (OSError, ValueError):
        return None  # a damaged cache file is rebuilt by the caller
    return array if shape is None or array.shape == shape else None


def store_cached(path: Path, array: np.ndarray) -> None:
    """Cache ``array`` at ``path`` atomically; a cache that cannot be written is slower, not wrong."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except OSError:
        pass


def decode_folder(folder: str | os.PathLike, names: list[str], size: int) -> torch.Tensor:
    """Decode ``names`` in ``folder`` to uint8 ``(N, 3, size, size)``, through the disk cache."""
    folder = Path(folder)
    cache_file = cache_dir() / f"{folder.name}-{size}-{_cache_key(folder, names, size)}.npy"
    array = load_cached(cache_file, (len(names), 3, size, size))
    if array is None:
        array = _decode_all(folder, names, size)
        store_cached(cache_file, array)
    return torch.from_numpy(array)


def _read_table(csv_path: Path, folder: Path, names: list[str], columns: Sequence[str] | None) -> "pd.DataFrame":
    """Read ``csv_path`` and return its rows in the order of ``names`` (the sorted folder)."""
    import pandas as pd  # imported here: the grader's predictor reads no table

    if not csv_path.is_file():
        raise UserError(f"label file not found: {csv_path} (expected beside {folder})")
    try:
        table = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {csv_path}: {err}") from None
    needed = ["image_name", *(columns or [])]
    missing_cols = [c for c in needed if c not in table.columns]
    if missing_cols:
        raise UserError(f"{csv_path} lacks column(s) {', '.join(missing_cols)}")
    if table["image_name"].duplicated().any():
        raise UserError(f"{csv_path} lists an image twice: {table['image_name'][table['image_name'].duplicated()].iloc[0]}")
    listed = set(table["image_name"])
    present = set(names)
    absent = sorted(listed - present)
    if absent:
        raise UserError(f"{csv_path} names {len(absent)} image(s) missing from {folder}, first {absent[0]}")
    unlisted = sorted(present - listed)
    if unlisted:
        raise UserError(f"{folder} has {len(unlisted)} image(s) not listed in {csv_path}, first {unlisted[0]}")
    return table.set_index("image_name").loc[names].reset_index()


def load_folder(folder: str | os.PathLike, size: int = DIGIT_SIZE) -> ImageSet:
    """Every image of a bare folder (no CSV), in sorted name order."""
    names = list_images(folder)
    return ImageSet(images=decode_folder(folder, names, size), names=names)


def load_faces(root: str | os.PathLike, split: str = "train") -> ImageSet:
    """``root/face/<split>`` with its 13 attributes from ``root/face/<split>.csv``."""
    folder = split_folder(root, FACES, split)
    names = list_images(folder)
    table = _read_table(split_table(root, FACES, split), folder, names, None)
    attributes = table.drop(columns="image_name").astype(float)
    return ImageSet(images=decode_folder(folder, names, FACE_SIZE), names=names, attributes=attributes)


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise UserError(f"unknown domain {domain!r}: choose one of {', '.join(DOMAINS)}")
    return domain


def load_digits(root: str | os.PathLike, domain: str, split: str = "train") -> ImageSet:
    """``root/digits/<domain>/<split>`` with labels from ``<split>.csv``, as 3x28x28 uint8."""
    import pandas as pd

    check_domain(domain)
    folder = split_folder(root, domain, split)
    names = list_images(folder)
    csv_path = split_table(root, domain, split)
    table = _read_table(csv_path, folder, names, ["label"])
    labels = pd.to_numeric(table["label"], errors="coerce")
    if labels.isna().any() or not labels.between(0, 9).all() or (labels % 1 != 0).any():
        raise UserError(f"{csv_path} has a label that is not an integer 0-9")
    return ImageSet(
        images=decode_folder(folder, names, DIGIT_SIZE),
        names=names,
        labels=torch.from_numpy(labels.to_numpy(dtype=np.int64).copy()),
    )


def train_val_split(data: ImageSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A seeded split of a *training* set, stratified by label when there are labels.

    Validation data selects checkpoints and hyper-parameters; test labels never do.
    """
    from sklearn.model_selection import train_test_split

    n = len(data)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise UserError(f"{n} image(s) are too few to split off a validation set")
    stratify = None
    if data.labels is not None:
        counts = np.bincount(data.labels.numpy())
        classes = int((counts > 0).sum())
        if counts[counts > 0].min() >= 2 and classes <= n_val <= n - classes:
            stratify = data.labels.numpy()
    train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=stratify)
    return data.subset(np.sort(train_idx)), data.subset(np.sort(val_idx))


class EndlessBatches:
    """Shuffled full batches forever, reshuffled at each pass; its position can be checkpointed.

    ``state_dict()`` holds the seed state that drew the current pass's order and how far
    into it the stream is, so a resumed run draws exactly the batches an uninterrupted one
    would. ``rng`` may be shared with augmentations: its current state is saved too.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, rng: torch.Generator):
        self.tensors, self.rng = tensors, rng
        self.batch_size = min(batch_size, len(tensors[0]))
        self._new_pass()

    def _new_pass(self) -> None:
        self._pass_state = self.rng.get_state()
        self._order = torch.randperm(len(self.tensors[0]), generator=self.rng)
        self._position = 0

    def __iter__(self) -> "EndlessBatches":
        return self

    def __next__(self) -> tuple[torch.Tensor, ...]:
        if self._position + self.batch_size > len(self._order):
            self._new_pass()
        index = self._order[self._position:self._position + self.batch_size].to(self.tensors[0].device)
        self._position += self.batch_size
        return tuple(t[index] for t in self.tensors)

    def state_dict(self) -> dict:
        return {"pass": self._pass_state, "position": self._position, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.set_state(state["pass"])
        self._new_pass()
        self._position = state["position"]
        self.rng.set_state(state["rng"])


def random_hflip(images: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of ``(B, C, H, W)`` left-right with probability 1/2 (a tensor op, any device)."""
    flip = torch.rand(len(images), generator=rng) < 0.5
    flip = flip.to(images.device).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)
