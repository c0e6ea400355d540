"""Time the first decode of a digit folder against a cached load (datasets.load_folder).

    python3 benchmarks/cache_speed.py [--n 20000]

Writes N random 28x28 RGB PNGs into a temporary folder, loads them with an empty
cache, then three more times from the cache, and prints both times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="number of PNGs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.n):
            Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
        os.environ["HW3_CACHE_DIR"] = str(Path(tmp) / "cache")
        import datasets

        start = time.perf_counter()
        first = datasets.load_folder(folder)
        decode = time.perf_counter() - start
        cached = []
        for _ in range(3):
            start = time.perf_counter()
            again = datasets.load_folder(folder)
            cached.append(time.perf_counter() - start)
        assert np.array_equal(first.images.numpy(), again.images.numpy())
    print(f"{args.n} PNGs: first decode {decode:.2f} s, cached {min(cached):.3f} s (best of 3), "
          f"{decode / min(cached):.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
