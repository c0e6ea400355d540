"""`make report` rehearsed at the real sizes: every stage but training, timed, with its peak memory.

    python3 benchmarks/rehearsal.py --out runs/rehearsal [--jobs 2]

1. Builds the built-in development tree (``demo_data.py``) and repeats its images, each
   repetition shifted by a pixel and brightened or darkened a little, up to the assignment's
   counts (``make_data.FULL_SIZES``): 40,000 + 2,621 faces with the 13 attributes, mnistm and
   mnist 60,000 / 10,000, svhn 73,257 / 26,032, usps 7,291 / 2,007.
2. Runs ``pipeline.py --profile full --rehearse`` on it: every training is cut to its dry run
   (two updates), and every other stage runs at full size: decoding and the cache, the
   label-free scores and test accuracy of every digit classifier, t-SNE, 1,000 generated faces
   and digits with FID/KID against every test image, the grader scripts on every test image,
   the figures and the report. Its decode cache is a fresh folder, so the first decode is timed.
3. Samples the resident memory of the pipeline and all its child processes every half second
   (Linux ``/proc``), and writes ``--report`` (``benchmarks/rehearsal.md``) and ``--out``/rehearsal.md:
   each stage's wall time and peak memory.

The stage times are the pipeline's own (``==> stage`` lines); memory is the sum over the process
tree, so parallel jobs add up. Models go to ``--out``/models, never to ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import demo_data  # noqa: E402
from hw3.common import cli, cores, markdown_table  # noqa: E402
from make_data import FACE_ATTRIBUTES, FOLDERS, FULL_SIZES  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def varied(image: Image.Image, repetition: int) -> Image.Image:
    """The ``repetition``-th copy of an image: rolled by up to a pixel each way, brightness moved by up to 5."""
    if repetition == 0:
        return image
    pixels = np.asarray(image).astype(np.int16)
    dy, dx = repetition % 3 - 1, (repetition // 3) % 3 - 1
    pixels = np.roll(pixels, (dy, dx), axis=(0, 1)) + (repetition * 7) % 11 - 5
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), image.mode)


def expand_split(small: Path, big: Path, split: str, count: int, header_rows: bool) -> None:
    """Write ``count`` images of ``small/split`` to ``big/split``, cycling through the small set with variations."""
    names = sorted(p.name for p in (small / split).iterdir())
    rows = (small / f"{split}.csv").read_text().splitlines()
    by_name = {row.split(",", 1)[0]: row.split(",", 1)[1] for row in rows[1:]}
    folder = big / split
    folder.mkdir(parents=True)
    out_rows = []
    rng = np.random.default_rng(len(names))
    for i in range(count):
        name = names[i % len(names)]
        new = f"{i:05d}.png"
        with Image.open(small / split / name) as image:
            varied(image.copy(), i // len(names)).save(folder / new, **demo_data.PNG_OPTIONS)
        if header_rows:  # faces: the 13 attributes of the assignment's train.csv, drawn at random
            out_rows.append(new + "," + ",".join(f"{v:.1f}" for v in rng.integers(0, 2, len(FACE_ATTRIBUTES))))
        else:
            out_rows.append(f"{new},{by_name[name]}")
    header = "image_name," + ",".join(FACE_ATTRIBUTES) if header_rows else rows[0]
    (big / f"{split}.csv").write_text(header + "\n" + "".join(r + "\n" for r in out_rows))


def build_tree(out: Path, jobs: int) -> Path:
    """The real-size tree under ``out/hw3_data`` (kept if already complete), from the built-in images."""
    tree = out / "hw3_data"
    if (tree / ".complete").exists():
        return tree
    small = demo_data.build(out / "small", force=True)
    partial = out / "hw3_data.partial"
    if partial.exists():
        shutil.rmtree(partial)
    work = [(small / FOLDERS[part], partial / FOLDERS[part], split, n, part == "face")
            for part, sizes in FULL_SIZES.items() for split, n in zip(("train", "test"), sizes)]
    with ProcessPoolExecutor(jobs) as pool:
        for future in [pool.submit(expand_split, *w) for w in sorted(work, key=lambda w: -w[3])]:
            future.result()
    (partial / ".complete").touch()
    os.replace(partial, tree)
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (0 for those that ended meanwhile)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * PAGE
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def rehearse(tree: Path, out: Path, jobs: int) -> list[list[str]]:
    """Run the full profile with --rehearse; one row per stage: name, wall seconds, peak GB."""
    env = {**os.environ, "HW3_CACHE_DIR": str(out / "cache")}
    command = [sys.executable, str(REPO / "pipeline.py"), "--profile", "full", "--rehearse", "--data", str(tree),
               "--runs", str(out / "runs"), "--out", str(out / "report"), "--model-dir", str(out / "models"),
               "--jobs", str(jobs), "--restart"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    stages: list[list] = []  # [name, start, end, peak bytes]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            if stages:
                stages[-1][3] = max(stages[-1][3], tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith("==> "):
            now = time.perf_counter()
            if stages:
                stages[-1][2] = now
            stages.append([line[4:].strip(), now, None, 0])
    code = process.wait()
    done.set()
    sampler.join()
    if stages:
        stages[-1][2] = time.perf_counter()
    if code != 0:
        raise SystemExit(f"pipeline.py failed (exit {code}); the stages so far are above")
    return [[name, f"{end - start:.0f}", f"{peak / 2**30:.2f}"] for name, start, end, peak in stages]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/rehearsal"), help="tree, runs, report and table")
    parser.add_argument("--jobs", type=int, default=cores(), help="parallel jobs, for the build and the pipeline")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "rehearsal.md",
                        help="the table, as docs/data.md links it (also written to --out/rehearsal.md)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tree = build_tree(args.out, args.jobs)
    built = time.perf_counter() - start
    rows = [["build the real-size tree (not part of `make report`)", f"{built:.0f}", "–"],
            *rehearse(tree, args.out, args.jobs)]
    sizes = ", ".join(f"{part} {a:,}/{b:,}" for part, (a, b) in FULL_SIZES.items())
    table = markdown_table(["stage", "wall s", "peak memory, GB"], rows)
    text = (f"`python3 benchmarks/rehearsal.py --out {args.out} --jobs {args.jobs}` on {os.cpu_count()} cores: "
            f"train/test images {sizes}; training cut to dry runs.\n\n{table}\n")
    for path in (args.out / "rehearsal.md", args.report):
        path.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    cli(main)
