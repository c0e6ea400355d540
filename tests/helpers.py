"""Tiny synthetic data in the assignment's layout, a loopback model server, script runners.

Used by every test module through the fixtures in ``conftest.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
FACE_ATTRIBUTES = [
    "Bangs", "Big_Lips", "Black_Hair", "Blond_Hair", "Brown_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Lipstick",
]
# Per-domain look of the synthetic digits: (grayscale?, background, ink) so the domains differ.
DIGIT_STYLE = {"usps": (True, 0, 255), "mnist": (True, 0, 220), "mnistm": (False, (40, 90, 160), (250, 220, 60)), "svhn": (False, (200, 200, 190), (30, 30, 120))}


def _face(rng: np.random.Generator, attrs: np.ndarray) -> Image.Image:
    # A smooth blob whose brightness follows the first attribute, so it is learnable.
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.35)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    colour = rng.uniform(0.3, 1.0, size=3) * (0.6 + 0.4 * attrs[0])
    img = blob[..., None] * colour + rng.normal(0, 0.03, size=(64, 64, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _digit(rng: np.random.Generator, label: int, domain: str) -> Image.Image:
    gray, background, ink = DIGIT_STYLE[domain]
    img = Image.new("L" if gray else "RGB", (28, 28), background)
    font = ImageFont.load_default(size=22)
    ImageDraw.Draw(img).text((7 + rng.integers(-2, 3), 1 + rng.integers(-2, 3)), str(label), fill=ink, font=font)
    return img


def make_tiny_tree(root: str | os.PathLike, faces: tuple[int, int] = (24, 12), digits: tuple[int, int] = (40, 20), seed: int = 0) -> Path:
    """Write ``root/face`` and ``root/digits/<domain>`` with PNGs and CSVs; return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    offset = 0
    for split, n in zip(("train", "test"), faces):
        folder = root / "face" / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(n):
            name = f"{offset + i:05d}.png"
            attrs = rng.integers(0, 2, size=len(FACE_ATTRIBUTES)).astype(float)
            _face(rng, attrs).save(folder / name)
            rows.append(name + "," + ",".join(f"{a:.1f}" for a in attrs))
        offset += n
        (root / "face" / f"{split}.csv").write_text("image_name," + ",".join(FACE_ATTRIBUTES) + "\n" + "\n".join(rows) + "\n")
    for domain in DIGIT_STYLE:
        for split, n in zip(("train", "test"), digits):
            folder = root / "digits" / domain / split
            folder.mkdir(parents=True, exist_ok=True)
            rows = []
            for i in range(n):
                label = i % 10
                name = f"{i:05d}.png"
                _digit(rng, label, domain).save(folder / name)
                rows.append(f"{name},{label}")
            (root / "digits" / domain / f"{split}.csv").write_text("image_name,label\n" + "\n".join(rows) + "\n")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelServer:
    """``python3 -m http.server`` on 127.0.0.1 serving ``directory``; ``url`` is its base URL."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("loopback HTTP server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def script_env(**extra: str) -> dict:
    """The environment for running the repository's scripts: this Python first on PATH as ``python3``."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def run(args: list[str], **extra_env: str) -> subprocess.CompletedProcess:
    """Run a command in the repository root and capture its output."""
    return subprocess.run(args, cwd=REPO, env=script_env(**extra_env), capture_output=True, text=True, timeout=600)
