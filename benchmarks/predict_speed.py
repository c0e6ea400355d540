"""Time the grader's predictor (``predict.py``) against a plain Dataset + DataLoader predictor.

    python3 benchmarks/predict_speed.py [--n 26032] [--repeats 3]

Writes N random 28x28 RGB PNGs (an SVHN-test-sized folder by default) and a DANN checkpoint
(random weights: the predictions only have to agree), then runs, each in a fresh process
with an empty decode cache, ``predict.py`` as ``hw3_p3.sh`` runs it and a typical student's
predictor: ``Dataset`` with PIL + ``to_tensor``, ``DataLoader(batch_size=256, num_workers=2)``,
the same model on the CPU. Prints the median wall time of each (imports included), and checks
that both wrote the same labels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BASELINE = r'''
import csv, os, sys
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import to_tensor
sys.path.insert(0, sys.argv[4])
import dann, swd  # register their methods
from hw3.checkpoints import CLASSIFIERS, load_model

class Folder(Dataset):
    def __init__(self, root):
        self.root, self.names = root, sorted(os.listdir(root))
    def __len__(self):
        return len(self.names)
    def __getitem__(self, i):
        return to_tensor(Image.open(os.path.join(self.root, self.names[i])).convert("RGB"))

model, _ = load_model(sys.argv[1], CLASSIFIERS)
data = Folder(sys.argv[2])
labels = []
with torch.no_grad():
    for x in DataLoader(data, batch_size=256, num_workers=2):
        labels += model(x).argmax(1).tolist()
with open(sys.argv[3], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["image_name", "label"])
    w.writerows(zip(data.names, labels))
'''


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=26032, help="number of PNGs (SVHN's test set: 26,032)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the median is reported")
    args = parser.parse_args(argv)
    import torch

    import dann
    from hw3 import uda
    from hw3.training import FORMAT, save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.n):
            Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
        torch.manual_seed(0)
        config = uda.UDAConfig.of(dann.METHOD.name)
        save_checkpoint(tmp / "model.pt", {"format": FORMAT, "kind": uda.KIND, "config": config.saved(),
                                           "run": {"source": "mnistm", "target": "svhn"},
                                           "model": config.build().state_dict()})
        (tmp / "baseline.py").write_text(BASELINE)
        commands = {
            "predict.py": [sys.executable, "predict.py", "--checkpoint", str(tmp / "model.pt"),
                           "--img-dir", str(folder), "--out", str(tmp / "ours.csv")],
            "DataLoader baseline": [sys.executable, str(tmp / "baseline.py"), str(tmp / "model.pt"), str(folder),
                                    str(tmp / "baseline.csv"), str(REPO)],
        }
        seconds = {name: [] for name in commands}
        for repeat in range(args.repeats):
            for name, command in commands.items():
                env = dict(os.environ, HW3_CACHE_DIR=str(tmp / f"cache{repeat}-{len(seconds[name])}"))  # cold
                seconds[name].append(timed(command, env))
        same = (tmp / "ours.csv").read_text() == (tmp / "baseline.csv").read_text()
    median = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name}: median {median[name]:.1f} s ({', '.join(f'{v:.1f}' for v in values)})")
    print(f"{args.n} images on {os.cpu_count()} cores, cold cache: predict.py is "
          f"{median['DataLoader baseline'] / median['predict.py']:.1f}x the baseline's speed; "
          f"same labels: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
